"""Models: the architectures (zoo), the weights format and its checks, conversion, fetching, evaluation."""

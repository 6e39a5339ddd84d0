"""Conversion of other frameworks' checkpoints into minicnn's weights format (PyTorch, TFLite)."""

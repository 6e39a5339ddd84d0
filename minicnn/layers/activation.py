"""ReLU and its three backward rules.

Forward: out = max(x, 0).

The backward rule is the whole difference between a gradient and the two
classic visualisations (Springenberg et al. 2015, Figure 1):

    plain      dx = dout * (x > 0)                 the true derivative
    deconvnet  dx = dout * (dout > 0)              Zeiler & Fergus' deconvnet
    guided     dx = dout * (x > 0) * (dout > 0)    guided backpropagation

``x > 0`` is read off the output (out > 0 exactly when x > 0), so the cache
is the output array the model keeps anyway: no copy. At x = 0 the derivative
is taken as 0, as PyTorch does.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .base import Layer


def relu_forward(x: np.ndarray) -> np.ndarray:
    """out = max(x, 0), elementwise; any shape."""
    return np.maximum(x, 0)


def relu_backward_plain(dout: np.ndarray, out: np.ndarray) -> np.ndarray:
    """dx = dout * (x > 0): the derivative of max(x, 0)."""
    return dout * (out > 0)


def relu_backward_deconvnet(dout: np.ndarray, out: np.ndarray) -> np.ndarray:
    """dx = dout * (dout > 0): the deconvnet passes only positive signals, whatever x was."""
    return dout * (dout > 0)


def relu_backward_guided(dout: np.ndarray, out: np.ndarray) -> np.ndarray:
    """dx = dout * (x > 0) * (dout > 0): both masks at once (guided backpropagation)."""
    return dout * ((out > 0) & (dout > 0))


RELU_RULES = {
    "plain": relu_backward_plain,
    "deconvnet": relu_backward_deconvnet,
    "guided": relu_backward_guided,
}


def relu_rule(name: str):
    """The backward rule called ``name``; a one-line error for an unknown one."""
    try:
        return RELU_RULES[name]
    except (KeyError, TypeError):
        raise InputError(f"unknown ReLU backward rule {name!r}; choose one of: {', '.join(RELU_RULES)}") from None


class ReLU(Layer):
    """out = max(x, 0). Backward rule chosen per call: plain, deconvnet or guided."""

    def forward(self, x):
        out = relu_forward(x)
        return out, out

    def backward(self, dout, cache, param_grads=False, relu="plain"):
        return relu_rule(relu)(dout, cache), {}

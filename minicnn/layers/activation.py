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

Every function writes into ``into`` when given one (the layer splits a large
array into blocks of channels, one per thread: ``parallel.by_channels``).
"""

from __future__ import annotations

import numpy as np

from .. import parallel
from ..errors import InputError
from .base import Layer


def relu_forward(x: np.ndarray, into: np.ndarray | None = None) -> np.ndarray:
    """out = max(x, 0), elementwise; any shape."""
    return np.maximum(x, 0, out=into)


def relu_backward_plain(dout: np.ndarray, out: np.ndarray, into: np.ndarray | None = None) -> np.ndarray:
    """dx = dout * (x > 0): the derivative of max(x, 0)."""
    return np.multiply(dout, out > 0, out=into)


def relu_backward_deconvnet(dout: np.ndarray, out: np.ndarray, into: np.ndarray | None = None) -> np.ndarray:
    """dx = dout * (dout > 0) = max(dout, 0): the deconvnet passes only positive signals, whatever x was."""
    return np.maximum(dout, 0, out=into)


def relu_backward_guided(dout: np.ndarray, out: np.ndarray, into: np.ndarray | None = None) -> np.ndarray:
    """dx = dout * (x > 0) * (dout > 0) = max(dout, 0) * (x > 0): both masks (guided backpropagation)."""
    dx = np.maximum(dout, 0, out=into)
    return np.multiply(dx, out > 0, out=dx)


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
        out = parallel.by_channels(relu_forward, np.empty_like(x), x) if x.ndim == 4 else relu_forward(x)
        return out, out

    def backward(self, dout, cache, param_grads=False, relu="plain"):
        rule = relu_rule(relu)
        if dout.ndim == 4:
            return parallel.by_channels(rule, np.empty_like(dout), dout, cache), {}
        return rule(dout, cache), {}

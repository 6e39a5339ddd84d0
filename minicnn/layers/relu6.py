"""ReLU6 and its three backward rules (MobileNetV2's activation).

Forward: out = min(max(x, 0), 6), elementwise.

Its derivative is 1 on the open interval 0 < x < 6 and 0 outside it (at
x = 0 and x = 6 it is taken as 0, as PyTorch's ``F.relu6`` does). The
three backward rules of ``activation.py`` carry over:

    plain      dx = dout * (0 < x < 6)                 the true derivative
    deconvnet  dx = dout * (dout > 0)                  only positive signals, whatever x was
    guided     dx = dout * (0 < x < 6) * (dout > 0)    guided backpropagation

Guided backpropagation keeps a signal where the forward pass let x through
*and* the signal is positive, so for ReLU6 its forward mask is the plain
derivative's, 0 < x < 6: a unit saturated at 6 passes nothing back, just
as a unit at 0 does. The deconvnet rule never looks at x, so it is the
same as for ReLU. For 0 <= x <= 6 ReLU6 is ReLU, and all three rules then
give what ReLU's rules give.

``0 < x < 6`` is read off the output (0 < out < 6 exactly when 0 < x < 6),
so the cache is the output array the model keeps anyway.
"""

from __future__ import annotations

import numpy as np

from .activation import relu_rule
from .base import Layer


def relu6_forward(x: np.ndarray) -> np.ndarray:
    """out = min(max(x, 0), 6), elementwise; any shape."""
    return np.clip(x, 0, 6)


def inside(out: np.ndarray) -> np.ndarray:
    """The mask 0 < x < 6, read off out = relu6(x)."""
    return (out > 0) & (out < 6)


def relu6_backward_plain(dout: np.ndarray, out: np.ndarray) -> np.ndarray:
    """dx = dout * (0 < x < 6): the derivative of min(max(x, 0), 6)."""
    return dout * inside(out)


def relu6_backward_deconvnet(dout: np.ndarray, out: np.ndarray) -> np.ndarray:
    """dx = dout * (dout > 0): as ReLU's deconvnet rule, the forward value plays no part."""
    return dout * (dout > 0)


def relu6_backward_guided(dout: np.ndarray, out: np.ndarray) -> np.ndarray:
    """dx = dout * (0 < x < 6) * (dout > 0): the plain mask and the positive-signal mask at once."""
    return dout * (inside(out) & (dout > 0))


RELU6_RULES = {
    "plain": relu6_backward_plain,
    "deconvnet": relu6_backward_deconvnet,
    "guided": relu6_backward_guided,
}


class ReLU6(Layer):
    """out = min(max(x, 0), 6). Backward rule chosen per call: plain, deconvnet or guided."""

    def forward(self, x):
        out = relu6_forward(x)
        return out, out

    def backward(self, dout, cache, param_grads=False, relu="plain"):
        relu_rule(relu)  # the same rule names as ReLU's; an unknown one is a one-line error
        return RELU6_RULES[relu](dout, cache), {}

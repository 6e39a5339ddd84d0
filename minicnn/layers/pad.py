"""Zero padding with a width of its own on each side (PyTorch's ZeroPad2d).

``padding`` is (left, right, top, bottom), PyTorch's order, or one int for
all four. Forward, for x (N, C, H, W):

    out (N, C, top + H + bottom, left + W + right)
    out[n, c, top + y, left + z] = x[n, c, y, z];   out = 0 in the border

Backward: the border holds constants, so their gradient goes nowhere, and
every interior element passes its gradient straight back:

    dx[n, c, y, z] = dout[n, c, top + y, left + z]

Why a layer of its own: TensorFlow's "SAME" padding splits an odd total
between the sides with the extra row and column at the bottom and right.
A stride-2 3x3 convolution on an even size H needs one padded row in all
(out = H/2 = floor((H + total - 3) / 2) + 1 gives total = 1), so it pads
(left, right, top, bottom) = (0, 1, 0, 1), which a convolution's symmetric
``padding`` cannot express; ZeroPad2d((0, 1, 0, 1)) then Conv2d(padding=0) can.
"""

from __future__ import annotations

import numbers

import numpy as np

from ..errors import InputError
from .base import Layer


def four_sides(padding) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) from an int or a 4-sequence; a one-line InputError otherwise."""
    if isinstance(padding, numbers.Integral) and not isinstance(padding, bool):
        padding = (padding,) * 4
    try:
        sides = tuple(int(p) for p in padding)
        ok = len(sides) == 4 and all(s >= 0 for s in sides) and all(
            not isinstance(p, bool) and float(p) == int(p) for p in padding)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InputError(f"ZeroPad2d padding must be an int or (left, right, top, bottom), four non-negative "
                         f"integers; got {padding!r}")
    return sides


def zeropad2d_forward(x: np.ndarray, padding) -> np.ndarray:
    """x (N, C, H, W) -> (N, C, top + H + bottom, left + W + right), zeros in the border."""
    left, right, top, bottom = four_sides(padding)
    n, c, h, w = x.shape
    out = np.zeros((n, c, top + h + bottom, left + w + right), dtype=x.dtype)
    out[:, :, top:top + h, left:left + w] = x
    return out


def zeropad2d_backward(dout: np.ndarray, padding) -> np.ndarray:
    """dx = dout[:, :, top:top + H, left:left + W]: the interior of the upstream gradient (a view)."""
    left, right, top, bottom = four_sides(padding)
    h, w = dout.shape[2] - top - bottom, dout.shape[3] - left - right
    return dout[:, :, top:top + h, left:left + w]


class ZeroPad2d(Layer):
    """torch.nn.ZeroPad2d: pad (left, right, top, bottom) with zeros; no parameters."""

    def __init__(self, padding):
        super().__init__()
        self.padding = four_sides(padding)

    def config(self):
        return {"padding": list(self.padding)}

    def forward(self, x):
        return zeropad2d_forward(x, self.padding), None

    def backward(self, dout, cache, param_grads=False, relu="plain"):
        return zeropad2d_backward(dout, self.padding), {}

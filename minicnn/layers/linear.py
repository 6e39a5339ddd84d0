"""Dense (fully connected) layer, Flatten and Dropout.

Linear, with x (N, D), w (M, D) as in PyTorch, b (M,):

    out = x @ w.T + b                       (N, M)
    dx  = dout @ w                          (N, D)
    dw  = dout.T @ x                        (M, D)
    db  = sum_n dout[n]                     (M,)

Flatten reshapes (N, C, H, W) to (N, C*H*W) in C order, as torch.flatten(x, 1);
its backward reshapes dout back. Dropout is the identity at inference, which
is the only mode minicnn runs (it trains without dropout).

A large weight matrix (VGG-16's classifier: 25088 x 4096) is read a block of
its rows (forward) or columns (backward) at a time, on all threads: each
block of outputs is its own product (``parallel``).
"""

from __future__ import annotations

import numpy as np

from .. import parallel
from ..errors import InputError
from .base import Layer


def _blocks(size: int, w: np.ndarray) -> list[slice]:
    """``size`` split into one near-equal slice per thread (one slice for a small w)."""
    return parallel.near_equal(size, parallel.threads() if w.size >= parallel.SPLIT_ELEMENTS else 1)


def linear_forward(x, w, b=None):
    """out = x @ w.T + b: x (N, D), w (M, D), b (M,) -> (N, M); out[:, rows] = x @ w[rows].T per block."""
    out = np.empty((x.shape[0], w.shape[0]), np.result_type(x, w))
    parallel.run(lambda rows: np.matmul(x, w[rows].T, out=out[:, rows]), _blocks(w.shape[0], w))
    if b is not None:
        out += b
    return out


def linear_backward(dout, x, w, param_grads=True):
    """dx = dout @ w (dx[:, cols] = dout @ w[:, cols] per block); dw = dout.T @ x;
    db = dout summed over the batch (None unless param_grads)."""
    dx = np.empty((dout.shape[0], w.shape[1]), np.result_type(dout, w))
    parallel.run(lambda cols: np.matmul(dout, w[:, cols], out=dx[:, cols]), _blocks(w.shape[1], w))
    if not param_grads:
        return dx, None, None
    return dx, dout.T @ x, dout.sum(axis=0)


class Linear(Layer):
    """torch.nn.Linear. The parameters start at zero, as Conv2d's (see there)."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.params["weight"] = np.zeros((self.out_features, self.in_features), np.float32)
        if bias:
            self.params["bias"] = np.zeros(self.out_features, np.float32)

    def config(self):
        return {"in_features": self.in_features, "out_features": self.out_features, "bias": "bias" in self.params}

    def forward(self, x):
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise InputError(f"a Linear layer with in_features={self.in_features} got an input of shape {x.shape}; "
                             f"give images of the height and width the model was built for (model.input_size)")
        return linear_forward(x, self.param("weight", x.dtype), self.param("bias", x.dtype)), x

    def backward(self, dout, cache, param_grads=False, relu="plain"):
        dx, dw, db = linear_backward(dout, cache, self.param("weight", dout.dtype), param_grads)
        if not param_grads:
            return dx, {}
        grads = {"weight": dw}
        if "bias" in self.params:
            grads["bias"] = db
        return dx, grads


class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W), as torch.flatten(x, 1); dx = dout reshaped back."""

    def forward(self, x):
        return x.reshape(x.shape[0], -1), x.shape

    def backward(self, dout, cache, param_grads=False, relu="plain"):
        return dout.reshape(cache), {}


class Dropout(Layer):
    """torch.nn.Dropout at inference: out = x, dx = dout (p is kept for the record)."""

    def __init__(self, p=0.5):
        super().__init__()
        self.p = float(p)

    def config(self):
        return {"p": self.p}

    def forward(self, x):
        return x, None

    def backward(self, dout, cache, param_grads=False, relu="plain"):
        return dout, {}

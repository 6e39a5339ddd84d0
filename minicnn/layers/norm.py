"""BatchNorm2d in inference mode: a per-channel affine map.

With the running statistics mu, var (C,), the learned gamma (weight) and
beta (bias), and PyTorch's eps (1e-5 by default):

    scale = gamma / sqrt(var + eps)                  (C,)
    out   = (x - mu) * scale + beta                  (N, C, H, W)
    dx    = dout * scale
    dgamma[c] = sum_{n,i,j} dout[n,c,i,j] * (x[n,c,i,j] - mu[c]) / sqrt(var[c] + eps)
    dbeta[c]  = sum_{n,i,j} dout[n,c,i,j]

The running statistics are constants here (buffers, no gradient). Because
the map is affine it can be folded into the convolution before it, which is
what ``convert --fold-bn`` does (see ``fold_into_conv``).
"""

from __future__ import annotations

import numpy as np

from .base import Layer


def _per_channel(v):
    return v[None, :, None, None]


def batchnorm2d_forward(x, gamma, beta, mean, var, eps=1e-5):
    """out = (x - mean) * gamma / sqrt(var + eps) + beta, per channel; x (N, C, H, W)."""
    scale = gamma / np.sqrt(var + eps)
    return x * _per_channel(scale) + _per_channel(beta - mean * scale)


def batchnorm2d_backward(dout, x, gamma, mean, var, eps=1e-5, param_grads=True):
    """dx = dout * scale; dgamma = sum dout * x_hat; dbeta = sum dout (over n, i, j)."""
    inv_std = 1.0 / np.sqrt(var + eps)
    dx = dout * _per_channel(gamma * inv_std)
    if not param_grads:
        return dx, None, None
    x_hat = (x - _per_channel(mean)) * _per_channel(inv_std)
    return dx, (dout * x_hat).sum(axis=(0, 2, 3)), dout.sum(axis=(0, 2, 3))


def fold_into_conv(w, b, gamma, beta, mean, var, eps=1e-5):
    """Conv then BN as one conv: w' = w * scale[f], b' = (b - mean) * scale + beta."""
    scale = gamma / np.sqrt(var + eps)
    b = np.zeros_like(mean) if b is None else b
    return w * scale[:, None, None, None], (b - mean) * scale + beta


class BatchNorm2d(Layer):
    """torch.nn.BatchNorm2d in eval mode (running statistics)."""

    def __init__(self, num_features, eps=1e-5):
        super().__init__()
        self.num_features, self.eps = int(num_features), float(eps)
        self.params["weight"] = np.ones(self.num_features, np.float32)
        self.params["bias"] = np.zeros(self.num_features, np.float32)
        self.buffers["running_mean"] = np.zeros(self.num_features, np.float32)
        self.buffers["running_var"] = np.ones(self.num_features, np.float32)

    def config(self):
        return {"num_features": self.num_features, "eps": self.eps}

    def _stats(self, dtype):
        return (self.param("weight", dtype), self.param("bias", dtype),
                self.param("running_mean", dtype), self.param("running_var", dtype))

    def forward(self, x):
        gamma, beta, mean, var = self._stats(x.dtype)
        return batchnorm2d_forward(x, gamma, beta, mean, var, self.eps), x

    def backward(self, dout, cache, param_grads=False, relu="plain"):
        gamma, _, mean, var = self._stats(dout.dtype)
        dx, dgamma, dbeta = batchnorm2d_backward(dout, cache, gamma, mean, var, self.eps, param_grads)
        return dx, ({"weight": dgamma, "bias": dbeta} if param_grads else {})

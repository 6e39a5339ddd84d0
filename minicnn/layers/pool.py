"""Max pooling, average pooling and adaptive average pooling, in two tiers.

Shapes: x (N, C, H, W) -> out (N, C, Ho, Wo), Ho from the window formula in
``windows.py``; stride defaults to the kernel size, as in PyTorch.

Max pooling (padding with -inf, as PyTorch):

    out[n, c, i, j] = max_{u, v} xp[n, c, i*s + u, j*s + v]
    dxp[n, c, i*s + u*, j*s + v*] += dout[n, c, i, j]

where (u*, v*) is the *first* maximum of the window in row-major order.
PyTorch breaks ties the same way, and ties are common: after a ReLU a window
full of zeros has every tap tied.

Average pooling (PyTorch's defaults: zero padding counted in the mean):

    out[n, c, i, j] = 1/(kh*kw) sum_{u, v} xp[n, c, i*s + u, j*s + v]
    dxp[n, c, i*s + u, j*s + v] += dout[n, c, i, j] / (kh*kw)

Adaptive average pooling to (Ho, Wo) averages the cell
rows floor(i*H/Ho) .. ceil((i+1)*H/Ho) - 1 (and likewise for columns), the
bins PyTorch uses; with output 1x1 it is global average pooling.
"""

from __future__ import annotations

import math

import numpy as np

from .. import parallel
from ..windows import output_hw, pad, pair, unpad, windows
from .base import Layer


def _tap_slices(u, v, ho, wo, stride):
    """Rows and columns of the padded input that tap (u, v) of every window reads."""
    sh, sw = stride
    return slice(u, u + sh * (ho - 1) + 1, sh), slice(v, v + sw * (wo - 1) + 1, sw)


# ---------------------------------------------------------------- max pooling

def maxpool2d_forward_reference(x, kernel_size, stride=None, padding=0):
    """Max of each window, one output element at a time."""
    (kh, kw), (sh, sw) = pair(kernel_size), pair(stride or kernel_size)
    n_, c_, h, w = x.shape
    ho, wo = output_hw(h, w, (kh, kw), (sh, sw), padding)
    xp = pad(x, padding, -np.inf)
    out = np.empty((n_, c_, ho, wo), dtype=x.dtype)
    for n in range(n_):
        for c in range(c_):
            for i in range(ho):
                for j in range(wo):
                    out[n, c, i, j] = xp[n, c, i * sh:i * sh + kh, j * sw:j * sw + kw].max()
    return out


def maxpool2d_backward_reference(dout, x, kernel_size, stride=None, padding=0):
    """Route each dout to the first maximum of its window (row-major). Returns dx."""
    (kh, kw), (sh, sw) = pair(kernel_size), pair(stride or kernel_size)
    n_, c_, ho, wo = dout.shape
    xp = pad(x, padding, -np.inf)
    dxp = np.zeros_like(xp)
    for n in range(n_):
        for c in range(c_):
            for i in range(ho):
                for j in range(wo):
                    window = xp[n, c, i * sh:i * sh + kh, j * sw:j * sw + kw]
                    u, v = np.unravel_index(np.argmax(window), window.shape)  # first maximum
                    dxp[n, c, i * sh + u, j * sw + v] += dout[n, c, i, j]
    return unpad(dxp, padding)


def maxpool2d_forward(x, kernel_size, stride=None, padding=0, into=None):
    """out = max over the taps (u, v) of every window: one vectorised maximum per tap.

    x (N, C, H, W) -> out (N, C, Ho, Wo). ``win[..., u, v]`` (N, C, Ho, Wo) is tap
    (u, v) of every window, a strided view of the padded input; out starts as
    tap (0, 0) and takes the elementwise maximum with each other tap.
    ``into``: write out there (the layer's blocks of channels, ``parallel.by_channels``).
    """
    (kh, kw), stride = pair(kernel_size), pair(stride or kernel_size)
    win = windows(pad(x, padding, -np.inf), (kh, kw), stride)
    out = win[..., 0, 0].copy() if into is None else into
    if into is not None:
        out[...] = win[..., 0, 0]
    for u in range(kh):
        for v in range(kw):
            if u or v:
                np.maximum(out, win[..., u, v], out=out)
    return out


def maxpool2d_backward(dout, x, out, kernel_size, stride=None, padding=0, into=None):
    """dx: each dout goes to the first tap (row-major) of its window that equals the maximum.

    dout, out (N, C, Ho, Wo); x (N, C, H, W) -> dx (N, C, H, W). One vectorised
    step per tap (u, v): ``hit`` marks the windows whose maximum sits at this
    tap and was not claimed by an earlier tap. x and out are the forward's
    input and output (the model keeps them anyway). When windows do not
    overlap (stride >= kernel) every input element is read by at most one
    window, so dout * hit is written straight into place; otherwise it is added.
    ``into``: an array of zeros shaped like x to write dx into (no padding only).
    """
    (kh, kw), stride = pair(kernel_size), pair(stride or kernel_size)
    xp = pad(x, padding, -np.inf)
    win = windows(xp, (kh, kw), stride)
    ho, wo = out.shape[2:]
    overlap = stride[0] < kh or stride[1] < kw
    dxp = np.zeros(xp.shape, dtype=dout.dtype) if into is None else into
    claimed = np.zeros(out.shape, dtype=bool)
    for u in range(kh):
        for v in range(kw):
            hit = win[..., u, v] == out
            hit &= ~claimed
            claimed |= hit
            rows, cols = _tap_slices(u, v, ho, wo, stride)
            if overlap:
                dxp[:, :, rows, cols] += dout * hit
            else:
                np.multiply(dout, hit, out=dxp[:, :, rows, cols])
    return unpad(dxp, padding)


class _WindowPool(Layer):
    """A pooling layer over sliding windows: kernel size, stride (default: the kernel) and padding."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = pair(kernel_size)
        self.stride = pair(stride if stride is not None else kernel_size)
        self.padding = pair(padding)

    def config(self):
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride), "padding": list(self.padding)}


class MaxPool2d(_WindowPool):
    """torch.nn.MaxPool2d (dilation 1, floor mode). A large input is pooled a block of
    channels per thread (``parallel.by_channels``)."""

    def forward(self, x):
        hyper = self.kernel_size, self.stride, self.padding
        out = np.empty((*x.shape[:2], *output_hw(*x.shape[2:], *hyper)), x.dtype)
        parallel.by_channels(lambda x, into: maxpool2d_forward(x, *hyper, into=into), out, x)
        return out, (x, out)

    def backward(self, dout, cache, param_grads=False, relu="plain"):
        x, out = cache
        hyper = self.kernel_size, self.stride, self.padding
        if self.padding != (0, 0):
            return maxpool2d_backward(dout, x, out, *hyper), {}
        dx = np.zeros(x.shape, dout.dtype)
        parallel.by_channels(lambda d, x, o, into: maxpool2d_backward(d, x, o, *hyper, into=into), dx, dout, x, out)
        return dx, {}


# ---------------------------------------------------------------- average pooling

def avgpool2d_forward_reference(x, kernel_size, stride=None, padding=0):
    """Mean of each window (zero padding counted), one output element at a time."""
    (kh, kw), (sh, sw) = pair(kernel_size), pair(stride or kernel_size)
    n_, c_, h, w = x.shape
    ho, wo = output_hw(h, w, (kh, kw), (sh, sw), padding)
    xp = pad(x, padding)
    out = np.empty((n_, c_, ho, wo), dtype=x.dtype)
    for n in range(n_):
        for c in range(c_):
            for i in range(ho):
                for j in range(wo):
                    out[n, c, i, j] = xp[n, c, i * sh:i * sh + kh, j * sw:j * sw + kw].sum() / (kh * kw)
    return out


def avgpool2d_backward_reference(dout, x, kernel_size, stride=None, padding=0):
    """Spread each dout evenly over its window. Returns dx."""
    (kh, kw), (sh, sw) = pair(kernel_size), pair(stride or kernel_size)
    n_, c_, ho, wo = dout.shape
    dxp = np.zeros_like(pad(x, padding))
    for n in range(n_):
        for c in range(c_):
            for i in range(ho):
                for j in range(wo):
                    dxp[n, c, i * sh:i * sh + kh, j * sw:j * sw + kw] += dout[n, c, i, j] / (kh * kw)
    return unpad(dxp, padding)


def avgpool2d_forward(x, kernel_size, stride=None, padding=0):
    """out = mean over the (kh, kw) axes of the window view."""
    stride = pair(stride or kernel_size)
    return windows(pad(x, padding), kernel_size, stride).mean(axis=(4, 5))


def avgpool2d_backward(dout, x_shape, kernel_size, stride=None, padding=0):
    """dx: each tap (u, v) of every window receives dout / (kh*kw); one strided add per tap."""
    (kh, kw), stride = pair(kernel_size), pair(stride or kernel_size)
    (ph, pw), (n, c, h, w) = pair(padding), x_shape
    ho, wo = dout.shape[2:]
    dxp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=dout.dtype)
    share = dout / (kh * kw)
    for u in range(kh):
        for v in range(kw):
            rows, cols = _tap_slices(u, v, ho, wo, stride)
            dxp[:, :, rows, cols] += share
    return unpad(dxp, padding)


class AvgPool2d(_WindowPool):
    """torch.nn.AvgPool2d with its defaults (count_include_pad=True, floor mode)."""

    def forward(self, x):
        return avgpool2d_forward(x, self.kernel_size, self.stride, self.padding), x.shape

    def backward(self, dout, cache, param_grads=False, relu="plain"):
        return avgpool2d_backward(dout, cache, self.kernel_size, self.stride, self.padding), {}


# ---------------------------------------------------------------- adaptive average pooling

def adaptive_bins(size: int, out: int) -> list[tuple[int, int]]:
    """PyTorch's bins: cell i covers [floor(i*size/out), ceil((i+1)*size/out))."""
    return [(i * size // out, math.ceil((i + 1) * size / out)) for i in range(out)]


def adaptive_avgpool2d_forward_reference(x, output_size):
    """Mean of each adaptive cell, one output element at a time."""
    ho, wo = pair(output_size)
    n_, c_, h, w = x.shape
    out = np.empty((n_, c_, ho, wo), dtype=x.dtype)
    for n in range(n_):
        for c in range(c_):
            for i, (r0, r1) in enumerate(adaptive_bins(h, ho)):
                for j, (c0, c1) in enumerate(adaptive_bins(w, wo)):
                    out[n, c, i, j] = x[n, c, r0:r1, c0:c1].mean()
    return out


def adaptive_avgpool2d_backward_reference(dout, x_shape, output_size):
    """Spread each dout evenly over its cell. Returns dx."""
    ho, wo = pair(output_size)
    n_, c_, h, w = x_shape
    dx = np.zeros(x_shape, dtype=dout.dtype)
    for n in range(n_):
        for c in range(c_):
            for i, (r0, r1) in enumerate(adaptive_bins(h, ho)):
                for j, (c0, c1) in enumerate(adaptive_bins(w, wo)):
                    dx[n, c, r0:r1, c0:c1] += dout[n, c, i, j] / ((r1 - r0) * (c1 - c0))
    return dx


def adaptive_avgpool2d_forward(x, output_size):
    """Vectorised over N and C: a reshape-mean when the cells tile the input, else one mean per cell."""
    ho, wo = pair(output_size)
    n, c, h, w = x.shape
    if h % ho == 0 and w % wo == 0:
        return x.reshape(n, c, ho, h // ho, wo, w // wo).mean(axis=(3, 5))
    out = np.empty((n, c, ho, wo), dtype=x.dtype)
    for i, (r0, r1) in enumerate(adaptive_bins(h, ho)):
        for j, (c0, c1) in enumerate(adaptive_bins(w, wo)):
            out[:, :, i, j] = x[:, :, r0:r1, c0:c1].mean(axis=(2, 3))
    return out


def adaptive_avgpool2d_backward(dout, x_shape, output_size):
    """dx: each cell's dout divided by the cell's area, added back over the cell."""
    ho, wo = pair(output_size)
    n, c, h, w = x_shape
    if h % ho == 0 and w % wo == 0:
        kh, kw = h // ho, w // wo
        share = dout / (kh * kw)
        return np.broadcast_to(share[:, :, :, None, :, None], (n, c, ho, kh, wo, kw)).reshape(x_shape)
    dx = np.zeros(x_shape, dtype=dout.dtype)
    for i, (r0, r1) in enumerate(adaptive_bins(h, ho)):
        for j, (c0, c1) in enumerate(adaptive_bins(w, wo)):
            dx[:, :, r0:r1, c0:c1] += (dout[:, :, i, j] / ((r1 - r0) * (c1 - c0)))[:, :, None, None]
    return dx


class AdaptiveAvgPool2d(Layer):
    """torch.nn.AdaptiveAvgPool2d; output_size 1 is global average pooling."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = pair(output_size)

    def config(self):
        return {"output_size": list(self.output_size)}

    def forward(self, x):
        return adaptive_avgpool2d_forward(x, self.output_size), x.shape

    def backward(self, dout, cache, param_grads=False, relu="plain"):
        return adaptive_avgpool2d_backward(dout, cache, self.output_size), {}

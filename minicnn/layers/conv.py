"""2-D convolution (cross-correlation, as in PyTorch's Conv2d), in two tiers.

Shapes (PyTorch's layout): x (N, C, H, W), w (F, C, kh, kw), b (F,),
out (N, F, Ho, Wo) with Ho = floor((H + 2p - d(kh - 1) - 1) / s) + 1.

Forward, with xp the zero-padded input:

    out[n, f, i, j] = b[f] + sum_{c, u, v} w[f, c, u, v] * xp[n, c, i*s + u*d, j*s + v*d]

Backward, for an upstream gradient dout = dL/dout of the same shape as out:

    db[f]          = sum_{n, i, j} dout[n, f, i, j]
    dw[f, c, u, v] = sum_{n, i, j} dout[n, f, i, j] * xp[n, c, i*s + u*d, j*s + v*d]
    dxp[n, c, i*s + u*d, j*s + v*d] += dout[n, f, i, j] * w[f, c, u, v]   (for every f, i, j, u, v)

The last line says: every output gradient flows back, through the weight
that produced it, to each input its window read. For stride 1 this is the
full correlation of dout with the flipped kernel.

``*_reference`` functions are these sums written as loops; ``conv2d_forward``
and ``conv2d_backward`` are the same sums as matrix products over im2col
columns (see ``windows.py``). Tests prove the two tiers agree.
"""

from __future__ import annotations

import numpy as np

from ..windows import col2im, column_blocks, im2col, input_rows, output_hw, pad, pair, unpad
from .base import Layer
from .grouped import check_groups, grouped_conv2d_backward, grouped_conv2d_forward


# ---------------------------------------------------------------- reference tier

def conv2d_forward_reference(x, w, b=None, stride=1, padding=0, dilation=1):
    """The forward sum, one output element at a time. Returns out (N, F, Ho, Wo)."""
    (sh, sw), (dh, dw) = pair(stride), pair(dilation)
    n_, _, h, wd = x.shape
    f_, _, kh, kw = w.shape
    ho, wo = output_hw(h, wd, (kh, kw), stride, padding, dilation)
    xp = pad(x, padding)
    out = np.zeros((n_, f_, ho, wo), dtype=x.dtype)
    for n in range(n_):
        for f in range(f_):
            for i in range(ho):
                for j in range(wo):
                    window = xp[n, :, i * sh:i * sh + dh * (kh - 1) + 1:dh, j * sw:j * sw + dw * (kw - 1) + 1:dw]
                    out[n, f, i, j] = np.sum(w[f] * window) + (b[f] if b is not None else 0)
    return out


def conv2d_backward_reference(dout, x, w, stride=1, padding=0, dilation=1):
    """The three backward sums, one output element at a time. Returns dx, dw, db."""
    (sh, sw), (dh, dw_) = pair(stride), pair(dilation)
    n_, f_, ho, wo = dout.shape
    kh, kw = w.shape[2:]
    xp = pad(x, padding)
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for n in range(n_):
        for f in range(f_):
            for i in range(ho):
                for j in range(wo):
                    rows = slice(i * sh, i * sh + dh * (kh - 1) + 1, dh)
                    cols = slice(j * sw, j * sw + dw_ * (kw - 1) + 1, dw_)
                    dw[f] += dout[n, f, i, j] * xp[n, :, rows, cols]
                    dxp[n, :, rows, cols] += dout[n, f, i, j] * w[f]
    db = dout.sum(axis=(0, 2, 3))
    return unpad(dxp, padding), dw, db


# ---------------------------------------------------------------- fast tier

def conv2d_forward(x, w, b=None, stride=1, padding=0, dilation=1):
    """out = W_mat @ cols + b: im2col and one matrix product.

    x (N, C, H, W), w (F, C, kh, kw) -> cols (C*kh*kw, N*Ho*Wo) by im2col,
    W_mat = w.reshape(F, C*kh*kw), product (F, N*Ho*Wo) -> out (N, F, Ho, Wo).
    The product is taken a block of columns at a time (``column_blocks``:
    whole images, or bands of output rows): W_mat @ cols[:, block] fills
    out[:, block], the same sums with a block of cols that stays in cache.
    """
    n, _, h, wd = x.shape
    f, _, kh, kw = w.shape
    ho, wo = output_hw(h, wd, (kh, kw), stride, padding, dilation)
    xp = pad(x, padding)
    wmat = w.reshape(f, -1)                                # F, C*kh*kw
    out = np.empty((f, n * ho * wo), np.result_type(x, w))
    for images, rows, columns in column_blocks(n, ho, wo, wmat.shape[1]):
        cols = im2col(xp[images, :, input_rows(rows, (kh, kw), stride, dilation)], (kh, kw), stride, dilation)
        np.matmul(wmat, cols, out=out[:, columns])
    if b is not None:
        out += b[:, None]
    out = out.reshape(f, n, ho, wo).transpose(1, 0, 2, 3)
    return out if n == 1 else np.ascontiguousarray(out)    # for N = 1 the transpose is free


def conv2d_backward(dout, x, w, stride=1, padding=0, dilation=1, param_grads=True):
    """dx = col2im(W_mat^T @ dY); dw = dY @ cols^T; db = dY summed over n, i, j.

    dout (N, F, Ho, Wo) is laid out as dY (F, N*Ho*Wo). dx (N, C, H, W) always;
    dw (F, C, kh, kw) and db (F,) only when ``param_grads`` (else None): they
    need the im2col columns again, which the forward did not keep.
    dx goes by the forward's column blocks: dcols = W_mat^T @ dY[:, block],
    added back by col2im into the rows of dxp the block's windows read.
    For stride 1 with no more channels out than in, dx is computed as the
    equivalent transposed convolution (``conv2d_input_grad_transposed``).
    """
    n, f, ho, wo = dout.shape
    kh, kw = w.shape[2:]
    transposed = use_transposed(x.shape, w.shape, stride, padding, dilation)
    if param_grads or not transposed:
        dy = dout.transpose(1, 0, 2, 3).reshape(f, n * ho * wo)   # a view for N = 1, else a copy
    if transposed:
        dx = conv2d_input_grad_transposed(dout, w, padding, dilation)
    else:
        wt = w.reshape(f, -1).T                            # C*kh*kw, F
        hp, wp = pad(x[:1, :1], padding).shape[2:]
        dxp = np.zeros((n, x.shape[1], hp, wp), np.result_type(dout, w))
        for images, rows, columns in column_blocks(n, ho, wo, wt.shape[0]):
            band = dxp[images, :, input_rows(rows, (kh, kw), stride, dilation)]
            col2im(wt @ dy[:, columns], band.shape, (kh, kw), stride, dilation, out=band)
        dx = unpad(dxp, padding)
    if not param_grads:
        return dx, None, None
    cols = im2col(pad(x, padding), (kh, kw), stride, dilation)
    dw = (dy @ cols.T).reshape(w.shape)
    db = dy.sum(axis=1)
    return dx, dw, db


def use_transposed(x_shape, w_shape, stride=1, padding=0, dilation=1) -> bool:
    """Whether dx is cheaper as a transposed convolution than by col2im.

    Possible for stride 1 when the kernel's reach covers the padding
    (p <= d(kh - 1)). Cheaper when the layer has no more output channels than
    input channels (F <= C): the im2col matrix of dout, (F*kh*kw, N*H*W), is
    then no larger than col2im's (C*kh*kw, N*Ho*Wo), and the product's inner
    dimension is F*kh*kw instead of F; and when the flipped copy of the
    weights (F*C*kh*kw) is small next to that matrix (N*H*W >= C).
    """
    n, c, h, w = x_shape
    f, _, kh, kw = w_shape
    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)
    fits = (sh, sw) == (1, 1) and ph <= dh * (kh - 1) and pw <= dw * (kw - 1)
    return fits and f <= c and n * h * w >= c


def conv2d_input_grad_transposed(dout, w, padding=0, dilation=1):
    """dx for stride 1, as one more forward convolution: im2col of dout + one matrix product.

    With stride 1 the backward sum dxp[n, c, i + u*d, j + v*d] += dout[n, f, i, j] * w[f, c, u, v]
    is the full correlation of dout with the flipped kernel:

        dx[n, c, y, z] = sum_{f, u, v} dq[n, f, y + u*d, z + v*d] * w[f, c, kh-1-u, kw-1-v]

    where dq is dout zero-padded by q = d(k - 1) - p on each side (q >= 0 is
    required). That is conv2d_forward(dout, w', padding=q, dilation=d) with
    w' = w flipped in (u, v) and with its two channel axes swapped, (C, F, kh, kw).
    dout (N, F, Ho, Wo), w (F, C, kh, kw) -> dx (N, C, H, W).
    """
    (kh, kw), (ph, pw), (dh, dw) = w.shape[2:], pair(padding), pair(dilation)
    flipped = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    return conv2d_forward(dout, flipped, None, 1, (dh * (kh - 1) - ph, dw * (kw - 1) - pw), dilation)


class Conv2d(Layer):
    """torch.nn.Conv2d: zero padding, stride, dilation, optional bias, groups.

    With ``groups`` > 1 (weights (F, C/groups, kh, kw), as in PyTorch) the
    work goes to ``grouped.py``: depthwise convolution (groups = C) as einsums
    over a strided view of the windows, other groupings one ordinary convolution per group.

    The parameters start at zero: load them (``Model.load_state_dict``,
    ``minicnn.load``) or initialise them (``minicnn.zoo.init_weights``).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, bias=True,
                 groups=1):
        super().__init__()
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride = pair(kernel_size), pair(stride)
        self.padding, self.dilation = pair(padding), pair(dilation)
        self.groups = check_groups(self.in_channels, self.out_channels, groups)
        self.params["weight"] = np.zeros((self.out_channels, self.in_channels // self.groups, *self.kernel_size),
                                         np.float32)
        if bias:
            self.params["bias"] = np.zeros(self.out_channels, np.float32)

    def config(self):
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding), "dilation": list(self.dilation),
                "bias": "bias" in self.params, **({"groups": self.groups} if self.groups != 1 else {})}

    def forward(self, x):
        w, b = self.param("weight", x.dtype), self.param("bias", x.dtype)
        if self.groups != 1:
            return grouped_conv2d_forward(x, w, b, self.stride, self.padding, self.dilation, self.groups), x
        return conv2d_forward(x, w, b, self.stride, self.padding, self.dilation), x

    def backward(self, dout, cache, param_grads=False, relu="plain"):
        x = cache
        w = self.param("weight", dout.dtype)
        if self.groups != 1:
            dx, dw, db = grouped_conv2d_backward(dout, x, w, self.stride, self.padding, self.dilation, self.groups,
                                                 param_grads)
        else:
            dx, dw, db = conv2d_backward(dout, x, w, self.stride, self.padding, self.dilation, param_grads)
        if not param_grads:
            return dx, {}
        grads = {"weight": dw}
        if "bias" in self.params:
            grads["bias"] = db
        return dx, grads

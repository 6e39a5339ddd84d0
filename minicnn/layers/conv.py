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

from .. import parallel
from ..windows import (
    add_shifted_columns,
    col2im,
    column_blocks,
    im2col,
    input_rows,
    output_hw,
    pad,
    pair,
    scratch,
    shifted_columns,
    side_by_side,
    unpad,
)
from .activation import ReLU
from .base import Layer
from .depthwise import depthwise_conv2d_backward, depthwise_conv2d_forward
from .grouped import check_groups
from .norm import BatchNorm2d, fold_into_conv

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

def conv2d_forward(x, w, b=None, stride=1, padding=0, dilation=1, relu=False):
    """out = W_mat @ cols + b: im2col and one matrix product; max(out, 0) with ``relu``.

    x (N, C, H, W), w (F, C, kh, kw) -> cols (C*kh*kw, N*Ho*Wo) by im2col,
    W_mat = w.reshape(F, C*kh*kw), product (F, N*Ho*Wo) -> out (N, F, Ho, Wo).
    The product is taken a block of columns at a time (``column_blocks``:
    whole images, or bands of output rows): W_mat @ cols[:, block] fills
    out[:, block], the same sums with a block of cols that stays in cache;
    the blocks run on all threads (``parallel``).
    For stride 1 the columns of a block usually come from its images laid
    side by side (``conv2d_forward_side_by_side``), a cheaper gather.
    ``relu=True`` applies a following ReLU to the product's output before it
    is transposed (``Conv2d.run_forward_fused``).
    """
    if use_side_by_side(x.shape, w.shape, stride, padding):
        return conv2d_forward_side_by_side(x, w, b, padding, dilation, relu)
    n, _, h, wd = x.shape
    f, _, kh, kw = w.shape
    ho, wo = output_hw(h, wd, (kh, kw), stride, padding, dilation)
    xp = pad(x, padding)
    wmat = w.reshape(f, -1)                                # F, C*kh*kw
    out = np.empty((f, n * ho * wo), np.result_type(x, w))

    def block(piece):
        images, rows, columns = piece
        cols = im2col(xp[images, :, input_rows(rows, (kh, kw), stride, dilation)], (kh, kw), stride, dilation)
        np.matmul(wmat, cols, out=out[:, columns])

    parallel.run(block, column_blocks(n, ho, wo, wmat.shape[1], parallel.threads()))
    if b is not None:
        out += b[:, None]
    if relu:
        np.maximum(out, 0, out=out)
    out = out.reshape(f, n, ho, wo).transpose(1, 0, 2, 3)
    return out if n == 1 else np.ascontiguousarray(out)    # for N = 1 the transpose is free


def conv2d_forward_side_by_side(x, w, b=None, padding=0, dilation=1, relu=False):
    """The stride-1 forward, a block of images (or of output rows) at a time, side by side.

    For each block: its padded images side by side, xs (C, Hs, K, Wp)
    (``side_by_side``); their windows as columns by one slice copy per tap,
    cols (C*kh*kw, Ho*K*Wp) (``shifted_columns``); y = W_mat @ cols, (F, Ho, K, Wp),
    of which y[..., :Wo] are the outputs (the other columns are windows that
    run off an image); they go to out[block] (N, F, Ho, Wo), bias added
    (and, with ``relu``, max(., 0) taken while the block is still in cache).
    Each block's arrays stay in cache from the gather to the output, and
    the blocks run on all threads (``parallel``).
    """
    n, _, h, wd = x.shape
    f, _, kh, kw = w.shape
    ho, wo = output_hw(h, wd, (kh, kw), 1, padding, dilation)
    wp = wd + 2 * pair(padding)[1]
    dtype = np.result_type(x, w)
    wmat = w.reshape(f, -1)                                # F, C*kh*kw
    out = np.empty((n, f, ho, wo), dtype)

    def block(piece):
        images, rows, _ = piece
        xs = side_by_side(x, padding, images, input_rows(rows, (kh, kw), 1, dilation))
        cols = shifted_columns(xs, (kh, kw), dilation)
        y = np.matmul(wmat, cols, out=scratch("product", (f, cols.shape[1]), dtype))
        if relu:                                                        # on the contiguous product, in cache
            if b is not None:
                y += b[:, None]
            np.maximum(y, 0, out=y)
        y = y.reshape(f, rows.stop - rows.start, images.stop - images.start, wp)[..., :wo].transpose(2, 0, 1, 3)
        if b is None or relu:
            out[images, :, rows] = y
        else:
            np.add(y, b[:, None, None], out=out[images, :, rows])       # the bias on the way out: one pass

    parallel.run(block, column_blocks(n, ho, wp, wmat.shape[1], parallel.threads()))
    return out


def conv2d_backward(dout, x, w, stride=1, padding=0, dilation=1, param_grads=True):
    """dx = col2im(W_mat^T @ dY); dw = dY @ cols^T; db = dY summed over n, i, j.

    dout (N, F, Ho, Wo) is laid out as dY (F, N*Ho*Wo). dx (N, C, H, W) always;
    dw (F, C, kh, kw) and db (F,) only when ``param_grads`` (else None): they
    need the im2col columns again, which the forward did not keep.
    dx goes by the forward's column blocks, on all threads: dcols = W_mat^T @ dY[:, block],
    added back by col2im into the rows of dxp the block's windows read (bands
    of rows of one image overlap: their gradients are added up one after the other).
    For stride 1 with no more channels out than in, dx is computed as the
    equivalent transposed convolution (``conv2d_input_grad_transposed``);
    for stride 1 otherwise the blocks go side by side
    (``conv2d_input_grad_side_by_side``).
    """
    n, f, ho, wo = dout.shape
    kh, kw = w.shape[2:]
    transposed = use_transposed(x.shape, w.shape, stride, padding, dilation)
    side = not transposed and use_side_by_side(x.shape, w.shape, stride, padding)
    if param_grads or not (transposed or side):
        dy = dout.transpose(1, 0, 2, 3).reshape(f, n * ho * wo)   # a view for N = 1, else a copy
    if transposed:
        dx = conv2d_input_grad_transposed(dout, w, padding, dilation)
    elif side:
        dx = conv2d_input_grad_side_by_side(dout, x.shape, w, padding, dilation)
    else:
        wt = w.reshape(f, -1).T                            # C*kh*kw, F
        hp, wp = pad(x[:1, :1], padding).shape[2:]
        dxp = np.zeros((n, x.shape[1], hp, wp), np.result_type(dout, w))

        def block(piece):
            images, rows, columns = piece
            in_rows = input_rows(rows, (kh, kw), stride, dilation)
            band = dxp[images, :, in_rows]
            if rows.stop - rows.start == ho:               # whole images: their own rows of dxp
                col2im(wt @ dy[:, columns], band.shape, (kh, kw), stride, dilation, out=band)
                return None
            return images, in_rows, col2im(wt @ dy[:, columns], band.shape, (kh, kw), stride, dilation)

        for band in parallel.run(block, column_blocks(n, ho, wo, wt.shape[0], parallel.threads())):
            if band is not None:
                images, in_rows, grad = band
                dxp[images, :, in_rows] += grad
        dx = unpad(dxp, padding)
    if not param_grads:
        return dx, None, None
    cols = im2col(pad(x, padding), (kh, kw), stride, dilation)
    dw = (dy @ cols.T).reshape(w.shape)
    db = dy.sum(axis=1)
    return dx, dw, db


def conv2d_input_grad_side_by_side(dout, x_shape, w, padding=0, dilation=1):
    """dx for stride 1 by the adjoint of the side-by-side forward, a block at a time.

    For each block of the forward: dout's block side by side with zeros
    where the forward dropped its columns, dY (F, Ho, K, Wp); dcols = W_mat^T @ dY,
    (C*kh*kw, Ho*K*Wp); each tap's columns added back at its offset
    (``add_shifted_columns``) into the block's padded input gradient
    (C, Hs, K, Wp), whose inside is dx[block]. Blocks that are bands of
    rows of one image overlap by the kernel's reach: their gradients are
    added up, one band after the other.
    dout (N, F, Ho, Wo), w (F, C, kh, kw) -> dx (N, C, H, W).
    """
    n, f, ho, wo = dout.shape
    _, c, h, wd = x_shape
    kh, kw = w.shape[2:]
    (ph, pw), dtype = pair(padding), np.result_type(dout, w)
    wp = wd + 2 * pw
    wt = w.reshape(f, -1).T                                # C*kh*kw, F
    dx = np.empty((n, c, h, wd), dtype)

    def block(piece):
        images, rows, _ = piece
        k, r = images.stop - images.start, rows.stop - rows.start
        dy = scratch("dout_side_by_side", (f, r, k, wp), dtype)
        dy[..., :wo] = dout[images, :, rows].transpose(1, 2, 0, 3)
        dy[..., wo:] = 0
        dcols = np.matmul(wt, dy.reshape(f, -1), out=scratch("dcolumns", (wt.shape[0], r * k * wp), dtype))
        in_rows = input_rows(rows, (kh, kw), 1, dilation)
        shape = (c, in_rows.stop - in_rows.start, k, wp)
        if r < ho:                                         # a band: returned, so an array of its own
            dxs = np.zeros(shape, dtype)
        else:
            dxs = scratch("dx_side_by_side", shape, dtype)
            dxs[...] = 0
        add_shifted_columns(dcols, dxs, (kh, kw), dilation)
        if r == ho:                                        # whole images: their gradient, unpadded
            dx[images] = dxs[:, ph:ph + h, :, pw:pw + wd].transpose(2, 0, 1, 3)
            return None
        return images, in_rows, dxs.transpose(2, 0, 1, 3)  # a band: added up below

    bands = [band for band in parallel.run(block, column_blocks(n, ho, wp, wt.shape[0], parallel.threads()))
             if band is not None]
    if bands:
        dxp = np.zeros((n, c, h + 2 * ph, wp), dtype)
        for images, in_rows, grad in bands:
            dxp[images, :, in_rows] += grad
        dx[...] = unpad(dxp, padding)
    return dx


def use_side_by_side(x_shape, w_shape, stride=1, padding=0) -> bool:
    """Whether a stride-1 convolution gathers its columns with the images side by side.

    The slice copies save most of im2col's strided gather, which costs in
    proportion to C*kh*kw per column; the 2*pw columns per image row that
    run off an image cost F times as much each, in the product. Measured on
    VGG and ResNet layers, side by side pays while F*pw <= 8*W (the CIFAR
    layers up to 64 channels; not 128 channels at 8x8, nor VGG-16's
    512-channel layers at 28x28 and 14x14).
    """
    f = w_shape[0]
    pw = pair(padding)[1]
    return pair(stride) == (1, 1) and f * pw <= 8 * x_shape[3]


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


# ---------------------------------------------------------------- groups


def grouped_conv2d_forward(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """Depthwise (groups = C) by ``depthwise_conv2d_forward``; other groupings one ordinary convolution per group."""
    n, c, h, wd = x.shape
    f, cg = w.shape[:2]
    if groups == c and cg == 1:
        return depthwise_conv2d_forward(x, w, b, stride, padding, dilation)
    fg = f // groups
    parts = [conv2d_forward(x[:, g * cg:(g + 1) * cg], w[g * fg:(g + 1) * fg],
                       None if b is None else b[g * fg:(g + 1) * fg], stride, padding, dilation)
             for g in range(groups)]
    return np.concatenate(parts, axis=1)


def grouped_conv2d_backward(dout, x, w, stride=1, padding=0, dilation=1, groups=1, param_grads=True):
    """dx, dw, db of ``grouped_conv2d_forward`` (dw, db None unless ``param_grads``)."""
    c = x.shape[1]
    f, cg = w.shape[:2]
    if groups == c and cg == 1:
        return depthwise_conv2d_backward(dout, x, w, stride, padding, dilation, param_grads)
    fg = f // groups
    parts = [conv2d_backward(np.ascontiguousarray(dout[:, g * fg:(g + 1) * fg]), x[:, g * cg:(g + 1) * cg],
                        w[g * fg:(g + 1) * fg], stride, padding, dilation, param_grads)
             for g in range(groups)]
    dx = np.concatenate([p[0] for p in parts], axis=1)
    if not param_grads:
        return dx, None, None
    return dx, np.concatenate([p[1] for p in parts], axis=0), np.concatenate([p[2] for p in parts])


class Conv2d(Layer):
    """torch.nn.Conv2d: zero padding, stride, dilation, optional bias, groups.

    With ``groups`` > 1 (weights (F, C/groups, kh, kw), as in PyTorch) the
    work goes to ``depthwise.py`` for depthwise convolution (groups = C: kh*kw shifted
    multiply-adds per channel) and to one ordinary convolution per group otherwise.

    The parameters start at zero: load them (``Model.load_state_dict``,
    ``minicnn.load``) or initialise them (``minicnn.models.zoo.init_weights``).
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

    def run_forward_fused(self, x, following, run, path):
        """In a pass that keeps nothing: this convolution, a BatchNorm2d after it folded into its
        weights, and a ReLU after those applied to the product's output, as one pass (k: 0-2 layers).

        BatchNorm's affine map folds into the convolution (``fold_into_conv``):
        bn(W x + b) = (scale W) x + (b - mean) scale + beta, with
        scale = gamma / sqrt(var + eps); the ReLU is max(., 0) on each block of
        the product while it is in cache (``conv2d_forward(relu=True)``). The
        reference is the layers' own forwards one after the other
        (tests/engine/test_fast_paths.py proves them equal).
        """
        bn = following[0] if following and type(following[0]) is BatchNorm2d else None
        after = following[1 if bn else 0:]
        relu = bool(after) and type(after[0]) is ReLU
        if self.groups != 1 or not (bn or relu):
            return self.run_forward(x, run, path), 0
        w, b = self.param("weight", x.dtype), self.param("bias", x.dtype)
        if bn is not None:
            gamma, beta, mean, var = bn._stats(x.dtype)
            w, b = fold_into_conv(w, b, gamma, beta, mean, var, bn.eps)
        out = conv2d_forward(x, w, b, self.stride, self.padding, self.dilation, relu=relu)
        return out, int(bn is not None) + int(relu)

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

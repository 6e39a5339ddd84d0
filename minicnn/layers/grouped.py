"""Grouped and depthwise convolution (PyTorch's Conv2d with ``groups`` > 1), in two tiers.

With G groups, the C input channels and the F output channels are cut into
G consecutive blocks of Cg = C/G and Fg = F/G channels; output channel f
reads only the input channels of its own group g = f // Fg. The weights have
PyTorch's shape w (F, Cg, kh, kw), and with xp the zero-padded input:

    out[n, f, i, j] = b[f] + sum_{c, u, v} w[f, c, u, v] * xp[n, g*Cg + c, i*s + u*d, j*s + v*d]

which is an ordinary convolution (``conv.py``) of each group's slice of the
input with that group's slice of the weights. Backward, likewise per group:

    db[f]          = sum_{n, i, j} dout[n, f, i, j]
    dw[f, c, u, v] = sum_{n, i, j} dout[n, f, i, j] * xp[n, g*Cg + c, i*s + u*d, j*s + v*d]
    dxp[n, g*Cg + c, i*s + u*d, j*s + v*d] += dout[n, f, i, j] * w[f, c, u, v]

**Depthwise** convolution is the case G = C: every input channel is its own
group (Cg = 1) and feeds m = F/C output channels (the depth multiplier; m = 1
in MobileNetV2). Output channel f reads input channel f // m alone:

    out[n, f, i, j] = b[f] + sum_{u, v} w[f, 0, u, v] * xp[n, f // m, i*s + u*d, j*s + v*d]

Fast tier. im2col would copy the input kh*kw times (9 times for 3x3) to
multiply it by a matrix with one nonzero per column block. The depthwise
sum is instead taken one kernel tap (u, v) at a time, over the whole output
at once: ``taps`` gives the strided view T_uv[n, c, i, j] = xp[n, c, i*s + u*d,
j*s + v*d] (no copy), and

    out = b + sum_{u, v} w[:, 0, u, v] * T_uv        dw[:, 0, u, v] = sum_{n,i,j} dout * T_uv
    dxp at the positions T_uv reads  += w[:, 0, u, v] * dout

kh*kw vectorised multiply-adds over arrays of the output's size. Other
groupings call ``conv2d_forward`` / ``conv2d_backward`` once per group.
``*_reference`` functions are the sums above as loops; tests prove the tiers agree.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..errors import InputError
from ..windows import output_hw, pad, pair, unpad
from . import conv  # conv.conv2d_forward / conv2d_backward, looked up at call time


def check_groups(in_channels: int, out_channels: int, groups: int) -> int:
    """``groups`` as an int that divides both channel counts; a one-line InputError otherwise."""
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise InputError(f"groups must be a positive integer; got {groups!r}")
    if in_channels % groups or out_channels % groups:
        raise InputError(f"groups={groups} must divide both in_channels={in_channels} and "
                         f"out_channels={out_channels}")
    return int(groups)


# ---------------------------------------------------------------- reference tier

def grouped_conv2d_forward_reference(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """The grouped forward sum, one output element at a time. Returns out (N, F, Ho, Wo)."""
    (sh, sw), (dh, dw) = pair(stride), pair(dilation)
    n_, c_, h, wd = x.shape
    f_, cg, kh, kw = w.shape
    fg = f_ // groups
    ho, wo = output_hw(h, wd, (kh, kw), stride, padding, dilation)
    xp = pad(x, padding)
    out = np.zeros((n_, f_, ho, wo), dtype=np.result_type(x, w))
    for n in range(n_):
        for f in range(f_):
            g = f // fg
            for i in range(ho):
                for j in range(wo):
                    window = xp[n, g * cg:(g + 1) * cg,
                                i * sh:i * sh + dh * (kh - 1) + 1:dh, j * sw:j * sw + dw * (kw - 1) + 1:dw]
                    out[n, f, i, j] = np.sum(w[f] * window) + (b[f] if b is not None else 0)
    return out


def grouped_conv2d_backward_reference(dout, x, w, stride=1, padding=0, dilation=1, groups=1):
    """The three grouped backward sums, one output element at a time. Returns dx, dw, db."""
    (sh, sw), (dh, dw_) = pair(stride), pair(dilation)
    n_, f_, ho, wo = dout.shape
    _, cg, kh, kw = w.shape
    fg = f_ // groups
    xp = pad(x, padding)
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for n in range(n_):
        for f in range(f_):
            g = f // fg
            channels = slice(g * cg, (g + 1) * cg)
            for i in range(ho):
                for j in range(wo):
                    rows = slice(i * sh, i * sh + dh * (kh - 1) + 1, dh)
                    cols = slice(j * sw, j * sw + dw_ * (kw - 1) + 1, dw_)
                    dw[f] += dout[n, f, i, j] * xp[n, channels, rows, cols]
                    dxp[n, channels, rows, cols] += dout[n, f, i, j] * w[f]
    db = dout.sum(axis=(0, 2, 3))
    return unpad(dxp, padding), dw, db


# ---------------------------------------------------------------- fast tier

def channels_last(x, padding=0):
    """x (N, C, H, W) zero-padded by (ph, pw) on each side, laid out channels-last: (N, H + 2ph, W + 2pw, C)."""
    ph, pw = pair(padding)
    n, c, h, w = x.shape
    xp = np.zeros((n, h + 2 * ph, w + 2 * pw, c), x.dtype)
    xp[:, ph:ph + h, pw:pw + w] = x.transpose(0, 2, 3, 1)
    return xp


def tap_windows(xp, kernel, out_hw, stride=1, dilation=1):
    """Every window of a channels-last input as a read-only view, no copy.

    xp (N, Hp, Wp, C) -> T (N, Ho, Wo, kh, kw, C) with T[n, i, j, u, v, c] = xp[n, i*sh + u*dh, j*sw + v*dw, c].
    """
    (kh, kw), (sh, sw), (dh, dw) = pair(kernel), pair(stride), pair(dilation)
    n, _, _, c = xp.shape
    s_n, s_h, s_w, s_c = xp.strides
    return as_strided(xp, shape=(n, *out_hw, kh, kw, c),
                      strides=(s_n, s_h * sh, s_w * sw, s_h * dh, s_w * dw, s_c), writeable=False)


def depthwise_conv2d_forward(x, w, b=None, stride=1, padding=0, dilation=1):
    """out[n, f, i, j] = b[f] + sum_{u,v} w[f, 0, u, v] * T[n, i, j, u, v, f]: one einsum over the windows view.

    x (N, C, H, W), w (m*C, 1, kh, kw) -> out (N, m*C, Ho, Wo); output channel f reads
    input channel f // m (for m > 1 the input's channels are repeated m times first).
    """
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    ho, wo = output_hw(h, wd, (kh, kw), stride, padding, dilation)
    xp = channels_last(x, padding)
    if f != c:
        xp = np.repeat(xp, f // c, axis=3)                 # channel f holds input channel f // m
    taps = tap_windows(xp, (kh, kw), (ho, wo), stride, dilation)
    w_last = np.ascontiguousarray(w[:, 0].transpose(1, 2, 0))    # (kh, kw, F): f runs along memory, as in taps
    out = np.einsum("nijuvf,uvf->nfij", taps, w_last)
    if b is not None:
        out += b[None, :, None, None]
    return out


def depthwise_conv2d_backward(dout, x, w, stride=1, padding=0, dilation=1, param_grads=True):
    """dx by the transposed convolution: dout spread onto its window positions, correlated with the flipped kernel.

    dxp[n, y, z, f] = sum_{u,v} dz[n, y + u*dh, z + v*dw, f] * w[f, 0, kh-1-u, kw-1-v], where dz holds
    dout[n, f, i, j] at row q_h + i*sh, column q_w + j*sw (q = d(k - 1)) and zeros elsewhere: the
    backward sum dxp[n, f, i*s + u*d, j*s + v*d] += dout[n, f, i, j] * w[f, 0, u, v] read the other
    way round. dw[f, 0, u, v] = sum_{n,i,j} dout[n, f, i, j] * T[n, i, j, u, v, f] (when ``param_grads``).
    dout (N, m*C, Ho, Wo) -> dx (N, C, H, W); for m > 1 the m output channels of one
    input channel add their gradients back onto it.
    """
    n, f, ho, wo = dout.shape
    c, h, wd = x.shape[1:]
    kh, kw = w.shape[2:]
    (sh, sw), (ph, pw), (dh, dw_) = pair(stride), pair(padding), pair(dilation)
    hp, wp = h + 2 * ph, wd + 2 * pw
    qh, qw = dh * (kh - 1), dw_ * (kw - 1)
    dz = np.zeros((n, hp + qh, wp + qw, f), np.result_type(dout, w))
    dz[:, qh:qh + sh * (ho - 1) + 1:sh, qw:qw + sw * (wo - 1) + 1:sw] = dout.transpose(0, 2, 3, 1)
    flipped = np.ascontiguousarray(w[:, 0, ::-1, ::-1].transpose(1, 2, 0))
    dxp = np.einsum("nyzuvf,uvf->nyzf", tap_windows(dz, (kh, kw), (hp, wp), 1, dilation), flipped)
    if f != c:
        dxp = dxp.reshape(n, hp, wp, c, f // c).sum(axis=4)
    dx = np.ascontiguousarray(dxp[:, ph:ph + h, pw:pw + wd].transpose(0, 3, 1, 2))
    if not param_grads:
        return dx, None, None
    xp = channels_last(x, padding)
    if f != c:
        xp = np.repeat(xp, f // c, axis=3)
    taps = tap_windows(xp, (kh, kw), (ho, wo), stride, dilation)
    dw = np.einsum("nijuvf,nfij->fuv", taps, dout)[:, None]
    db = dout.sum(axis=(0, 2, 3))
    return dx, dw, db


def grouped_conv2d_forward(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """Depthwise (groups = C) by taps; other groupings as one ordinary convolution per group."""
    n, c, h, wd = x.shape
    f, cg = w.shape[:2]
    if groups == c and cg == 1:
        return depthwise_conv2d_forward(x, w, b, stride, padding, dilation)
    fg = f // groups
    parts = [conv.conv2d_forward(x[:, g * cg:(g + 1) * cg], w[g * fg:(g + 1) * fg],
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
    parts = [conv.conv2d_backward(np.ascontiguousarray(dout[:, g * fg:(g + 1) * fg]), x[:, g * cg:(g + 1) * cg],
                             w[g * fg:(g + 1) * fg], stride, padding, dilation, param_grads)
             for g in range(groups)]
    dx = np.concatenate([p[0] for p in parts], axis=1)
    if not param_grads:
        return dx, None, None
    return dx, np.concatenate([p[1] for p in parts], axis=0), np.concatenate([p[2] for p in parts])

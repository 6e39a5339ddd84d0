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

Three tiers. ``*_reference`` loops below are the sums above, one output element at a time.
The einsum tier (``depthwise_conv2d_forward_reference``, ``depthwise_conv2d_backward_reference``)
is the same sums as einsums over a windows view, readable and still quick; the fast tier that
the layers call is ``depthwise.py`` (kh*kw shifted multiply-adds over one padded array).
Tests prove all three agree. Einsum tier: im2col would copy the input kh*kw times (9 times for 3x3) to
multiply it by a matrix with one nonzero per column block. Instead the
input is laid out channels-last, xp (N, Hp, Wp, C), a band of rows at a time
(``depthwise_correlate``: the band is still in cache when it is summed), and
read through the strided view of all its windows, T[n, i, j, u, v, c] =
xp[n, i*s + u*d, j*s + v*d, c] (no copy, ``tap_windows``); one einsum takes the sum

    out[n, i, j, f] = b[f] + sum_{u, v} w[f, 0, u, v] * T[n, i, j, u, v, f]

with its innermost loop along the channels, contiguous in both operands
(``correlate_channels_last``; at stride 1 along whole rows of Wo*C floats).
Backward, dx is the same correlation run on dout spread onto the positions
its windows read, with the kernel flipped (the transposed convolution), and
dw[f, 0, u, v] = sum_{n,i,j} dout[n, f, i, j] * T[n, i, j, u, v, f], a second einsum.
Other groupings are one ordinary convolution per group (``conv.grouped_conv2d_forward``).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..errors import InputError
from ..windows import output_hw, pad, pair, unpad


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


# ---------------------------------------------------------------- einsum tier (a reference for depthwise.py)

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


#: Below this many channels a window's inner loop along f is too short for einsum to run fast:
#: at stride 1 the sum then runs along whole rows of Wo*F floats instead.
ROW_CHANNELS = 64
#: Floats in one band of input rows laid out channels-last (512 KiB in float32): the band is
#: copied and summed over while it is still in cache, and the whole input is never copied at once.
BAND_FLOATS = 2 ** 17


def correlate_channels_last(xp, w_last, out_hw, stride=1, dilation=1):
    """out[n, f, i, j] = sum_{u,v} w_last[u, v, f] * xp[n, i*sh + u*dh, j*sw + v*dw, f].

    xp (N, Hp, Wp, F) channels-last, w_last (kh, kw, F) contiguous -> out (N, F, Ho, Wo), a view
    of channels-last memory: one einsum over the windows view with its inner loop along f.
    With stride 1 and few channels (F < ROW_CHANNELS) a window row's (j, f) pairs are one
    contiguous run of Wo*F floats in xp, and the einsum runs along whole rows instead, against
    the weights repeated Wo times: the same sums, in loops long enough to vectorise.
    """
    (kh, kw), (sh, sw), (dh, dw) = w_last.shape[:2], pair(stride), pair(dilation)
    n, _, _, f = xp.shape
    ho, wo = out_hw
    if (sh, sw) != (1, 1) or f >= ROW_CHANNELS:
        return np.einsum("nijuvf,uvf->nijf", tap_windows(xp, (kh, kw), out_hw, stride, dilation),
                         w_last).transpose(0, 3, 1, 2)
    s_n, s_h, s_w, s_c = xp.strides
    rows = as_strided(xp, shape=(n, ho, kh, kw, wo * f), strides=(s_n, s_h, s_h * dh, s_w * dw, s_c),
                      writeable=False)                     # rows[n, i, u, v, j*F + f] = xp[n, i + u*dh, j + v*dw, f]
    out = np.einsum("niuvk,uvk->nik", rows, np.tile(w_last, (1, 1, wo))).reshape(n, ho, wo, f)
    return out.transpose(0, 3, 1, 2)


def depthwise_correlate(x, w, out_hw, stride=1, padding=0, dilation=1):
    """out[n, f, i, j] = sum_{u,v} w[f, 0, u, v] * xp[n, f, i*sh + u*dh, j*sw + v*dw], xp = x zero-padded.

    x (N, F, H, W), w (F, 1, kh, kw) -> out (N, F, Ho, Wo), a band of output rows at a time:
    the padded input rows the band's windows read are laid out channels-last (``BAND_FLOATS``
    at most), then summed by ``correlate_channels_last``.
    """
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = w.shape[2:], pair(stride), pair(padding), pair(dilation)
    n, f, h, wd = x.shape
    ho, wo = out_hw
    wp = wd + 2 * pw
    if (wo - 1) * sw + dw * (kw - 1) + 1 > wp:                      # the windows view must stay inside the band
        raise InputError(f"{wo} output columns need {(wo - 1) * sw + dw * (kw - 1) + 1} padded input columns, "
                         f"the input has {wp}")
    w_last = np.ascontiguousarray(w[:, 0].transpose(1, 2, 0))      # (kh, kw, F): f runs along memory, as in xp
    out = np.empty((n, f, ho, wo), np.result_type(x, w))
    band = max(1, (BAND_FLOATS // (n * wp * f) - dh * (kh - 1) - 1) // sh + 1)   # output rows per band
    for i0 in range(0, ho, band):
        i1 = min(ho, i0 + band)
        r0, r1 = i0 * sh, (i1 - 1) * sh + dh * (kh - 1) + 1           # the padded input rows they read
        xb = np.zeros((n, r1 - r0, wp, f), x.dtype)
        lo, hi = max(r0, ph), min(r1, ph + h)                          # of which these hold x, not padding
        if hi > lo:
            xb[:, lo - r0:hi - r0, pw:pw + wd] = x[:, :, lo - ph:hi - ph].transpose(0, 2, 3, 1)
        out[:, :, i0:i1] = correlate_channels_last(xb, w_last, (i1 - i0, wo), stride, dilation)
    return out


def depthwise_conv2d_forward_reference(x, w, b=None, stride=1, padding=0, dilation=1):
    """out[n, f, i, j] = b[f] + sum_{u,v} w[f, 0, u, v] * T[n, i, j, u, v, f]: einsums over the windows view.

    x (N, C, H, W), w (m*C, 1, kh, kw) -> out (N, m*C, Ho, Wo); output channel f reads
    input channel f // m (for m > 1 the input's channels are repeated m times first).
    """
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    ho, wo = output_hw(h, wd, (kh, kw), stride, padding, dilation)
    if f != c:
        x = np.repeat(x, f // c, axis=1)                   # channel f holds input channel f // m
    out = depthwise_correlate(x, w, (ho, wo), stride, padding, dilation)
    if b is not None:
        out += b[None, :, None, None]
    return out


def depthwise_conv2d_backward_reference(dout, x, w, stride=1, padding=0, dilation=1, param_grads=True):
    """dx by the transposed convolution: dout spread onto its window positions, correlated with the flipped kernel.

    dxp[n, f, y, z] = sum_{u,v} dzp[n, f, y + u*dh, z + v*dw] * w[f, 0, kh-1-u, kw-1-v], where dz holds
    dout[n, f, i, j] at row i*sh, column j*sw and zeros between (dz = dout at stride 1), and dzp is dz
    zero-padded by q = d(k - 1) on each side: the backward sum dxp[n, f, i*s + u*d, j*s + v*d] +=
    dout[n, f, i, j] * w[f, 0, u, v] read the other way round, a depthwise correlation again.
    dw[f, 0, u, v] = sum_{n,i,j} dout[n, f, i, j] * T[n, i, j, u, v, f] (when ``param_grads``).
    dout (N, m*C, Ho, Wo) -> dx (N, C, H, W); for m > 1 the m output channels of one
    input channel add their gradients back onto it.
    """
    n, f, ho, wo = dout.shape
    c, h, wd = x.shape[1:]
    kh, kw = w.shape[2:]
    (sh, sw), (ph, pw), (dh, dw_) = pair(stride), pair(padding), pair(dilation)
    hp, wp = h + 2 * ph, wd + 2 * pw
    qh, qw = dh * (kh - 1), dw_ * (kw - 1)
    if (sh, sw) == (1, 1):
        dz = dout                                          # (N, F, Hp - qh, Wp - qw); its q zeros: the padding below
    else:
        dz = np.zeros((n, f, hp - qh, wp - qw), np.result_type(dout, w))
        dz[:, :, 0:sh * (ho - 1) + 1:sh, 0:sw * (wo - 1) + 1:sw] = dout
    flipped = np.ascontiguousarray(w[:, :, ::-1, ::-1])
    dxp = depthwise_correlate(dz, flipped, (hp, wp), 1, (qh, qw), dilation)           # (N, F, Hp, Wp)
    if f != c:
        dxp = dxp.reshape(n, c, f // c, hp, wp).sum(axis=2)
    dx = np.ascontiguousarray(dxp[:, :, ph:ph + h, pw:pw + wd])
    if not param_grads:
        return dx, None, None
    xp = channels_last(x, padding)
    if f != c:
        xp = np.repeat(xp, f // c, axis=3)
    taps = tap_windows(xp, (kh, kw), (ho, wo), stride, dilation)
    dw = np.einsum("nijuvf,nfij->fuv", taps, dout)[:, None]
    db = dout.sum(axis=(0, 2, 3))
    return dx, dw, db

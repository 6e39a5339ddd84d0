"""Sliding windows: the one piece of index arithmetic that conv and pooling share.

A convolution or pooling layer looks at windows of its (padded) input. For a
kernel of size k, stride s, padding p and dilation d along one axis,

    out = floor((in + 2p - d(k - 1) - 1) / s) + 1,

the same formula PyTorch documents for Conv2d and MaxPool2d. Window (i, j)
starts at row i*s, column j*s of the padded input, and its tap (u, v) is the
element at row i*s + u*d, column j*s + v*d.

``windows`` returns all windows as a strided *view* (no copy); ``im2col``
lays them out as the columns of a matrix so that a convolution becomes one
matrix product; ``col2im`` is its adjoint: it adds each column back onto the
input positions it came from (the gradient of ``im2col``).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .errors import InputError


def pair(v: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """(v, v) for an int, the pair itself otherwise, as PyTorch's hyper-parameters."""
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise InputError(f"expected an int or a pair of ints, got {v!r}")
        return int(v[0]), int(v[1])
    return int(v), int(v)


def output_size(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    """floor((size + 2*padding - dilation*(kernel - 1) - 1) / stride) + 1."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def output_hw(h: int, w: int, kernel, stride, padding, dilation=1) -> tuple[int, int]:
    """Output height and width; a one-line InputError if the window does not fit."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = map(pair, (kernel, stride, padding, dilation))
    ho, wo = output_size(h, kh, sh, ph, dh), output_size(w, kw, sw, pw, dw)
    if ho < 1 or wo < 1:
        raise InputError(
            f"input of size {h}x{w} is too small for kernel {kh}x{kw} with padding "
            f"{ph}x{pw} and dilation {dh}x{dw} (output would be {ho}x{wo})")
    return ho, wo


def pad(x: np.ndarray, padding, value: float = 0.0) -> np.ndarray:
    """Pad the last two axes of x (N, C, H, W) by (ph, pw) on each side with ``value``."""
    ph, pw = pair(padding)
    if ph == 0 and pw == 0:
        return x
    n, c, h, w = x.shape
    xp = np.full((n, c, h + 2 * ph, w + 2 * pw), value, dtype=x.dtype)
    xp[:, :, ph:ph + h, pw:pw + w] = x
    return xp


def windows(xp: np.ndarray, kernel, stride, dilation=1) -> np.ndarray:
    """All windows of a padded input as a read-only view, no copy.

    xp: (N, C, Hp, Wp)  ->  (N, C, Ho, Wo, kh, kw) with
    out[n, c, i, j, u, v] = xp[n, c, i*sh + u*dh, j*sw + v*dw].
    """
    (kh, kw), (sh, sw), (dh, dw) = pair(kernel), pair(stride), pair(dilation)
    n, c, hp, wp = xp.shape
    ho, wo = output_hw(hp, wp, (kh, kw), (sh, sw), 0, (dh, dw))
    s_n, s_c, s_h, s_w = xp.strides
    return as_strided(
        xp,
        shape=(n, c, ho, wo, kh, kw),
        strides=(s_n, s_c, s_h * sh, s_w * sw, s_h * dh, s_w * dw),
        writeable=False,
    )


def im2col(xp: np.ndarray, kernel, stride, dilation=1) -> np.ndarray:
    """Windows as matrix columns: (N, C, Hp, Wp) -> cols (C*kh*kw, N*Ho*Wo).

    Row (c, u, v), column (n, i, j) holds xp[n, c, i*sh + u*dh, j*sw + v*dw],
    so a convolution with weights W (F, C, kh, kw) is W.reshape(F, -1) @ cols.
    One copy; rows are contiguous along j, which keeps the gather cache-friendly.
    """
    win = windows(xp, kernel, stride, dilation)          # N, C, Ho, Wo, kh, kw
    n, c, ho, wo, kh, kw = win.shape
    return win.transpose(1, 4, 5, 0, 2, 3).reshape(c * kh * kw, n * ho * wo)


def col2im(cols: np.ndarray, padded_shape, kernel, stride, dilation=1) -> np.ndarray:
    """Adjoint of im2col: add every column entry back to the input position it was read from.

    cols: (C*kh*kw, N*Ho*Wo) -> dxp: padded_shape (N, C, Hp, Wp). One strided
    add per kernel tap (u, v): dxp[:, :, u*dh + i*sh, v*dw + j*sw] += cols[(c,u,v), (n,i,j)].
    """
    (kh, kw), (sh, sw), (dh, dw) = pair(kernel), pair(stride), pair(dilation)
    n, c, hp, wp = padded_shape
    ho, wo = output_hw(hp, wp, (kh, kw), (sh, sw), 0, (dh, dw))
    taps = cols.reshape(c, kh, kw, n, ho, wo)
    dxp = np.zeros((n, c, hp, wp), dtype=cols.dtype)
    for u in range(kh):
        for v in range(kw):
            rows = slice(u * dh, u * dh + sh * (ho - 1) + 1, sh)
            columns = slice(v * dw, v * dw + sw * (wo - 1) + 1, sw)
            dxp[:, :, rows, columns] += taps[:, u, v].transpose(1, 0, 2, 3)
    return dxp


def unpad(xp: np.ndarray, padding) -> np.ndarray:
    """Drop the padding added by ``pad`` (a view)."""
    ph, pw = pair(padding)
    h, w = xp.shape[-2] - 2 * ph, xp.shape[-1] - 2 * pw
    return xp[..., ph:ph + h, pw:pw + w]

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

A convolution builds and multiplies its columns a block at a time
(``column_blocks``): the same product, with a block of columns small
enough to stay in cache (and the whole matrix never in memory at once).

For stride 1 there is a cheaper gather (``side_by_side`` and
``shifted_columns``): lay the padded images of a block side by side and read
each channel as one long line; every tap of every window is then that line
shifted by one fixed offset, so im2col becomes kh*kw slice copies.
"""

from __future__ import annotations

import math
import threading

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


#: Floats in one block of im2col's columns (4 MiB in float32): a convolution builds
#: and multiplies its columns a block at a time, so the whole column matrix (115 MB
#: for VGG-16's second layer) never exists at once; blocks of 1 MiB, which stay in a
#: core's cache, were no faster on one thread and slower on two (more, smaller NumPy
#: calls, each taking the interpreter lock: benchmarks/README.md)...
COLUMN_BLOCK_FLOATS = 2 ** 20
#: ...but a block has at least this many columns, so each product stays large.
MIN_BLOCK_COLUMNS = 1024


def column_blocks(n: int, ho: int, wo: int, rows: int, parts: int = 1):
    """Split im2col's columns (n, i, j) into blocks: yields (images, output_rows, columns) slices.

    ``rows`` is the column matrix's height (C*kh*kw). A block is either
    several whole images or a band of output rows of one image, so its
    columns are one contiguous range of the N*Ho*Wo columns. Blocks have
    near-equal sizes, and there are at least ``parts`` of them (one per
    thread) when every one can still have MIN_BLOCK_COLUMNS columns.
    """
    want = max(MIN_BLOCK_COLUMNS, COLUMN_BLOCK_FLOATS // rows)
    count = -(-n * ho * wo // want)
    if parts > 1 and n * ho * wo >= parts * MIN_BLOCK_COLUMNS:
        count = parts * -(-count // parts)
    if count <= n:
        bounds = [round(k * n / count) for k in range(count + 1)]
        blocks = ((slice(a, b), slice(0, ho)) for a, b in zip(bounds, bounds[1:]))
    else:
        bands = min(ho, -(-count // n))
        bounds = [round(k * ho / bands) for k in range(bands + 1)]
        blocks = ((slice(image, image + 1), slice(a, b)) for image in range(n) for a, b in zip(bounds, bounds[1:]))
    for images, out_rows in blocks:
        first = (images.start * ho + out_rows.start) * wo
        count = (images.stop - images.start) * (out_rows.stop - out_rows.start) * wo
        yield images, out_rows, slice(first, first + count)


def input_rows(output_rows: slice, kernel, stride, dilation=1) -> slice:
    """The rows of the padded input that the windows of these output rows read."""
    (kh, _), (sh, _), (dh, _) = pair(kernel), pair(stride), pair(dilation)
    return slice(output_rows.start * sh, (output_rows.stop - 1) * sh + dh * (kh - 1) + 1)


#: Floats in one block of col2im's output (256 KiB in float32): the kh*kw adds of a block
#: then run in the processor's cache instead of going out to memory once per tap.
BLOCK_FLOATS = 2 ** 16


def col2im(cols: np.ndarray, padded_shape, kernel, stride, dilation=1, out=None) -> np.ndarray:
    """Adjoint of im2col: add every column entry back to the input position it was read from.

    cols: (C*kh*kw, N*Ho*Wo) -> dxp: padded_shape (N, C, Hp, Wp). One strided
    add per kernel tap (u, v): dxp[:, c, u*dh + i*sh, v*dw + j*sw] += cols[(c,u,v), (n,i,j)].
    The channels are taken a block at a time (blocks of about BLOCK_FLOATS
    output floats): the same adds, in an order that keeps the block in cache.
    ``out``: add into this array of padded_shape instead of a new one of zeros.
    """
    (kh, kw), (sh, sw), (dh, dw) = pair(kernel), pair(stride), pair(dilation)
    n, c, hp, wp = padded_shape
    ho, wo = output_hw(hp, wp, (kh, kw), (sh, sw), 0, (dh, dw))
    taps = cols.reshape(c, kh, kw, n, ho, wo)
    dxp = np.zeros((n, c, hp, wp), dtype=cols.dtype) if out is None else out
    block = max(1, BLOCK_FLOATS // (n * hp * wp))
    for c0 in range(0, c, block):
        channels = slice(c0, c0 + block)
        for u in range(kh):
            for v in range(kw):
                rows = slice(u * dh, u * dh + sh * (ho - 1) + 1, sh)
                columns = slice(v * dw, v * dw + sw * (wo - 1) + 1, sw)
                dxp[:, channels, rows, columns] += taps[channels, u, v].transpose(1, 0, 2, 3)
    return dxp


# ---------------------------------------------------------------- stride 1: images side by side

def side_by_side(x: np.ndarray, padding, images: slice = slice(None), rows: slice | None = None) -> np.ndarray:
    """Padded rows of some images of x, laid side by side: (C, R, K, Wp).

    x (N, C, H, W); ``images`` a slice of K images; ``rows`` a slice of the padded
    height Hp = H + 2ph (default: all of it), R rows. out[c, r, k] is padded row
    rows.start + r of image k, channel c (Wp = W + 2pw wide): zero in the padding,
    x elsewhere. Read as one line per channel, (C, R*K*Wp), the taps of
    stride-1 windows are that line at fixed offsets (``shifted_columns``).
    Rows past the padded height are zero too.
    The result is this thread's scratch array "side_by_side" (see ``scratch``).
    """
    n, c, h, w = x.shape
    (ph, pw), images = pair(padding), range(n)[images]
    rows = rows or slice(0, h + 2 * ph)
    out = scratch("side_by_side", (c, rows.stop - rows.start, len(images), w + 2 * pw), x.dtype)
    top, bottom = min(max(rows.start, ph), rows.stop), max(min(rows.stop, ph + h), rows.start)
    out[:, :top - rows.start] = 0                      # padding rows above and below the image
    out[:, bottom - rows.start:] = 0
    out[..., :pw] = 0                                  # padding columns left and right
    out[..., pw + w:] = 0
    if top < bottom:
        block = x[images.start:images.stop:images.step, :, top - ph:bottom - ph]      # K, C, rows, W
        out[:, top - rows.start:bottom - rows.start, :, pw:pw + w] = block.transpose(1, 2, 0, 3)
    return out


def shifted_columns(xs: np.ndarray, kernel, dilation=1) -> np.ndarray:
    """im2col for stride 1 by kh*kw slice copies: xs (C, Hs, K, Wp) -> cols (C*kh*kw, Ho*K*Wp).

    xs holds K padded images side by side (``side_by_side``). Flatten it to one
    line per channel, line[c, (r*K + k)*Wp + s] = xs[c, r, k, s]. Window
    (i, k, j) starts at q = (i*K + k)*Wp + j and its tap (u, v) is
    line[c, q + u*dh*K*Wp + v*dw]: one offset per tap, the same for every window, so

        cols[(c, u, v), q] = line[c, q + u*dh*K*Wp + v*dw]

    is one slice copy per tap. Columns (i, k, j) with j >= Wo = Wp - dw(kw - 1)
    are windows that run off the right edge of an image: they are computed
    and dropped (the output is cols viewed as (., Ho, K, Wp)[..., :Wo]). The
    last few, which would run past the end of the line, are set to zero.
    The result is this thread's scratch array "columns".
    """
    (kh, kw), (dh, dw) = pair(kernel), pair(dilation)
    c, hs, k, wp = xs.shape
    ho, pitch = hs - dh * (kh - 1), k * wp              # output rows; one row of every image
    line = xs.reshape(c, hs * pitch)
    total = ho * pitch                                  # columns (i, k, j), j < Wp
    valid = total - dw * (kw - 1)                       # up to the last window of the last image
    cols = scratch("columns", (c, kh, kw, total), xs.dtype)
    cols[..., valid:] = 0
    for u in range(kh):
        for v in range(kw):
            offset = u * dh * pitch + v * dw
            cols[:, u, v, :valid] = line[:, offset:offset + valid]
    return cols.reshape(c * kh * kw, total)


def add_shifted_columns(dcols: np.ndarray, out: np.ndarray, kernel, dilation=1) -> np.ndarray:
    """Adjoint of ``shifted_columns``: out (C, Hs, K, Wp) += each tap's columns at its offset.

    dcols (C*kh*kw, Ho*K*Wp); one slice add per tap (u, v):
    line[c, q + u*dh*K*Wp + v*dw] += dcols[(c, u, v), q]. The columns of
    windows that run off an image (j >= Wo) must hold zeros: they would
    otherwise spill into the neighbouring image. ``out`` must be contiguous
    (its line is a view of it).
    """
    if not out.flags.c_contiguous:
        raise ValueError("add_shifted_columns adds into a contiguous array only")
    (kh, kw), (dh, dw) = pair(kernel), pair(dilation)
    c, hs, k, wp = out.shape
    ho, pitch = hs - dh * (kh - 1), k * wp
    line = out.reshape(c, hs * pitch)
    valid = ho * pitch - dw * (kw - 1)
    taps = dcols.reshape(c, kh, kw, ho * pitch)
    for u in range(kh):
        for v in range(kw):
            offset = u * dh * pitch + v * dw
            line[:, offset:offset + valid] += taps[:, u, v, :valid]
    return out


_SCRATCH = threading.local()


def scratch(name: str, shape, dtype) -> np.ndarray:
    """A work array of this thread, reused from call to call (contents undefined).

    The blocks of a convolution need the same large temporaries over and
    over; taking them from one buffer per name and thread spares an
    allocation (and the page faults of fresh memory) per block. Only for
    temporaries: a caller must not return a scratch array or keep it past
    its next request of the same name.
    """
    size, dtype = math.prod(shape), np.dtype(dtype)
    buffers = _SCRATCH.__dict__.setdefault("buffers", {})
    buf = buffers.get((name, dtype))
    if buf is None or buf.size < size:
        buf = buffers[(name, dtype)] = np.empty(size, dtype)
    return buf[:size].reshape(shape)


def unpad(xp: np.ndarray, padding) -> np.ndarray:
    """Drop the padding added by ``pad`` (a view)."""
    ph, pw = pair(padding)
    h, w = xp.shape[-2] - 2 * ph, xp.shape[-1] - 2 * pw
    return xp[..., ph:ph + h, pw:pw + w]

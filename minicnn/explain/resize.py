"""Bilinear resizing of maps, exactly as PyTorch's ``F.interpolate``.

A class activation map is computed at the resolution of a convolutional
layer (7x7 for VGG-16's last block, 8x8 for ResNet-20's ``layer3``) and is
upsampled to the input's size before it is laid over the image. This module
does that upsampling the way ``torch.nn.functional.interpolate(x, size,
mode="bilinear", align_corners=...)`` does (no antialiasing), so a map
computed here and one computed in PyTorch agree to rounding.

Coordinates. Along one axis, ``in`` source pixels become ``out`` output
pixels. Output pixel ``d`` (``0 <= d < out``) reads the source at the
continuous coordinate

    align_corners=False:  src = (d + 0.5) * in / out - 0.5,  then src = max(src, 0)
    align_corners=True:   src = d * (in - 1) / (out - 1)      (src = 0 when out == 1)

``align_corners=False`` treats pixels as unit squares whose centres sit at
half-integers ("half-pixel centres"); it is PyTorch's default and, for
upsampling, equals OpenCV's ``INTER_LINEAR``. ``align_corners=True`` pins
the centres of the corner pixels of input and output together.

With ``i0 = floor(src)``, ``i1 = min(i0 + 1, in - 1)`` and ``t = src - i0``
the 1-D interpolation is ``out[d] = (1 - t) * x[i0] + t * x[i1]``: a linear
map, so it is a matrix ``A`` of shape ``(out, in)`` with at most two nonzero
entries per row, each row summing to 1. Bilinear resizing is that 1-D
interpolation along the rows, then along the columns:

    Y = A_h @ X @ A_w.T        X: (h, w),  A_h: (H, h),  A_w: (W, w),  Y: (H, W)

Because the result is linear in ``X``, its derivative is the transpose:
``dL/dX = A_h.T @ dL/dY @ A_w``.

Two tiers: :func:`resize_bilinear` (the matrices above, applied with
``matmul`` over any leading axes) and :func:`resize_bilinear_reference`
(the same formulas, one output pixel at a time); the tests prove they agree.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ..errors import InputError

__all__ = ["source_coordinates", "interpolation_matrix", "resize_bilinear", "resize_bilinear_reference"]


def source_coordinates(in_size: int, out_size: int, *, align_corners: bool = False) -> np.ndarray:
    """Continuous source coordinate of each output pixel, shape (out_size,), float64.

    ``align_corners=False``: ``src = max((d + 0.5) * in / out - 0.5, 0)``.
    ``align_corners=True``: ``src = d * (in - 1) / (out - 1)`` (0 if ``out == 1``).
    """
    d = np.arange(out_size, dtype=np.float64)
    if align_corners:
        scale = (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
        return d * scale
    src = (d + 0.5) * (in_size / out_size) - 0.5
    return np.maximum(src, 0.0)


def interpolation_matrix(in_size: int, out_size: int, *, align_corners: bool = False) -> np.ndarray:
    """The (out_size, in_size) float64 matrix ``A`` of 1-D linear interpolation.

    Row ``d`` holds ``1 - t`` at column ``i0`` and ``t`` at column ``i1``
    (added together when ``i0 == i1`` at the last pixel), so every row sums
    to 1 and ``A @ x`` resizes a vector ``x`` of length ``in_size``.
    """
    in_size, out_size = _positive_int(in_size, "in_size"), _positive_int(out_size, "out_size")
    src = source_coordinates(in_size, out_size, align_corners=align_corners)
    i0 = np.minimum(np.floor(src).astype(np.intp), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    t = src - i0
    rows = np.arange(out_size)
    a = np.zeros((out_size, in_size), dtype=np.float64)
    np.add.at(a, (rows, i0), 1.0 - t)
    np.add.at(a, (rows, i1), t)
    return a


def resize_bilinear(maps: np.ndarray, size, *, align_corners: bool = False) -> np.ndarray:
    """Resize the last two axes of ``maps`` bilinearly to ``size``.

    Parameters
    ----------
    maps : array, shape (..., h, w)
        Any number of leading axes (e.g. (N, C, h, w) or a single (h, w)
        map). float32 and float64 keep their dtype; integer and bool input is
        converted to float64.
    size : (H, W) or int
        Output height and width; an int means (size, size).
    align_corners : bool
        False (PyTorch's default): half-pixel centres,
        ``src = (dst + 0.5) * in / out - 0.5`` clamped at 0.
        True: ``src = dst * (in - 1) / (out - 1)``.

    Returns
    -------
    array, shape (..., H, W), same float dtype as ``maps``
        ``Y = A_h @ X @ A_w.T`` for every leading index, with the
        interpolation matrices of :func:`interpolation_matrix`. Equal to
        ``F.interpolate(maps, size, mode="bilinear", align_corners=...)``.
    """
    x = _as_float_maps(maps)
    out_h, out_w = _size_pair(size)
    a_h = interpolation_matrix(x.shape[-2], out_h, align_corners=align_corners).astype(x.dtype)
    a_w = interpolation_matrix(x.shape[-1], out_w, align_corners=align_corners).astype(x.dtype)
    return np.ascontiguousarray(a_h @ x @ a_w.T)


def resize_bilinear_reference(maps: np.ndarray, size, *, align_corners: bool = False) -> np.ndarray:
    """Loop version of :func:`resize_bilinear`, one output pixel at a time.

    For output pixel (y, x): ``sy``, ``sx`` are the source coordinates,
    ``y0 = floor(sy)``, ``y1 = min(y0 + 1, h - 1)``, ``ty = sy - y0``
    (same along x), and

        out = (1-ty)(1-tx) m[y0,x0] + (1-ty) tx m[y0,x1] + ty (1-tx) m[y1,x0] + ty tx m[y1,x1]

    Slow; for tests and for reading.
    """
    x = _as_float_maps(maps)
    out_h, out_w = _size_pair(size)
    h, w = x.shape[-2:]
    flat = x.reshape(-1, h, w)
    out = np.empty((flat.shape[0], out_h, out_w), dtype=x.dtype)
    sys_ = source_coordinates(h, out_h, align_corners=align_corners)
    sxs = source_coordinates(w, out_w, align_corners=align_corners)
    for n in range(flat.shape[0]):
        m = flat[n].astype(np.float64)
        for oy in range(out_h):
            y0 = min(int(math.floor(sys_[oy])), h - 1)
            y1 = min(y0 + 1, h - 1)
            ty = sys_[oy] - y0
            for ox in range(out_w):
                x0 = min(int(math.floor(sxs[ox])), w - 1)
                x1 = min(x0 + 1, w - 1)
                tx = sxs[ox] - x0
                out[n, oy, ox] = ((1 - ty) * (1 - tx) * m[y0, x0] + (1 - ty) * tx * m[y0, x1]
                                  + ty * (1 - tx) * m[y1, x0] + ty * tx * m[y1, x1])
    return out.reshape(x.shape[:-2] + (out_h, out_w))


def _as_float_maps(maps) -> np.ndarray:
    x = np.asarray(maps)
    if x.ndim < 2:
        raise InputError(f"resize_bilinear expects maps shaped (..., h, w); got shape {x.shape}")
    if x.shape[-2] == 0 or x.shape[-1] == 0:
        raise InputError(f"resize_bilinear cannot resize an empty map of shape {x.shape}")
    if x.dtype.kind in "biu":
        x = x.astype(np.float64)
    elif x.dtype.kind != "f":
        raise InputError(f"resize_bilinear expects a float array; got dtype {x.dtype}")
    return x


def _size_pair(size) -> tuple[int, int]:
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        size = (size, size)
    try:
        h, w = size
    except (TypeError, ValueError):
        raise InputError(f"size must be (H, W) or an int; got {size!r}") from None
    return _positive_int(h, "output height"), _positive_int(w, "output width")


def _positive_int(v, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
        raise InputError(f"{what} must be a positive integer; got {v!r}")
    return int(v)

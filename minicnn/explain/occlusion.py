"""Occlusion sensitivity (Zeiler and Fergus, ECCV 2014, section 4.2).

Cover part of the image with a patch and see how much the class score falls.
For a patch of size (ph, pw) with its top-left corner at (r, s):

    x_occ        = x with x[:, r:r+ph, s:s+pw] replaced by the fill
    drop^c(r, s) = y^c(x) - y^c(x_occ)                  pre-softmax scores

A large positive drop means the covered region supported class c; a negative
drop means it spoke against it. No gradients are involved: only forward
passes, many occluded copies of an image per pass (``batch_size``), each
keeping nothing but the logits (the model's ``activations`` are empty
afterwards).

An image that appears more than once in the batch with the same fill (one
photo explained for several classes) is occluded once: the forward passes
give every class's score, and each copy reads its own class from them.

Patch positions: top-left offsets 0, stride, 2*stride, ... along each axis,
plus a last one flush with the border when the stride does not reach it, so
every pixel is covered. Two maps come back:

- ``grid`` (N, gh, gw): drop^c at each patch position (row a = offset rows[a]);
- ``map``  (N, H, W): for each pixel, the mean drop over all patches that
  cover it. This is the map that is shown and saved.

The fill is in the units of the model's input x (after preprocessing): 0.0
(the default) is the colour that the normalisation subtracts, the ``mean`` of
the model's preprocessing (for the shipped models, ImageNet's mean RGB);
"mean" is each image's own per-channel mean; an array broadcastable to x's
shape (N, C, H, W) supplies the pixels to paste in (e.g. a blurred copy).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..inputs.preprocess import size_text
from ..model import check_input
from ..util.progress import Progress
from .target import Explanation, choose_targets, scores_of

#: Elements (images x C x H x W) per forward pass when batch_size is not given.
BATCH_ELEMENTS = 2 ** 18


@dataclass(frozen=True, kw_only=True, eq=False)
class Occlusion(Explanation):
    """``map`` (N, H, W): mean drop over the patches covering each pixel; ``grid`` (N, gh, gw): drop per position."""

    grid: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    size: tuple[int, int]
    stride: tuple[int, int]


def offsets(length: int, patch: int, stride: int) -> np.ndarray:
    """Top-left offsets 0, stride, 2*stride, ... <= length - patch, plus length - patch if missed."""
    starts = list(range(0, length - patch + 1, stride))
    if starts[-1] != length - patch:
        starts.append(length - patch)
    return np.array(starts, dtype=np.intp)


def _pair(v, what: str, limit: tuple[int, int]) -> tuple[int, int]:
    pair = (v, v) if isinstance(v, numbers.Integral) and not isinstance(v, bool) else v
    try:
        a, b = pair
        if isinstance(a, bool) or isinstance(b, bool):
            raise TypeError
        a, b = int(a), int(b)
        if a != pair[0] or b != pair[1]:
            raise TypeError
    except (TypeError, ValueError):
        raise InputError(f"occlusion {what} must be an int or (height, width); got {v!r}") from None
    if a < 1 or b < 1:
        raise InputError(f"occlusion {what} must be positive; got {v!r}")
    if what == "size" and (a > limit[0] or b > limit[1]):
        raise InputError(f"occlusion patch {size_text((a, b))} is larger than the image {size_text(limit)}")
    return a, b


def fill_image(x: np.ndarray, fill) -> np.ndarray:
    """The pixels a patch pastes in, broadcast to x's shape (N, C, H, W)."""
    if isinstance(fill, str):
        if fill != "mean":
            raise InputError(f"occlusion fill must be a number, 'mean' or an array; got {fill!r}")
        return np.broadcast_to(x.mean(axis=(2, 3), keepdims=True), x.shape)
    try:
        values = np.asarray(fill, dtype=x.dtype)
        filled = np.broadcast_to(values, x.shape)
    except (TypeError, ValueError):
        raise InputError(f"occlusion fill must be a number, 'mean' or an array broadcastable to {x.shape}; "
                         f"got {type(fill).__name__} of shape {np.shape(fill)}") from None
    if not np.isfinite(values).all():
        raise InputError("occlusion fill must be finite (no NaN or infinity): it becomes network input")
    return filled


def occlusion(model, x, target=None, *, size=None, stride=None, fill=0.0, batch_size: int | None = None,
              progress: bool | None = None) -> Occlusion:
    """Occlusion map of class ``target`` for the batch x (N, C, H, W).

    size   : patch (ph, pw) or an int (default: a quarter of the shorter side, 8 for 32x32)
    stride : step between patch positions, at most the patch size (default: a quarter of the
             patch, at least 1; 2 for 32x32)
    fill   : a number, "mean", or an array broadcastable to x (see the module docstring)
    batch_size : occluded copies per forward pass (default: about 2^18 input elements per pass)
    progress   : True / False; None shows a bar on stderr once it has taken 2 s
    """
    x = check_input(x)
    n, c, h, w = x.shape
    size = _pair(size if size is not None else max(1, min(h, w) // 4), "size", (h, w))
    stride = _pair(stride if stride is not None else (max(1, size[0] // 4), max(1, size[1] // 4)), "stride", (h, w))
    if stride[0] > size[0] or stride[1] > size[1]:
        raise InputError(f"occlusion stride {size_text(stride)} is larger than the patch {size_text(size)}: "
                         f"some pixels would never be covered; use a stride of at most the patch size")
    if batch_size is None:
        batch_size = max(1, BATCH_ELEMENTS // x[0].size)
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise InputError(f"occlusion batch_size must be a positive integer; got {batch_size!r}")
    fills = fill_image(x, fill)

    logits = model.forward(x)
    targets = choose_targets(model, logits, target)
    base = scores_of(logits, targets)                              # y^c(x), (N,)
    rows, cols = offsets(h, size[0], stride[0]), offsets(w, size[1], stride[1])
    positions = [(r, s) for r in rows for s in cols]
    grid = np.empty((n, len(rows) * len(cols)), dtype=logits.dtype)
    scores: dict[int, np.ndarray] = {}                             # kept only for images that come again
    keys = [x[i].tobytes() + np.ascontiguousarray(fills[i]).tobytes() for i in range(n)] if n > 1 else [b""]
    first = {}                                                     # image (pixels and fill) -> its first index
    for i, key in enumerate(keys):
        first.setdefault(key, i)
    bar = Progress(n * len(positions), "occlusion", unit="patches", enabled=progress is not False,
                   after=0.0 if progress else 2.0)
    try:
        for i in range(n):
            if first[keys[i]] != i:                                # occluded already: read class c_i from its passes
                grid[i] = base[i] - scores[first[keys[i]]][:, targets[i]]
                bar.update(len(positions))
                continue
            every = np.empty((len(positions), logits.shape[1]), dtype=logits.dtype)   # y^k(x occluded), all k
            for start in range(0, len(positions), batch_size):
                chunk = positions[start:start + batch_size]
                copies = np.repeat(x[i:i + 1], len(chunk), axis=0)
                for b, (r, s) in enumerate(chunk):
                    copies[b, :, r:r + size[0], s:s + size[1]] = fills[i, :, r:r + size[0], s:s + size[1]]
                every[start:start + len(chunk)] = model.forward(copies, keep=False)
                bar.update(len(chunk))
            grid[i] = base[i] - every[:, targets[i]]
            if keys.count(keys[i]) > 1:
                scores[i] = every
    finally:
        bar.close()
    grid = grid.reshape(n, len(rows), len(cols))

    total = np.zeros((n, h, w), dtype=grid.dtype)
    count = np.zeros((h, w), dtype=grid.dtype)
    for a, r in enumerate(rows):
        for b, s in enumerate(cols):
            total[:, r:r + size[0], s:s + size[1]] += grid[:, a, b, None, None]
            count[r:r + size[0], s:s + size[1]] += 1
    return Occlusion(method="occlusion", map=total / count, grid=grid, rows=rows, cols=cols, size=size,
                     stride=stride, targets=targets, scores=base, logits=logits, layer=None, classes=model.classes)

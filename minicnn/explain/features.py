"""Feature masks: the superpixels that LIME and Kernel SHAP switch on and off.

A feature mask is an integer array (N, H, W) of labels 0 .. M-1 over the
input's pixels: pixel (i, j) of image n belongs to interpretable feature
``mask[n, i, j]``, the same one in every channel. Three ways to get one:

- ``grid_mask(hw, cells)``: a regular grid of ``cells`` x ``cells`` rectangles
  (the default; row r, column s of the grid is feature r * cells + s; cell
  edges at floor(k * H / cells));
- ``slic_mask(x, segments)``: SLIC superpixels (Achanta et al. 2012) of each
  image, where scikit-image is installed (an optional extra);
- a mask the user passes: an array, or a file (:func:`load_feature_mask`, a
  PNG of integer labels or an ``.npy`` array, of the network input's size).

:func:`feature_mask` turns any of these into labels 0 .. M-1 with every label
used (``np.unique``'s inverse: the order of the labels is kept, gaps closed),
M at most :data:`MAX_FEATURES`.
"""

from __future__ import annotations

import io
import numbers
import warnings

import numpy as np
from PIL import Image

from ..errors import InputError
from ..inputs.preprocess import size_text
from ..util.files import read_regular_file

#: The most interpretable features a mask may have: the regression solves an (M + 1)-unknown system.
MAX_FEATURES = 1024
#: A feature-mask file is at most this large (a 1024 x 1024 int64 .npy is 8 MiB).
MAX_MASK_BYTES = 16 * 2**20
#: What ``features`` may name besides an array.
KINDS = ("grid", "slic")
#: Cells per side of the default grid (8 x 8 = 64 features).
DEFAULT_CELLS = 8


def grid_mask(hw: tuple[int, int], cells: int = DEFAULT_CELLS) -> np.ndarray:
    """A regular grid of cells x cells features over an (H, W) image: labels (H, W), row-major.

    Pixel (i, j) lies in grid row r = floor(i * cells / H), column s = floor(j * cells / W),
    label r * cells + s; when cells > H (or W) the grid has only H rows (W columns).
    """
    h, w = (int(v) for v in hw)
    cells = _check_cells(cells)
    rows = np.arange(h) * min(cells, h) // h            # floor(i * cells / H)
    cols = np.arange(w) * min(cells, w) // w
    return rows[:, None] * min(cells, w) + cols[None, :]


def slic_mask(x: np.ndarray, segments: int) -> np.ndarray:
    """SLIC superpixels of each image of x (N, C, H, W): labels (N, H, W) from 0, about ``segments`` each.

    Each image is scaled to [0, 1] (min-max over its values) and segmented by
    ``skimage.segmentation.slic(..., n_segments=segments, start_label=0)`` with
    scikit-image's defaults (compactness 10, in CIELAB for three channels).
    """
    try:
        from skimage.segmentation import slic  # lazy: scikit-image is an optional extra
    except ImportError:
        raise InputError("SLIC superpixels need scikit-image (pip install scikit-image); "
                         "use the regular grid (features=grid) or pass a mask") from None
    out = np.empty((x.shape[0], *x.shape[2:]), np.int64)
    for n, image in enumerate(x):
        lo, hi = float(image.min()), float(image.max())
        scaled = np.moveaxis((image - lo) / (hi - lo if hi > lo else 1.0), 0, -1).astype(np.float64)
        three = scaled.shape[-1] == 3
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")                # skimage warns about tiny or flat images
            out[n] = slic(scaled if three else scaled[..., 0], n_segments=int(segments), start_label=0,
                          channel_axis=-1 if three else None, convert2lab=three)
    return out


def feature_mask(x: np.ndarray, features="grid", cells: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(labels (N, H, W) int64 in 0 .. M_n - 1, M (N,)): image n's features for x (N, C, H, W).

    features : "grid" (cells x cells rectangles), "slic" (about cells^2 superpixels per image), or an
               integer array (H, W) or (N, H, W) of labels (any integers; relabelled to 0 .. M-1 in order)
    cells    : cells per side (default 8)
    """
    n, _, h, w = x.shape
    cells = DEFAULT_CELLS if cells is None else _check_cells(cells)
    if isinstance(features, str):
        if features == "grid":
            masks = np.broadcast_to(grid_mask((h, w), cells), (n, h, w))
        elif features == "slic":
            masks = slic_mask(x, cells * cells)
        else:
            raise InputError(f"features must be one of {', '.join(KINDS)} or an array of labels "
                             f"(--feature-mask FILE on the command line); got {features[:40]!r}")
    else:
        masks = _label_array(features, (n, h, w))
    labels = np.empty((n, h, w), np.int64)
    counts = np.empty(n, np.int64)
    for i in range(n):
        values, inverse = np.unique(masks[i], return_inverse=True)
        if len(values) > MAX_FEATURES:
            raise InputError(f"the feature mask has {len(values)} features, over the limit of {MAX_FEATURES}; "
                             f"group the pixels into fewer features")
        labels[i], counts[i] = inverse.reshape(h, w), len(values)
    return labels, counts


def _check_cells(cells) -> int:
    if isinstance(cells, bool) or not isinstance(cells, numbers.Integral) or not 1 <= cells <= 32:
        raise InputError(f"grid must be an integer from 1 to 32 (cells per side); got {cells!r}")
    return int(cells)


def _label_array(features, shape: tuple[int, int, int]) -> np.ndarray:
    """An integer array (H, W) or (N, H, W) of labels, checked and broadcast to ``shape``."""
    a = np.asarray(features)
    if a.dtype == bool or not np.issubdtype(a.dtype, np.integer):
        raise InputError(f"a feature mask holds integer labels; got an array of {a.dtype}")
    if a.ndim not in (2, 3) or a.shape[-2:] != shape[1:] or (a.ndim == 3 and a.shape[0] not in (1, shape[0])):
        raise InputError(f"a feature mask must be the network input's size {size_text(shape[1:])} "
                         f"(or (N, H, W)); got shape {a.shape}")
    if a.min() < 0:
        raise InputError(f"feature labels must be >= 0; the mask has {int(a.min())}")
    return np.broadcast_to(a, shape)


def load_feature_mask(path, hw: tuple[int, int]) -> np.ndarray:
    """The labels (H, W) int64 in the file ``path``: a PNG of integer labels or an ``.npy`` integer array.

    The file must be a regular file of at most MAX_MASK_BYTES; an .npy is read
    without pickle; a PNG must be 8- or 16-bit grey (mode L, I;16 or I), of
    exactly the network input's size hw (checked from its header, before it is
    decoded). Labels are checked by :func:`feature_mask` (integers >= 0, at most
    MAX_FEATURES distinct).
    """
    data = read_regular_file(path, MAX_MASK_BYTES, "feature mask")
    h, w = (int(v) for v in hw)
    if data[:6] == b"\x93NUMPY":
        try:
            a = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise InputError(f"feature mask {path}: not a readable .npy array ({str(e)[:80]})") from None
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        try:
            with Image.open(io.BytesIO(data), formats=["PNG"]) as im:
                if im.size != (w, h):
                    raise InputError(f"feature mask {path} is {size_text(im.size[::-1])}; it must be the network "
                                     f"input's size {size_text((h, w))}")
                if im.mode not in ("L", "I;16", "I"):
                    raise InputError(f"feature mask {path} is a {im.mode} PNG; it must be grey (8- or 16-bit) "
                                     f"integer labels")
                a = np.asarray(im, dtype=np.int64)
        except InputError:
            raise
        except (OSError, SyntaxError, ValueError) as e:
            raise InputError(f"feature mask {path}: not a readable PNG ({str(e)[:80]})") from None
    else:
        raise InputError(f"feature mask {path} is neither a PNG nor an .npy file")
    if a.dtype == bool or not np.issubdtype(a.dtype, np.integer):
        raise InputError(f"feature mask {path} holds {a.dtype} values; it must hold integer labels")
    if a.shape != (h, w):
        raise InputError(f"feature mask {path} has shape {a.shape}; it must be the network input's size "
                         f"{size_text((h, w))}")
    feature_mask(np.zeros((1, 1, h, w)), a.astype(np.int64))          # the labels' checks, now
    return a.astype(np.int64)

"""Turning decoded images into network input and back, and their sizes as people read them.

:func:`preprocess` turns a list of ``(H, W, 3)`` uint8 RGB arrays (see
:mod:`minicnn.inputs.images`) into the ``(N, 3, H, W)`` float batch a model
expects, following the model's *preprocessing description*, a small JSON-able
dict stored with the model and checked by :func:`check_preprocessing`::

    {"mean": [0.485, 0.456, 0.406],     # per channel, in [0, 1] units
     "std": [0.229, 0.224, 0.225],
     "resize": "shorter_then_center_crop",   # or "exact", "shorter", "none"
     "size": [224, 224],                 # [H, W] of the network input
     "resize_shorter": 256,              # only for "shorter_then_center_crop"
     "interpolation": "bilinear"}        # optional: Pillow's filter, "bilinear" (default) or "bicubic"

:func:`deprocess` undoes the normalisation for display. :func:`network_input_size`
says what size an image enters the network at, :func:`size_text` and
:func:`how_resized` say it in words, and :func:`training_size_note` warns when
that is far from the size the model was trained on.
"""

from __future__ import annotations

import numbers

import numpy as np
from PIL import Image

from ..errors import InputError
from .images import DEFAULT_MAX_INPUT_PIXELS, DEFAULT_MAX_PIXELS, ImageWarning, _check_max_pixels

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "RESIZE_MODES", "INTERPOLATIONS", "FAR_FROM_TRAINING", "InputSizeWarning",
    "check_preprocessing", "preprocess", "deprocess", "side_by_side", "network_input_size", "size_text",
    "how_resized", "training_size_note",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE_MODES = ("exact", "shorter_then_center_crop", "shorter", "none")
#: Pillow filters a preprocessing description may name ("interpolation"; default "bilinear").
INTERPOLATIONS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


def check_preprocessing(preprocessing) -> dict:
    """Validate a preprocessing description and return a normalised copy.

    Required keys: ``mean`` and ``std`` (3 numbers each, std > 0) and
    ``resize`` (one of :data:`RESIZE_MODES`). ``size`` ([H, W], or an int for
    a square) is required unless ``resize`` is "none"; ``resize_shorter`` (an
    int) is required for "shorter_then_center_crop" (at least the crop's larger
    side) and for "shorter". Unknown keys are kept as they are.
    """
    if not isinstance(preprocessing, dict):
        raise InputError(f"preprocessing must be a dict with mean, std, resize, size; "
                         f"got {type(preprocessing).__name__}")
    p = dict(preprocessing)
    for key in ("mean", "std", "resize"):
        if key not in p:
            raise InputError(f"preprocessing is missing {key!r}; it needs mean, std, resize, size (and resize_shorter)")
    for key in ("mean", "std"):
        try:
            vals = [float(v) for v in p[key]]
        except (TypeError, ValueError):
            raise InputError(f"preprocessing {key} must be 3 numbers; got {p[key]!r}") from None
        if len(vals) != 3 or not all(np.isfinite(vals)):
            raise InputError(f"preprocessing {key} must be 3 finite numbers; got {p[key]!r}")
        p[key] = vals
    if min(p["std"]) <= 0:
        raise InputError(f"preprocessing std must be positive; got {p['std']}")
    if p["resize"] not in RESIZE_MODES:
        raise InputError(f"preprocessing resize must be one of {', '.join(RESIZE_MODES)}; got {p['resize']!r}")
    size = p.get("size")
    if size is None:
        if p["resize"] != "none":
            raise InputError(f"preprocessing with resize {p['resize']!r} needs a size [H, W]")
    else:
        if isinstance(size, numbers.Integral) and not isinstance(size, bool):
            size = [size, size]
        if (not isinstance(size, (list, tuple)) or len(size) != 2
                or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0 for s in size)):
            raise InputError(f"preprocessing size must be [H, W], two positive integers; got {p['size']!r}")
        p["size"] = [int(size[0]), int(size[1])]
    shorter = p.get("resize_shorter")
    if p["resize"] in ("shorter_then_center_crop", "shorter"):
        if isinstance(shorter, bool) or not isinstance(shorter, numbers.Integral) or shorter < 1:
            raise InputError(f"preprocessing resize_shorter must be a positive integer; got {shorter!r}")
        if p["resize"] == "shorter_then_center_crop" and shorter < max(p["size"]):
            raise InputError(f"preprocessing resize_shorter ({shorter}) is smaller than the crop {p['size']}")
        p["resize_shorter"] = int(shorter)
    else:
        p.setdefault("resize_shorter", None)
    if not isinstance(p.setdefault("interpolation", "bilinear"), str) or p["interpolation"] not in INTERPOLATIONS:
        raise InputError(f"preprocessing interpolation must be one of {', '.join(INTERPOLATIONS)}; "
                         f"got {p['interpolation']!r}")
    return p


def preprocess(images, preprocessing: dict, *, dtype=np.float32,
               max_input_pixels: int = DEFAULT_MAX_INPUT_PIXELS) -> np.ndarray:
    """Turn uint8 RGB images into a normalised ``(N, 3, H, W)`` batch.

    Parameters
    ----------
    images : (H, W, 3) uint8 array, a list of them, or an (N, H, W, 3) uint8 array
    preprocessing : dict
        The model's preprocessing description (see :func:`check_preprocessing`).
        ``resize`` is applied to each image with Pillow's bilinear filter
        (as torchvision's ``Resize`` does on PIL images; ``"interpolation":
        "bicubic"`` chooses Pillow's bicubic filter instead):

        - "exact": to ``size`` (CIFAR models, 32x32);
        - "shorter_then_center_crop": the shorter side to ``resize_shorter``
          (the longer side to ``int(resize_shorter * long / short)``), then
          the central ``size`` crop, top/left offset ``round((H' - H) / 2)``
          (torchvision ``Resize(256)`` + ``CenterCrop(224)``);
        - "shorter": the shorter side to ``resize_shorter``, the aspect ratio
          kept, no crop (fully convolutional models: a 32x64 image stays
          32x64, a 400x600 photo becomes 32x48);
        - "none": the image keeps its size (for fully convolutional use,
          e.g. the 32x64 cat|dog image); all images must then share a size.
    dtype : np.float32 or np.float64
    max_input_pixels : int
        An image whose network input (after ``resize``) would have more
        pixels than this is refused with a one-line InputError before it is
        resized (a 1x10000 strip for a model that resizes the shorter side to
        32 would become 32x320000).

    Returns
    -------
    (N, 3, H, W) array of ``dtype``: ``(pixel / 255 - mean[c]) / std[c]``.
    """
    p = check_preprocessing(preprocessing)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise InputError(f"preprocess dtype must be float32 or float64; got {dtype}")
    limit = _check_max_pixels(max_input_pixels, "max_input_pixels")
    images = [_check_image(img, i) for i, img in enumerate(_image_list(images))]
    for i, img in enumerate(images):
        _check_input_size(img, p, limit, f"image {i} " if len(images) > 1 else "the image ")
    batch = [_resize_for(img, p) for img in images]
    shapes = sorted({b.shape for b in batch})
    if len(shapes) > 1:
        raise InputError(f"images differ in size after preprocessing ({shapes[0][:2]} and {shapes[1][:2]}); "
                         f"use resize 'exact' or preprocess them one at a time")
    x = np.stack(batch).astype(dtype) / dtype.type(255)
    mean = np.asarray(p["mean"], dtype=dtype)
    std = np.asarray(p["std"], dtype=dtype)
    x = (x - mean) / std
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def deprocess(x_chw: np.ndarray, preprocessing: dict) -> np.ndarray:
    """Undo the normalisation of one input for display.

    ``x_chw``: (3, H, W) (or (1, 3, H, W)) float. Returns (H, W, 3) float
    ``clip(x * std + mean, 0, 1)`` in the input's float dtype (float64 for
    other input).
    """
    p = check_preprocessing(preprocessing)
    x = np.asarray(x_chw)
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 3 or x.shape[0] != 3:
        raise InputError(f"deprocess expects one image shaped (3, H, W); got shape {np.shape(x_chw)}")
    dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    x = x.astype(dtype, copy=False)
    mean = np.asarray(p["mean"], dtype=dtype)
    std = np.asarray(p["std"], dtype=dtype)
    return np.clip(x.transpose(1, 2, 0) * std + mean, 0, 1)


def side_by_side(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Put two (H, W, 3) uint8 images of equal height next to each other.

    Returns (H, Wa + Wb, 3) uint8; two 32x32 CIFAR images give the 32x64
    "cat and dog" input of the Grad-CAM paper at CIFAR scale.
    """
    a, b = _check_image(a, 0), _check_image(b, 1)
    if a.shape[0] != b.shape[0]:
        raise InputError(f"side_by_side needs images of equal height; got {a.shape[0]} and {b.shape[0]}")
    return np.concatenate([a, b], axis=1)


def _image_list(images) -> list:
    if isinstance(images, np.ndarray):
        if images.ndim == 4:
            return list(images)
        return [images]
    if isinstance(images, (list, tuple)):
        if not images:
            raise InputError("preprocess got an empty list of images")
        return list(images)
    raise InputError(f"expected an (H, W, 3) uint8 array or a list of them; got {type(images).__name__}")


def _check_image(img, index: int) -> np.ndarray:
    if not isinstance(img, np.ndarray):
        raise InputError(f"image {index} is a {type(img).__name__}, not an (H, W, 3) uint8 array; use load_image")
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] < 1 or img.shape[1] < 1:
        raise InputError(f"image {index} must be shaped (H, W, 3); got {img.shape}")
    if img.dtype != np.uint8:
        raise InputError(f"image {index} must be uint8 (0..255); got {img.dtype}")
    return img


def network_input_size(image_hw, preprocessing: dict) -> tuple[int, int]:
    """(H, W) of the network input that an image of ``image_hw`` = (h, w) becomes under ``preprocessing``."""
    p = check_preprocessing(preprocessing)
    mode = p["resize"]
    h, w = (int(v) for v in image_hw)
    if mode == "none":
        return h, w
    if mode == "exact":
        return tuple(p["size"])
    new_h, new_w = _shorter_side_to(h, w, p["resize_shorter"])
    return (new_h, new_w) if mode == "shorter" else tuple(p["size"])


def _shorter_side_to(h: int, w: int, short: int) -> tuple[int, int]:
    """The size after resizing the shorter side to ``short`` with the aspect ratio kept (torchvision's rule)."""
    if w <= h:
        return int(short * h / w), short
    return short, int(short * w / h)


def _check_input_size(img: np.ndarray, p: dict, limit: int, which: str) -> None:
    if p["resize"] == "shorter_then_center_crop":      # the resized picture before its crop: uint8, bounded too
        h, w = _shorter_side_to(*img.shape[:2], p["resize_shorter"])
        if h * w > DEFAULT_MAX_PIXELS:
            raise InputError(f"{which}({size_text(img.shape)}) would be resized to {size_text((h, w))} = "
                             f"{h * w} pixels "
                             f"before its centre crop, over the limit of {DEFAULT_MAX_PIXELS}; crop it to a less "
                             f"extreme shape first")
    h, w = network_input_size(img.shape[:2], p)
    if h * w > limit:
        how = {"none": "kept at its own size", "shorter": f"its shorter side resized to {p['resize_shorter']}"}
        raise InputError(f"{which}({size_text(img.shape)}) would enter the network as {size_text((h, w))} = {h * w} "
                         f"pixels ({how.get(p['resize'], 'resized')}), over the limit of {limit}; crop it to a "
                         f"less extreme shape, or raise the limit (minicnn explain --max-input-pixels N; "
                         f"preprocess(..., max_input_pixels=N))")


def _resize_for(img: np.ndarray, p: dict) -> np.ndarray:
    mode, resample = p["resize"], INTERPOLATIONS[p["interpolation"]]
    if mode == "none":
        return img
    out_h, out_w = p["size"]
    if mode == "exact":
        return _pil_resize(img, out_h, out_w, resample)
    h, w = img.shape[:2]
    short = p["resize_shorter"]
    new_h, new_w = _shorter_side_to(h, w, short)
    img = _pil_resize(img, new_h, new_w, resample)
    if mode == "shorter":
        return img
    if new_h < out_h or new_w < out_w:
        raise InputError(f"after resizing the shorter side to {short} the image is {size_text((new_h, new_w))}, "
                         f"smaller than the crop {size_text((out_h, out_w))}")
    top = int(round((new_h - out_h) / 2.0))
    left = int(round((new_w - out_w) / 2.0))
    return img[top:top + out_h, left:left + out_w]


def _pil_resize(img: np.ndarray, h: int, w: int, resample=Image.Resampling.BILINEAR) -> np.ndarray:
    if img.shape[:2] == (h, w):
        return img
    return np.asarray(Image.fromarray(img).resize((w, h), resample))


# ---------------------------------------------------------------------------
# Sizes, as people read them

#: The network input is *far* from the size a model was trained on when one of
#: its sides is more than this factor larger, or smaller, than the training side.
FAR_FROM_TRAINING = 1.5


class InputSizeWarning(ImageWarning):
    """The network input is far from the size the model was trained on (see :func:`training_size_note`)."""


def size_text(hw) -> str:
    """An (H, W) size as people read it: ``(300, 451)`` -> "451 wide x 300 high".

    Arrays are (H, W) and image viewers say W x H; naming the sides avoids
    both readings of "300x451".
    """
    h, w = (int(s) for s in tuple(hw)[:2])
    return f"{w} wide x {h} high"


def how_resized(image_hw, preprocessing: dict) -> str:
    """How ``preprocess`` changes an image of size ``image_hw`` (H, W), in a few words.

    "not resized", "squashed: aspect ratio not kept" (resize "exact" to
    another shape), "resized, aspect ratio kept", "shorter side to 32,
    aspect ratio kept", or that followed by ", then the central crop".
    """
    p = check_preprocessing(preprocessing)
    h, w = (int(s) for s in tuple(image_hw)[:2])
    mode = p["resize"]
    if mode == "none":
        return "not resized"
    if mode == "exact":
        out_h, out_w = p["size"]
        if (out_h, out_w) == (h, w):
            return "not resized"
        if abs(w / h - out_w / out_h) <= 0.01 * out_w / out_h:
            return "resized, aspect ratio kept"
        return "squashed: aspect ratio not kept"
    short = p["resize_shorter"]
    if mode == "shorter" and min(h, w) == short:
        return "not resized"
    text = f"shorter side to {short}, aspect ratio kept"
    return text + (", then the central crop" if mode == "shorter_then_center_crop" else "")


def training_size_note(input_hw, preprocessing: dict, model_name: str = "the model") -> str | None:
    """One line when the network input (H, W) is far from the training size, else None.

    The training size is the preprocessing's ``size``. Far: a side more than
    :data:`FAR_FROM_TRAINING` (1.5) times larger, or smaller, than the
    training side. A fully convolutional model (resize "shorter" or "none")
    accepts such inputs, but it then sees a field of view, or objects at a
    scale, it was never trained on. (A model that resizes to exactly its
    training size, "exact", never gets the note.)
    """
    p = check_preprocessing(preprocessing)
    if p.get("size") is None:
        return None
    h, w = (int(s) for s in tuple(input_hw)[:2])
    th, tw = p["size"]
    worst = max(h / th, th / h, w / tw, tw / w)
    if worst <= FAR_FROM_TRAINING:
        return None
    return (f"the network input is {size_text((h, w))}, far from the {size_text((th, tw))} images {model_name} "
            f"was trained on (a side {worst:.1f}x off): it never saw inputs of this size; read its classes and maps "
            f"with care")

"""Reading images, and turning them into network input and back.

Every image enters minicnn as an ``(H, W, 3)`` uint8 RGB array:
:func:`load_image` reads a file with Pillow and converts whatever it holds
(grayscale, palette, alpha, 16-bit, CMYK, float, rotated by EXIF, animated)
to that. :func:`preprocess` turns a list of such arrays into the
``(N, 3, H, W)`` float batch a model expects, following the model's
*preprocessing description*, a small JSON-able dict stored with the model::

    {"mean": [0.485, 0.456, 0.406],     # per channel, in [0, 1] units
     "std": [0.229, 0.224, 0.225],
     "resize": "shorter_then_center_crop",   # or "exact", "shorter", "none"
     "size": [224, 224],                 # [H, W] of the network input
     "resize_shorter": 256,              # only for "shorter_then_center_crop"
     "interpolation": "bilinear"}        # optional: Pillow's filter, "bilinear" (default) or "bicubic"

:func:`deprocess` undoes the normalisation for display. The package ships a
few CIFAR-10 test images (:func:`sample_images`, :func:`load_sample`) and
two photographs (:func:`data_path`).
"""

from __future__ import annotations

import io
import numbers
import os
import stat
import struct
import threading
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import ImageError, InputError, one_line, unknown_name

__all__ = [
    "ImageWarning", "DEFAULT_MAX_PIXELS", "DEFAULT_MAX_BYTES", "DEFAULT_MAX_INPUT_PIXELS", "IMAGENET_MEAN",
    "IMAGENET_STD", "RESIZE_MODES", "network_input_size",
    "load_image", "image_from_bytes", "to_rgb", "check_preprocessing", "preprocess", "deprocess",
    "side_by_side", "data_path", "sample_images", "load_sample",
]

#: Images with more pixels than this are refused before they are decoded
#: (64 megapixels, 192 MB as RGB uint8).
DEFAULT_MAX_PIXELS = 64_000_000
#: Image files larger than this many bytes are refused before they are read (512 MiB).
DEFAULT_MAX_BYTES = 512 * 2**20
#: Network inputs (after the model's resize rule) with more pixels than this are refused
#: before the forward pass: 512x512. Grad-CAM on resnet20_cifar10 at 32x8192 (this many
#: pixels) takes about 0.7 GB and 5 s; memory and time grow in proportion.
DEFAULT_MAX_INPUT_PIXELS = 512 * 512

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE_MODES = ("exact", "shorter_then_center_crop", "shorter", "none")
#: Pillow filters a preprocessing description may name ("interpolation"; default "bilinear").
INTERPOLATIONS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
_SAMPLES_DIR = DATA_DIR / "cifar10" / "test"

# Serialises minicnn's own brief changes of Pillow's global pixel limit.
_PIL_LIMIT_LOCK = threading.Lock()

# What Pillow raises while decoding a damaged file.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError,
                  struct.error, zlib.error, Image.DecompressionBombError)


class ImageWarning(UserWarning):
    """An image was read, but not all of it (e.g. only the first frame of an animation)."""


# ---------------------------------------------------------------------------
# Loading


def load_image(path, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """Read an image file as an ``(H, W, 3)`` uint8 RGB array.

    Conversions (never refusals):

    - grayscale ``L`` and 1-bit ``1``: the gray value is copied to R, G, B;
    - with transparency (``RGBA``, ``LA``, ``PA``, palette or grayscale with a
      transparent colour): composited over a **white** background,
      ``out = (alpha * rgb + (255 - alpha) * 255) / 255``, rounded;
    - palette ``P``: looked up in its palette;
    - 16-bit ``I;16`` / ``I;16B`` (PNG, TIFF): scaled, ``round(v / 257)``,
      so 65535 -> 255; 32-bit ``I``: the same when its values lie in
      0..65535, otherwise its range [min, max] is stretched to 0..255;
    - float ``F``: values in [0, 1] are multiplied by 255, values in
      [0, 255] are kept, anything else is stretched from [min, max];
    - ``CMYK``, ``YCbCr`` and the rest: Pillow's conversion to RGB;
    - EXIF orientation is applied (``ImageOps.exif_transpose``), so a phone
      photo comes out upright;
    - animated GIF / PNG / WebP and multi-page TIFF: the first frame, with an
      :class:`ImageWarning` naming the number of frames.

    Refused with a one-line :class:`~minicnn.errors.ImageError`: a missing
    file, a directory, anything that is not a regular file (``/dev/zero``, a
    pipe, a socket: never opened), a file of more than ``max_bytes`` bytes,
    an empty file, a file Pillow cannot identify, a truncated or corrupt
    file, and an image of more than ``max_pixels`` pixels (checked from the
    header, before anything is decoded). Pillow's own limit
    (``2 * PIL.Image.MAX_IMAGE_PIXELS``, about 179 megapixels) still applies
    when ``max_pixels`` is set above it. Text metadata in a PNG (XMP, comments,
    of any size) is skipped, not refused: it is not pixels.
    """
    max_pixels = _check_max_pixels(max_pixels)
    max_bytes = _check_max_pixels(max_bytes, "max_bytes")
    path = Path(os.fspath(path))
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ImageError(f"image file not found: {path}") from None
    except OSError as e:
        raise ImageError(f"cannot read {path}: {e.strerror or e}") from None
    if stat.S_ISDIR(mode):
        raise ImageError(f"{path} is a directory, not an image file")
    if not stat.S_ISREG(mode):
        raise ImageError(f"{path} is not a regular file (a device, pipe or socket); save the image to a file first")
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise ImageError(f"cannot read {path}: {e.strerror or e}") from None
    if len(data) > max_bytes:
        raise ImageError(f"{path} is larger than the limit of {max_bytes} bytes for an image file; "
                         f"shrink it first, or raise the limit (load_image(path, max_bytes=N))")
    return image_from_bytes(data, name=str(path), max_pixels=max_pixels)


def image_from_bytes(data: bytes, *, name: str = "<bytes>", max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an encoded image (the bytes of a PNG, JPEG, ... file) like :func:`load_image`.

    ``name`` is only used in messages (e.g. the member's name in a zip file).
    """
    max_pixels = _check_max_pixels(max_pixels)
    if len(data) == 0:
        raise ImageError(f"{name} is empty (0 bytes), not an image")
    with _open(_without_png_text(data), name, max_pixels) as im:
        _refuse_if_too_large(im.size, name, max_pixels)
        try:
            frames = getattr(im, "n_frames", 1)
            if frames > 1:
                warnings.warn(f"{name} has {frames} frames; using the first frame only", ImageWarning, stacklevel=3)
                im.seek(0)
            im.load()
            im = _exif_upright(im)
            return to_rgb(im)
        except ImageError as e:
            raise ImageError(f"{name}: {e}") from None
        except _DECODE_ERRORS as e:
            raise ImageError(f"cannot decode {name}: the file is truncated or corrupt ({one_line(e)})") from None


def to_rgb(im: Image.Image) -> np.ndarray:
    """Convert a decoded Pillow image of any mode to an ``(H, W, 3)`` uint8 array.

    See :func:`load_image` for the rule used for each mode.
    """
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return _gray_to_rgb(_scale_16bit(np.asarray(im).astype(np.int64)))
    if mode == "I":
        v = np.asarray(im).astype(np.int64)
        if v.size == 0 or (v.min() >= 0 and v.max() <= 65535):
            return _gray_to_rgb(_scale_16bit(v))
        return _gray_to_rgb(_stretch(v.astype(np.float64)))
    if mode == "F":
        return _gray_to_rgb(_float_to_uint8(np.asarray(im).astype(np.float64)))
    if _has_alpha(im):
        try:
            rgba = np.asarray(im.convert("RGBA")).astype(np.uint32)
        except ValueError:
            raise ImageError(f"cannot convert an image of Pillow mode {mode!r} to RGB") from None
        rgb, alpha = rgba[..., :3], rgba[..., 3:]
        over_white = (rgb * alpha + 255 * (255 - alpha) + 127) // 255
        return np.ascontiguousarray(over_white.astype(np.uint8))
    if mode != "RGB":
        try:
            im = im.convert("RGB")
        except ValueError:
            raise ImageError(f"cannot convert an image of Pillow mode {mode!r} to RGB") from None
    return np.array(im, dtype=np.uint8)


def _open(data: bytes, name: str, max_pixels: int) -> Image.Image:
    """Open (read the header of) an image; nothing is decoded yet."""
    with warnings.catch_warnings():
        # The pixel limit is checked by _refuse_if_too_large, with a clearer message.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(io.BytesIO(data))
        except Image.DecompressionBombError:
            size = _header_size(data)
            if size is not None:
                _refuse_if_too_large(size, name, max_pixels)
            raise ImageError(f"{name} is larger than Pillow's limit of {2 * Image.MAX_IMAGE_PIXELS} pixels; "
                             f"refusing to decode it") from None
        except UnidentifiedImageError:
            raise ImageError(f"{name} is not an image file Pillow can read "
                             f"(first bytes {data[:8]!r}, {len(data)} bytes)") from None
        except _DECODE_ERRORS as e:
            raise ImageError(f"cannot read {name}: the file is truncated or corrupt ({one_line(e)})") from None


#: PNG chunks that hold text (comments, XMP, ...), never pixels.
_PNG_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")
#: A text chunk that may hold EXIF (ImageMagick's "Raw profile type exif"): kept, for the orientation.
_PNG_EXIF_TEXT = b"Raw profile type exif\0"


def _without_png_text(data: bytes) -> bytes:
    """A PNG's bytes without its text chunks (anything else as it was).

    Pillow refuses compressed text over 1 MB (``MAX_TEXT_CHUNK``) as if the
    file were corrupt; a photo's XMP can be larger, and it is not pixels.
    Each chunk carries its own CRC, so dropping ancillary chunks keeps the
    file valid. Pixel data is untouched: its size is still checked from the
    header against ``max_pixels``.
    """
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return data
    kept, pos, dropped = [data[:8]], 8, False
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind, end = data[pos + 4:pos + 8], pos + 12 + length
        if end > len(data):
            break                       # cut short: Pillow says so
        if kind in _PNG_TEXT_CHUNKS and not data[pos + 8:end].startswith(_PNG_EXIF_TEXT):
            dropped = True
        else:
            kept.append(data[pos:end])
        pos = end
        if kind == b"IEND":
            break
    if not dropped:
        return data
    kept.append(data[pos:])
    return b"".join(kept)


def _header_size(data: bytes):
    """Width and height from the header of an image Pillow refused as too large."""
    with _PIL_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None  # read the header only; the caller refuses the image
        try:
            with Image.open(io.BytesIO(data)) as im:
                return im.size
        except (UnidentifiedImageError, *_DECODE_ERRORS):
            return None
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _refuse_if_too_large(size, name: str, max_pixels: int) -> None:
    w, h = size
    if w * h > max_pixels:
        raise ImageError(f"{name} is {w} wide x {h} high = {w * h} pixels, over the limit of {max_pixels} pixels "
                         f"(possible decompression bomb); shrink it, or if you trust the file raise the limit "
                         f"(minicnn explain --max-pixels N; load_image(path, max_pixels=N))")


def _check_max_pixels(max_pixels, what: str = "max_pixels") -> int:
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, numbers.Integral) or max_pixels < 1:
        raise InputError(f"{what} must be a positive integer; got {max_pixels!r}")
    return int(max_pixels)


def _exif_upright(im: Image.Image) -> Image.Image:
    try:
        orientation = im.getexif().get(0x0112, 1)
    except _DECODE_ERRORS:
        return im  # unreadable EXIF block: keep the pixels as stored
    if orientation in (None, 1):
        return im
    return ImageOps.exif_transpose(im)


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in ("RGBA", "LA", "PA", "RGBa") or (
        im.mode in ("P", "L", "RGB") and "transparency" in im.info)


def _scale_16bit(v: np.ndarray) -> np.ndarray:
    """0..65535 -> 0..255 by ``round(v / 257)`` (65535 = 255 * 257)."""
    return ((v + 128) // 257).astype(np.uint8)


def _stretch(v: np.ndarray) -> np.ndarray:
    """Map the finite range [min, max] of ``v`` linearly onto 0..255 (NaN -> 0)."""
    finite = np.isfinite(v)
    if not finite.any():
        return np.zeros(v.shape, dtype=np.uint8)
    lo, hi = v[finite].min(), v[finite].max()
    scaled = (v - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(v)
    return np.round(np.nan_to_num(np.clip(scaled, 0, 255), nan=0.0)).astype(np.uint8)


def _float_to_uint8(v: np.ndarray) -> np.ndarray:
    finite = v[np.isfinite(v)]
    if finite.size and finite.min() >= 0.0 and finite.max() <= 1.0:
        return np.round(np.nan_to_num(np.clip(v, 0, 1), nan=0.0) * 255).astype(np.uint8)
    if finite.size and finite.min() >= 0.0 and finite.max() <= 255.0:
        return np.round(np.nan_to_num(np.clip(v, 0, 255), nan=0.0)).astype(np.uint8)
    return _stretch(v)


def _gray_to_rgb(g: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(g[..., None], 3, axis=-1))


# ---------------------------------------------------------------------------
# Preprocessing


def check_preprocessing(preprocessing) -> dict:
    """Validate a preprocessing description and return a normalised copy.

    Required keys: ``mean`` and ``std`` (3 numbers each, std > 0) and
    ``resize`` (one of :data:`RESIZE_MODES`). ``size`` ([H, W], or an int for
    a square) is required unless ``resize`` is "none"; ``resize_shorter`` (an
    int) is required for "shorter_then_center_crop" (at least the crop's larger
    side) and for "shorter". Unknown keys are kept as they are.
    """
    if not isinstance(preprocessing, dict):
        raise InputError(f"preprocessing must be a dict with mean, std, resize, size; got {type(preprocessing).__name__}")
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
            raise InputError(f"{which}({size_text(img.shape)}) would be resized to {size_text((h, w))} = {h * w} pixels "
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
# Shipped data


def data_path(*parts: str) -> Path:
    """Path of a file shipped in ``minicnn/data`` (e.g. ``data_path("images", "chelsea.png")``)."""
    path = DATA_DIR.joinpath(*parts)
    if not path.exists():
        raise ImageError(f"no shipped data file {'/'.join(parts)} (looked in {DATA_DIR})")
    return path


def sample_images(class_name: str | None = None) -> list[tuple[Path, str]]:
    """The shipped CIFAR-10 test images, as sorted ``(path, class_name)`` pairs.

    30 JPEG images per class (32x32), from ``minicnn/data/cifar10/test``.
    ``class_name`` keeps one class; an unknown name raises
    :class:`~minicnn.errors.UnknownNameError`.
    """
    classes = sorted(d.name for d in _SAMPLES_DIR.iterdir() if d.is_dir()) if _SAMPLES_DIR.is_dir() else []
    if not classes:
        raise ImageError(f"the sample images are missing from {_SAMPLES_DIR}")
    if class_name is not None:
        if class_name not in classes:
            raise unknown_name("class", class_name, classes)
        classes = [class_name]
    return [(f, c) for c in classes for f in sorted((_SAMPLES_DIR / c).glob("*.jpg"))]


def load_sample(class_name: str, index: int = 0) -> np.ndarray:
    """Load shipped CIFAR-10 test image number ``index`` of ``class_name`` as (32, 32, 3) uint8."""
    samples = sample_images(class_name)
    if isinstance(index, bool) or not isinstance(index, numbers.Integral) or not 0 <= index < len(samples):
        raise InputError(f"sample index must be an integer in 0..{len(samples) - 1} "
                         f"({len(samples)} images of {class_name!r}); got {index!r}")
    return load_image(samples[index][0])


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

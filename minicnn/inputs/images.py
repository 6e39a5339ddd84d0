"""Reading images: every image enters minicnn as an ``(H, W, 3)`` uint8 RGB array.

:func:`load_image` reads a file with Pillow and :func:`image_from_bytes` decodes
the bytes of one; :func:`to_rgb` converts whatever they hold (grayscale,
palette, alpha, 16-bit, CMYK, float, rotated by EXIF, animated) to that. Only
allow-listed formats are opened (:data:`IMAGE_FORMATS`), and every size is
bounded before the work: the file's bytes (:data:`DEFAULT_MAX_BYTES`), its
pixels (:data:`DEFAULT_MAX_PIXELS`, read from the header) and the network
input's pixels (:data:`DEFAULT_MAX_INPUT_PIXELS`, checked by
:func:`minicnn.inputs.preprocess.preprocess`).

Turning such arrays into network input and back is
:mod:`minicnn.inputs.preprocess`; the shipped sample images are
:mod:`minicnn.inputs.samples`.
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

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import ImageError, InputError, one_line
from ..util.files import check_name, read_regular_file

__all__ = [
    "ImageWarning", "DEFAULT_MAX_PIXELS", "DEFAULT_MAX_BYTES", "DEFAULT_MAX_INPUT_PIXELS", "IMAGE_FORMATS",
    "load_image", "image_from_bytes", "to_rgb",
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
#: The only image formats Pillow may open (its format names). None of their decoders starts another
#: program; EPS/PostScript (which runs Ghostscript), PDF, and every other plugin are refused before
#: any decoding, whatever the file's name says.
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")
#: The memory budget of load_image, in bytes per pixel, beyond the encoded file itself and whatever
#: the mode: the decoded image (Pillow keeps RGB, RGBA and CMYK at 4 bytes a pixel) plus the
#: (H, W, 3) uint8 result, converted in bands of rows (to_rgb). Measured peak RSS for an 8000x8000
#: PNG: 0.51 GB RGBA, 0.47 GB RGB (load_image; 0.55 and 0.51 GB for `minicnn explain`; RGBA was
#: 3.0 GB before the banded conversion). The 32-bit "I" and float "F" modes take up to 20.
LOAD_BYTES_PER_PIXEL = 7

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
    header, before anything is decoded), and every format but PNG, JPEG, BMP,
    GIF, TIFF and WebP (:data:`IMAGE_FORMATS`: no other Pillow plugin is ever
    tried, so an EPS file, even named ``.png``, never starts Ghostscript).
    Memory: about :data:`LOAD_BYTES_PER_PIXEL` (7) bytes per pixel at the
    peak, whatever the mode. Pillow's own limit
    (``2 * PIL.Image.MAX_IMAGE_PIXELS``, about 179 megapixels) still applies
    when ``max_pixels`` is set above it. Text metadata in a PNG (XMP, comments,
    of any size) is skipped, not refused: it is not pixels.
    """
    max_pixels = _check_max_pixels(max_pixels)
    max_bytes = _check_max_pixels(max_bytes, "max_bytes")
    if path is None or isinstance(path, (bool, numbers.Number)):
        raise InputError(f"load_image expects a file name (str or Path); got {path!r}")
    if isinstance(path, (bytes, bytearray)):
        raise InputError("load_image expects a file name; for the bytes of an encoded image use image_from_bytes")
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"load_image expects a file name (str or Path); got a {type(path).__name__}")
    path = check_name(path, "image file", ImageError)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ImageError(f"image file not found: {path}") from None
    except OSError as e:
        raise ImageError(f"cannot read {path}: {e.strerror or e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageError(f"{path} is a directory, not an image file")
    if not stat.S_ISREG(st.st_mode):
        raise ImageError(f"{path} is not a regular file (a device, pipe or socket); save the image to a file first")
    if st.st_size > max_bytes:
        raise ImageError(f"{path} is larger than the limit of {max_bytes} bytes for an image file; "
                         f"shrink it first, or raise the limit (load_image(path, max_bytes=N))")
    data = read_regular_file(path, max_bytes, "image file", ImageError)   # bounded again while reading
    return image_from_bytes(data, name=str(path), max_pixels=max_pixels)


def image_from_bytes(data: bytes, *, name: str = "<bytes>", max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an encoded image (the bytes of a PNG, JPEG, ... file) like :func:`load_image`.

    ``name`` is only used in messages (e.g. the member's name in a zip file).
    """
    max_pixels = _check_max_pixels(max_pixels)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InputError(f"image_from_bytes expects the bytes of an encoded image; got {type(data).__name__}")
    data = bytes(data)
    if len(data) == 0:
        raise ImageError(f"{name} is empty (0 bytes), not an image")
    with _open(_without_png_text(data), name, max_pixels) as im:
        _refuse_if_too_large(im.size, name, max_pixels)
        try:
            frames = getattr(im, "n_frames", 1)
            if frames > 1:
                im.seek(0)
            im.load()
            orientation = _exif_orientation(im)
            rgb = to_rgb(im)
            im.close()                          # the decoded image goes before the result is turned upright
            if frames > 1:                      # said only once the first frame did decode
                warnings.warn(f"{name} has {frames} frames; using the first frame only", ImageWarning, stacklevel=3)
            return _upright(rgb, orientation)
        except ImageError as e:
            raise ImageError(f"{name}: {e}") from None
        except _DECODE_ERRORS as e:
            raise ImageError(f"cannot decode {name}: the file is truncated or corrupt ({one_line(e)})") from None


def to_rgb(im: Image.Image) -> np.ndarray:
    """Convert a decoded Pillow image of any mode to an ``(H, W, 3)`` uint8 array.

    See :func:`load_image` for the rule used for each mode. The result is
    filled in bands of about :data:`BAND_PIXELS` pixels, so that the memory
    beyond the decoded image and the result stays small whatever the mode
    (8000x8000 RGBA: 256 MB decoded + 192 MB result, not a 1 GB uint32 copy).
    The 32-bit ``I`` and float ``F`` modes, whose scaling depends on the
    whole image's range, are converted at once.
    """
    w, h = im.size
    if im.mode in ("I", "F") or w * h <= BAND_PIXELS:
        return _to_rgb_whole(im)
    out = np.empty((h, w, 3), dtype=np.uint8)
    rows = max(1, BAND_PIXELS // max(w, 1))
    for top in range(0, h, rows):
        band = im.crop((0, top, w, min(h, top + rows)))
        out[top:top + band.size[1]] = _to_rgb_whole(band)
    return out


#: Pixels converted at a time by :func:`to_rgb` (a band of rows).
BAND_PIXELS = 2**20


def _to_rgb_whole(im: Image.Image) -> np.ndarray:
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
            return Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
        except Image.DecompressionBombError:
            size = _header_size(data)
            if size is not None:
                _refuse_if_too_large(size, name, max_pixels)
            raise ImageError(f"{name} is larger than Pillow's limit of {2 * Image.MAX_IMAGE_PIXELS} pixels; "
                             f"refusing to decode it") from None
        except UnidentifiedImageError:
            if data.lstrip()[:2] == b"%!" or data[:4] == b"\xc5\xd0\xd3\xc6":
                raise ImageError(f"{name} is a PostScript/EPS file, refused unread (decoding one runs a program, "
                                 f"Ghostscript); convert it to PNG first") from None
            raise ImageError(f"{name} is not an image file Pillow can read as {', '.join(IMAGE_FORMATS)} "
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
            with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as im:
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


def _exif_orientation(im: Image.Image) -> int:
    """The EXIF orientation tag (1..8; 1, upright, when absent or unreadable)."""
    try:
        orientation = im.getexif().get(0x0112, 1)
    except _DECODE_ERRORS:
        return 1  # unreadable EXIF block: keep the pixels as stored
    return orientation if orientation in range(1, 9) else 1


def _upright(rgb: np.ndarray, orientation: int) -> np.ndarray:
    """``rgb`` (H, W, 3) turned as EXIF ``orientation`` says (as ``ImageOps.exif_transpose``), one copy at most."""
    turned = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
              5: lambda a: a.transpose(1, 0, 2), 6: lambda a: a[::-1].transpose(1, 0, 2),
              7: lambda a: a[::-1, ::-1].transpose(1, 0, 2), 8: lambda a: a[:, ::-1].transpose(1, 0, 2)}
    if orientation not in turned:
        return rgb
    return np.ascontiguousarray(turned[orientation](rgb))


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

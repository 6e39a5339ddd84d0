"""The minicnn weights file: one ``.npz`` per model, plain data, safe to load.

A weights file is numpy's ``.npz`` (a zip of ``.npy`` arrays), always read
with ``np.load(path, allow_pickle=False)``, so loading one never runs code:

    "__meta__"                    uint8 (B,)   UTF-8 JSON text, described below
    "conv1.weight"                float32 (16, 3, 3, 3)
    "layer1.0.bn1.running_mean"   float32 (16,)
    ...                           one array per key of model.state_dict()

The ``__meta__`` JSON object::

    {"format": "minicnn-weights", "version": 1,
     "name": "resnet20_cifar10",            # the model's name
     "arch": "resnet20",                    # the zoo architecture it was built as
     "spec": {"type": "Sequential", ...},   # model.spec(): every layer and its hyper-parameters
     "input_size": [3, 32, 32],             # (C, H, W) it was trained on
     "classes": ["airplane", ...],          # class names in logit order
     "preprocessing": {"mean": [...], "std": [...], "resize": "shorter", "size": [32, 32], ...},
     "provenance": {...}, "licence": {...}, "accuracy": {...}}

The architecture is rebuilt from ``spec`` (``minicnn.model.build``), then
every array is checked against it (name and shape) before it is read.

Quantised arrays. A converted 8-bit model (TensorFlow Lite) keeps its
original integers: the array under the parameter's key holds q (uint8, int8
or int32) and ``__meta__["quantization"][key]`` says how to read it,

    {"scale": s, "zero_point": z}            one (s, z) for the whole array, or
    {"scale": [...], "zero_point": [...], "axis": 0}    one per index along ``axis``

and the loader hands the model w = s * (q - z) in float32 (``dequantize``).

What a file can make minicnn do is checked before it is done (a weights file
is data from anywhere). Every refusal is a one-line WeightsError naming the
member, or the layer and its field:

- the file: at most MAX_FILE_BYTES; every member once (a second ``__meta__``
  or a second copy of a weight is refused), at most MAX_MEMBERS of them;
- each member, one at a time: its .npy header first (never an object array),
  then its declared size in the zip against the header (``__meta__`` at most
  MAX_META_BYTES), then exactly that many bytes, the zip's CRC checked at the end;
- ``__meta__``: every field minicnn reads (``_check_meta_fields``): names,
  classes, input_size (at most 4096 pixels a side), preprocessing, ...;
- ``spec``: every setting of every layer and what the whole network costs
  at its input size (``minicnn.models.architecture.check_spec``), before it is built;
  as many class names as the network has logits;
- arrays: the dtype and shape their layer needs (floating point, or the
  integers of a quantised entry whose zero points lie in q's range), every
  value finite after the cast to float32, BatchNorm variances not negative.

``save`` (and so both converters) runs the same checks on the model it is
about to write (``check_model``): a file that minicnn writes loads again.

Shipped models live in the repository's top-level ``weights/`` folder (or
``$MINICNN_WEIGHTS_DIR``); a shipped model's name is its file name without
``.npz``. ``weights/manifest.json`` records each shipped file's sha256, size,
classes, input size and accuracy; ``load`` refuses a file whose sha256 differs.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..util.atomic import atomic_output
from ..errors import ChecksumError, InputError, UnknownNameError, WeightsError, one_line, unknown_name
from ..util.files import MAX_TEXT_BYTES, check_name, check_regular_file, read_text_file
from ..model import Model, build
from .architecture import (MAX_CHANNELS, MAX_CLASSES, MAX_INPUT_SIDE, MAX_LAYERS, MAX_PARAMETERS, Summary,
                           check_spec)

FORMAT, VERSION = "minicnn-weights", 1
META_KEY = "__meta__"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "minicnn-manifest"
_FILE_KEYS = ("format", "version", "spec", "quantization")  # describe the file, not the model
QUANTIZED_DTYPES = (np.uint8, np.int8, np.int32)
MAX_META_BYTES = 16 << 20                # __meta__: the JSON text (ImageNet's classes and a licence are ~60 KB)
MAX_MEMBERS = 4 * MAX_LAYERS + 1         # at most four arrays a layer, and __meta__
MAX_FILE_BYTES = 8 * MAX_PARAMETERS + (64 << 20)   # every weight in float64 at the cap, headers and metadata
MAX_TEXT = 256                           # characters of a class name, a model's name or its arch

# What a damaged zip or .npy member can raise while being read (RuntimeError: a member flagged as
# encrypted; zlib.error: a compressed member whose data is damaged).
_READ_ERRORS = (OSError, ValueError, EOFError, KeyError, IndexError, TypeError, OverflowError,
                MemoryError, RecursionError, UnicodeDecodeError, zipfile.BadZipFile, NotImplementedError,
                RuntimeError, zlib.error)


# ---------------------------------------------------------------- where shipped models live

#: The folder of the minicnn package (in a checkout, the shipped weights are in ../weights).
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def weights_dir() -> Path:
    """The shipped weights folder.

    ``$MINICNN_WEIGHTS_DIR`` if set; else ``<repository>/weights`` (a source
    checkout or an editable install); else ``<prefix>/share/minicnn/weights``,
    where a regular ``pip install .`` puts the shipped files.
    """
    env = os.environ.get("MINICNN_WEIGHTS_DIR")
    if env:
        return Path(env)
    checkout = PACKAGE_DIR.parent / "weights"
    installed = Path(sys.prefix) / "share" / "minicnn" / "weights"
    return checkout if (checkout / MANIFEST).exists() or not (installed / MANIFEST).exists() else installed


def read_manifest(folder=None) -> dict:
    """The manifest of ``folder`` (default: ``weights_dir()``) as {"models": {name: entry}}.

    A missing manifest means no shipped models; a damaged one is a WeightsError.
    """
    path = Path(folder or weights_dir()) / MANIFEST
    if not path.exists():
        return {"format": MANIFEST_FORMAT, "version": 1, "models": {}}
    try:
        manifest = json.loads(read_text_file(path, MAX_TEXT_BYTES, "the manifest", WeightsError))
    except (OSError, ValueError, RecursionError) as e:
        raise WeightsError(f"cannot read the manifest {path}: {e}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("models"), dict):
        raise WeightsError(f"the manifest {path} has no 'models' table")
    return manifest


def shipped_models() -> list[str]:
    """Names of the shipped models, sorted."""
    return sorted(read_manifest()["models"])


def sha256_file(path, chunk: int = 1 << 20) -> str:
    """The sha256 of a file's bytes, as 64 hex digits (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_checksum(path, expected: str) -> None:
    """A one-line ChecksumError unless the file's sha256 is ``expected``."""
    actual = sha256_file(path)
    if actual != expected.lower():
        raise ChecksumError(f"{path} has sha256 {actual}, the manifest records {expected}: "
                            f"the file is damaged or was modified")


def locate(name_or_path) -> tuple[Path, str | None]:
    """(file, sha256 the manifest records for it or None) for a shipped name or a path."""
    folder = weights_dir()
    models = read_manifest(folder)["models"]
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise WeightsError(f"expected a model name or a file path, got {name_or_path!r}")
    text = os.fspath(name_or_path)
    if not isinstance(text, str) or not text:
        raise WeightsError(f"expected a model name or a file path, got {name_or_path!r}")
    if text in models:
        entry = models[text]
        path = folder / entry.get("file", f"{text}.npz")
        if not path.is_file():
            raise WeightsError(f"the shipped weights file {path} is missing; reinstall minicnn "
                               f"or point MINICNN_WEIGHTS_DIR at a folder holding it")
        return path, entry.get("sha256")
    path = check_name(text, "weights file", WeightsError)   # a name no file system holds: one line, not Errno 36
    looks_like_path = isinstance(name_or_path, os.PathLike) or os.sep in text or "/" in text or path.suffix
    if not path.exists():
        fetchable = _fetchable(path)
        if fetchable:                               # an official checkpoint: `minicnn fetch` makes the file
            from ..util.atomic import worded
            out = "" if os.fspath(path) == f"{fetchable}.npz" else f" --out {path}"
            if looks_like_path:
                problem, then, then_api = f"weights file not found: {path}", "", ""
            else:
                problem = f"unknown model {text!r} (not shipped)"
                then, then_api = f"; then --model {fetchable}.npz", f"; then load('{fetchable}.npz')"
                out = ""
            kind = WeightsError if looks_like_path else UnknownNameError
            raise worded(kind(f"{problem}; minicnn.models.fetch.fetch({fetchable!r}) downloads and converts it "
                                      f"(needs PyTorch){then_api}"),
                         f"{problem}; `minicnn fetch {fetchable}{out}` downloads and converts it (needs PyTorch)"
                         f"{then}")
        if looks_like_path:
            raise WeightsError(f"weights file not found: {path}")
        raise unknown_name("model", text, sorted(models) or ["(none shipped)"])
    if not path.is_file():
        raise WeightsError(_not_a_file(path))
    # a shipped file given by its path is checked too
    for name, entry in models.items():
        shipped = folder / entry.get("file", f"{name}.npz")
        if shipped.exists() and path.resolve() == shipped.resolve():
            return path, entry.get("sha256")
    return path, None


def _fetchable(path: Path) -> str | None:
    """The name ``minicnn fetch`` knows for a missing weights file ("vgg16.npz" or "vgg16" -> "vgg16"), or None."""
    from .official import CHECKPOINTS
    stem = path.name.removesuffix(".npz")
    return stem if stem in CHECKPOINTS and path.suffix in ("", ".npz") else None


# ---------------------------------------------------------------- reading

def load(name_or_path) -> Model:
    """A Model from a shipped model name (``minicnn models``) or a weights file.

    Shipped files are checked against the manifest's sha256 first. Errors
    are one line: ChecksumError, WeightsError (damaged file, no metadata,
    arrays that do not fit the architecture, pickled objects) or
    UnknownNameError (listing the shipped models).
    """
    path, expected = locate(name_or_path)
    if expected:
        verify_checksum(path, expected)
    return read_weights(path)


def read_weights(path) -> Model:
    """Read a weights file (no checksum): check the metadata and the architecture, build it, check and load every array.

    Nothing is allocated before it is checked: the architecture's every setting and
    cost (``minicnn.models.architecture``), each member's header (name, dtype, shape) and
    its declared size, before its data is read, a member at a time.
    """
    path = Path(path)
    npz = _open_npz(path)
    try:
        meta = _read_meta(npz, path)
        summary = check_architecture(meta, path)
        try:
            root = build(meta["spec"])
        except WeightsError as e:
            raise WeightsError(f"{path}: {e}") from None
        except (MemoryError, RecursionError, TypeError, ValueError, KeyError, AttributeError, IndexError) as e:
            raise WeightsError(f"{path}: the architecture entry ('spec') is not usable: {one_line(e)}") from None
        model = Model(root, {k: v for k, v in meta.items() if k not in _FILE_KEYS})
        expected = model.state_dict()
        quantization = meta.get("quantization") or {}
        if not isinstance(quantization, dict):
            raise WeightsError(f"{path}: {META_KEY} 'quantization' must be a table {{key: {{scale, zero_point}}}}")
        for key in quantization:
            if key not in npz.files:
                raise WeightsError(f"{path}: {META_KEY} 'quantization' describes {str(key)[:80]!r}, an array the "
                                   f"file does not hold")
        arrays = {}
        for key in npz.files:
            if key == META_KEY:
                continue
            if key not in expected:
                extra = sorted(set(npz.files) - set(expected) - {META_KEY})
                raise WeightsError(f"{path}: array {extra[0]!r} ({len(extra)} unexpected in all) has no place "
                                   f"in the architecture")
            layer, _, param = key.rpartition(".")
            arrays[key] = _read_array(npz, key, path, shape=tuple(expected[key].shape),
                                      kinds=QUANTIZED_DTYPES if key in quantization else "f",
                                      layer=(layer, type(model[layer]).__name__, param))
            if key in quantization:
                arrays[key] = dequantize(arrays[key], quantization[key], f"{path}: array {key!r}")
            arrays[key] = check_values(key, arrays[key], model[layer], f"{path}: ")
        try:
            model.load_state_dict(arrays)
        except WeightsError as e:
            raise WeightsError(f"{path}: {e}") from None
        del summary
        return model
    finally:
        npz.close()


def check_architecture(meta: dict, where="the model") -> "Summary":
    """``meta["spec"]`` checked at ``meta["input_size"]`` (``minicnn.models.architecture.check_spec``), and the
    class names against the logits; a one-line WeightsError starting with ``where``."""
    try:
        summary = check_spec(meta["spec"], meta.get("input_size"))
    except WeightsError as e:
        raise WeightsError(f"{where}: {e}") from None
    prep, size = meta.get("preprocessing"), meta.get("input_size")
    if size and isinstance(prep, dict) and prep.get("resize") in ("shorter", "none"):
        from ..inputs.images import DEFAULT_MAX_INPUT_PIXELS
        side = math.isqrt(DEFAULT_MAX_INPUT_PIXELS)
        try:                                   # a fully convolutional model runs at larger sizes too
            check_spec(meta["spec"], (size[0], side, side), costs_only=True)
        except WeightsError as e:
            raise WeightsError(f"{where}: at a {side}x{side} input (resize {prep['resize']!r} keeps the image's "
                               f"shape): {e}") from None
    classes = meta.get("classes")
    if classes and summary.outputs is not None and len(classes) != summary.outputs:
        raise WeightsError(f"{where}: {META_KEY} 'classes' names {len(classes)} classes but the network has "
                           f"{summary.outputs} outputs")
    return summary


def check_values(key: str, a: np.ndarray, layer, where: str = "") -> np.ndarray:
    """``a`` as float32, or a one-line WeightsError: NaN, infinity (also from rounding float64 to float32),
    or a negative BatchNorm variance (sqrt(var + eps) would be NaN)."""
    with np.errstate(over="ignore", invalid="ignore"):
        a32 = np.asarray(a).astype(np.float32, copy=False)
    owner, _, param = key.rpartition(".")
    if not np.isfinite(a32).all():
        bad = np.argwhere(~np.isfinite(a32))
        at = tuple(int(i) for i in bad[0]) if bad.size else ()
        raise WeightsError(f"{where}layer {owner!r} ({type(layer).__name__}): {param} holds NaN or infinity "
                           f"({len(bad)} values, first at index {at})")
    if param == "running_var" and (a32 < 0).any():
        raise WeightsError(f"{where}layer {owner!r} ({type(layer).__name__}): running_var holds negative "
                           f"variances (the smallest is {float(a32.min())!r})")
    return a32


def read_meta(path) -> dict:
    """Only the ``__meta__`` dictionary of a weights file (no arrays are read)."""
    npz = _open_npz(Path(path))
    try:
        return _read_meta(npz, Path(path))
    finally:
        npz.close()


def _not_a_file(path: Path) -> str:
    """Why an existing ``path`` cannot be a weights file: a folder, or not a regular file."""
    if path.is_dir():
        return f"{path} is a folder, not a weights file"
    return f"{path} is not a regular file (a device, pipe or socket), not a weights file"


def _open_npz(path: Path):
    if not path.is_file():
        raise WeightsError(_not_a_file(path) if path.exists() else f"weights file not found: {path}")
    check_regular_file(path, MAX_FILE_BYTES, "the weights file", WeightsError)      # not a pipe; at most ~2 GiB
    if path.stat().st_size == 0:
        raise WeightsError(f"{path} is empty (0 bytes), not a weights file; was a download or copy cut short?")
    try:
        npz = np.load(path, allow_pickle=False)
    except ValueError as e:
        if "pickle" in str(e) and _starts_like_a_pickle(path):
            raise WeightsError(f"{path} holds pickled Python objects (a PyTorch checkpoint?); minicnn never "
                               f"unpickles: convert it with `minicnn convert`") from None
        if "pickle" in str(e):  # numpy's answer to any file that is neither .npy nor .npz
            raise WeightsError(f"{path} is not a minicnn weights file: expected an .npz (a zip of .npy arrays), "
                               f"found {_first_bytes(path)}") from None
        raise WeightsError(f"{path} is not a minicnn weights file (.npz): {one_line(e)}") from None
    except _READ_ERRORS as e:
        raise WeightsError(f"{path} is not a readable weights file (.npz), it may be truncated: {one_line(e)}") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise WeightsError(f"{path} holds a single array, not a minicnn weights file (.npz with {META_KEY})")
    try:
        _check_members(npz, path)
    except WeightsError:
        npz.close()
        raise
    return npz


def _check_members(npz, path: Path) -> None:
    """Every member once: no name twice (``w`` and ``w.npy`` are one name), no folders, at most MAX_MEMBERS."""
    names = npz.zip.namelist()
    if len(names) > MAX_MEMBERS:
        raise WeightsError(f"{path} holds {len(names):,} members, more than the {MAX_MEMBERS:,} a weights file "
                           f"can need")
    seen = set()
    for name in names:
        key = name[:-4] if name.endswith(".npy") else name
        if key in seen:
            raise WeightsError(f"{path}: member {key!r} appears twice in the zip (which copy counts is not "
                               f"defined); the file was tampered with or badly written")
        if not key or name.endswith("/"):
            raise WeightsError(f"{path}: member {name!r} is a folder or has no name, not an array")
        seen.add(key)


def _starts_like_a_pickle(path: Path) -> bool:
    """Protocol 2+ pickles (and so legacy ``torch.save`` files) begin with the PROTO opcode 0x80."""
    try:
        with open(path, "rb") as f:
            head = f.read(2)
    except OSError:
        return False
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _first_bytes(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            head = f.read(8)
        size = path.stat().st_size
    except OSError as e:
        return f"an unreadable file ({e.strerror or e})"
    return "an empty file" if size == 0 else f"{size} bytes starting {head!r}"


def _member_name(npz, key: str) -> str:
    names = npz.zip.namelist()
    return f"{key}.npy" if f"{key}.npy" in names else key


def _read_array(npz, key: str, path: Path, *, shape=None, kinds="f", max_bytes=None, layer=None) -> np.ndarray:
    """One member, read with a bound: header first, then exactly the bytes it declares.

    The .npy header gives (shape, dtype); the dtype must be of ``kinds`` (dtype
    kinds such as "f", or a tuple of dtypes), never an object array; the shape must be
    ``shape`` (when given) and the data at most ``max_bytes``; the zip's declared size of
    the member must be the header plus that data. Only then is the data read (and the
    zip's CRC checked at its end). ``layer``: (name, type, parameter) for the messages.
    """
    fmt = np.lib.format
    what = f"array {key!r}"
    try:
        info = npz.zip.getinfo(_member_name(npz, key))
        with npz.zip.open(info) as f:
            version = fmt.read_magic(f)
            if version == (1, 0):
                found, fortran, dtype = fmt.read_array_header_1_0(f)
            elif version == (2, 0):
                found, fortran, dtype = fmt.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy version {version}")
            found = tuple(found)
            if dtype.hasobject:
                raise WeightsError(f"{path}: {what} holds pickled Python objects; refused (minicnn never unpickles)")
            if shape is not None and found != shape:
                name, kind, param = layer or (key, "?", key)
                raise WeightsError(f"{path}: layer {name!r} ({kind}) does not fit: {param} has shape {found} in the "
                                   f"file, the architecture needs {shape}")
            ok = dtype.kind in kinds if isinstance(kinds, str) else any(dtype == np.dtype(k) for k in kinds)
            if not ok or dtype.itemsize == 0 or dtype.fields is not None or dtype.subdtype is not None:
                name, kind, param = layer or (key, "?", key)
                wanted = ("floating point" if kinds == "f" else
                          " or ".join(str(np.dtype(k)) for k in kinds) if not isinstance(kinds, str) else kinds)
                where = f"layer {name!r} ({kind}): {param}" if layer else what
                raise WeightsError(f"{path}: {where} has dtype {dtype}, expected {wanted}"
                                   + ("; a quantised array needs its entry in __meta__ 'quantization'"
                                      if kinds == "f" and dtype.kind in "iu" else ""))
            count = 1
            for n in found:
                count *= int(n)
            nbytes = count * dtype.itemsize
            if max_bytes is not None and nbytes > max_bytes:
                raise WeightsError(f"{path}: {what} declares {nbytes:,} bytes, over the limit of {max_bytes:,}")
            if info.file_size != f.tell() + nbytes:
                raise WeightsError(f"{path}: {what} is {info.file_size:,} bytes in the zip but its header describes "
                                   f"{f.tell() + nbytes:,}; the file was tampered with or is damaged")
            data = bytearray(nbytes)
            view, done = memoryview(data), 0
            while done < nbytes:
                got = f.readinto(view[done:done + (1 << 24)])
                if not got:
                    raise EOFError(f"the data ends after {done} of {nbytes} bytes")
                done += got
            if f.read(1):
                raise ValueError("data continues after the array")
    except WeightsError:
        raise
    except _READ_ERRORS as e:
        raise WeightsError(f"{path}: {what} is damaged or truncated: {one_line(e)}") from None
    a = np.frombuffer(data, dtype=dtype)
    return a.reshape(found[::-1]).transpose() if fortran else a.reshape(found)


def _read_meta(npz, path: Path) -> dict:
    if META_KEY not in npz.files:
        raise WeightsError(f"{path} has no {META_KEY} entry: not a minicnn weights file "
                           f"(a PyTorch checkpoint must be converted with `minicnn convert`)")
    raw = _read_array(npz, META_KEY, path, kinds="uU", max_bytes=MAX_META_BYTES)   # bytes or text, bounded
    try:
        if raw.dtype == np.uint8 and raw.ndim == 1:
            text = raw.tobytes().decode("utf-8")
        elif raw.dtype.kind == "U" and raw.ndim == 0:
            text = str(raw[()])
        else:
            raise ValueError(f"{META_KEY} must be uint8 bytes or a unicode scalar, got {raw.dtype} {raw.shape}")
        meta = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise WeightsError(f"{path}: the {META_KEY} entry is not valid JSON metadata: {one_line(e)}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise WeightsError(f"{path}: {META_KEY} does not describe a {FORMAT} file")
    if meta.get("version") != VERSION:
        raise WeightsError(f"{path} is a {FORMAT} file of version {meta.get('version')!r}; this minicnn "
                           f"reads version {VERSION}")
    if not isinstance(meta.get("spec"), dict):
        raise WeightsError(f"{path}: {META_KEY} has no architecture ('spec')")
    _check_meta_fields(meta, path)
    return meta


def _check_meta_fields(meta: dict, path) -> None:
    """Every field of ``__meta__`` the rest of minicnn reads, checked once here (one-line WeightsError).

    name, arch: strings of at most MAX_TEXT characters; classes: at most
    MAX_CLASSES strings of at most MAX_TEXT characters; input_size: [C, H, W]
    with C in 1..MAX_CHANNELS and H, W in 1..MAX_INPUT_SIDE; preprocessing: as
    ``minicnn.inputs.preprocess.check_preprocessing`` wants it, its sizes at most
    MAX_INPUT_SIDE; provenance: a table; licence: a table or a string;
    accuracy: a table whose top1 is a percentage (or null); quantization: a table.
    """
    for key in ("name", "arch"):
        if key in meta and not (isinstance(meta[key], str) and len(meta[key]) <= MAX_TEXT):
            raise WeightsError(f"{path}: {META_KEY} {key!r} must be a string of at most {MAX_TEXT} characters; "
                               f"got {meta[key]!r:.60}")
    classes = meta.get("classes")
    if classes is not None and not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        raise WeightsError(f"{path}: {META_KEY} 'classes' must be a list of class names; got {classes!r:.60}")
    if classes is not None and (len(classes) > MAX_CLASSES or any(len(c) > MAX_TEXT for c in classes)):
        raise WeightsError(f"{path}: {META_KEY} 'classes' must be at most {MAX_CLASSES:,} names of at most "
                           f"{MAX_TEXT} characters; got {len(classes):,} names, the longest "
                           f"{max(map(len, classes)):,} characters")
    size = meta.get("input_size")
    if size is not None and not (isinstance(size, list) and len(size) == 3 and all(
            isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in size)):
        raise WeightsError(f"{path}: {META_KEY} 'input_size' must be [C, H, W], three positive integers; "
                           f"got {size!r:.60}")
    if size is not None and (size[0] > MAX_CHANNELS or max(size[1:]) > MAX_INPUT_SIDE):
        raise WeightsError(f"{path}: {META_KEY} 'input_size' {size} is over the limits (at most {MAX_CHANNELS} "
                           f"channels, {MAX_INPUT_SIDE} pixels high and wide)")
    prep = meta.get("preprocessing")
    if prep is not None:
        from ..inputs.preprocess import check_preprocessing
        try:
            p = check_preprocessing(prep)
        except InputError as e:
            raise WeightsError(f"{path}: {META_KEY} 'preprocessing': {e}") from None
        sides = [*(p.get("size") or []), p.get("resize_shorter") or 0]
        if max(sides, default=0) > MAX_INPUT_SIDE:
            raise WeightsError(f"{path}: {META_KEY} 'preprocessing' resizes to {max(sides)} pixels, over the "
                               f"limit of {MAX_INPUT_SIDE}")
    for key, kinds, what in (("provenance", (dict,), "a table"), ("licence", (dict, str), "a table or a string"),
                             ("accuracy", (dict,), "a table"), ("quantization", (dict,), "a table")):
        if meta.get(key) is not None and not isinstance(meta[key], kinds):
            raise WeightsError(f"{path}: {META_KEY} {key!r} must be {what}; got {meta[key]!r:.60}")
    top1 = (meta.get("accuracy") or {}).get("top1")
    if top1 is not None and not (isinstance(top1, (int, float)) and not isinstance(top1, bool) and 0 <= top1 <= 100):
        raise WeightsError(f"{path}: {META_KEY} 'accuracy' top1 must be a percentage in 0..100; got {top1!r:.60}")


# ---------------------------------------------------------------- quantised arrays

def dequantize(q: np.ndarray, entry, where: str = "array") -> np.ndarray:
    """w = scale * (q - zero_point) as float32, for an integer array q and its quantization entry.

    ``entry`` is {"scale": s, "zero_point": z} (one pair for all of q) or, with
    "axis": a, lists of q.shape[a] scales and zero points (one per index along a).
    The product is taken in float64 and rounded to float32 (for 8-bit q it is exact
    before that one rounding: q - z has at most 9 bits, s 24).
    """
    if not isinstance(entry, dict) or "scale" not in entry or "zero_point" not in entry:
        raise WeightsError(f"{where}: its quantization entry needs 'scale' and 'zero_point'; got {entry!r:.80}")
    if q.dtype not in QUANTIZED_DTYPES:
        raise WeightsError(f"{where} is marked as quantised but has dtype {q.dtype}; expected uint8, int8 or int32")
    try:
        scale = np.asarray(entry["scale"], np.float64).astype(np.float32)
        zero = np.asarray(entry["zero_point"], np.float64)
        axis = entry.get("axis")
        if scale.ndim == 0 and zero.ndim == 0 and axis is None:
            shape = ()
        elif (scale.ndim == 1 and zero.ndim == 1 and isinstance(axis, int) and not isinstance(axis, bool)
              and 0 <= axis < q.ndim and len(scale) == len(zero) == q.shape[axis]):
            shape = [1] * q.ndim
            shape[axis] = q.shape[axis]
        else:
            raise ValueError("scale and zero_point must be two numbers, or two lists as long as q's axis 'axis'")
        if not (np.all(np.isfinite(scale)) and np.all(scale > 0) and np.all(zero == np.round(zero))):
            raise ValueError("scales must be positive finite numbers and zero points integers")
        lo, hi = np.iinfo(q.dtype).min, np.iinfo(q.dtype).max
        if zero.size and not (zero.min() >= lo and zero.max() <= hi):
            raise ValueError(f"zero points must lie in the range of q's dtype {q.dtype}, {lo}..{hi}; got "
                             f"{float(zero.min() if zero.min() < lo else zero.max()):g}")
    except (TypeError, ValueError) as e:
        raise WeightsError(f"{where}: bad quantization entry: {one_line(e)}") from None
    centred = (q.astype(np.int64) - zero.reshape(shape).astype(np.int64)).astype(np.float64)
    with np.errstate(over="ignore"):                 # a product beyond float32 becomes inf, refused by check_values
        return (centred * scale.reshape(shape).astype(np.float64)).astype(np.float32)


# ---------------------------------------------------------------- writing

def encode_meta(meta: dict) -> np.ndarray:
    """The metadata as the uint8 array stored under ``__meta__`` (UTF-8 JSON)."""
    try:
        text = json.dumps(meta, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as e:
        raise WeightsError(f"the model's metadata cannot be written as JSON: {e}") from None
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def save(model: Model, path, *, force: bool = False, quantized: dict | None = None) -> Path:
    """Write ``model`` as a weights file, atomically; refuse to overwrite unless ``force``.

    The metadata is ``model.meta`` plus the format, version and ``model.spec()``.
    ``quantized`` ({key: (q, entry)}) stores those parameters as their integers q
    with their quantization entries (see ``dequantize``) instead of as float32; each
    must dequantise to exactly the model's array.
    Returns the path written. A missing or unwritable folder, or an existing
    file without ``force``, is a one-line OutputError and nothing is written.
    """
    meta = {"format": FORMAT, "version": VERSION,
            **{k: v for k, v in model.meta.items() if k not in _FILE_KEYS},
            "spec": model.spec()}
    arrays = model.state_dict()
    check_model(model, meta, where=str(path))
    if quantized:
        meta["quantization"] = {}
        for key, (q, entry) in quantized.items():
            if key not in arrays:
                raise WeightsError(f"quantised array {key!r} is not a parameter of the model")
            if not np.array_equal(dequantize(np.asarray(q), entry, f"quantised array {key!r}"), arrays[key]):
                raise WeightsError(f"quantised array {key!r} does not dequantise to the model's {key}")
            arrays[key] = np.asarray(q)
            meta["quantization"][key] = entry
    if META_KEY in arrays:
        raise WeightsError(f"a layer may not be called {META_KEY!r}")
    packed = encode_meta(meta)
    with atomic_output(path, force=force) as f:
        np.savez(f, **{META_KEY: packed}, **arrays)
    return Path(path)


def check_model(model: Model, meta: dict | None = None, where: str = "the model") -> None:
    """The checks ``read_weights`` makes, made on a model about to be written (``save``, the converters):
    its metadata, its architecture and costs, its class names against its logits, every array finite.
    A model that passes them loads again; one that does not is a one-line WeightsError and nothing is written."""
    meta = meta if meta is not None else {**model.meta, "spec": model.spec()}
    _check_meta_fields(meta, where)
    check_architecture(meta, where)
    for key, a in model.state_dict().items():
        check_values(key, a, model[key.rpartition(".")[0]], f"{where}: ")


# ---------------------------------------------------------------- the manifest

def manifest_entry(path) -> dict:
    """What the manifest records about a weights file (reads the file, checks it loads)."""
    path = Path(path)
    model = read_weights(path)
    meta = model.meta
    return {
        "file": path.name,
        "sha256": sha256_file(path),
        "size": path.stat().st_size,
        "arch": meta.get("arch"),
        "input_size": meta.get("input_size"),
        "num_classes": len(model.classes),
        "classes": model.classes if len(model.classes) <= 20 else None,
        **({"first_classes": model.classes[:4]} if len(model.classes) > 20 else {}),
        "parameters": model.num_parameters(),
        "accuracy": meta.get("accuracy"),
        "licence": (meta.get("licence") or {}).get("name") if isinstance(meta.get("licence"), dict)
        else meta.get("licence"),
    }


def register(path, folder=None) -> dict:
    """Record (or refresh) a weights file in its folder's manifest; returns the entry.

    The file must sit in ``folder`` (default: ``weights_dir()``); its model
    name is the file name without ``.npz``. The manifest is rewritten atomically.
    """
    folder = Path(folder or weights_dir())
    path = Path(path)
    if path.resolve().parent != folder.resolve():
        raise WeightsError(f"{path} is not in the weights folder {folder}; copy it there first")
    entry = manifest_entry(path)
    manifest = read_manifest(folder)
    manifest["models"][path.stem] = entry
    manifest["models"] = dict(sorted(manifest["models"].items()))
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    with atomic_output(folder / MANIFEST, force=True) as f:
        f.write(text.encode("utf-8"))
    return entry


def _accuracy_text(acc) -> str:
    if isinstance(acc, dict) and acc.get("top1") is None and acc.get("note"):
        return "- (not measured here)"
    if not isinstance(acc, dict) or acc.get("top1") is None:
        return "-"
    on = [str(acc["dataset"])] if acc.get("dataset") else []
    if isinstance(acc.get("images"), int):
        on.append(f"{acc['images']:,} images")
    return f"{acc['top1']:.2f}%" + (f" ({', '.join(on)})" if on else "")


def models_table() -> str:
    """The shipped models as a table: name, classes, input size, top-1 accuracy, parameters."""
    models = read_manifest()["models"]
    if not models:
        return f"no shipped models in {weights_dir()}"
    rows = [("name", "classes", "input", "top-1 accuracy", "parameters")]
    for name, e in sorted(models.items()):
        classes = e.get("classes") or [repr(c) for c in e.get("first_classes") or []]
        n = e.get("num_classes")
        what = f"{n}" + (f" ({', '.join(classes[:3])}, ...)" if classes and len(classes) > 3 else
                         f" ({', '.join(classes)})" if classes else "")
        size = "x".join(map(str, e.get("input_size") or [])) or "-"
        params = f"{e['parameters']:,}" if isinstance(e.get("parameters"), int) else "-"
        rows.append((name, what, size, _accuracy_text(e.get("accuracy")), params))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(r[i].ljust(widths[i]) if i < 4 else r[i].rjust(widths[i]) for i in range(5)).rstrip()
             for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


__all__ = ["FORMAT", "VERSION", "META_KEY", "load", "read_weights", "read_meta", "save", "weights_dir",
           "check_model", "check_architecture", "check_values",
           "read_manifest", "shipped_models", "sha256_file", "verify_checksum", "locate", "manifest_entry",
           "register", "models_table", "encode_meta", "dequantize"]

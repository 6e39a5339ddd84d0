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
- ``__meta__``: every field minicnn reads (``minicnn.models.content.check_meta_fields``):
  names, classes, input_size (at most 4096 pixels a side), preprocessing, ...;
- ``spec``: every setting of every layer and what the whole network costs
  at its input size (``minicnn.models.architecture.check_spec``), before it is built;
  as many class names as the network has logits;
- arrays: the dtype and shape their layer needs (floating point, or the
  integers of a quantised entry whose zero points lie in q's range), every
  value finite after the cast to float32, BatchNorm variances not negative.

``save`` (and so both converters) runs the same checks on the model it is
about to write (``minicnn.models.content.check_model``): a file that minicnn
writes loads again. The checks of the content (metadata, class count, values,
quantisation) are in :mod:`minicnn.models.content`, those of the architecture
in :mod:`minicnn.models.architecture`.

``load`` takes a file or a shipped model's name (:mod:`minicnn.models.shipped`:
the weights folder and its manifest) and refuses a shipped file whose sha256
differs from the manifest's; ``register`` records a file in the manifest.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import WeightsError, one_line
from ..model import Model, build
from ..util.atomic import atomic_output
from ..util.files import check_regular_file
from .architecture import MAX_LAYERS, MAX_PARAMETERS
from .content import (
    META_KEY,
    QUANTIZED_DTYPES,
    check_architecture,
    check_meta_fields,
    check_model,
    check_values,
    dequantize,
)
from .shipped import MANIFEST, _not_a_file, locate, read_manifest, sha256_file, verify_checksum, weights_dir

FORMAT, VERSION = "minicnn-weights", 1
_FILE_KEYS = ("format", "version", "spec", "quantization")  # describe the file, not the model
MAX_META_BYTES = 16 << 20                # __meta__: the JSON text (ImageNet's classes and a licence are ~60 KB)
MAX_MEMBERS = 4 * MAX_LAYERS + 1         # at most four arrays a layer, and __meta__
MAX_FILE_BYTES = 8 * MAX_PARAMETERS + (64 << 20)   # every weight in float64 at the cap, headers and metadata

# What a damaged zip or .npy member can raise while being read (RuntimeError: a member flagged as
# encrypted; zlib.error: a compressed member whose data is damaged).
_READ_ERRORS = (OSError, ValueError, EOFError, KeyError, IndexError, TypeError, OverflowError,
                MemoryError, RecursionError, UnicodeDecodeError, zipfile.BadZipFile, NotImplementedError,
                RuntimeError, zlib.error)


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


def read_meta(path) -> dict:
    """Only the ``__meta__`` dictionary of a weights file (no arrays are read)."""
    npz = _open_npz(Path(path))
    try:
        return _read_meta(npz, Path(path))
    finally:
        npz.close()


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
        raise WeightsError(f"{path} is not a readable weights file (.npz), it may be truncated: "
                           f"{one_line(e)}") from None
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
    check_meta_fields(meta, path)
    return meta


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


__all__ = ["FORMAT", "VERSION", "META_KEY", "load", "read_weights", "read_meta", "save", "manifest_entry", "register",
           "encode_meta"]

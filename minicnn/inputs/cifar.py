"""The CIFAR-10 python archive's batches: pickles read without running anything.

The archive (``cifar-10-python.tar.gz``, or its folder ``cifar-10-batches-py``;
found and listed by :mod:`minicnn.inputs.datasets`) holds ``batches.meta``
(the class names) and the batches ``data_batch_1`` .. ``data_batch_5`` and
``test_batch``, each a Python pickle of a dict::

    {"data": (N, 3072) uint8,     # each row: 1024 red, 1024 green, 1024 blue values, row-major 32x32
     "labels": [N ints]}

A pickle can call any Python function while it loads. :func:`unpickle` uses a
restricted unpickler that can only rebuild plain numeric numpy arrays, lists,
dicts and bytes, so a tampered file cannot run code; :func:`read_classes` and
:func:`read_batch` then check what was rebuilt. Every refusal is a one-line
:class:`~minicnn.errors.ImageError`.
"""

from __future__ import annotations

import io
import pickle

import numpy as np

from ..errors import ImageError

__all__ = ["read_classes", "read_batch", "unpickle"]


def read_classes(data: bytes, where: str) -> list[str]:
    """The class names in the bytes of ``batches.meta`` (its ``label_names``), in label order."""
    meta = unpickle(data, where)
    label_names = meta.get("label_names")
    if not isinstance(label_names, list) or not label_names:
        raise ImageError(f"{where} has no label_names list")
    return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in label_names]


def read_batch(data: bytes, where: str, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The images (N, 32, 32, 3) uint8 and labels (N,) int64 in the bytes of one batch, labels in 0..n_classes-1."""
    d = unpickle(data, where)
    data, labels = d.get("data"), d.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ImageError(f"{where} is not a CIFAR-10 batch: 'data' must be an (N, 3072) uint8 array")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        raise ImageError(f"{where} is not a CIFAR-10 batch: 'labels' must be a list of integers") from None
    if labels.shape != (data.shape[0],):
        raise ImageError(f"{where} has {data.shape[0]} images but {labels.size} labels")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ImageError(f"{where} has labels outside 0..{n_classes - 1}")
    # each row: 1024 red, 1024 green, 1024 blue values, row-major 32x32
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


class _RestrictedUnpickler(pickle.Unpickler):
    """Rebuilds only what a CIFAR-10 batch holds: numeric numpy arrays, lists, dicts, bytes.

    Any other global (``os.system``, ``builtins.eval``, ...) stops the load
    before it is called. numpy's own ``dtype`` and ``ndarray`` are never
    handed state from the file (a crafted dtype state can mark a ``uint8``
    dtype as holding Python objects); they are replaced by placeholders that
    check the state and are turned into arrays by :func:`_resolve`.
    """

    BUILTINS = frozenset(("dict", "list", "tuple", "set", "frozenset", "bytes", "bytearray",
                          "str", "int", "float", "bool", "complex"))

    def find_class(self, module: str, name: str):
        core = module.replace("numpy._core.", "numpy.core.", 1)
        if (core, name) == ("numpy.core.multiarray", "_reconstruct"):
            return _ArrayPlaceholder
        if (core, name) == ("numpy.core.numeric", "_frombuffer"):
            return _frombuffer
        if (module, name) == ("numpy", "ndarray"):
            return _NDARRAY
        if (module, name) == ("numpy", "dtype"):
            return _DtypePlaceholder
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode  # how Python 3 writes bytes into a protocol 2 pickle
        if module in ("builtins", "__builtin__") and name in self.BUILTINS:
            return super().find_class("builtins", name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed")


_NDARRAY = object()  # stands for numpy.ndarray, the first argument of _reconstruct
_NUMERIC_DTYPES = frozenset(("b1", "u1", "u2", "u4", "u8", "i1", "i2", "i4", "i8", "f2", "f4", "f8"))


def _text(v) -> str:
    return v.decode("latin1") if isinstance(v, (bytes, bytearray)) else v


class _DtypePlaceholder:
    """``numpy.dtype(descr, align, copy)`` limited to plain numeric dtypes."""

    def __init__(self, descr, align=False, copy=False):
        descr = _text(descr)
        if descr not in _NUMERIC_DTYPES:
            raise pickle.UnpicklingError(f"dtype {descr!r} is not allowed")
        self.dtype = np.dtype(descr)

    def __setstate__(self, state):
        # (version, byte order, subarray, names, fields, itemsize, alignment, flags)
        if not isinstance(state, tuple) or len(state) < 5 or any(v is not None for v in state[2:5]):
            raise pickle.UnpicklingError("only plain numeric dtypes are allowed")
        order = _text(state[1])
        if order not in ("<", ">", "|", "="):
            raise pickle.UnpicklingError(f"byte order {order!r} is not allowed")
        if order in "<>":
            self.dtype = self.dtype.newbyteorder(order)


class _ArrayPlaceholder:
    """``_reconstruct(ndarray, shape, typecode)`` followed by ``__setstate__``, checked."""

    def __init__(self, cls=None, shape=None, typecode=None):
        if cls is not _NDARRAY:
            raise pickle.UnpicklingError("only numpy.ndarray may be reconstructed")
        self.array = None

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise pickle.UnpicklingError("malformed array state")
        shape, dtype, fortran, raw = state[-4:]
        self.array = _array_from(raw, dtype, shape, "F" if fortran else "C")


def _frombuffer(buf, dtype, shape, order):
    return _array_from(buf, dtype, shape, _text(order))


def _array_from(raw, dtype, shape, order) -> np.ndarray:
    if not isinstance(dtype, _DtypePlaceholder):
        raise pickle.UnpicklingError("array without an allowed dtype")
    if not isinstance(raw, (bytes, bytearray)) or order not in ("C", "F"):
        raise pickle.UnpicklingError("array data must be raw bytes")
    if (not isinstance(shape, tuple) or len(shape) > 32
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)):
        raise pickle.UnpicklingError(f"malformed array shape {shape!r}")
    count = int(np.prod(shape, dtype=object))
    if count * dtype.dtype.itemsize != len(raw):
        raise pickle.UnpicklingError(f"array of shape {shape} needs {count * dtype.dtype.itemsize} bytes, "
                                     f"found {len(raw)}")
    return np.frombuffer(bytes(raw), dtype=dtype.dtype).reshape(shape, order=order).copy()


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode with {encoding!r} is not allowed")
    return text.encode("latin1")


def _resolve(obj, depth: int = 0, done: dict | None = None):
    """Replace array placeholders by their arrays in nested dicts, lists and tuples.

    Each container is rebuilt once (``done``, by id), so shared references
    cost nothing; cycles and deep nesting stop at depth 16.
    """
    if depth > 16:
        raise pickle.UnpicklingError("nesting too deep for a CIFAR-10 batch")
    if isinstance(obj, _ArrayPlaceholder):
        if obj.array is None:
            raise pickle.UnpicklingError("array without data")
        return obj.array
    if isinstance(obj, _DtypePlaceholder):
        return obj.dtype
    if not isinstance(obj, (dict, list, tuple)):
        return obj
    done = {} if done is None else done
    if id(obj) in done:
        return done[id(obj)][1]
    if isinstance(obj, dict):
        new = {_resolve(k, depth + 1, done): _resolve(v, depth + 1, done) for k, v in obj.items()}
    else:
        new = type(obj)(_resolve(v, depth + 1, done) for v in obj)
    done[id(obj)] = (obj, new)  # keep obj alive so its id stays unique
    return new


def unpickle(data: bytes, where: str) -> dict:
    """The dict a CIFAR-10 pickle holds, rebuilt by :class:`_RestrictedUnpickler`; its bytes keys decoded."""
    try:
        obj = _resolve(_RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load())
    except pickle.UnpicklingError as e:
        raise ImageError(f"refusing to load {where}: {e} in a CIFAR-10 batch (tampered or not CIFAR-10)") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError,
            RecursionError, OverflowError) as e:
        raise ImageError(f"{where} is not a valid CIFAR-10 pickle ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise ImageError(f"{where} is not a CIFAR-10 batch (expected a dict, found {type(obj).__name__})")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}

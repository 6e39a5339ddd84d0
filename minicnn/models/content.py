"""What a weights file may hold: its metadata, its class names, its values, its quantised arrays, checked.

A weights file is data from anywhere (the format: :mod:`minicnn.models.weights`).
Before minicnn uses what it read, each part is checked here, and every refusal
is a one-line WeightsError naming the field, or the layer and its parameter:

- ``__meta__``: every field the rest of minicnn reads (:func:`check_meta_fields`);
- the architecture (``spec``) at the file's input size, and at the largest input
  a fully convolutional model accepts (``minicnn.models.architecture.check_spec``),
  and as many class names as the network has logits (:func:`check_architecture`);
- every array finite after the cast to float32, BatchNorm variances not negative
  (:func:`check_values`);
- a quantised array's entry: scales positive, zero points integers within q's
  range (:func:`dequantize`, which also turns q into w = s * (q - z)).

:func:`check_model` makes the same checks on a model about to be written
(``minicnn.models.weights.save``, the converters): a file minicnn writes loads again.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError, WeightsError, one_line
from ..inputs.images import DEFAULT_MAX_INPUT_PIXELS
from ..inputs.preprocess import check_preprocessing
from ..model import Model
from .architecture import MAX_CHANNELS, MAX_CLASSES, MAX_INPUT_SIDE, Summary, check_spec

__all__ = ["META_KEY", "QUANTIZED_DTYPES", "MAX_TEXT", "check_meta_fields", "check_architecture", "check_values",
           "check_model", "dequantize"]

#: The member of a weights file that holds its metadata (UTF-8 JSON).
META_KEY = "__meta__"
QUANTIZED_DTYPES = (np.uint8, np.int8, np.int32)
MAX_TEXT = 256                           # characters of a class name, a model's name or its arch


def check_architecture(meta: dict, where="the model") -> Summary:
    """``meta["spec"]`` checked at ``meta["input_size"]`` (``minicnn.models.architecture.check_spec``), and the
    class names against the logits; a one-line WeightsError starting with ``where``."""
    try:
        summary = check_spec(meta["spec"], meta.get("input_size"))
    except WeightsError as e:
        raise WeightsError(f"{where}: {e}") from None
    prep, size = meta.get("preprocessing"), meta.get("input_size")
    if size and isinstance(prep, dict) and prep.get("resize") in ("shorter", "none"):
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


def check_meta_fields(meta: dict, path) -> None:
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


def check_model(model: Model, meta: dict | None = None, where: str = "the model") -> None:
    """The checks ``read_weights`` makes, made on a model about to be written (``save``, the converters):
    its metadata, its architecture and costs, its class names against its logits, every array finite.
    A model that passes them loads again; one that does not is a one-line WeightsError and nothing is written."""
    meta = meta if meta is not None else {**model.meta, "spec": model.spec()}
    check_meta_fields(meta, where)
    check_architecture(meta, where)
    for key, a in model.state_dict().items():
        check_values(key, a, model[key.rpartition(".")[0]], f"{where}: ")

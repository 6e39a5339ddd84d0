"""Reading a TensorFlow Lite model: the flatbuffer parsed into plain Python, and every part of it checked.

``read_tflite(path)`` parses a ``.tflite`` file into a ``Graph``: every tensor
(``Tensor``: name, NHWC shape, dtype, quantisation, constant data) and every
operator (``Operator``: kind, input and output tensors, options). It needs the
``tflite`` flatbuffer parser (``pip install 'minicnn[tflite]'``), imported here
only, at conversion time; this is the only module that touches it.

A .tflite file is untrusted input: ``read_tflite`` checks each tensor's shape
(dimensions in 1..2^28, at most 2^28 elements, ``check_shape``), its buffer's
size and its number of scales before copying anything, and ``check_graph``
every tensor, quantisation (positive finite scales, zero points in the range of
the type), operator (tensor indices, strides, dilations, filters, depth
multipliers) and the declared number of classes (at most 65,536) before any
layer is made. Each refusal is one line (WeightsError). Turning the graph into
a minicnn Model is :mod:`minicnn.models.convert.tflite`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import MissingDependencyError, WeightsError
from ...util.files import read_regular_file
from ..architecture import MAX_CLASSES, MAX_EXPAND, MAX_INPUT_SIDE, MAX_LAYERS, MAX_WINDOW

__all__ = ["Tensor", "Operator", "Graph", "import_tflite", "read_tflite", "check_shape", "check_graph"]

FILE_IDENTIFIER = b"TFL3"
#: A .tflite file larger than this is refused before it is read.
MAX_TFLITE_BYTES = 2 * 2**30
MAX_RANK = 8                          # dimensions of a tensor
MAX_TENSOR_ELEMENTS = 1 << 28         # elements of one tensor (1 GiB as float32)
MAX_TEXT = 1024                       # bytes of a tensor's name that are read


# ---------------------------------------------------------------- the graph, as plain data

@dataclass
class Tensor:
    """One tensor of the file: NHWC ``shape``; ``data`` for constants (weights), else None.

    Quantised tensors have ``scale`` and ``zero_point`` (one each, or one per index along ``axis``).
    """

    name: str
    shape: tuple
    dtype: str
    data: np.ndarray | None = None
    scale: list | None = None
    zero_point: list | None = None
    axis: int = 0


@dataclass
class Operator:
    """One operator: ``kind`` ("CONV_2D", ...), tensor indices in and out, and its options.

    options: "padding" ("SAME" / "VALID"), "stride" (h, w), "dilation" (h, w), "activation"
    ("NONE", "RELU", "RELU6", ...), "depth_multiplier", "filter" (h, w) for pooling.
    """

    kind: str
    inputs: list
    outputs: list
    options: dict = field(default_factory=dict)


@dataclass
class Graph:
    tensors: list
    operators: list
    inputs: list
    outputs: list
    description: str = ""


# ---------------------------------------------------------------- reading the file (tflite)

def import_tflite():
    """The ``tflite`` parser, or a one-line MissingDependencyError saying how to install it."""
    try:
        import tflite  # lazy: tflite is optional
    except ImportError:
        raise MissingDependencyError("converting a TensorFlow Lite model needs the tflite parser: "
                                     "pip install 'minicnn[tflite]'") from None
    return tflite


def _enum_names(enum_class) -> dict[int, str]:
    return {v: k for k, v in vars(enum_class).items() if not k.startswith("_") and isinstance(v, int)}


def read_tflite(path) -> Graph:
    """Parse a .tflite file into a ``Graph`` (needs ``tflite``); one-line WeightsError if it cannot."""
    path = Path(os.fspath(path))
    if not path.is_file():
        raise WeightsError(f"model file not found: {path}")
    tflite = import_tflite()
    data = read_regular_file(path, MAX_TFLITE_BYTES, "the TensorFlow Lite model", WeightsError)
    if data[4:8] != FILE_IDENTIFIER:
        raise WeightsError(f"{path} is not a TensorFlow Lite model (no 'TFL3' identifier)")
    try:
        model = tflite.Model.GetRootAsModel(data, 0)
        if model.SubgraphsLength() != 1:
            raise WeightsError(f"{path} has {model.SubgraphsLength()} subgraphs; minicnn converts models with one")
        graph = model.Subgraphs(0)
        op_names = _enum_names(tflite.BuiltinOperator)
        types = _enum_names(tflite.TensorType)
        activations = _enum_names(tflite.ActivationFunctionType)
        paddings = _enum_names(tflite.Padding)
        tensors = [_read_tensor(model, graph.Tensors(i), types) for i in range(graph.TensorsLength())]
        operators = []
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            code = model.OperatorCodes(op.OpcodeIndex())
            number = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            kind = op_names.get(number, f"operator {number}")
            if kind == "CUSTOM":
                kind = f"CUSTOM ({(code.CustomCode() or b'?').decode('utf-8', 'replace')})"
            operators.append(Operator(kind, [int(op.Inputs(j)) for j in range(op.InputsLength())],
                                      [int(op.Outputs(j)) for j in range(op.OutputsLength())],
                                      _read_options(tflite, kind, op, activations, paddings)))
        return Graph(tensors, operators, [int(graph.Inputs(i)) for i in range(graph.InputsLength())],
                     [int(graph.Outputs(i)) for i in range(graph.OutputsLength())],
                     (model.Description() or b"").decode("utf-8", "replace"))
    except WeightsError:
        raise
    except Exception as e:  # a damaged flatbuffer raises anything from IndexError to struct.error
        raise WeightsError(f"cannot read the TensorFlow Lite model {path}: {type(e).__name__}: "
                           f"{str(e).splitlines()[0][:160] if str(e) else ''}; is the file complete?") from None


_NUMPY_TYPES = {"FLOAT32": np.float32, "UINT8": np.uint8, "INT8": np.int8, "INT32": np.int32, "INT64": np.int64,
                "FLOAT16": np.float16, "INT16": np.int16}


def _read_tensor(model, t, types) -> Tensor:
    """One tensor; its shape, buffer size and quantisation lengths are checked before anything is copied."""
    dtype = types.get(t.Type(), str(t.Type()))
    name = (t.Name() or b"")[:MAX_TEXT].decode("utf-8", "replace")
    if t.ShapeLength() > MAX_RANK:
        raise WeightsError(f"tensor {name!r}: shape has {t.ShapeLength()} dimensions, more than {MAX_RANK}")
    shape = tuple(int(s) for s in t.ShapeAsNumpy()) if t.ShapeLength() else ()
    elements = check_shape(name, shape)
    buffer = model.Buffers(t.Buffer())
    data = None
    if buffer is not None and buffer.DataLength() and dtype in _NUMPY_TYPES:
        itemsize = np.dtype(_NUMPY_TYPES[dtype]).itemsize
        if buffer.DataLength() != elements * itemsize:
            raise WeightsError(f"tensor {name!r}: its buffer holds {buffer.DataLength():,} bytes, its shape {shape} "
                               f"of {dtype} needs {elements * itemsize:,}")
        data = np.frombuffer(buffer.DataAsNumpy().tobytes(), dtype=_NUMPY_TYPES[dtype]).reshape(shape).copy()
    q = t.Quantization()
    scale = zero = None
    axis = 0
    if q is not None and q.ScaleLength():
        if q.ScaleLength() > max((1, *shape)) or q.ZeroPointLength() > max((1, *shape)):
            raise WeightsError(f"tensor {name!r}: {q.ScaleLength():,} scales and {q.ZeroPointLength():,} zero points "
                               f"for a tensor of shape {shape}")
        scale = [float(s) for s in q.ScaleAsNumpy()]
        zero = [int(z) for z in q.ZeroPointAsNumpy()] if q.ZeroPointLength() else [0] * len(scale)
        axis = int(q.QuantizedDimension())
    return Tensor(name, shape, dtype, data, scale, zero, axis)


def check_shape(name: str, shape) -> int:
    """The number of elements of a tensor's shape, or a one-line WeightsError: each dimension an
    integer >= 1, at most MAX_RANK of them, at most MAX_TENSOR_ELEMENTS elements (checked before any allocation)."""
    if not isinstance(shape, tuple) or len(shape) > MAX_RANK or not all(
            isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in shape):
        raise WeightsError(f"tensor {name!r}: shape must be at most {MAX_RANK} integers; got {str(shape)[:60]}")
    elements = 1
    for n in shape:
        if not 1 <= n <= MAX_TENSOR_ELEMENTS:
            raise WeightsError(f"tensor {name!r}: shape {shape} has a dimension of {n}; each must be in "
                               f"1..{MAX_TENSOR_ELEMENTS:,}")
        elements *= int(n)
    if elements > MAX_TENSOR_ELEMENTS:
        raise WeightsError(f"tensor {name!r}: shape {shape} has {elements:,} elements, over the limit of "
                           f"{MAX_TENSOR_ELEMENTS:,}")
    return elements


_DTYPE_RANGES = {"UINT8": (0, 255), "INT8": (-128, 127), "INT32": (-2 ** 31, 2 ** 31 - 1),
                 "INT64": (-2 ** 63, 2 ** 63 - 1), "INT16": (-2 ** 15, 2 ** 15 - 1)}


def check_graph(graph: Graph, where: str = "the model") -> None:
    """Every tensor, operator and option of a parsed graph checked before any layer is made (one line each).

    Tensors: shapes (``check_shape``), constant data of that shape, quantisation with one
    scale (or one per index along its axis), scales positive and finite, zero points integers
    in the range of the tensor's type. Operators: tensor indices that exist (-1 for an absent
    bias), strides and dilations in 1..MAX_WINDOW, pooling filters in 1..MAX_INPUT_SIDE, depth
    multipliers in 1..MAX_EXPAND. The input is (1, H, W, 3) with H, W <= MAX_INPUT_SIDE; the
    output declares 1..MAX_CLASSES classes.
    """
    if len(graph.tensors) > 8 * MAX_LAYERS or len(graph.operators) > MAX_LAYERS:
        raise WeightsError(f"{where} has {len(graph.tensors):,} tensors and {len(graph.operators):,} operators, more "
                           f"than {8 * MAX_LAYERS:,} and {MAX_LAYERS:,}")
    for t in graph.tensors:
        try:
            check_shape(t.name, tuple(t.shape))
        except WeightsError as e:
            raise WeightsError(f"{where}: {e}") from None
        if t.data is not None and tuple(t.data.shape) != tuple(t.shape):
            raise WeightsError(f"{where}: tensor {t.name!r}: its data has shape {t.data.shape}, the tensor {t.shape}")
        if t.scale is None:
            continue
        n = len(t.scale)
        axis_ok = isinstance(t.axis, int) and not isinstance(t.axis, bool) and 0 <= t.axis < max(len(t.shape), 1)
        if not axis_ok or t.zero_point is None or len(t.zero_point) != n or \
                (n != 1 and (not t.shape or n != t.shape[t.axis])):
            raise WeightsError(f"{where}: tensor {t.name!r}: quantization has {n} scales, "
                               f"{len(t.zero_point or [])} zero points and axis {t.axis!r} for shape {t.shape}")
        if not all(isinstance(s, float) and np.isfinite(s) and s > 0 for s in t.scale):
            raise WeightsError(
                f"{where}: tensor {t.name!r}: quantization scale must be positive and finite; got "
                f"{next(s for s in t.scale if not (isinstance(s, float) and np.isfinite(s) and s > 0))!r}")
        lo, hi = _DTYPE_RANGES.get(t.dtype, (-2 ** 31, 2 ** 31 - 1))
        for z in t.zero_point:
            if not (isinstance(z, (int, np.integer)) and not isinstance(z, bool) and lo <= z <= hi):
                raise WeightsError(f"{where}: tensor {t.name!r}: quantization zero_point must be an integer in "
                                   f"{lo}..{hi} ({t.dtype}); got {z!r:.40}")
    count = len(graph.tensors)

    def valid(i):
        return isinstance(i, (int, np.integer)) and 0 <= i < count

    for i, op in enumerate(graph.operators):
        what = f"{where}: operator {i} ({op.kind})"
        if not op.inputs or not op.outputs or not all(valid(k) or k == -1 for k in op.inputs) \
                or not valid(op.inputs[0]) or not all(valid(k) for k in op.outputs):
            raise WeightsError(f"{what}: tensor indices {op.inputs} -> {op.outputs} outside 0..{count - 1}")
        for key, lo, hi in (("stride", 1, MAX_WINDOW), ("dilation", 1, MAX_WINDOW), ("filter", 1, MAX_INPUT_SIDE)):
            v = op.options.get(key)
            if v is not None and not (isinstance(v, tuple) and len(v) == 2 and all(
                    isinstance(n, int) and not isinstance(n, bool) and lo <= n <= hi for n in v)):
                raise WeightsError(f"{what}: {key} must be two integers in {lo}..{hi}; got {v!r:.40}")
        m = op.options.get("depth_multiplier")
        if m is not None and not (isinstance(m, int) and not isinstance(m, bool) and 1 <= m <= MAX_EXPAND):
            raise WeightsError(f"{what}: depth_multiplier must be an integer in 1..{MAX_EXPAND}; got {m!r:.40}")
        if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            if len(op.inputs) < 2 or not valid(op.inputs[1]):
                raise WeightsError(f"{what}: has no weights tensor")
            for role, k, rank in (("input", op.inputs[0], 4), ("weights", op.inputs[1], 4),
                                  ("output", op.outputs[0], 4)):
                if len(graph.tensors[k].shape) != rank:
                    raise WeightsError(f"{what}: its {role} tensor {graph.tensors[k].name!r} has shape "
                                       f"{graph.tensors[k].shape}, not {rank}-D")
            kh, kw = graph.tensors[op.inputs[1]].shape[1:3]
            if max(kh, kw) > MAX_WINDOW:
                raise WeightsError(f"{what}: kernel {kh}x{kw} is larger than {MAX_WINDOW}")
    if not all(valid(k) for k in (*graph.inputs, *graph.outputs)):
        raise WeightsError(f"{where}: input or output tensor index outside 0..{count - 1}")
    if len(graph.inputs) == 1:
        x = graph.tensors[graph.inputs[0]]
        if len(x.shape) != 4 or x.shape[0] != 1 or x.shape[3] != 3 or max(x.shape[1:3]) > MAX_INPUT_SIDE:
            raise WeightsError(f"{where}: the input tensor {x.name!r} has shape {x.shape}; minicnn converts "
                               f"(1, H, W, 3) image models with H, W <= {MAX_INPUT_SIDE}")
    if len(graph.outputs) == 1:
        y = graph.tensors[graph.outputs[0]]
        if not y.shape or not 1 <= y.shape[-1] <= MAX_CLASSES:
            raise WeightsError(f"{where}: the output tensor {y.name!r} declares {y.shape[-1] if y.shape else 0:,} "
                               f"classes (shape {y.shape}); at most {MAX_CLASSES:,}")


def _read_options(tflite, kind, op, activations, paddings) -> dict:
    table = op.BuiltinOptions()
    if table is None:
        return {}
    classes = {"CONV_2D": tflite.Conv2DOptions, "DEPTHWISE_CONV_2D": tflite.DepthwiseConv2DOptions,
               "ADD": tflite.AddOptions, "AVERAGE_POOL_2D": tflite.Pool2DOptions}
    if kind not in classes:
        return {}
    o = classes[kind]()
    o.Init(table.Bytes, table.Pos)
    out = {"activation": activations.get(o.FusedActivationFunction(), str(o.FusedActivationFunction()))}
    if kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D"):
        out["padding"] = paddings.get(o.Padding(), str(o.Padding()))
        out["stride"] = (int(o.StrideH()), int(o.StrideW()))
    if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        out["dilation"] = (int(o.DilationHFactor()), int(o.DilationWFactor()))
    if kind == "DEPTHWISE_CONV_2D":
        out["depth_multiplier"] = int(o.DepthMultiplier())
    if kind == "AVERAGE_POOL_2D":
        out["filter"] = (int(o.FilterHeight()), int(o.FilterWidth()))
    return out

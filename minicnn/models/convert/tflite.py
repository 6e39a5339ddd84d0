"""TensorFlow Lite model -> minicnn weights file.

    minicnn convert mobilenet_v2_1.0_224_quant.tflite --labels labels.txt --out mobilenet_v2.npz

Needs the ``tflite`` flatbuffer parser (``pip install 'minicnn[tflite]'``),
imported here only, at conversion time. Two steps:

1. ``read_tflite(path)`` parses the file into plain Python (``Graph``): every
   tensor (name, NHWC shape, dtype, quantisation, constant data) and every
   operator (kind, input and output tensors, options). The only code that
   touches ``tflite``; it and the checks of what it read (``check_graph``) are
   in :mod:`minicnn.models.convert.tflite_read`.
2. ``convert_graph(graph)`` turns that into a minicnn Model, NumPy only (the
   tests build small graphs by hand).

Operators: CONV_2D and DEPTHWISE_CONV_2D (fused activation NONE, RELU or
RELU6; padding SAME or VALID; stride, dilation, depth multiplier), ADD (the
shortcut of an inverted-residual block, no activation), AVERAGE_POOL_2D
(global), RESHAPE (to the logits) and SOFTMAX (dropped: minicnn models return
the logits y, before the softmax). Any other operator is refused in one line
that names it.

Layout. TFLite stores tensors channels-last (NHWC) and convolution weights as
(F, kh, kw, C) (CONV_2D) or (1, kh, kw, C*m) (DEPTHWISE_CONV_2D); minicnn (like
PyTorch) uses (N, C, H, W) and (F, C/groups, kh, kw): the weights are
transposed by (0, 3, 1, 2) and (3, 0, 1, 2), and a depthwise layer becomes a
Conv2d with groups = C.

SAME padding (TensorFlow): out = ceil(in / s) and the total padding
max((out - 1) s + d(k - 1) + 1 - in, 0) is split with the smaller half first
(top, left). Equal halves become the convolution's ``padding``; unequal ones
(a stride-2 3x3 convolution on an even size pads 0 rows at the top and 1 at
the bottom) a ``ZeroPad2d((left, right, top, bottom))`` before it. Shapes come
from the file, so the padding is the one TensorFlow uses at the model's input size.

Quantisation. 8-bit weights are kept as they are, with their scale and zero
point, and dequantised when the file is loaded: w = scale * (q - zero_point);
int32 biases likewise (zero point 0). See ``minicnn.models.content.dequantize``.
Activations are not quantised: minicnn runs the network in floating point.

Checks. A .tflite file is untrusted input: ``read_tflite`` checks each tensor's
shape (dimensions in 1..2^28, at most 2^28 elements), its buffer's size and its
number of scales before copying anything, and ``check_graph`` every tensor,
quantisation (positive finite scales, zero points in the range of the type),
operator (tensor indices, strides, dilations, filters, depth multipliers) and
the declared number of classes (at most 65,536) before any layer is made. The
model made is checked as the loader will check it (``minicnn.models.content.check_model``),
so a converted file always loads. Each refusal is one line (WeightsError).

Structure, named as torchvision's MobileNetV2 (BatchNorm is already folded):
the operators form a chain, and

    [1x1 CONV] DEPTHWISE 1x1 CONV(no activation) [ADD of the block's input]  -> features.N, an InvertedResidual
    any other CONV_2D or DEPTHWISE_CONV_2D                                     -> features.N ("0" conv, "2" activation)
    AVERAGE_POOL_2D -> avgpool,  the CONV_2D after it -> classifier,  RESHAPE -> flatten
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np

from ...errors import WeightsError
from ...layers import AdaptiveAvgPool2d, Conv2d, Flatten, InvertedResidual, ReLU, ReLU6, Sequential, ZeroPad2d
from ...model import Model
from ...util.files import MAX_TEXT_BYTES, read_text_file
from ..content import check_model, dequantize
from ..shipped import sha256_file
from ..zoo import mobilenet_v2
from .meta import with_user_meta
from .tflite_read import FILE_IDENTIFIER, Graph, Operator, Tensor, check_graph, import_tflite, read_tflite

SUPPORTED_OPERATORS = ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "AVERAGE_POOL_2D", "RESHAPE", "SOFTMAX")
ACTIVATIONS = {"NONE": None, "RELU": ReLU, "RELU6": ReLU6}


def is_tflite(path) -> bool:
    """Whether the file carries TensorFlow Lite's flatbuffer identifier "TFL3" (bytes 4..8)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):     # never open a pipe or device to peek at it
            return False
        with open(path, "rb") as f:
            return f.read(8)[4:8] == FILE_IDENTIFIER
    except (OSError, ValueError):
        return False


# ---------------------------------------------------------------- the graph -> a Model (NumPy only)

def refuse_unsupported(graph: Graph, where: str = "the model") -> None:
    """One line naming every operator (and fused activation) minicnn cannot convert, with counts."""
    counts: dict[str, int] = {}
    for op in graph.operators:
        if op.kind not in SUPPORTED_OPERATORS:
            counts[op.kind] = counts.get(op.kind, 0) + 1
        elif op.options.get("activation", "NONE") not in ACTIVATIONS:
            name = f"{op.kind} with fused {op.options['activation']}"
            counts[name] = counts.get(name, 0) + 1
    if counts:
        listed = ", ".join(f"{k} ({n})" for k, n in counts.items())
        raise WeightsError(f"{where} uses operators minicnn cannot convert: {listed}; supported: "
                           f"{', '.join(SUPPORTED_OPERATORS)} with fused NONE, RELU or RELU6")


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's SAME: (before, after) with out = ceil(size / stride), the smaller half before."""
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def _weights(graph: Graph, index: int, layout: tuple) -> tuple[np.ndarray, dict | None]:
    """A constant tensor in minicnn's layout: (float32 array, quantization entry or None)."""
    t = graph.tensors[index]
    if t.data is None:
        raise WeightsError(f"tensor {t.name!r} should hold constant weights but has no data")
    q = np.ascontiguousarray(t.data.transpose(layout)) if layout else t.data
    if t.dtype == "FLOAT32":
        return q.astype(np.float32), None
    if t.dtype not in ("UINT8", "INT8", "INT32") or not t.scale:
        raise WeightsError(f"tensor {t.name!r} has type {t.dtype} without a scale; minicnn reads FLOAT32 weights "
                           f"and quantised UINT8, INT8 and INT32 ones")
    if len(t.scale) == 1:
        entry = {"scale": t.scale[0], "zero_point": t.zero_point[0]}
    else:
        entry = {"scale": t.scale, "zero_point": t.zero_point, "axis": layout.index(t.axis) if layout else t.axis}
    return dequantize(q, entry, f"tensor {t.name!r}"), {"q": q, **entry}


def _source_name(tensor: Tensor) -> str:
    """The first of the names TensorFlow joined with ';' (e.g. "MobilenetV2/expanded_conv/depthwise/depthwise_Fold")."""
    return tensor.name.split(";")[0]


class _Builder:
    """Walks the operator chain once, making modules and collecting their arrays."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.arrays: dict[str, np.ndarray] = {}
        self.quantized: dict[str, tuple] = {}
        self.source_names: dict[str, str] = {}

    def shape(self, index):
        return self.graph.tensors[index].shape

    def conv(self, op: Operator, name: str) -> tuple[list, Conv2d]:
        """([("pad", ZeroPad2d)] or [], Conv2d) for a CONV_2D or DEPTHWISE_CONV_2D; its arrays under ``name``."""
        depthwise = op.kind == "DEPTHWISE_CONV_2D"
        w, wq = _weights(self.graph, op.inputs[1], (3, 0, 1, 2) if depthwise else (0, 3, 1, 2))
        f, cg, kh, kw = w.shape
        _, h, wd, c = self.shape(op.inputs[0])
        groups = c if depthwise else 1
        if depthwise and f % c:
            raise WeightsError(f"{op.kind} {self.graph.tensors[op.inputs[1]].name!r}: {f} output channels are not a "
                               f"multiple of its {c} input channels")
        if not depthwise and cg != c:
            raise WeightsError(f"{op.kind} {self.graph.tensors[op.inputs[1]].name!r}: weights for {cg} input channels, "
                               f"the input has {c}")
        stride, dilation = op.options.get("stride", (1, 1)), op.options.get("dilation", (1, 1))
        if op.options.get("padding", "VALID") == "SAME":
            (top, bottom), (left, right) = (same_padding(h, kh, stride[0], dilation[0]),
                                            same_padding(wd, kw, stride[1], dilation[1]))
        elif op.options.get("padding") == "VALID":
            top = bottom = left = right = 0
        else:
            raise WeightsError(f"{op.kind}: unknown padding {op.options.get('padding')!r}")
        pad = []
        if (top, left) == (bottom, right):
            padding = (top, left)
        else:
            pad, padding = [("pad", ZeroPad2d((left, right, top, bottom)))], (0, 0)
        has_bias = len(op.inputs) > 2 and op.inputs[2] >= 0
        layer = Conv2d(c, f, (kh, kw), stride, padding, dilation, bias=has_bias, groups=groups)
        self.store(f"{name}.weight", w, wq)
        if has_bias:
            self.store(f"{name}.bias", *_weights(self.graph, op.inputs[2], ()))
        self.source_names[name] = _source_name(self.graph.tensors[op.inputs[1]])
        return pad, layer

    def store(self, key, w, q):
        self.arrays[key] = w
        if q is not None:
            q = dict(q)
            self.quantized[key] = (q.pop("q"), q)

    def conv_unit(self, op: Operator, name: str) -> Sequential:
        """A convolution with its activation: Sequential(["pad"], "0" conv, "2" activation)."""
        pad, layer = self.conv(op, f"{name}.0")
        children = pad + [("0", layer)]
        act = ACTIVATIONS[op.options.get("activation", "NONE")]
        if act is not None:
            children.append(("2", act()))
        return Sequential(children)

    def block(self, ops: list, name: str, where: str) -> InvertedResidual | None:
        """The InvertedResidual for ``ops`` ([expand], depthwise, project, [ADD]), its arrays stored; None if it
        is not one."""
        convs = [o for o in ops if o.kind != "ADD"]
        expand = len(convs) == 3
        c_in, c_out = self.shape(convs[0].inputs[0])[3], self.shape(convs[-1].outputs[0])[3]
        hidden = self.shape(convs[-2].inputs[1])[3]
        stride = convs[-2].options["stride"][0]
        if hidden % c_in or (not expand and hidden != c_in):
            return None
        module = InvertedResidual(c_in, c_out, stride, hidden // c_in, "tf_same")
        if (ops[-1].kind == "ADD") != module.use_residual:
            raise WeightsError(f"{where}: block {name} {'has' if ops[-1].kind == 'ADD' else 'lacks'} a shortcut "
                               f"ADD where an inverted residual (stride {stride}, {c_in} -> {c_out}) "
                               f"{'cannot' if ops[-1].kind == 'ADD' else 'would'} have one")
        parts = [(*self.conv(o, f"{name}.conv.{k}" + (".0" if k < len(convs) - 1 else "")), o)
                 for k, o in enumerate(convs)]
        _check_block_padding(module, parts, name, where)
        return module


def _is_pointwise(graph, op, activation) -> bool:
    """A 1x1 stride-1 CONV_2D with the fused ``activation``."""
    shape = graph.tensors[op.inputs[1]].shape if op.kind == "CONV_2D" else ()
    return (op.kind == "CONV_2D" and op.options.get("stride", (1, 1)) == (1, 1) and len(shape) == 4
            and shape[1:3] == (1, 1) and op.options.get("activation") == activation)


def _match_block(graph: Graph, ops: list, i: int) -> list | None:
    """The operators of an inverted-residual block starting at ops[i] ([expand] depthwise project [ADD]), or None."""
    expand = _is_pointwise(graph, ops[i], "RELU6")
    j = i + 1 if expand else i
    if j + 1 >= len(ops):
        return None
    dw, project = ops[j], ops[j + 1]
    if not (dw.kind == "DEPTHWISE_CONV_2D" and dw.options.get("activation") == "RELU6"
            and graph.tensors[dw.inputs[1]].shape[1:3] == (3, 3) and dw.options.get("stride") in ((1, 1), (2, 2))
            and dw.options.get("dilation", (1, 1)) == (1, 1) and dw.options.get("depth_multiplier", 1) == 1
            and (not expand or dw.inputs[0] == ops[i].outputs[0]) and project.inputs[0] == dw.outputs[0]
            and _is_pointwise(graph, project, "NONE")):
        return None
    add = ops[j + 2] if j + 2 < len(ops) else None
    if (add is not None and add.kind == "ADD" and add.options.get("activation", "NONE") == "NONE"
            and sorted(add.inputs) == sorted([project.outputs[0], ops[i].inputs[0]])):
        return ops[i:j + 3]
    return ops[i:j + 2]


def convert_graph(graph: Graph, *, meta: dict | None = None, where: str = "the model") -> tuple[Model, dict]:
    """(Model, quantized arrays {key: (q, entry)}) for a parsed TFLite graph; NumPy only.

    ``meta`` is merged over the metadata read from the graph (name, input size,
    classes as numbers, preprocessing from the input's quantisation).
    """
    check_graph(graph, where)
    refuse_unsupported(graph, where)
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise WeightsError(f"{where} has {len(graph.inputs)} inputs and {len(graph.outputs)} outputs; "
                           f"minicnn converts image classifiers with one of each")
    ops = list(graph.operators)
    b = _Builder(graph)
    features, head = [], []
    current, i, pooled = graph.inputs[0], 0, False
    while i < len(ops):
        op = ops[i]
        if op.inputs[0] != current and op.kind != "ADD":
            raise WeightsError(f"{where}: operator {i} ({op.kind}) does not take the previous operator's output; "
                               f"minicnn converts a chain of layers with inverted-residual shortcuts")
        name = f"features.{len(features)}"
        block = None if pooled else _match_block(graph, ops, i)
        module = b.block(block, name, where) if block else None
        if module is not None:
            features.append((str(len(features)), module))
            current = block[-1].outputs[0]
            i += len(block)
            continue
        if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D") and not pooled:
            features.append((str(len(features)), b.conv_unit(op, name)))
        elif op.kind == "AVERAGE_POOL_2D" and not pooled:
            _, h, w, _ = graph.tensors[op.inputs[0]].shape
            if op.options.get("filter") != (h, w) or op.options.get("padding") != "VALID" \
                    or op.options.get("activation", "NONE") != "NONE":
                raise WeightsError(f"{where}: AVERAGE_POOL_2D {op.options.get('filter')} on a {h}x{w} map is not a "
                                   f"global average; minicnn converts only global average pooling")
            head.append(("avgpool", AdaptiveAvgPool2d(1)))
            pooled = True
        elif op.kind == "CONV_2D" and pooled and not any(n == "classifier" for n, _ in head):
            if op.options.get("activation", "NONE") != "NONE":
                raise WeightsError(f"{where}: the classifier convolution has a fused {op.options['activation']}; "
                                   f"minicnn expects logits")
            head.append(("classifier", b.conv(op, "classifier")[1]))
        elif op.kind == "RESHAPE" and pooled:
            head.append(("flatten", Flatten()))
        elif op.kind == "SOFTMAX" and i == len(ops) - 1:
            pass                                                  # logits are the model's output
        else:
            raise WeightsError(f"{where}: operator {i} ({op.kind}) is not where minicnn can place it "
                               f"(after {'the pooling' if pooled else 'the feature extractor'})")
        current = op.outputs[0]
        i += 1
    if not pooled:
        raise WeightsError(f"{where} has no global average pooling; minicnn converts networks that end in "
                           f"AVERAGE_POOL_2D and a 1x1 convolution")
    if not any(n == "flatten" for n, _ in head):
        head.append(("flatten", Flatten()))
    root = Sequential([("features", Sequential(features)), *head])
    model = Model(root, graph_meta(graph, root, b, meta))
    for key in model.state_dict():
        if key not in b.arrays:
            raise WeightsError(f"{where}: no weights were found for {key!r}")
    model.load_state_dict(b.arrays)
    check_model(model, where=where)               # what the loader will check: a model that fails is never written
    return model, b.quantized


def _check_block_padding(module: InvertedResidual, parts, name: str, where: str) -> None:
    """Each convolution of the file must be padded and strided as the block's own layers are.

    The block pads as TensorFlow's SAME does on an even size (ZeroPad2d((0, 1, 0, 1))
    before a stride-2 depthwise convolution, 1 on every side at stride 1).
    """
    for (pad, layer, op), (_, own) in zip(parts, module.conv.children()):
        own_pad = None
        if isinstance(own, Sequential):
            kids = dict(own.children())
            own_pad, own = kids.get("pad"), kids["0"]
        found = (pad[0][1].padding if pad else None, layer.padding, layer.stride)
        wanted = (own_pad.padding if own_pad else None, own.padding, own.stride)
        if found != wanted:
            raise WeightsError(f"{where}: block {name} pads or strides its {op.kind} as {found}, not as TensorFlow's "
                               f"SAME on an even size {wanted}; convert a model whose input size is a multiple of 32")


def graph_meta(graph: Graph, root, builder: _Builder, meta: dict | None) -> dict:
    """Name, input size, numbered classes, preprocessing and source names read off the graph; ``meta`` on top."""
    x = graph.tensors[graph.inputs[0]]
    if len(x.shape) != 4 or x.shape[3] != 3:
        raise WeightsError(f"the model's input has shape {x.shape}; minicnn converts (1, H, W, 3) image models")
    _, h, w, c = x.shape
    if x.scale and len(x.scale) == 1:
        # float input = scale * (pixel - zero_point) = (pixel/255 - mean) / std
        mean, std = x.zero_point[0] / 255, 1 / (255 * x.scale[0])
        formula = f"(pixel - {x.zero_point[0]}) * {x.scale[0]!r}"
    else:
        mean, std, formula = 0.5, 0.5, "(pixel - 127.5) / 127.5 (assumed: the input is not quantised)"
    n_classes = graph.tensors[graph.outputs[0]].shape[-1]
    arch = "mobilenet_v2" if root.spec() == mobilenet_v2(num_classes=n_classes).spec() else "tflite"
    out = {"name": "model", "arch": arch, "input_size": [int(c), int(h), int(w)],
           "classes": [str(k) for k in range(n_classes)],
           "preprocessing": {"mean": [mean] * 3, "std": [std] * 3, "resize": "exact", "size": [int(h), int(w)],
                             "formula": formula},
           "source_names": builder.source_names}
    return with_user_meta(out, meta, n_classes, "the model")


# ---------------------------------------------------------------- the labels file; a .tflite file at once

def read_labels(path) -> list[str]:
    """Class names, one a line (blank lines at the end ignored)."""
    lines = read_text_file(path, MAX_TEXT_BYTES, "--labels").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return [line.strip() for line in lines]


def convert_tflite(path, *, meta: dict | None = None) -> tuple[Model, dict]:
    """(Model, quantized arrays) from a .tflite file; provenance records the file's name and sha256."""
    tflite = import_tflite()
    graph = read_tflite(path)
    meta = dict(meta or {})
    version = getattr(tflite, "__version__", None)
    source = {"source_file": Path(path).name, "source_sha256": sha256_file(path),
              "converted_with": "minicnn convert (TensorFlow Lite)", **({"tflite": version} if version else {})}
    meta["provenance"] = {**source, **(meta.get("provenance") or {})}
    return convert_graph(graph, meta=meta, where=str(path))

"""Hostile weights files and TensorFlow Lite graphs: one table row per bad setting, member or tensor.

Every row starts from a good file (a shipped model, or a small model saved here), changes one
thing, and asks: does ``minicnn.load`` refuse it with one line naming the layer (or member, or
tensor) and the field, and do ``minicnn layers`` / ``explain`` / ``evaluate`` / ``convert`` exit 2
with exactly that one line on stderr, no traceback, and nothing written? The last tests run a
small seeded version of the fuzz run recorded in ``weights.md`` (``fuzz_weights.py``).
"""

from __future__ import annotations

import io
import subprocess
import sys
import tracemalloc
import zipfile

import numpy as np
import pytest

import minicnn
from minicnn.commands import cli
from minicnn.errors import WeightsError
from minicnn.models import architecture, weights, zoo
from minicnn.models.convert import pytorch as convert
from minicnn.models.convert import tflite as convert_tflite
from minicnn.models.convert import tflite_read
from minicnn.models.convert.tflite import convert_graph
from minicnn.models.convert.tflite_read import check_shape

from . import fuzz_weights
from .weights_files import REPO, array_of, find, members, meta_of, npy, replaced, with_meta, write

sys.path.insert(0, str(REPO / "tests"))
from models.test_convert_tflite import mini_mobilenet  # noqa: E402  (the hand-made graphs of the converter's tests)

CAT = REPO / "minicnn" / "data" / "cifar10" / "test" / "cat"


# ---------------------------------------------------------------- the good files the rows start from

@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    """name -> the members of a good file: two shipped models, a tiny MobileNetV2, a quantised one."""
    folder = tmp_path_factory.mktemp("bases")
    return {name: members(path) for name, path in fuzz_weights.base_files(folder).items()}


def spec_edit(layer, field, value):
    """Set ``field`` of layer ``layer`` in the spec (``None`` as value of ``...``: delete it)."""
    def edit(items):
        meta = meta_of(items)
        node = find(meta["spec"], layer) if layer else meta["spec"]
        if value is ...:
            node.pop(field)
        else:
            node[field] = value
        return with_meta(items, meta)
    return edit


def meta_edit(**fields):
    def edit(items):
        meta = meta_of(items)
        for k, v in fields.items():
            if v is ...:
                meta.pop(k, None)
            elif isinstance(v, dict) and isinstance(meta.get(k), dict):
                meta[k] = {**meta[k], **v}
            else:
                meta[k] = v
        return with_meta(items, meta)
    return edit


def member_edit(key, make):
    """Replace array ``key`` by ``make(its array)`` (an array, or the member's bytes)."""
    def edit(items):
        new = make(array_of(items, key))
        return replaced(items, key, new if isinstance(new, bytes) else npy(new))
    return edit


def set_at(value, dtype=None):
    def make(a):
        a = a.astype(dtype or a.dtype).copy()
        a.flat[a.size // 2] = value
        return a
    return make


def nested(depth):
    def edit(items):
        meta = meta_of(items)
        node = {"type": "Sequential", "children": [["relu", {"type": "ReLU"}]]}
        for _ in range(depth):
            node = {"type": "Sequential", "children": [["n", node]]}
        meta["spec"]["children"].insert(0, ["deep", node])
        return with_meta(items, meta)
    return edit


def children_edit(change):
    def edit(items):
        meta = meta_of(items)
        change(meta["spec"]["children"])
        return with_meta(items, meta)
    return edit


def duplicate(name):
    def edit(items):
        return items + [(n, d) for n, d in items if n == name]
    return edit


def meta_member(data: bytes):
    return lambda items: replaced(items, "__meta__", data)


def lying_header(items):
    """__meta__'s header declares 400 MB; the member itself is small."""
    raw = dict(items)["__meta__.npy"]
    header = np.lib.format.header_data_from_array_1_0(np.zeros(400_000_000, np.uint8))
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    return replaced(items, "__meta__", buf.getvalue() + raw[128:])


def trailing(name, extra=b"\0" * 1000):
    return lambda items: [(n, d + extra if n == name else d) for n, d in items]


def quantization_edit(**entry):
    def edit(items):
        meta = meta_of(items)
        key = sorted(k for k in meta["quantization"] if k.endswith(".weight"))[0]      # uint8
        meta["quantization"][key] = {**meta["quantization"][key], **entry}
        return with_meta(items, meta)
    return edit


# (id, base, edit, words the one-line message must contain)
ROWS = [
    # ---- row 10: impossible layer settings, every field of every layer type
    ("conv stride 0", "resnet20", spec_edit("conv1", "stride", [0, 0]), ("layer 'conv1' (Conv2d)", "stride")),
    ("conv stride -1", "resnet20", spec_edit("conv1", "stride", -1), ("'conv1'", "stride")),
    ("conv dilation 0", "resnet20", spec_edit("conv1", "dilation", [1, 0]), ("'conv1'", "dilation")),
    ("conv padding 1e6", "resnet20", spec_edit("conv1", "padding", [1000000, 1]), ("'conv1'", "padding")),
    ("conv padding 1.5", "resnet20", spec_edit("conv1", "padding", 1.5), ("'conv1'", "padding")),
    ("conv padding [1]", "resnet20", spec_edit("conv1", "padding", [1]), ("'conv1'", "padding")),
    ("conv kernel 0", "resnet20", spec_edit("conv1", "kernel_size", [0, 3]), ("'conv1'", "kernel_size")),
    ("conv kernel 1e9", "resnet20", spec_edit("conv1", "kernel_size", 10 ** 9), ("'conv1'", "kernel_size")),
    ("conv kernel larger than input", "resnet20", spec_edit("conv1", "kernel_size", 64),
     ("'conv1'", "kernel_size", "padded input")),
    ("conv groups not dividing", "resnet20", spec_edit("conv1", "groups", 2), ("'conv1'", "groups", "divide")),
    ("conv groups 0", "resnet20", spec_edit("conv1", "groups", 0), ("'conv1'", "groups")),
    ("conv in_channels negative", "resnet20", spec_edit("conv1", "in_channels", -3), ("'conv1'", "in_channels")),
    ("conv in_channels mismatch", "resnet20", spec_edit("conv1", "in_channels", 4), ("'conv1'", "in_channels")),
    ("conv out_channels 2^31-1", "resnet20", spec_edit("conv1", "out_channels", 2 ** 31 - 1),
     ("'conv1'", "out_channels")),
    ("conv out_channels true", "resnet20", spec_edit("conv1", "out_channels", True), ("'conv1'", "out_channels")),
    ("conv bias 'yes'", "resnet20", spec_edit("conv1", "bias", "yes"), ("'conv1'", "bias")),
    ("conv field missing", "resnet20", spec_edit("conv1", "kernel_size", ...), ("'conv1'", "kernel_size", "missing")),
    ("conv unknown field", "resnet20", spec_edit("conv1", "weights_only", False), ("'conv1'", "weights_only")),
    ("bn eps 0", "resnet20", spec_edit("bn1", "eps", 0), ("layer 'bn1' (BatchNorm2d)", "eps")),
    ("bn eps NaN", "resnet20", spec_edit("bn1", "eps", float("nan")), ("'bn1'", "eps")),
    ("bn num_features mismatch", "resnet20", spec_edit("bn1", "num_features", 17), ("'bn1'", "num_features")),
    ("linear in_features 0", "resnet20", spec_edit("linear", "in_features", 0),
     ("layer 'linear' (Linear)", "in_features")),
    ("linear in_features mismatch", "resnet20", spec_edit("linear", "in_features", 65), ("'linear'", "in_features")),
    ("linear out_features 10^7", "resnet20", spec_edit("linear", "out_features", 10 ** 7),
     ("'linear'", "out_features")),
    ("linear on a feature map", "resnet20", children_edit(lambda c: c.pop(-2)), ("'linear'", "feature map")),
    ("adaptive output 0", "resnet20", spec_edit("avgpool", "output_size", [0, 1]),
     ("layer 'avgpool' (AdaptiveAvgPool2d)", "output_size")),
    ("adaptive output 60000", "resnet20", spec_edit("avgpool", "output_size", 60000), ("'avgpool'", "output_size")),
    ("block stride 0", "resnet20", spec_edit("layer2.0", "stride", 0), ("layer 'layer2.0' (BasicBlock)", "stride")),
    ("block planes odd", "resnet20", spec_edit("layer2.0", "planes", 33), ("'layer2.0'", "planes")),
    ("block shortcut B", "resnet20", spec_edit("layer2.0", "shortcut", "B"), ("'layer2.0'", "shortcut")),
    ("unknown layer type", "resnet20", spec_edit("relu", "type", "Lambda"), ("'relu'", "unknown layer type")),
    ("relu with a field", "resnet20", spec_edit("relu", "inplace", True), ("layer 'relu' (ReLU)", "inplace")),
    ("a bare Add", "resnet20", spec_edit("relu", "type", "Add"), ("layer 'relu' (Add)",)),
    ("a child named twice", "resnet20", children_edit(lambda c: c.insert(3, ["relu", {"type": "ReLU"}])),
     ("children", "'relu' appears twice")),
    ("a child name with a dot", "resnet20", children_edit(lambda c: c.insert(3, ["a.b", {"type": "ReLU"}])),
     ("children", "'a.b'")),
    ("children not a list", "resnet20", spec_edit("layer1", "children", {"0": 1}), ("'layer1'", "children")),
    ("spec root not Sequential", "resnet20", meta_edit(spec={"type": "ReLU"}), ("'spec'", "Sequential")),
    ("nested 40 deep", "resnet20", nested(40), ("nested more than",)),
    ("5000 layers", "resnet20", children_edit(lambda c: c.extend([f"r{i}", {"type": "ReLU"}] for i in range(5000))),
     ("more than 4096 layers",)),
    ("pool kernel 0", "vgg", spec_edit("features.6", "kernel_size", 0),
     ("layer 'features.6' (MaxPool2d)", "kernel_size")),
    ("pool stride 0", "vgg", spec_edit("features.6", "stride", [0, 2]), ("'features.6'", "stride")),
    ("pool padding over half", "vgg", spec_edit("features.6", "padding", 2), ("'features.6'", "padding", "half")),
    ("dropout p 2", "vgg", spec_edit("classifier.2", "p", 2), ("layer 'classifier.2' (Dropout)", "p")),
    ("dropout p 'x'", "vgg", spec_edit("classifier.2", "p", "x"), ("'classifier.2'", "p")),
    ("inverted residual stride 3", "mobilenet", spec_edit("features.1", "stride", 3),
     ("layer 'features.1' (InvertedResidual)", "stride")),
    ("inverted residual expand 0", "mobilenet", spec_edit("features.2", "expand_ratio", 0),
     ("'features.2'", "expand_ratio")),
    ("inverted residual expand 10^6", "mobilenet", spec_edit("features.2", "expand_ratio", 10 ** 6),
     ("'features.2'", "expand_ratio")),
    ("inverted residual padding", "mobilenet", spec_edit("features.2", "padding", "reflect"),
     ("'features.2'", "padding")),
    ("zero padding negative", "mobilenet", spec_edit("features.0.pad", "padding", [0, -1, 0, 1]),
     ("layer 'features.0.pad' (ZeroPad2d)", "padding")),
    ("zero padding 10^6", "mobilenet", spec_edit("features.0.pad", "padding", 10 ** 6),
     ("'features.0.pad'", "padding")),
    ("option A pad -1", "resnet20", children_edit(lambda c: c.insert(1, ["s", {"type": "OptionAShortcut",
                                                                              "pad_channels": -1}])),
     ("layer 's' (OptionAShortcut)", "pad_channels")),
    ("input_size 60000x60000", "resnet20", meta_edit(input_size=[3, 60000, 60000]), ("input_size",)),
    ("input_size that costs 4 GB a layer", "resnet20", meta_edit(input_size=[3, 4096, 4096]),
     ("layer 'conv1' (Conv2d)", "per image", "over the limit")),
    ("cheap at 32x32, 4 GB at 512x512", "resnet20",
     children_edit(lambda c: c.insert(0, ["big", {"type": "Conv2d", "in_channels": 3, "out_channels": 3,
                                                  "kernel_size": 64, "padding": 32}])),
     ("at a 512x512 input", "layer 'big' (Conv2d)", "kernel_size", "over the limit")),
    ("input_size negative", "resnet20", meta_edit(input_size=[3, -32, 32]), ("input_size",)),
    ("input_size channels", "resnet20", meta_edit(input_size=[4, 32, 32]), ("'conv1'", "in_channels")),
    ("preprocessing std 0", "resnet20", meta_edit(preprocessing={"std": [0, 1, 1]}), ("'preprocessing'", "std")),
    ("preprocessing size 60000", "resnet20", meta_edit(preprocessing={"resize": "exact", "size": [60000, 60000]}),
     ("'preprocessing'",)),
    ("preprocessing resize_shorter 10^9", "resnet20", meta_edit(preprocessing={"resize_shorter": 10 ** 9}),
     ("'preprocessing'",)),
    ("accuracy not a table", "resnet20", meta_edit(accuracy=[1, 2]), ("'accuracy'",)),
    ("accuracy top1 text", "resnet20", meta_edit(accuracy={"top1": "high"}), ("'accuracy'", "top1")),
    ("name 10^4 characters", "resnet20", meta_edit(name="n" * 10000), ("'name'",)),
    ("provenance a list", "resnet20", meta_edit(provenance=[1]), ("'provenance'",)),
    # ---- row 11: poisoned content
    ("NaN weight", "resnet20", member_edit("conv1.weight", set_at(np.nan)),
     ("layer 'conv1' (Conv2d)", "weight", "NaN or infinity")),
    ("infinite bias", "resnet20", member_edit("linear.bias", set_at(np.inf)), ("'linear'", "bias", "NaN or infinity")),
    ("float64 overflowing float32", "resnet20", member_edit("linear.weight", set_at(1e39, np.float64)),
     ("'linear'", "weight", "NaN or infinity")),
    ("negative variance", "resnet20", member_edit("bn1.running_var", set_at(-1.0)), ("'bn1'", "running_var")),
    ("2 class names for 10 outputs", "resnet20", meta_edit(classes=["a", "b"]), ("'classes'", "2", "10 outputs")),
    ("70000 class names", "resnet20", meta_edit(classes=[str(i) for i in range(70000)]), ("'classes'",)),
    ("class name not text", "resnet20", meta_edit(classes=[1] * 10), ("'classes'",)),
    ("a second __meta__", "resnet20", duplicate("__meta__.npy"), ("'__meta__'", "twice")),
    ("a second copy of a weight", "resnet20", duplicate("conv1.weight.npy"), ("'conv1.weight'", "twice")),
    ("one weight under two names", "resnet20",
     lambda items: items + [("conv1.weight", dict(items)["conv1.weight.npy"])],
     ("'conv1.weight'", "twice")),
    ("a folder member", "resnet20", lambda items: items + [("dir/", b"")], ("'dir/'",)),
    ("__meta__ of 20 MB", "resnet20", meta_member(npy(np.zeros(20 << 20, np.uint8))), ("'__meta__'", "limit")),
    ("__meta__ header declaring 400 MB", "resnet20", lying_header, ("'__meta__'", "400,000,000 bytes")),
    ("__meta__ with data after it", "resnet20", trailing("__meta__.npy"), ("'__meta__'", "header describes")),
    ("a weight with data after it", "resnet20", trailing("linear.bias.npy"), ("'linear.bias'", "header describes")),
    ("__meta__ as float64", "resnet20", meta_member(npy(np.zeros(10))), ("'__meta__'", "dtype float64")),
    ("__meta__ as an object array", "resnet20", meta_member(npy(np.array([{}], object), allow_pickle=True)),
     ("'__meta__'", "pickled")),
    ("weight as an object array", "resnet20",
     member_edit("linear.bias", lambda a: npy(a.astype(object), allow_pickle=True)), ("'linear.bias'", "pickled")),
    ("weight as int32", "resnet20", member_edit("conv1.weight", lambda a: a.astype(np.int32)),
     ("layer 'conv1' (Conv2d)", "weight", "dtype int32", "quantization")),
    ("weight as complex", "resnet20", member_edit("conv1.weight", lambda a: a.astype(np.complex64)),
     ("'conv1'", "weight", "complex64")),
    ("weight as text", "resnet20", member_edit("linear.bias", lambda a: a.astype("U3")), ("'linear'", "bias", "<U3")),
    ("weight as a record", "resnet20", member_edit("linear.bias", lambda a: np.zeros(10, [("x", "f4")])),
     ("'linear'", "bias", "dtype")),
    ("weight of the wrong shape", "resnet20", member_edit("conv1.weight", lambda a: a[:, :, :, 0]),
     ("layer 'conv1' (Conv2d)", "weight", "shape")),
    ("weight with no place", "resnet20", lambda items: items + [("conv9.weight.npy", npy(np.zeros(3, np.float32)))],
     ("'conv9.weight'", "no place")),
    ("zero point 1e30", "quantised", quantization_edit(zero_point=1e30), ("zero point",)),
    ("zero point 256 for uint8", "quantised", quantization_edit(zero_point=256), ("zero point", "0..255")),
    ("scale 0", "quantised", quantization_edit(scale=0), ("scale",)),
    ("scale infinite", "quantised", quantization_edit(scale=float("inf")), ("scale",)),
    ("scale that overflows", "quantised", quantization_edit(scale=3e38), ("NaN or infinity",)),
    ("quantization of a missing array", "quantised",
     lambda items: with_meta(items, {**meta_of(items), "quantization": {
         **meta_of(items)["quantization"], "nothing.weight": {"scale": 1, "zero_point": 0}}}),
     ("'nothing.weight'", "does not hold")),
]


def _row(row, bases, tmp_path):
    name, base, edit, words = row
    path = write(tmp_path / "bad.npz", edit(list(bases[base])))
    return path, words


def one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith("minicnn: error: "), captured.err[-400:]
    assert "Traceback" not in captured.err
    return captured.err


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_a_hostile_weights_file_is_one_weights_error_naming_layer_and_field(row, bases, tmp_path, capsys):
    path, words = _row(row, bases, tmp_path)
    with pytest.raises(WeightsError) as e:
        weights.load(path)
    message = str(e.value)
    assert "\n" not in message and message.startswith(str(path)), message
    for word in words:
        assert word in message, (word, message)
    assert cli.main(["layers", "--model", str(path)]) == 2
    assert one_line_error(capsys) == f"minicnn: error: {message}\n"


@pytest.mark.parametrize("row", [r for r in ROWS if r[0] in ("conv stride 0", "NaN weight", "a second __meta__",
                                                                 "input_size 60000x60000", "zero point 1e30")],
                         ids=lambda r: r[0])
def test_explain_and_evaluate_refuse_it_and_write_nothing(row, bases, tmp_path, capsys):
    path, words = _row(row, bases, tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    image = next(CAT.iterdir())
    assert cli.main(["explain", str(image), "--model", str(path), "--out", str(tmp_path / "out.png")]) == 2
    err = one_line_error(capsys)
    assert all(w in err for w in words), err
    assert cli.main(["evaluate", "--model", str(path), "--limit", "5"]) == 2
    err = one_line_error(capsys)
    assert all(w in err for w in words), err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_the_real_command_line_prints_one_line_and_no_traceback(bases, tmp_path):
    path = write(tmp_path / "bad.npz", spec_edit("conv1", "stride", [0, 0])(list(bases["resnet20"])))
    run = subprocess.run([sys.executable, "-m", "minicnn.commands.cli", "layers", "--model", str(path)],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.count("\n") == 1 and "'conv1'" in run.stderr and "stride" in run.stderr


def test_a_zip_bomb_meta_is_refused_before_it_is_inflated(bases, tmp_path):
    """__meta__ honestly 400 MB of zeros, deflated to ~400 KB: refused from its header, memory stays small."""
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in bases["resnet20"]:
            if name != "__meta__.npy":
                z.writestr(name, data)
        header = np.lib.format.header_data_from_array_1_0(np.zeros(0, np.uint8))
        header["shape"] = (400_000_000,)
        with z.open("__meta__.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, header)
            block = bytes(1 << 22)
            for _ in range(400_000_000 // len(block)):
                f.write(block)
            f.write(bytes(400_000_000 % len(block)))
    assert path.stat().st_size < 3_000_000
    tracemalloc.start()
    try:
        with pytest.raises(WeightsError, match="'__meta__' declares 400,000,000 bytes, over the limit"):
            weights.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 << 20, peak


def test_a_good_file_still_loads_after_its_members_are_rewritten(bases, tmp_path):
    """The rows' own machinery changes nothing by itself: the unchanged members load to the same model."""
    for name in bases:
        path = write(tmp_path / f"{name}.npz", list(bases[name]))
        assert minicnn.load(path).num_parameters() > 0


def test_the_spec_walk_makes_exactly_the_layers_that_build_makes():
    """check_spec follows BasicBlock and InvertedResidual as their constructors build them (names and settings)."""
    models = [zoo.resnet20(), zoo.vgg_cifar(), zoo.mobilenet_v2(), fuzz_weights.tiny_mobilenet(),
              zoo.mobilenet_v2(padding="symmetric", settings=((1, 8, 1, 1), (2, 8, 2, 2), (3, 16, 1, 1)))]
    for model in models:
        summary = architecture.check_spec(model.spec(), model.input_size)
        assert summary.leaves == [(name, layer.spec()) for name, layer in model.layers()]
        assert summary.modules == len(model.layer_names) + 1
        assert summary.outputs == len(model.classes)
        x = np.zeros((1, *model.input_size), np.float32)
        assert model.forward(x).shape == (1, summary.outputs)


def test_caps_are_what_the_docstring_says():
    assert architecture.MAX_WINDOW == 64 and architecture.MAX_CLASSES == 65536
    vgg16 = zoo.build_architecture("vgg16_bn")
    assert architecture.check_spec(vgg16.spec(), vgg16.input_size).parameters < architecture.MAX_PARAMETERS


def test_save_refuses_what_load_would_refuse(tmp_path):
    model = zoo.resnet20()
    model.root.children()[0][1].params["weight"][0, 0, 0, 0] = np.nan
    with pytest.raises(WeightsError, match="'conv1' .*NaN"):
        weights.save(model, tmp_path / "nan.npz")
    model = zoo.resnet20()
    model.meta["classes"] = ["a", "b"]
    with pytest.raises(WeightsError, match="names 2 classes but the network has 10 outputs"):
        weights.save(model, tmp_path / "classes.npz")
    model = zoo.resnet20()
    model["conv1"].stride = (0, 0)
    with pytest.raises(WeightsError, match="'conv1' .*stride"):
        weights.save(model, tmp_path / "stride.npz")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- row 12 and the converters: TensorFlow Lite graphs

def output_classes(k):
    def edit(graph):
        for index in graph.outputs + [graph.operators[-2].outputs[0]]:
            t = graph.tensors[index]
            t.shape = (1, k)
        return graph
    return edit


def tensor_edit(pick, **fields):
    def edit(graph):
        t = pick(graph)
        for k, v in fields.items():
            setattr(t, k, v)
        return graph
    return edit


def option_edit(kind, **options):
    def edit(graph):
        op = next(o for o in graph.operators if o.kind == kind)
        op.options.update(options)
        return graph
    return edit


def operator_inputs(graph, i, inputs):
    graph.operators[i].inputs = inputs
    return graph


def first_weights(graph):
    return graph.tensors[graph.operators[0].inputs[1]]


def nan_float_weights(graph):
    t = graph.tensors[graph.operators[-3].inputs[1]]
    data = np.ones(t.shape, np.float32)
    data.flat[0] = np.nan
    t.data, t.dtype, t.scale, t.zero_point = data, "FLOAT32", None, None
    return graph


TFLITE_ROWS = [
    ("output declares 10^7 classes", output_classes(10 ** 7), ("output tensor", "10,000,000 classes")),
    ("output declares 2^31-1 classes", output_classes(2 ** 31 - 1), ("tensor", "2147483647")),
    ("output declares -5 classes", output_classes(-5), ("tensor", "-5")),
    ("a tensor of 2^40 elements", tensor_edit(lambda g: g.tensors[1], shape=(1, 1 << 20, 1 << 20, 3)),
     ("tensor", "elements")),
    ("input of 60000x60000", tensor_edit(lambda g: g.tensors[g.inputs[0]], shape=(1, 60000, 60000, 3)),
     ("tensor 'input'", "elements")),
    ("stride 0", option_edit("CONV_2D", stride=(0, 0)), ("operator 0 (CONV_2D)", "stride")),
    ("dilation 0", option_edit("DEPTHWISE_CONV_2D", dilation=(0, 1)), ("DEPTHWISE_CONV_2D", "dilation")),
    ("depth multiplier 0", option_edit("DEPTHWISE_CONV_2D", depth_multiplier=0), ("depth_multiplier",)),
    ("pool filter 0", option_edit("AVERAGE_POOL_2D", filter=(0, 0)), ("AVERAGE_POOL_2D", "filter")),
    ("zero point 1e30", tensor_edit(first_weights, zero_point=[1e30]), ("zero_point", "0..255")),
    ("zero point 300 for uint8", tensor_edit(first_weights, zero_point=[300]), ("zero_point", "0..255")),
    ("scale NaN", tensor_edit(first_weights, scale=[float("nan")]), ("scale",)),
    ("scale 0", tensor_edit(first_weights, scale=[0.0]), ("scale",)),
    ("3 scales for 4 channels", tensor_edit(first_weights, scale=[0.1] * 3, zero_point=[0] * 3), ("quantization",)),
    ("data of another shape", tensor_edit(first_weights, data=np.zeros((2, 2), np.uint8)), ("data has shape",)),
    ("weights that are not 4-D", tensor_edit(first_weights, shape=(4, 27), data=np.zeros((4, 27), np.uint8)),
     ("not 4-D",)),
    ("a tensor index out of range", lambda g: operator_inputs(g, 1, [g.operators[1].inputs[0], 999]),
     ("operator 1", "tensor indices")),
    ("NaN float weights", nan_float_weights, ("NaN or infinity",)),
]


@pytest.mark.parametrize("row", TFLITE_ROWS, ids=[r[0] for r in TFLITE_ROWS])
def test_a_hostile_tflite_graph_is_one_weights_error_before_allocating(row, tmp_path, monkeypatch, capsys):
    name, edit, words = row
    graph = edit(mini_mobilenet())
    tracemalloc.start()
    try:
        with pytest.raises(WeightsError) as e:
            convert_graph(graph, where="bad.tflite")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(e.value)
    assert "\n" not in message and all(w in message for w in words), message
    assert peak < 50 << 20, peak
    # the command line: exit 2, that one line, nothing written (the parser stood in for by the graph)
    source = tmp_path / "bad.tflite"
    source.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))
    monkeypatch.setattr(convert_tflite, "import_tflite", lambda: type(sys)("tflite"))
    monkeypatch.setattr(convert_tflite, "read_tflite", lambda path: edit(mini_mobilenet()))
    assert cli.main(["convert", str(source), "--out", str(tmp_path / "out.npz")]) == 2
    err = one_line_error(capsys)
    assert all(w in err for w in words), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tflite"]


class _Flat:
    """Stand-ins for the tflite parser's tensor, buffer and quantisation tables (the reader's side only)."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def __getattr__(self, name):
        value = self.__dict__.get("_" + name)
        if value is None:
            raise AttributeError(name)
        return value if callable(value) else (lambda *a: value)


def flat_tensor(shape, data_length=0, scales=0):
    buffer = _Flat(_DataLength=data_length, _DataAsNumpy=lambda: np.zeros(data_length, np.uint8))
    quant = _Flat(_ScaleLength=scales, _ZeroPointLength=scales, _ScaleAsNumpy=lambda: np.ones(scales),
                  _ZeroPointAsNumpy=lambda: np.zeros(scales, np.int64), _QuantizedDimension=0)
    tensor = _Flat(_Type=lambda: 0, _Name=lambda: b"logits", _ShapeLength=lambda: len(shape),
                   _ShapeAsNumpy=lambda: np.array(shape, np.int64), _Buffer=lambda: 1, _Quantization=lambda: quant)
    model = _Flat(_Buffers=lambda i: buffer)
    return model, tensor


@pytest.mark.parametrize("shape, data_length, scales, words", [
    ((1, 10 ** 7), 0, 0, None),                                       # read; refused by check_graph as an output
    ((1, 2 ** 31 - 1), 0, 0, "2147483647"),
    ((1, -5), 0, 0, "-5"),
    ((1 << 20, 1 << 20), 0, 0, "elements"),
    ((4, 3), 47, 0, "buffer holds 47 bytes"),
    ((4, 3), 48, 10 ** 9, "scales"),
    (tuple(range(1, 12)), 0, 0, "dimensions"),
])
def test_the_file_reader_checks_every_tensor_before_copying_it(shape, data_length, scales, words):
    model, tensor = flat_tensor(shape, data_length, scales)
    if words is None:
        assert tflite_read._read_tensor(model, tensor, {0: "FLOAT32"}).shape == shape
        return
    with pytest.raises(WeightsError, match=words) as e:
        tflite_read._read_tensor(model, tensor, {0: "FLOAT32"})
    assert "\n" not in str(e.value) and "'logits'" in str(e.value)
    with pytest.raises(WeightsError):
        check_shape("t", shape if words != "buffer holds 47 bytes" and words != "scales" else (0,))


def test_a_converted_model_that_passes_always_loads(tmp_path):
    model, quantized = convert_graph(mini_mobilenet(per_channel=True))
    path = weights.save(model, tmp_path / "mini.npz", quantized=quantized)
    assert minicnn.load(path).spec() == model.spec()


# ---------------------------------------------------------------- the fuzz run, small and seeded

@pytest.mark.parametrize("seed", [0, 1])
def test_a_small_seeded_fuzz_run_finds_no_traceback_hang_or_runaway_memory(seed, tmp_path):
    report = fuzz_weights.run(seed=seed, count=60, folder=tmp_path)
    assert report["failures"] == [], report["failures"][:3]
    assert report["refused"] + report["loaded"] == 60
    assert report["refused"] > 30                      # most mutations are hostile, and refused
    assert report["slowest_s"] < 5


# ---------------------------------------------------------------- the PyTorch converter

def resnet20_state():
    return {k: v.copy() for k, v in zoo.resnet20(seed=2).state_dict().items()}


@pytest.mark.parametrize("key, value, words", [
    ("conv1.weight", np.nan, ("layer 'conv1' (Conv2d)", "weight", "NaN")),
    ("linear.bias", -np.inf, ("layer 'linear' (Linear)", "bias", "NaN or infinity")),
    ("layer3.2.bn2.running_var", -4.0, ("layer 'layer3.2.bn2' (BatchNorm2d)", "running_var", "negative")),
])
def test_a_poisoned_checkpoint_is_refused_before_it_is_written(key, value, words):
    state = resnet20_state()
    state[key].flat[3] = value
    with pytest.raises(WeightsError) as e:
        convert.convert_state_dict(state, "resnet20")
    assert "\n" not in str(e.value) and all(w in str(e.value) for w in words), str(e.value)


@pytest.mark.torch
def test_convert_of_a_poisoned_checkpoint_exits_2_and_writes_nothing(tmp_path, capsys):
    import torch
    state = {k: torch.from_numpy(v) for k, v in resnet20_state().items()}
    state["conv1.weight"][0, 0, 0, 0] = float("nan")
    torch.save(state, tmp_path / "nan.pth")
    assert cli.main(["convert", str(tmp_path / "nan.pth"), "--arch", "resnet20", "--out", str(tmp_path / "o.npz")]) == 2
    err = one_line_error(capsys)
    assert "'conv1'" in err and "NaN" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.pth"]

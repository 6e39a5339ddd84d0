"""The TensorFlow Lite converter on small graphs built by hand (no tflite package needed).

Each converted model is compared with a direct run of the same graph in
TensorFlow's own layout (NHWC, SAME padding computed from TensorFlow's rule,
weights dequantised here), written independently of minicnn's layers.
"""

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import minicnn
from minicnn.commands import cli
from minicnn.errors import MissingDependencyError, WeightsError
from minicnn.inputs.preprocess import preprocess
from minicnn.layers import InvertedResidual, ZeroPad2d
from minicnn.models import content, weights
from minicnn.models.convert.tflite import convert_graph, same_padding
from minicnn.models.convert.tflite_read import Graph, Operator, Tensor, read_tflite


class GraphMaker:
    """Tensors and operators appended in order; quantised uint8 weights with random scales."""

    def __init__(self, h=8, w=8, seed=0):
        self.rng = np.random.default_rng(seed)
        self.tensors, self.ops = [], []
        self.current = self.tensor("input", (1, h, w, 3), "UINT8", scale=[1 / 128], zero=[128])
        self.inputs = [self.current]

    def tensor(self, name, shape, dtype="FLOAT32", data=None, scale=None, zero=None, axis=0):
        self.tensors.append(Tensor(name, tuple(shape), dtype, data, scale, zero, axis))
        return len(self.tensors) - 1

    def weights(self, name, shape, per_channel=False, axis=0):
        q = self.rng.integers(0, 256, shape).astype(np.uint8)
        n = shape[axis] if per_channel else 1
        scale = [float(np.float32(s)) for s in self.rng.uniform(0.005, 0.03, n)]    # TFLite stores float32
        zero = [int(z) for z in self.rng.integers(100, 156, n)]
        return self.tensor(name, shape, "UINT8", q, scale, zero, axis)

    def bias(self, name, n):
        return self.tensor(name, (n,), "INT32", self.rng.integers(-2000, 2000, n).astype(np.int32),
                           [float(np.float32(1e-4))], [0])

    def out_shape(self):
        return self.tensors[self.current].shape

    def op(self, kind, inputs, shape, **options):
        out = self.tensor(f"{kind.lower()}_{len(self.ops)}", shape)
        self.ops.append(Operator(kind, list(inputs), [out], options))
        self.current = out
        return out

    def conv(self, f, k=1, stride=1, act="RELU6", depthwise=False, padding="SAME", multiplier=1, per_channel=False):
        _, h, w, c = self.out_shape()
        if depthwise:
            wt = self.weights(f"dw_{len(self.ops)}/weights", (1, k, k, c * multiplier), per_channel, axis=3)
            f = c * multiplier
        else:
            wt = self.weights(f"conv_{len(self.ops)}/weights", (f, k, k, c), per_channel, axis=0)
        b = self.bias(f"b_{len(self.ops)}", f)
        if padding == "SAME":
            ho, wo = -(-h // stride), -(-w // stride)
        else:
            ho, wo = (h - k) // stride + 1, (w - k) // stride + 1
        options = dict(padding=padding, stride=(stride, stride), dilation=(1, 1), activation=act)
        if depthwise:
            options["depth_multiplier"] = multiplier
        return self.op("DEPTHWISE_CONV_2D" if depthwise else "CONV_2D", [self.current, wt, b], (1, ho, wo, f),
                       **options)

    def graph(self):
        return Graph(self.tensors, self.ops, self.inputs, [self.current])


def mini_mobilenet(h=8, w=8, per_channel=False) -> Graph:
    g = GraphMaker(h, w)
    g.conv(4, 3, stride=2)                                     # stem, SAME: pads (0, 1, 0, 1) on 8x8
    block_in = g.current
    g.conv(4, 3, depthwise=True)                               # block t=1, 4 -> 4, with its shortcut
    project = g.conv(4, 1, act="NONE")
    g.op("ADD", [project, block_in], g.out_shape(), activation="NONE")
    g.conv(8, 1, per_channel=per_channel)                      # block t=2, 4 -> 6, stride 2
    g.conv(8, 3, stride=2, depthwise=True)
    g.conv(6, 1, act="NONE")
    g.conv(10, 1)                                              # the last 1x1 conv
    _, hh, ww, c = g.out_shape()
    g.op("AVERAGE_POOL_2D", [g.current], (1, 1, 1, c), padding="VALID", stride=(1, 1), filter=(hh, ww),
         activation="NONE")
    g.conv(5, 1, act="NONE")                                   # the classifier
    g.op("RESHAPE", [g.current], (1, 5))
    g.op("SOFTMAX", [g.current], (1, 5))
    return g.graph()


# ---------------------------------------------------------------- an independent run of the graph (NHWC)

def dequantised(t: Tensor) -> np.ndarray:
    """scale * (q - zero_point), rounded to float32 (the arrays the model is defined by), as float64."""
    shape = [1] * t.data.ndim
    if len(t.scale) > 1:
        shape[t.axis] = len(t.scale)
    w = (t.data.astype(np.float64) - np.reshape(t.zero_point, shape)) * np.reshape(t.scale, shape)
    return w.astype(np.float32).astype(np.float64)


def run_graph(graph: Graph, x_nhwc: np.ndarray) -> np.ndarray:
    """The graph's logits (before SOFTMAX) in float64, computed the way TensorFlow defines each operator."""
    values = {graph.inputs[0]: x_nhwc}
    for op in graph.operators:
        a = values[op.inputs[0]]
        if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w, b = dequantised(graph.tensors[op.inputs[1]]), dequantised(graph.tensors[op.inputs[2]])
            k, s = w.shape[1], op.options["stride"][0]
            if op.options["padding"] == "SAME":
                out = -(-a.shape[1] // s), -(-a.shape[2] // s)
                total = [max((o - 1) * s + k - n, 0) for o, n in zip(out, a.shape[1:3])]
                a = np.pad(a, ((0, 0), (total[0] // 2, total[0] - total[0] // 2),
                               (total[1] // 2, total[1] - total[1] // 2), (0, 0)))
            win = sliding_window_view(a, (k, k), axis=(1, 2))[:, ::s, ::s]       # (N, Ho, Wo, C, k, k)
            if op.kind == "CONV_2D":
                y = np.einsum("nijcuv,fuvc->nijf", win, w) + b
            else:
                m = op.options["depth_multiplier"]
                y = np.einsum("nijcuv,uvcm->nijcm", win, w[0].reshape(k, k, -1, m)).reshape(*win.shape[:3], -1) + b
            act = op.options["activation"]
            y = np.clip(y, 0, 6) if act == "RELU6" else np.maximum(y, 0) if act == "RELU" else y
        elif op.kind == "ADD":
            y = a + values[op.inputs[1]]
        elif op.kind == "AVERAGE_POOL_2D":
            y = a.mean(axis=(1, 2), keepdims=True)
        elif op.kind == "RESHAPE":
            y = a.reshape(a.shape[0], -1)
        elif op.kind == "SOFTMAX":
            return a
        values[op.outputs[0]] = y
    return values[graph.outputs[0]].reshape(x_nhwc.shape[0], -1)


def pixels(graph, seed=1):
    _, h, w, _ = graph.tensors[graph.inputs[0]].shape
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ---------------------------------------------------------------- conversion

@pytest.mark.parametrize("per_channel", [False, True])
def test_a_mini_mobilenet_converts_to_the_same_function(per_channel):
    graph = mini_mobilenet(per_channel=per_channel)
    model, quantized = convert_graph(graph, meta={"name": "mini"})
    img = pixels(graph)
    x = preprocess(img, model.meta["preprocessing"], dtype=np.float64)
    np.testing.assert_allclose(x[0].transpose(1, 2, 0), (img - 128.0) / 128, atol=1e-12)
    want = run_graph(graph, (img[None].astype(np.float64) - 128) / 128)
    np.testing.assert_allclose(model.astype(np.float64).forward(x), want, rtol=1e-10, atol=1e-10)
    assert isinstance(model["features.1"], InvertedResidual) and "features.1.add" in model
    assert isinstance(model["features.0.pad"], ZeroPad2d) and model["features.0.pad"].padding == (0, 1, 0, 1)
    assert "features.2.conv.1.pad" in model and "features.2.add" not in model
    assert [n for n in model.layer_names if "." not in n] == ["features", "avgpool", "classifier", "flatten"]
    assert model.meta["source_names"]["features.2.conv.0.0"] == "conv_4/weights"
    assert set(quantized) == set(model.state_dict())
    assert model.meta["arch"] == "tflite"                   # not the full MobileNetV2
    if per_channel:
        assert len(quantized["features.2.conv.0.0.weight"][1]["scale"]) == 8


def test_quantised_arrays_round_trip_through_the_file(tmp_path):
    model, quantized = convert_graph(mini_mobilenet(per_channel=True))
    path = weights.save(model, tmp_path / "mini.npz", quantized=quantized)
    with np.load(path, allow_pickle=False) as z:
        assert z["features.0.0.weight"].dtype == np.uint8 and z["classifier.bias"].dtype == np.int32
    again = minicnn.load(path)
    for key, a in model.state_dict().items():
        assert np.array_equal(again.state_dict()[key], a), key
    assert "quantization" not in again.meta
    bad = dict(quantized)
    q, entry = bad["classifier.weight"]
    bad["classifier.weight"] = (q, {**entry, "scale": entry["scale"] * 2})
    with pytest.raises(WeightsError, match="does not dequantise"):
        weights.save(model, tmp_path / "bad.npz", quantized=bad)


@pytest.mark.parametrize("entry, words", [
    ({"scale": 0.1}, "needs 'scale' and 'zero_point'"),
    ({"scale": -0.1, "zero_point": 0}, "positive"),
    ({"scale": [0.1, 0.2], "zero_point": [0, 0], "axis": 0}, "as long as"),
    ({"scale": 0.1, "zero_point": 0.5}, "integers"),
])
def test_bad_quantization_entries_are_one_line(entry, words):
    with pytest.raises(WeightsError) as e:
        content.dequantize(np.zeros((3, 2), np.uint8), entry, "array 'w'")
    assert words in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(WeightsError, match="dtype float32"):
        content.dequantize(np.zeros(3, np.float32), {"scale": 0.1, "zero_point": 0})


def test_depthwise_multiplier_relu_and_valid_padding_as_plain_layers():
    g = GraphMaker(7, 7)
    g.conv(0, 3, depthwise=True, multiplier=2, act="RELU", padding="VALID")
    g.op("AVERAGE_POOL_2D", [g.current], (1, 1, 1, 6), padding="VALID", stride=(1, 1), filter=(5, 5),
         activation="NONE")
    g.conv(4, 1, act="NONE")
    graph = g.graph()
    model, _ = convert_graph(graph)
    img = pixels(graph)
    x = preprocess(img, model.meta["preprocessing"], dtype=np.float64)
    np.testing.assert_allclose(model.astype(np.float64).forward(x),
                               run_graph(graph, (img[None].astype(np.float64) - 128) / 128), rtol=1e-10, atol=1e-10)
    assert model["features.0.0"].groups == 3 and type(model["features.0.2"]).__name__ == "ReLU"
    assert "flatten" in model                                      # added: the logits are (N, K)


def test_same_padding_puts_the_odd_row_at_the_bottom():
    assert same_padding(224, 3, 2, 1) == (0, 1)        # 112 outputs need 225 rows
    assert same_padding(225, 3, 2, 1) == (1, 1)
    assert same_padding(7, 3, 1, 1) == (1, 1)
    assert same_padding(8, 1, 1, 1) == (0, 0)
    assert same_padding(8, 4, 1, 1) == (1, 2)


# ---------------------------------------------------------------- refusals, one line each

def test_unsupported_operators_are_named_in_one_line():
    graph = mini_mobilenet()
    graph.operators.insert(2, Operator("HARD_SWISH", [1], [1]))
    graph.operators.insert(3, Operator("MUL", [1, 1], [1]))
    graph.operators.insert(4, Operator("HARD_SWISH", [1], [1]))
    graph.operators[0].options["activation"] = "TANH"
    with pytest.raises(WeightsError) as e:
        convert_graph(graph, where="m.tflite")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("m.tflite uses operators minicnn cannot convert: ")
    assert "HARD_SWISH (2)" in msg and "MUL (1)" in msg and "CONV_2D with fused TANH (1)" in msg
    assert "supported: CONV_2D, DEPTHWISE_CONV_2D, ADD, AVERAGE_POOL_2D, RESHAPE, SOFTMAX" in msg


def test_odd_sizes_that_a_block_cannot_pad_are_refused():
    # On a 9x9 input the stride-2 block sees 5x5: SAME pads it (1, 1), not (0, 1).
    with pytest.raises(WeightsError, match="multiple of 32") as e:
        convert_graph(mini_mobilenet(9, 9))
    assert "\n" not in str(e.value)


def test_a_pool_that_is_not_global_and_a_missing_pool_are_refused():
    graph = mini_mobilenet()
    pool = next(op for op in graph.operators if op.kind == "AVERAGE_POOL_2D")
    pool.options["filter"] = (1, 1)
    with pytest.raises(WeightsError, match="global average"):
        convert_graph(graph)
    g = GraphMaker()
    g.conv(4, 3)
    with pytest.raises(WeightsError, match="no global average pooling"):
        convert_graph(g.graph())


def test_convert_without_tflite_installed_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "tflite", None)                  # import tflite -> ImportError
    model = tmp_path / "m.tflite"
    model.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))
    assert cli.main(["convert", str(model), "--out", str(tmp_path / "m.npz")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'minicnn[tflite]'" in err
    assert not (tmp_path / "m.npz").exists()
    with pytest.raises(MissingDependencyError):
        read_tflite(model)


def test_a_pytorch_checkpoint_still_needs_arch(tmp_path, capsys):
    ckpt = tmp_path / "m.pth"
    ckpt.write_bytes(b"PK\x03\x04")
    assert cli.main(["convert", str(ckpt), "--out", str(tmp_path / "m.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("minicnn: error: --arch is required for a PyTorch checkpoint") and err.count("\n") == 1

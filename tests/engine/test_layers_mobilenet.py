"""MobileNetV2's layers: grouped and depthwise convolution, ReLU6, ZeroPad2d, the inverted-residual block.

Each backward is proven by central differences in float64, each fast path
equals its reference loops in float64, and small cases are checked by hand.
"""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from strategies import away_from_kinks, grouped_conv_cases

from minicnn.errors import InputError
from minicnn.gradcheck import check_layer, check_model, relative_error
from minicnn.layers import Conv2d, InvertedResidual, ReLU, ReLU6, Sequential, ZeroPad2d
from minicnn.layers.conv import grouped_conv2d_backward, grouped_conv2d_forward
from minicnn.layers.depthwise import depthwise_conv2d_backward, depthwise_conv2d_forward
from minicnn.layers.grouped import (
    depthwise_conv2d_backward_reference,
    depthwise_conv2d_forward_reference,
    grouped_conv2d_backward_reference,
    grouped_conv2d_forward_reference,
)
from minicnn.layers.relu6 import RELU6_RULES
from minicnn.model import Model, build
from minicnn.models import zoo

TOL = 1e-7       # finite differences, float64
SAME = 1e-10     # fast path against reference, float64

#: A MobileNetV2 small enough for finite differences: stem 4, blocks (t, c, n, s), last 8, 3 classes.
TINY = dict(num_classes=3, settings=((1, 4, 1, 1), (2, 6, 2, 2), (3, 6, 1, 1)), first_channels=4, last_channels=8)


def grouped_layer(case, rng):
    layer = Conv2d(case["c"], case["f"], case["kernel"], case["stride"], case["padding"], case["dilation"],
                   bias=case["bias"], groups=case["groups"])
    layer.params["weight"] = rng.standard_normal(layer.params["weight"].shape)
    if case["bias"]:
        layer.params["bias"] = rng.standard_normal(case["f"])
    return layer


# ---------------------------------------------------------------- grouped and depthwise convolution

@given(grouped_conv_cases())
def test_grouped_conv_backward_matches_finite_differences(case):
    rng = np.random.default_rng(case["seed"])
    layer = grouped_layer(case, rng)
    x = rng.standard_normal((case["n"], case["c"], case["h"], case["w"]))
    errors = check_layer(layer, x, params=True, tol=TOL, seed=case["seed"])
    assert set(errors) == {"x", "weight"} | ({"bias"} if case["bias"] else set())


@given(grouped_conv_cases())
def test_grouped_conv_fast_path_equals_reference(case):
    rng = np.random.default_rng(case["seed"])
    g = case["groups"]
    x = rng.standard_normal((case["n"], case["c"], case["h"], case["w"]))
    w = rng.standard_normal((case["f"], case["c"] // g, *case["kernel"]))
    b = rng.standard_normal(case["f"]) if case["bias"] else None
    hyper = (case["stride"], case["padding"], case["dilation"], g)
    out = grouped_conv2d_forward(x, w, b, *hyper)
    assert relative_error(out, grouped_conv2d_forward_reference(x, w, b, *hyper)) < SAME
    dout = rng.standard_normal(out.shape)
    fast = grouped_conv2d_backward(dout, x, w, *hyper)
    ref = grouped_conv2d_backward_reference(dout, x, w, *hyper)
    for name, a, r in zip(("dx", "dw", "db"), fast, ref):
        assert a.shape == r.shape, name
        assert relative_error(a, r) < SAME, name
    dx_only = grouped_conv2d_backward(dout, x, w, *hyper, param_grads=False)
    assert dx_only[1] is None and np.array_equal(dx_only[0], fast[0])


@pytest.mark.parametrize("forward, backward", [
    (depthwise_conv2d_forward, depthwise_conv2d_backward),
    (depthwise_conv2d_forward_reference, depthwise_conv2d_backward_reference)])
def test_depthwise_known_answer(forward, backward):
    # Two channels, one 2x2 kernel each: channel 0 takes x[i,j] - x[i+1,j+1], channel 1 sums its window.
    x = np.stack([np.arange(1.0, 10.0).reshape(3, 3), np.ones((3, 3))])[None]      # (1, 2, 3, 3)
    w = np.array([[[[1.0, 0.0], [0.0, -1.0]]], [[[1.0, 1.0], [1.0, 1.0]]]])         # (2, 1, 2, 2)
    out = forward(x, w, np.array([0.5, 0.0]))
    np.testing.assert_allclose(out[0, 0], [[1 - 5 + 0.5, 2 - 6 + 0.5], [4 - 8 + 0.5, 5 - 9 + 0.5]])
    np.testing.assert_allclose(out[0, 1], np.full((2, 2), 4.0))
    dout = np.array([[[[1.0, 2.0], [3.0, 4.0]], [[1.0, 0.0], [0.0, 0.0]]]])
    dx, dw, db = backward(dout, x, w)
    # channel 0 as in the ordinary convolution's known answer; channel 1: dout[0,0] spread over its window
    np.testing.assert_allclose(dx[0, 0], [[1, 2, 0], [3, 4 - 1, -2], [0, -3, -4]])
    np.testing.assert_allclose(dx[0, 1], [[1, 1, 0], [1, 1, 0], [0, 0, 0]])
    np.testing.assert_allclose(dw[0, 0], [[1 + 4 + 12 + 20, 2 + 6 + 15 + 24], [4 + 10 + 21 + 32, 5 + 12 + 24 + 36]])
    np.testing.assert_allclose(dw[1, 0], np.ones((2, 2)))
    np.testing.assert_allclose(db, [10.0, 1.0])


def test_depthwise_is_an_ordinary_convolution_with_a_block_diagonal_kernel(rng):
    # groups = C is the same as groups = 1 with w_full[f, c] = w[f, 0] if c == f else 0.
    x = rng.standard_normal((2, 3, 6, 5))
    w = rng.standard_normal((3, 1, 3, 3))
    full = np.zeros((3, 3, 3, 3))
    full[np.arange(3), np.arange(3)] = w[:, 0]
    a = Conv2d(3, 3, 3, 2, 1, groups=3)
    b = Conv2d(3, 3, 3, 2, 1)
    a.params["weight"], b.params["weight"] = w, full
    a.params["bias"] = b.params["bias"] = rng.standard_normal(3)
    np.testing.assert_allclose(a.forward(x)[0], b.forward(x)[0], rtol=1e-12, atol=1e-12)
    dout = rng.standard_normal(a.forward(x)[0].shape)
    np.testing.assert_allclose(a.backward(dout, x)[0], b.backward(dout, x)[0], rtol=1e-12, atol=1e-12)


def test_depthwise_fast_path_builds_no_im2col(monkeypatch):
    # The depthwise path reads the input through a strided view: im2col is never called.
    from minicnn import windows
    from minicnn.layers import conv

    def refuse(*args, **kwargs):
        raise AssertionError("im2col called by the depthwise path")

    monkeypatch.setattr(windows, "im2col", refuse)
    monkeypatch.setattr(conv, "im2col", refuse)
    layer = Conv2d(8, 8, 3, 2, 1, groups=8)
    x = np.random.default_rng(0).standard_normal((1, 8, 10, 10)).astype(np.float32)
    out, cache = layer.forward(x)
    layer.backward(np.ones_like(out), cache, param_grads=True)


def test_groups_in_the_spec_and_bad_groups():
    assert "groups" not in Conv2d(4, 8, 3).config()                  # unchanged specs for groups=1
    layer = build(Conv2d(4, 8, 3, groups=4).spec())
    assert layer.groups == 4 and layer.params["weight"].shape == (8, 1, 3, 3)
    for bad, words in [(3, "must divide"), (0, "positive"), (1.5, "positive")]:
        with pytest.raises(InputError) as e:
            Conv2d(4, 8, 3, groups=bad)
        assert words in str(e.value) and "\n" not in str(e.value)


# ---------------------------------------------------------------- ReLU6

@given(st.integers(0, 2**32 - 1), st.sampled_from(["plain", "guided", "deconvnet"]))
def test_relu6_backward_matches_finite_differences(seed, rule):
    # Only the plain rule is a derivative; the FD proof is of that one, the others are checked by hand below.
    rng = np.random.default_rng(seed)
    x = away_from_kinks(rng, (2, 3, 4, 5))
    check_layer(ReLU6(), x, tol=TOL)
    out, cache = ReLU6().forward(x)
    dout = rng.standard_normal(out.shape)
    dx = ReLU6().backward(dout, cache, relu=rule)[0]
    assert dx.shape == x.shape and np.all(dx[(x < 0) & (rule != "deconvnet")] == 0)


def test_relu6_rules_known_answer():
    x = np.array([[-1.0, 2.0, 3.0, 7.0, 6.5, -4.0]])
    dout = np.array([[5.0, -6.0, 7.0, 8.0, -9.0, 1.0]])
    out, cache = ReLU6().forward(x)
    assert out.tolist() == [[0, 2, 3, 6, 6, 0]]
    assert ReLU6().backward(dout, cache, relu="plain")[0].tolist() == [[0, -6, 7, 0, 0, 0]]
    assert ReLU6().backward(dout, cache, relu="deconvnet")[0].tolist() == [[5, 0, 7, 8, 0, 1]]
    assert ReLU6().backward(dout, cache, relu="guided")[0].tolist() == [[0, 0, 7, 0, 0, 0]]
    # at the kinks themselves the derivative is taken as 0, as PyTorch's F.relu6
    assert ReLU6().backward(np.ones(2), np.array([0.0, 6.0]))[0].tolist() == [0, 0]
    with pytest.raises(InputError, match="unknown ReLU backward rule"):
        ReLU6().backward(dout, cache, relu="gudied")


@pytest.mark.parametrize("rule", sorted(RELU6_RULES))
def test_relu6_rules_equal_relus_below_six(rule, rng):
    x = rng.uniform(-3, 5.9, (3, 7))
    dout = rng.standard_normal(x.shape)
    ours = ReLU6().backward(dout, ReLU6().forward(x)[1], relu=rule)[0]
    theirs = ReLU().backward(dout, ReLU().forward(x)[1], relu=rule)[0]
    np.testing.assert_array_equal(ours, theirs)


# ---------------------------------------------------------------- ZeroPad2d

@given(st.tuples(*[st.integers(0, 3)] * 4), st.integers(0, 2**32 - 1))
def test_zeropad_backward_and_shape(padding, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 3, 4, 5))
    left, right, top, bottom = padding
    out, _ = ZeroPad2d(padding).forward(x)
    assert out.shape == (2, 3, top + 4 + bottom, left + 5 + right)
    np.testing.assert_array_equal(out[:, :, top:top + 4, left:left + 5], x)
    assert np.abs(out).sum() == pytest.approx(np.abs(x).sum())       # the border is zero
    check_layer(ZeroPad2d(padding), x, tol=TOL)


def test_zeropad_is_pytorchs_left_right_top_bottom():
    x = np.ones((1, 1, 2, 2))
    out, _ = ZeroPad2d((0, 1, 2, 3)).forward(x)                        # left, right, top, bottom
    assert out.shape == (1, 1, 7, 3) and out[0, 0, 2:4, 0:2].sum() == 4 and out[0, 0, :, 2].sum() == 0
    assert ZeroPad2d(1).padding == (1, 1, 1, 1)
    for bad in [(1, 2), (-1, 0, 0, 0), "same", (1.5, 0, 0, 0)]:
        with pytest.raises(InputError, match="left, right, top, bottom"):
            ZeroPad2d(bad)


def test_tf_same_padding_of_a_stride_2_convolution():
    # TensorFlow SAME, 3x3 stride 2 on an even size: out = H/2, one extra row and column at the bottom and right.
    x = np.zeros((1, 1, 6, 6))
    x[0, 0, 5, 5] = 1.0                                                 # reached only through the bottom-right padding
    pad, conv = ZeroPad2d((0, 1, 0, 1)), Conv2d(1, 1, 3, stride=2, bias=False)
    conv.params["weight"] = np.ones((1, 1, 3, 3))
    out = conv.forward(pad.forward(x)[0])[0]
    assert out.shape == (1, 1, 3, 3) and out[0, 0, 2, 2] == 1.0 and out.sum() == 1.0


# ---------------------------------------------------------------- the inverted-residual block and the network

@pytest.mark.parametrize("stride, expand, c_in, c_out", [(1, 2, 4, 4), (2, 3, 4, 6), (1, 1, 4, 6)])
def test_inverted_residual_block_backward(stride, expand, c_in, c_out, rng):
    block = InvertedResidual(c_in, c_out, stride, expand, "tf_same")
    model = random_biases(zoo.init_weights(Model(Sequential([("block", block)]), {"name": "block"}), seed=1), rng)
    x = rng.standard_normal((2, c_in, 6, 6))
    errors = check_model(model, x, wrt="block.conv", max_checks=60)
    assert max(errors.values()) < TOL
    names = set(model.layer_names)
    assert ("block.add" in names) == (stride == 1 and c_in == c_out)
    assert ("block.conv.1.pad" in names) == (stride == 2 and expand != 1)


def test_inverted_residual_adds_its_input_without_an_activation(rng):
    block = InvertedResidual(3, 3, 1, 2)
    model = Model(Sequential([("b", block)]))                           # all weights zero: the branch gives 0
    x = rng.standard_normal((1, 3, 5, 5)).astype(np.float32) * 10       # far below 0 and above 6
    model.forward(x)
    np.testing.assert_array_equal(model.activations["b"], x)            # no ReLU6 after the addition


def random_biases(model, rng):
    """Nonzero biases: a window of zeros (after a ReLU6) then gives the bias, not a value on the kink at 0."""
    for _, layer in model.layers():
        if "bias" in layer.params:
            layer.params["bias"] = rng.uniform(0.1, 0.5, layer.params["bias"].shape).astype(np.float32) \
                * rng.choice([-1, 1], layer.params["bias"].shape).astype(np.float32)
    return model


def test_tiny_mobilenet_v2_gradients_whole_network(rng):
    model = random_biases(zoo.mobilenet_v2(**TINY, seed=2), rng)
    x = rng.standard_normal((1, 3, 16, 16))
    errors = check_model(model, x, wrt="features.2", max_checks=40)
    assert max(errors.values()) < TOL and len(errors) == 2 + len(model.parameters())


def test_mobilenet_v2_names_blocks_and_stages():
    model = zoo.mobilenet_v2(**TINY)
    names = model.layer_names
    # blocks are features.1 .. features.4 here; the stem and the last conv are features.0 and features.5
    for name in ("features", "features.0", "features.0.pad", "features.0.0", "features.0.2", "features.1.conv.0.0",
                 "features.1.conv.1", "features.2.conv.1.pad", "features.2.conv.1.0", "features.3.add",
                 "features.5.0", "features.5.2", "avgpool", "classifier", "flatten"):
        assert name in names, name
    assert type(model["features.2"]).__name__ == "InvertedResidual"
    assert model["features.2.conv.1.0"].groups == 8                     # the depthwise convolution: 4 x t=2


@pytest.mark.parametrize("relu", ["plain", "guided", "deconvnet"])
def test_float32_stays_float32_through_mobilenet(relu, rng):
    model = zoo.mobilenet_v2(**TINY)
    x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    model.forward(x)
    dx = model.backward(np.eye(3, dtype=np.float32)[[0, 2]], relu=relu)
    assert dx.dtype == np.float32
    for name in model.layer_names:
        assert model.activations[name].dtype == np.float32, name
        assert model.gradients[name].dtype == np.float32, name


@given(grouped_conv_cases(), st.sampled_from([1, 40, 300]))
def test_depthwise_einsum_tier_in_bands_of_rows_is_the_same_sum(case, band_floats):
    # The einsum tier, in bands of one output row (and bands cut anywhere), gives the loops' answer.
    from minicnn.layers import grouped
    assume(case["groups"] == case["c"])                                 # depthwise
    rng = np.random.default_rng(case["seed"])
    c = case["c"]
    x = rng.standard_normal((case["n"], c, case["h"], case["w"]))
    w = rng.standard_normal((case["f"], 1, *case["kernel"]))
    hyper = (case["stride"], case["padding"], case["dilation"], c)
    original = grouped.BAND_FLOATS
    try:
        grouped.BAND_FLOATS = band_floats
        out = depthwise_conv2d_forward_reference(x, w, None, *hyper[:3])
        dout = rng.standard_normal(out.shape)
        dx = depthwise_conv2d_backward_reference(dout, x, w, *hyper[:3], param_grads=False)[0]
    finally:
        grouped.BAND_FLOATS = original
    assert relative_error(out, grouped_conv2d_forward_reference(x, w, None, *hyper)) < SAME
    assert relative_error(dx, grouped_conv2d_backward_reference(dout, x, w, *hyper)[0]) < SAME

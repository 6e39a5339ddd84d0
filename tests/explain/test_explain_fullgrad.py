"""FullGrad: completeness of the full-gradient decomposition (float64), the map, the recorded reference."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr
from test_explain_helpers import shipped

from minicnn import explain
from minicnn.explain.fullgrad import layer_bias, psi
from minicnn.inputs.preprocess import preprocess
from minicnn.layers import (
    AdaptiveAvgPool2d,
    AvgPool2d,
    BasicBlock,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    Linear,
    MaxPool2d,
    ReLU,
    Sequential,
)
from minicnn.model import Model

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def completeness_error(r) -> float:
    """max over images of |sum of every term - y^c|."""
    return float(np.abs(r.sum_of_terms() - r.scores).max())


# ---------------------------------------------------------------- completeness

@pytest.mark.parametrize("model_name", ["resnet20_cifar10", "vgg_cifar10"])
def test_completeness_on_the_shipped_models_for_every_class(model_name):
    model = shipped(model_name).astype(np.float64)
    image = explain.cat_dog_image()
    images = [image] if model_name.startswith("resnet") else [image[:, :32], image[:, 32:]]
    x = np.repeat(preprocess(images, model.meta["preprocessing"]).astype(np.float64), 10, axis=0)
    r = explain.fullgrad(model, x, np.tile(np.arange(10), len(images)))
    assert completeness_error(r) < 1e-9
    assert np.ptp(r.scores) > 1                                      # the classes' scores really differ
    bias_layers = [name for name, layer in model.layers() if layer_bias(layer, np.float64) is not None]
    assert list(r.bias_terms) == bias_layers
    if model_name.startswith("resnet"):                              # BatchNorm shifts and the dense bias
        assert len(bias_layers) == 20 and bias_layers[-1] == "linear"
    else:                                                            # six convolutions, two dense layers
        assert bias_layers == ["features.0", "features.3", "features.7", "features.10", "features.14",
                               "features.17", "classifier.0", "classifier.3"]


@st.composite
def piecewise_linear_networks(draw):
    """A random network of conv (with bias), BatchNorm, ReLU, max / average pooling, residual blocks, dense layers.

    Input 3 x 8 x 8; float64 parameters, BatchNorm with random statistics.
    """
    c, size, children = 3, 8, []
    for i in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["conv", "conv-bn", "block"] if c % 2 == 0 else ["conv", "conv-bn"]))
        if kind == "block":
            stride = draw(st.sampled_from([1, 2] if size >= 2 else [1]))
            children.append((f"block{i}", BasicBlock(c, 2 * c if stride == 2 else c, stride)))
            c, size = (2 * c, (size + 1) // 2) if stride == 2 else (c, size)
        else:
            f = draw(st.integers(1, 4))
            children.append((f"conv{i}", Conv2d(c, f, 3, padding=1)))
            if kind == "conv-bn":
                children.append((f"bn{i}", BatchNorm2d(f)))
            children.append((f"relu{i}", ReLU()))
            c = f
        pool = draw(st.sampled_from(["none", "max", "avg"] if size >= 2 else ["none"]))
        if pool != "none":
            children.append((f"pool{i}", MaxPool2d(2) if pool == "max" else AvgPool2d(2)))
            size //= 2
    if draw(st.booleans()):
        children.append(("gap", AdaptiveAvgPool2d(1)))
        size = 1
    children += [("flatten", Flatten()), ("fc1", Linear(c * size * size, 6)), ("relu_fc", ReLU()),
                 ("drop", Dropout()), ("fc2", Linear(6, 4))]
    model = Model(Sequential(children), {"name": "random", "input_size": [3, 8, 8]})
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    for _, layer in model.layers():
        for store in (layer.params, layer.buffers):
            for k, a in store.items():
                store[k] = rng.uniform(0.5, 1.5, a.shape) if k == "running_var" else rng.standard_normal(a.shape)
    return model, rng.standard_normal((2, 3, 8, 8)), rng.integers(0, 4, 2)


@settings(max_examples=40)
@given(case=piecewise_linear_networks())
def test_completeness_on_random_piecewise_linear_networks(case):
    model, x, targets = case
    r = explain.fullgrad(model, x, targets.tolist())
    assert completeness_error(r) < 1e-9 * max(1.0, np.abs(r.scores).max())


def test_completeness_fails_without_the_bias_terms():
    model = shipped("resnet20_cifar10").astype(np.float64)
    x = preprocess(explain.cat_dog_image(), model.meta["preprocessing"]).astype(np.float64)
    r = explain.fullgrad(model, x)
    input_only = r.input_term.sum()
    assert abs(input_only - r.scores[0]) > 0.1                       # the input gradient alone does not add up


# ---------------------------------------------------------------- the map

def test_psi_scales_each_channel_map_then_upsamples():
    m = np.array([[[[1.0, -3.0], [2.0, 0.0]], [[5.0, 5.0], [5.0, 5.0]]]])  # one channel, then a constant one
    out = psi(m, (2, 2))
    np.testing.assert_allclose(out[0, 0], [[1 / 3, 1.0], [2 / 3, 0.0]])   # |m| = [[1, 3], [2, 0]] / 3
    np.testing.assert_array_equal(out[0, 1], np.zeros((2, 2)))             # constant: 0
    np.testing.assert_allclose(psi(m, (4, 4), 1e-7)[0, 0, 0, 0], 1 / (3 + 1e-7))
    assert psi(m, (4, 4)).shape == (1, 2, 4, 4)


def full_resolution_network(seed=0):
    """conv -> BatchNorm -> ReLU -> conv -> ReLU -> GAP -> dense on 3x6x7: every 4-D term at the input's size,
    so psi needs no upsampling and the whole map can be written down without this module."""
    rng = np.random.default_rng(seed)
    bn = BatchNorm2d(2)
    model = Model(Sequential([("conv0", Conv2d(3, 2, 3, padding=1)), ("bn", bn), ("relu0", ReLU()),
                              ("conv1", Conv2d(2, 3, 3, padding=1)), ("relu1", ReLU()),
                              ("avgpool", AdaptiveAvgPool2d(1)), ("flatten", Flatten()), ("fc", Linear(3, 2))]),
                  {"name": "full", "classes": ["a", "b"], "input_size": [3, 6, 7]})
    for _, layer in model.layers():
        for k, p in layer.params.items():
            layer.params[k] = rng.standard_normal(p.shape) * 0.7
    bn.buffers["running_mean"], bn.buffers["running_var"] = rng.standard_normal(2), rng.uniform(0.3, 3.0, 2)
    return model


def test_the_map_is_the_sum_of_the_scaled_terms_scaled_to_0_1_by_hand():
    model = full_resolution_network()
    x = np.random.default_rng(1).standard_normal((2, 3, 6, 7))
    r = explain.fullgrad(model, x, [0, 1])                      # a class per image
    bn = model["bn"]
    shift = bn.params["bias"] - bn.buffers["running_mean"] * bn.params["weight"] / np.sqrt(
        bn.buffers["running_var"] + bn.eps)
    total = np.zeros((2, 6, 7))
    for i, c in enumerate([0, 1]):
        y = model.forward(x[i:i + 1])
        seed = np.zeros_like(y)
        seed[0, c] = 1
        dx = model.backward(seed)[0]
        g = model.gradients
        terms = [dx * x[i], g["conv0"][0] * model["conv0"].params["bias"][:, None, None],
                 g["bn"][0] * shift[:, None, None], g["conv1"][0] * model["conv1"].params["bias"][:, None, None]]
        dense = g["fc"][0] * model["fc"].params["bias"]
        assert abs(sum(t.sum() for t in terms) + dense.sum() - y[0, c]) < 1e-12      # completeness
        for term in terms:
            for channel in np.abs(term):                        # |term| scaled to [0, 1] channel by channel
                total[i] += (channel - channel.min()) / (channel.max() - channel.min())
    assert (total.min(axis=(1, 2)) > 0).all()                   # so the final scaling must subtract it
    lo, hi = total.min(axis=(1, 2), keepdims=True), total.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(r.map, (total - lo) / (hi - lo), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(r.sum_of_terms(), r.scores, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("model_name", ["resnet20_cifar10", "vgg_cifar10"])
def test_fullgrad_matches_pytorch_grad_cam(model_name):
    model = shipped(model_name)
    with np.load(FIXTURES / f"cam_family_{model_name}.npz", allow_pickle=False) as f:
        x, targets, expected = f["x"], f["targets"], f["fullgrad.map"]
    r = explain.fullgrad(model, x, targets, eps=1e-7)
    for i in range(len(x)):
        assert spearmanr(r.map[i].ravel(), expected[i].ravel())[0] > 0.99
    assert np.abs(r.map - expected).max() < 1e-4                    # OpenCV's resize agrees with ours here
    literal = explain.fullgrad(model, x, targets)
    assert np.abs(literal.map - r.map).max() < 1e-3

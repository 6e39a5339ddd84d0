"""What each attribution method claims, proven on random small networks (float64) and by hand.

- Integrated Gradients: completeness, sum(IG) = y^c(x) - y^c(x'), up to the
  quadrature's error, which vanishes as the steps grow; exact on a linear model.
- LRP: LRP-0 is Input x Gradient on bias-free ReLU networks; relevance is
  conserved layer by layer up to what each layer's bias and epsilon absorb
  (the bookkeeping is asserted, layer by layer, to rounding); z+ relevance
  is never negative; each rule's value on one dense unit, by hand.
- SmoothGrad with zero noise is its base method.
"""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from strategies import network_cases

from minicnn import explain
from minicnn.explain import registry
from minicnn.explain.integrated_gradients import QUADRATURES
from minicnn.explain.lrp import Composite, base_map, composite_epsilon
from minicnn.explain.lrp_rules import AlphaBeta, Epsilon, Flat, Gamma, Pass, ZBox, ZPlus, stabilize
from minicnn.layers import (
    AdaptiveAvgPool2d,
    AvgPool2d,
    BasicBlock,
    BatchNorm2d,
    Conv2d,
    Flatten,
    Layer,
    Linear,
    MaxPool2d,
    ReLU,
    Sequential,
)
from minicnn.layers.norm import fold_into_conv
from minicnn.model import Model


class Softplus(Layer):
    """out = log(1 + e^x), dx = dout * sigmoid(x): a smooth activation, so the path integral is smooth."""

    def forward(self, x):
        return np.logaddexp(0, x), x

    def backward(self, dout, cache, param_grads=False, relu="plain"):
        return dout / (1 + np.exp(-cache)), {}


def network(case, *, bias=True, smooth=False):
    """The float64 network a ``network_cases`` example describes, with random weights, and a random input.

    ``smooth``: Softplus for ReLU and average for max pooling, so nothing in it has a kink.
    """
    activation = Softplus if smooth else ReLU
    rng = np.random.default_rng(case["seed"])
    children, c, h = [], case["channels"], case["size"]
    for i, (f, k, pool) in enumerate(case["stages"]):
        k = min(k, h)
        children += [(f"conv{i}", Conv2d(c, f, k, padding=(k - 1) // 2, bias=bias)), (f"act{i}", activation())]
        c, h = f, h + 2 * ((k - 1) // 2) - k + 1
        if pool in ("max", "avg") and h >= 2:
            children.append((f"pool{i}", (MaxPool2d if pool == "max" and not smooth else AvgPool2d)(2)))
            h //= 2
        elif pool == "gap":
            children.append((f"pool{i}", AdaptiveAvgPool2d(1)))
            h = 1
    children += [("flatten", Flatten()), ("fc0", Linear(c * h * h, case["hidden"], bias=bias)),
                 ("act_fc", activation()), ("fc1", Linear(case["hidden"], case["classes"], bias=bias))]
    model = Model(Sequential(children), {"name": "random", "classes": [f"c{i}" for i in range(case["classes"])]})
    for _, layer in model.layers():
        for key, p in layer.params.items():
            scale = 1 / np.sqrt(p[0].size) if key == "weight" else 0.3
            layer.params[key] = rng.standard_normal(p.shape) * scale
    x = rng.standard_normal((case["n"], case["channels"], case["size"], case["size"]))
    return model, x


def per_image(a):
    return a.reshape(a.shape[0], -1).sum(axis=1)


# ---------------------------------------------------------------- Integrated Gradients

@settings(max_examples=12)
@given(network_cases())
def test_integrated_gradients_gap_vanishes_as_the_steps_grow(case):
    """On a smooth network the integrand is smooth: 256 Gauss-Legendre points leave a gap below 1e-6.

    (With ReLUs or max pooling the integrand is a step function along the path
    and the gap falls only about as 1/steps: lesson 12 measures it on ResNet-20.)
    """
    model, x = network(case, smooth=True)
    baseline = np.random.default_rng(case["seed"] + 1).standard_normal(x.shape)
    for quadrature in QUADRATURES:
        counts = (4, 256) if quadrature == "gausslegendre" else (8, 64)
        gaps = [np.abs(explain.integrated_gradients(model, x, 0, baseline=baseline, steps=steps,
                                                    quadrature=quadrature).gap).max() for steps in counts]
        assert gaps[1] <= max(gaps[0], 1e-12), (quadrature, gaps)
        if quadrature == "gausslegendre":
            assert gaps[1] < 1e-6, gaps


@settings(max_examples=30)
@given(st.integers(0, 2**32 - 1), st.sampled_from(QUADRATURES), st.integers(2, 20))
def test_integrated_gradients_of_a_linear_model_is_the_difference_times_the_weights(seed, quadrature, steps):
    rng = np.random.default_rng(seed)
    fc = Linear(12, 3)
    fc.params = {"weight": rng.standard_normal((3, 12)), "bias": rng.standard_normal(3)}
    model = Model(Sequential([("flatten", Flatten()), ("fc", fc)]), {"name": "linear"})
    x, x0 = rng.standard_normal((2, 3, 2, 2)), rng.standard_normal((2, 3, 2, 2))
    target = rng.integers(0, 3, 2)
    r = explain.integrated_gradients(model, x, target, baseline=x0, steps=steps, quadrature=quadrature)
    w = fc.params["weight"][target].reshape(x.shape)
    np.testing.assert_allclose(r.map, (x - x0) * w, rtol=1e-13, atol=0)
    np.testing.assert_allclose(r.gap, 0, atol=1e-12 * np.abs((x - x0) * w).sum())


# ---------------------------------------------------------------- LRP: identities and bookkeeping

def lrp_zero():
    return Composite("zero", base_map(0.0) + ((Conv2d, Epsilon(0.0)), (Linear, Epsilon(0.0))))


def z_plus(stabilizer=1e-6):
    return Composite("z-plus", base_map(stabilizer) + ((Conv2d, ZPlus(stabilizer)), (Linear, ZPlus(stabilizer))))


@given(network_cases())
def test_lrp_0_on_a_bias_free_relu_network_is_input_times_gradient(case):
    model, x = network(case, bias=False)
    r = explain.lrp(model, x, 0, lrp_zero())
    ixg = explain.input_x_gradient(model, x, 0)
    scale = max(np.abs(ixg.map).max(), 1e-300)
    np.testing.assert_allclose(r.map, ixg.map, rtol=0, atol=1e-9 * scale)
    # and both add up to the score (Euler: a bias-free ReLU network is positively homogeneous)
    np.testing.assert_allclose(per_image(ixg.map), ixg.scores, rtol=1e-9, atol=1e-12)


def bias_of(layer, z, part=lambda b: b):
    """The layer's bias (after ``part``) shaped to broadcast over its output z; 0 without one."""
    b = layer.params.get("bias")
    if b is None:
        return 0.0
    return part(b).reshape((1, -1) + (1,) * (z.ndim - 2))


def absorbed(rule, layer, x, R):
    """Relevance a rule keeps from R, per image: sum_j s_j (b_j + eps sign z_j), s = R / (z + eps sign z).

    An independent account of each rule's denominator: Epsilon (and Norm)
    divide by z = W x + b, ZPlus by z+ = W+ x+ + W- x- + b+ (>= 0). Pass and
    the gradient (max pooling, flatten) keep nothing.
    """
    if isinstance(rule, Epsilon):
        z, eps = layer.forward(x)[0], rule.epsilon
        kept = bias_of(layer, z) + np.where(z >= 0, eps, -eps)
    elif isinstance(rule, ZPlus):
        w = layer.params["weight"]
        z = _apply(layer, np.maximum(w, 0), np.maximum(x, 0)) + _apply(layer, np.minimum(w, 0), np.minimum(x, 0))
        z = z + bias_of(layer, z, lambda b: np.maximum(b, 0))
        eps = rule.stabilizer
        kept = bias_of(layer, z, lambda b: np.maximum(b, 0)) + np.where(z >= 0, eps, -eps)
    else:
        return np.zeros(R.shape[0])
    return per_image(R / stabilize(z, eps) * kept)


def _apply(layer, w, x):
    """The layer's linear map with weights w and no bias, at x."""
    from minicnn.layers.conv import conv2d_forward
    if isinstance(layer, Conv2d):
        return conv2d_forward(x, w, None, layer.stride, layer.padding, layer.dilation)
    return x @ w.T


def check_bookkeeping(model, relevance, rules):
    """Layer by layer, last to first: sum R_in = sum R_out - absorbed, per image, to rounding."""
    names = [name for name, _ in model.layers()]
    kept_in_all = np.zeros(relevance.shape[0])
    for k, (name, layer) in enumerate(model.layers()):
        R_out = model.gradients[name]
        R_in = relevance if k == 0 else model.gradients[names[k - 1]]
        kept = absorbed(rules.get(name), layer, model.inputs[name], R_out)
        scale = per_image(np.abs(R_in)) + per_image(np.abs(R_out)) + np.abs(kept)
        assert np.all(np.abs(per_image(R_in) - (per_image(R_out) - kept)) <= 1e-11 * scale + 1e-300), name
        kept_in_all += kept
    return kept_in_all


@given(network_cases(), st.sampled_from([1e-6, 0.1, 1.0]))
def test_epsilon_relevance_is_conserved_layer_by_layer_up_to_biases_and_epsilon(case, eps):
    model, x = network(case)
    composite = composite_epsilon(eps, stabilizer=eps)
    r = explain.lrp(model, x, 0, composite)
    kept = check_bookkeeping(model, r.map, composite.rules(model))
    # and over the whole network: the relevance that reaches x is y^c less what every layer absorbed
    np.testing.assert_allclose(per_image(r.map), r.scores - kept, rtol=1e-9,
                               atol=1e-11 * (np.abs(r.scores) + np.abs(kept)).max())


@given(network_cases())
def test_z_plus_relevance_is_conserved_and_never_negative_where_the_input_is_not(case):
    model, x = network(case)
    scores = model.forward(x).max(axis=1)
    assume(np.all(scores > 0))                               # R starts as y^c > 0
    composite = z_plus()
    r = explain.lrp(model, x, None, composite)
    check_bookkeeping(model, r.map, composite.rules(model))
    names = [name for name, _ in model.layers()]
    for k, (name, _) in enumerate(model.layers()):
        R_in = r.map if k == 0 else model.gradients[names[k - 1]]
        if np.all(model.inputs[name] >= 0):                # after a ReLU, or pooling of one
            assert R_in.min() >= 0, name
    assert r.map.min() >= 0                                  # z+ shares x- W- > 0 too: the input's is >= 0 as well


# ---------------------------------------------------------------- LRP: each rule by hand

def dense_unit():
    """One output z = 1*1 + (-2)*2 + 3*(-1) + 0.5 = -5.5 of x = (1, 2, -1), w = (1, -2, 3), b = 0.5."""
    layer = Linear(3, 1)
    layer.params = {"weight": np.array([[1.0, -2.0, 3.0]]), "bias": np.array([0.5])}
    return layer, np.array([[1.0, 2.0, -1.0]])


@pytest.mark.parametrize("rule, expected", [
    (Epsilon(0.0), np.array([1, -4, -3]) / -5.5),                 # x_i w_i / z
    (Epsilon(0.5), np.array([1, -4, -3]) / -6.0),                 # z - 0.5 (eps with the sign of z)
    (ZPlus(0.0), np.array([1, 0, 0]) / 1.5),                      # only x1 w1 = 1 > 0; z+ = 1 + b+ = 1.5
    (AlphaBeta(2.0, 1.0, 0.0), 2 * np.array([1, 0, 0]) / 1.5 - np.array([0, -4, -3]) / -7.0),
    (Gamma(0.25, 0.0), np.array([1, -5, -3.75]) / -7.25),         # z < 0: W + 0.25 W- on x+, W + 0.25 W+ on x-
    (Flat(0.0), np.full(3, 1 / 3)),                               # equal shares
    (ZBox(-1.0, 2.0, 0.0), np.array([1, 0, 0])),                  # (xw - l w+ - h w-) / 2 = (2, 0, 0) / 2
    (Pass(), None),
])
def test_each_rule_on_one_dense_unit_by_hand(rule, expected):
    layer, x = dense_unit()
    R = np.array([[1.0]])
    out = rule(layer, x, R)
    if expected is None:
        assert out is R
    else:
        np.testing.assert_allclose(out, expected[None], rtol=1e-14, atol=1e-15)
    assert layer.params["weight"].tolist() == [[1.0, -2.0, 3.0]]    # weights are modified on a copy only


def test_gamma_with_a_positive_output_and_the_stabiliser_by_hand():
    layer, x = dense_unit()
    layer.params["bias"] = np.array([7.0])                     # z = 1.5 > 0
    # z > 0: W + 0.25 W+ = (1.25, -2, 3.75) on x+ = (1, 2, 0), W + 0.25 W- = (1, -2.5, 3) on x- = (0, 0, -1)
    # contributions (1.25, -4, -3), bias 7 + 0.25 * 7 = 8.75: denominator 3.0 (+ 0.5 stabiliser)
    np.testing.assert_allclose(Gamma(0.25, 0.5)(layer, x, np.array([[2.0]])), [[1.25 * 2 / 3.5, -8 / 3.5, -6 / 3.5]])


def test_the_residual_addition_splits_relevance_in_proportion_to_the_summands():
    rng = np.random.default_rng(0)
    block = BasicBlock(2, 2)
    model = Model(Sequential([("block", block), ("gap", AdaptiveAvgPool2d(1)), ("flatten", Flatten()),
                              ("fc", Linear(2, 2))]), {"name": "block"})
    for _, layer in model.layers():
        for key in list(layer.params) + list(layer.buffers):
            store = layer.params if key in layer.params else layer.buffers
            store[key] = rng.uniform(0.5, 1.5, store[key].shape) if key == "running_var" else \
                rng.standard_normal(store[key].shape)
    x = rng.standard_normal((1, 2, 4, 4))
    r = explain.lrp(model, x, 0, "epsilon-plus")
    a, b = model.inputs["block.add"]
    s = model.gradients["block.add"] / stabilize(a + b, 1e-6)
    np.testing.assert_allclose(model.gradients["block.bn2"], a * s, rtol=1e-12)
    np.testing.assert_allclose(model.gradients["block.shortcut"], b * s, rtol=1e-12)
    assert r.rules["block.add"].startswith("Norm") and "merged into block.conv2" in r.rules["block.bn2"]


@pytest.mark.parametrize("composite", ["epsilon", "epsilon-plus", "epsilon-gamma-box", "epsilon-alpha2-beta1",
                                       "epsilon-plus-flat"])
def test_batchnorm_is_merged_into_the_convolution_before_it(composite):
    rng = np.random.default_rng(1)
    conv, bn = Conv2d(3, 4, 3, padding=1, bias=False), BatchNorm2d(4)
    conv.params["weight"] = rng.standard_normal((4, 3, 3, 3))
    bn.params = {"weight": rng.standard_normal(4), "bias": rng.standard_normal(4)}      # gamma < 0 too
    bn.buffers = {"running_mean": rng.standard_normal(4), "running_var": rng.uniform(0.5, 2, 4)}
    fc = Linear(4, 3)
    fc.params = {"weight": rng.standard_normal((3, 4)), "bias": rng.standard_normal(3)}
    tail = [("relu", ReLU()), ("gap", AdaptiveAvgPool2d(1)), ("flatten", Flatten()), ("fc", fc)]
    meta = {"name": "bn", "preprocessing": {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.3, 0.25]}}
    with_bn = Model(Sequential([("conv", conv), ("bn", bn), *tail]), meta)
    folded = Conv2d(3, 4, 3, padding=1)
    w, b = fold_into_conv(conv.params["weight"], None, bn.params["weight"], bn.params["bias"],
                          bn.buffers["running_mean"], bn.buffers["running_var"], bn.eps)
    folded.params = {"weight": w, "bias": b}
    without = Model(Sequential([("conv", folded), *tail]), meta)
    x = rng.standard_normal((2, 3, 5, 5))
    np.testing.assert_allclose(explain.lrp(with_bn, x, 0, composite).map, explain.lrp(without, x, 0, composite).map,
                               rtol=1e-10, atol=1e-12)


def test_max_pooling_passes_relevance_to_the_first_maximum_of_each_window():
    fc = Linear(1, 1, bias=False)
    fc.params["weight"] = np.array([[2.0]])
    model = Model(Sequential([("pool", MaxPool2d(2)), ("flatten", Flatten()), ("fc", fc)]), {"name": "pool"})
    x = np.array([[[[1.0, 3.0], [3.0, 0.5]]]])                # a tie: PyTorch routes to the first (row-major)
    r = explain.lrp(model, x, 0, "epsilon")
    np.testing.assert_allclose(r.map, [[[[0.0, 6.0 * 6 / (6 + 1e-6)], [0.0, 0.0]]]])


# ---------------------------------------------------------------- SmoothGrad

@settings(max_examples=20)
@given(network_cases(), st.sampled_from(["saliency", "input-x-gradient", "guided-backprop", "deconvnet",
                                         "integrated-gradients"]))
def test_smoothgrad_with_zero_noise_is_its_base_method(case, base):
    model, x = network(case)
    t = [k % model.forward(x).shape[1] for k in range(len(x))]          # a class per image
    m = registry.get(base).run(model, x, t).map
    kw = dict(base=base, samples=3)
    np.testing.assert_allclose(explain.smoothgrad(model, x, t, noise_level=0.0, **kw).map, m, rtol=1e-13, atol=0)
    zeros = np.zeros((3, *x.shape))
    np.testing.assert_allclose(explain.smoothgrad(model, x, t, noise=zeros, base=base).map, m, rtol=1e-13, atol=0)
    np.testing.assert_allclose(explain.smoothgrad_squared(model, x, t, noise=zeros, base=base).map, m * m,
                               rtol=1e-13, atol=0)
    np.testing.assert_allclose(explain.vargrad(model, x, t, noise=zeros, base=base).map, 0,
                               atol=1e-13 * max((m * m).max(), 1e-300))

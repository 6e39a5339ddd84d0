"""Excitation Backprop and contrastive MWP: a network worked by hand, each layer's rule, the winning probability
conserved layer by layer (hypothesis, small random networks), and TorchRay 1.0.0.2's maps on both CIFAR models.

The fixtures ``tests/fixtures/excitation_<model>.npz`` are recorded by
``weights/recipes/make_excitation_fixtures.py`` (TorchRay on the PyTorch twin, float32).
"""

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_explain_helpers import shipped

from minicnn import explain
from minicnn.explain.excitation import Contrastive, Excitation, classifier_layer, excitation_rules
from minicnn.explain.lrp import stages_of
from minicnn.explain.lrp_rules import Norm, Pass, ZPlus, modified
from minicnn.explain.target import onehot
from minicnn.layers import (
    AdaptiveAvgPool2d,
    Add,
    AvgPool2d,
    BasicBlock,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    InvertedResidual,
    Linear,
    MaxPool2d,
    OptionAShortcut,
    ReLU,
    ReLU6,
    Sequential,
    ZeroPad2d,
)
from minicnn.model import Model

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


# ---------------------------------------------------------------- a network worked by hand

def hand_model(fc_bias=(0.0, 0.0)):
    """x (1, 1, 2, 2) -> conv 1x1, filters w = 1 and 2, no bias -> ReLU "relu" -> flatten -> Linear W (2 x 8) "fc".

    For x = [[1, 2], [0, 3]] >= 0: A^1 = x, A^2 = 2x, flattened a = (1, 2, 0, 3, 2, 4, 0, 6).
    """
    conv = Conv2d(1, 2, 1, bias=False)
    conv.params["weight"] = np.array([1.0, 2.0]).reshape(2, 1, 1, 1)
    fc = Linear(8, 2)
    fc.params["weight"] = np.array([[1.0, -1.0, 5.0, 1.0, 0.5, 0.0, 1.0, -2.0],
                                    [-1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]])
    fc.params["bias"] = np.array(fc_bias)
    root = Sequential([("conv", conv), ("relu", ReLU()), ("flatten", Flatten()), ("fc", fc)])
    return Model(root, {"name": "hand", "classes": ["a", "b"], "input_size": [1, 2, 2]})


HAND_X = np.array([[1.0, 2.0], [0.0, 3.0]]).reshape(1, 1, 2, 2)


def test_excitation_backprop_on_a_network_worked_by_hand():
    # class a: a_i w+_i = (1, 0, 0, 3, 1, 0, 0, 0), sum 5, so P(a) = (.2, 0, 0, .6, .2, 0, 0, 0)
    r = explain.excitation_backprop(hand_model(), HAND_X, "a")
    assert r.layer == "relu" and r.method == "excitation-backprop"
    np.testing.assert_allclose(r.mwp[0], [[[0.2, 0], [0, 0.6]], [[0.2, 0], [0, 0]]], atol=1e-15)
    np.testing.assert_allclose(r.map[0], [[0.4, 0], [0, 0.6]], atol=1e-15)
    np.testing.assert_allclose(r.mass, [1.0])
    # down to the pixels: the conv's W+ = (1, 2), P_in = x (1 P1 / x + 2 P2 / (2 x)) = P1 + P2
    model = hand_model()
    model.forward(HAND_X)
    P_in = model.backward(onehot(np.array([0]), 2, np.float64), rules=excitation_rules(model))
    np.testing.assert_allclose(P_in[0, 0], [[0.4, 0], [0, 0.6]], atol=1e-15)


def test_the_biases_take_no_part_in_the_winning_probability():
    plain, biased = hand_model(), hand_model(fc_bias=(10.0, -10.0))
    assert not np.allclose(plain.forward(HAND_X), biased.forward(HAND_X))
    np.testing.assert_array_equal(explain.excitation_backprop(biased, HAND_X, "a").map,
                                  explain.excitation_backprop(plain, HAND_X, "a").map)


def test_contrastive_mwp_on_a_network_worked_by_hand():
    # the dual, -W[a]: (-W)+ = (0, 1, 0, 0, 0, 0, 0, 2), a_i (-w)+_i = (0, 2, 0, 0, 0, 0, 0, 12), sum 14:
    # P_dual = (0, 1/7, 0, 0, 0, 0, 0, 6/7)
    r = explain.contrastive_excitation_backprop(hand_model(), HAND_X, "a")
    assert r.method == "contrastive-excitation-backprop"
    np.testing.assert_allclose(r.mwp[0], [[[0.2, -1 / 7], [0, 0.6]], [[0.2, 0], [0, -6 / 7]]], atol=1e-15)
    np.testing.assert_allclose(r.map[0], [[0.4, 0], [0, 0]], atol=1e-15)       # max(sum_k, 0)
    np.testing.assert_allclose(r.mass, [0.0], atol=1e-15)                     # 1 - 1


def test_each_image_of_a_batch_is_explained_for_its_own_class(monkeypatch):
    from minicnn import model as model_module
    from minicnn import parallel
    from minicnn.models import zoo
    model = zoo.init_weights(zoo.resnet20(), seed=5).astype(np.float64)
    x = np.random.default_rng(2).standard_normal((4, 3, 8, 8))
    targets = [3, 0, 9, 3]
    for method in (explain.excitation_backprop, explain.contrastive_excitation_backprop):
        each = np.concatenate([method(model, x[i:i + 1], targets[i], "layer2").map for i in range(4)])
        monkeypatch.setattr(parallel, "_blas_threads", lambda: 2)
        monkeypatch.setattr(model_module, "CHUNK_ELEMENTS", 2 * 192)         # chunks of 1 to 2 images
        batch = method(model, x, targets, "layer2")
        monkeypatch.undo()
        assert list(batch.targets) == targets
        np.testing.assert_allclose(batch.map, each, rtol=1e-10, atol=1e-12 * np.abs(each).max())


# ---------------------------------------------------------------- the rule of each layer, by hand

def test_the_rules_are_torchrays_layer_by_layer():
    model = random_net(dict(seed=0, channels=2, size=6, stages=[(2, 3, 1, True, "relu", "max")], block="basic",
                            stride=2, inverted=True, head="gap", bias=True, pool2="avg"))
    rules = excitation_rules(model)
    kinds = {name: type(layer) for name, layer in model.layers()}
    for name, kind in kinds.items():
        rule = rules.get(name)
        if kind in (Conv2d, Linear):
            assert isinstance(rule, Excitation), name
        elif kind in (AvgPool2d, AdaptiveAvgPool2d, Add):
            assert rule == Norm(0.0), name
        elif kind in (BatchNorm2d, ReLU6):
            assert isinstance(rule, Pass), name
        else:                                           # ReLU, max pooling, flatten, shortcut: their gradient
            assert rule is None, name
    assert {AvgPool2d, AdaptiveAvgPool2d, Add, BatchNorm2d, ReLU6, MaxPool2d} <= set(kinds.values())
    every = {type(layer) for _, layer in random_net(EVERY_LAYER).layers()}
    assert every | {AdaptiveAvgPool2d} == {Conv2d, BatchNorm2d, ReLU, ReLU6, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d,
                                           OptionAShortcut, Add, ZeroPad2d, Flatten, Linear, Dropout}
    contrastive = excitation_rules(model, contrastive=True)
    assert classifier_layer(model) == "fc" and isinstance(contrastive["fc"], Contrastive)
    assert {k: v for k, v in contrastive.items() if k != "fc"} == {k: v for k, v in rules.items() if k != "fc"}


def test_pooling_and_the_residual_addition_share_p_in_proportion_to_their_inputs():
    pool = AvgPool2d(2)
    x = np.array([1.0, 3.0, 2.0, 2.0]).reshape(1, 1, 2, 2)                  # z = 2
    np.testing.assert_allclose(Norm(0.0)(pool, x, np.ones((1, 1, 1, 1))).ravel(), [1 / 8, 3 / 8, 2 / 8, 2 / 8])
    a, b = np.array([3.0, -1.0, 2.0]), np.array([1.0, 3.0, -2.0])
    Pa, Pb = Norm(0.0)(Add(), (a, b), np.ones(3))
    np.testing.assert_allclose(Pa, [0.75, -0.5, 0.0])                         # signed a: P no longer in [0, 1]
    np.testing.assert_allclose(Pb, [0.25, 1.5, 0.0])                          # a + b = 0 passes nothing
    P = np.arange(4.0).reshape(1, 4, 1, 1)
    assert Pass()(BatchNorm2d(4), None, P) is P and Pass()(ReLU6(), None, P) is P


def test_the_excitation_rule_is_lrp_z_plus_without_bias_for_non_negative_inputs():
    rng = np.random.default_rng(1)
    conv = Conv2d(3, 4, 3, padding=1, bias=False)
    conv.params["weight"] = rng.standard_normal((4, 3, 3, 3))
    x, P = np.maximum(rng.standard_normal((2, 3, 5, 5)), 0), rng.uniform(0, 1, (2, 4, 5, 5))
    np.testing.assert_allclose(Excitation()(conv, x, P), ZPlus(0.0)(conv, x, P), rtol=1e-12, atol=1e-15)
    conv.params["bias"] = rng.standard_normal(4)                              # ZPlus keeps b+; excitation never
    with_bias = Conv2d(3, 4, 3, padding=1)
    with_bias.params.update(conv.params)
    np.testing.assert_allclose(Excitation()(with_bias, x, P), ZPlus(0.0)(conv_without_bias(with_bias), x, P),
                               rtol=1e-12, atol=1e-15)
    assert not np.allclose(ZPlus(0.0)(with_bias, x, P), Excitation()(with_bias, x, P))


def conv_without_bias(conv):
    twin = copy.copy(conv)
    twin.params = {"weight": conv.params["weight"]}
    return twin


def test_signed_inputs_keep_the_total_but_not_the_sign():
    # the first layer on normalised pixels: TorchRay feeds x as it is. w+ = (1, 2); x = (1, -0.25): z+ = 0.5
    fc = Linear(2, 1, bias=False)
    fc.params["weight"] = np.array([[1.0, 2.0]])
    P_in = Excitation()(fc, np.array([[1.0, -0.25]]), np.array([[1.0]]))
    np.testing.assert_allclose(P_in, [[2.0, -1.0]])                           # sums to 1, each outside [0, 1]


# ---------------------------------------------------------------- conservation, on small random networks

@st.composite
def net_cases(draw):
    """A small random CNN: conv stages (optionally BatchNorm, ReLU or ReLU6, pooling), a ResNet block, an
    inverted-residual block, a head (GAP or flatten + two dense layers); with or without biases."""
    stages = draw(st.lists(st.tuples(st.sampled_from([2, 4]), st.sampled_from([1, 3]), st.sampled_from([1, 2]),
                                     st.booleans(), st.sampled_from(["relu", "relu6"]),
                                     st.sampled_from(["max", "avg", "none"])), min_size=1, max_size=2))
    return dict(seed=draw(st.integers(0, 2**32 - 1)), channels=draw(st.integers(1, 3)), size=draw(st.integers(4, 8)),
                stages=stages, block=draw(st.sampled_from(["none", "basic"])), stride=draw(st.sampled_from([1, 2])),
                inverted=draw(st.booleans()), head=draw(st.sampled_from(["gap", "flatten"])), bias=draw(st.booleans()),
                pool2=draw(st.sampled_from(["avg", "none"])))


def random_net(case, *, strict=False):
    """The network of ``case``, float64, random weights. ``strict``: no biases and BatchNorm a positive scale,
    so a unit is on only where its positive excitation is (then no P is lost anywhere)."""
    rng = np.random.default_rng(case["seed"])
    children, c, h = [], case["channels"], case["size"]
    for i, (out, k, stride, bn, act, pool) in enumerate(case["stages"]):
        stride = stride if h >= 4 else 1
        children.append((f"conv{i}", Conv2d(c, out, k, stride, k // 2, bias=case["bias"])))
        c, h = out, (h + 2 * (k // 2) - k) // stride + 1
        if bn:
            children.append((f"bn{i}", BatchNorm2d(c)))
        children.append((f"act{i}", ReLU() if act == "relu" else ReLU6()))
        if pool != "none" and h >= 4:
            children.append((f"pool{i}", MaxPool2d(2) if pool == "max" else AvgPool2d(2)))
            h //= 2
    if case["block"] == "basic":
        stride = case["stride"] if h >= 2 else 1
        children.append(("block", BasicBlock(c, c * stride, stride)))
        c, h = c * stride, (h - 1) // stride + 1
    if case["inverted"]:
        children += [("pad", ZeroPad2d((0, 1, 0, 1))), ("inverted", InvertedResidual(c, c, 1, 2))]
        h += 1
    if case["pool2"] == "avg" and h >= 2:
        children.append(("pool", AvgPool2d(2)))
        h //= 2
    if case["head"] == "gap":
        children += [("gap", AdaptiveAvgPool2d(1)), ("flatten", Flatten()), ("fc", Linear(c, 3))]
    else:
        children += [("flatten", Flatten()), ("fc0", Linear(c * h * h, 5)), ("relu", ReLU()), ("drop", Dropout()),
                     ("fc", Linear(5, 3))]
    model = Model(Sequential(children), {"name": "random", "classes": ["a", "b", "c"],
                                         "input_size": [case["channels"], case["size"], case["size"]]})
    for _, layer in model.layers():
        for k, p in layer.params.items():
            if isinstance(layer, BatchNorm2d):
                n = p.shape[0]
                layer.params.update(weight=rng.uniform(0.5, 2, n) * (1 if strict else rng.choice([-1, 1], n)),
                                    bias=np.zeros(n) if strict else rng.normal(0, 0.5, n))
                layer.buffers.update(running_mean=np.zeros(n) if strict else rng.normal(0, 0.5, n),
                                     running_var=rng.uniform(0.5, 2, n))
                break
            scale = 0.0 if (k == "bias" and strict) else (0.6 if k == "weight" else 0.3)
            layer.params[k] = rng.standard_normal(p.shape) * scale
    return model.astype(np.float64)


def lost(layer, x, P, rule):
    """The P of the units that cannot pass theirs on: z+ = 0 (excitation), z = 0 (pooling, addition)."""
    if isinstance(rule, Excitation):
        z, _ = Excitation.positive_part(layer).forward(x)
        return P[z == 0].sum()
    if isinstance(rule, Norm):
        z, _ = layer.forward(x)
        return P[z == 0].sum()
    return 0.0


def signal_in(layer, name, model, rules):
    P = np.asarray(model.gradients[name])
    if name in rules:
        return rules[name](layer, model.inputs[name], P)
    _, cache = layer.forward(model.inputs[name])
    return layer.backward(P, cache)[0]                     # its gradient


def total(a):
    return sum(np.sum(t) for t in a) if isinstance(a, tuple) else np.sum(a)


#: Every kind of layer at once (both heads), so each layer type is checked on every run, whatever hypothesis draws.
EVERY_LAYER = dict(seed=7, channels=3, size=8, stages=[(4, 3, 1, True, "relu6", "max"), (2, 3, 1, True, "relu", "avg")],
                   block="basic", stride=2, inverted=True, head="flatten", bias=True, pool2="none")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=net_cases(), positive=st.booleans())
@example(case=EVERY_LAYER, positive=False)
@example(case={**EVERY_LAYER, "head": "gap", "pool2": "avg", "seed": 8}, positive=True)
def test_every_layer_passes_on_the_p_it_receives_except_that_of_units_without_excitation(case, positive):
    """sum_i P_in_i = sum_j P_j - (P of units with z+_j = 0, or a pooled / added z_j = 0), at every layer."""
    model = random_net(case)
    rng = np.random.default_rng(case["seed"] % 1000)
    x = rng.standard_normal((2, case["channels"], case["size"], case["size"]))
    x = np.abs(x) if positive else x
    model.forward(x)
    rules = excitation_rules(model)
    model.backward(onehot(np.array([0, 2]), 3, np.float64), rules=rules)
    for name, layer in model.layers():
        P = np.asarray(model.gradients[name])
        P_in = signal_in(layer, name, model, rules)
        expected = P.sum() - lost(layer, model.inputs[name], P, rules.get(name))
        scale = max(1.0, np.abs(P).max(), max(np.abs(t).max() for t in (P_in if isinstance(P_in, tuple) else (P_in,))))
        assert abs(total(P_in) - expected) <= 1e-9 * scale * P.size, (name, total(P_in), expected)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=net_cases())
def test_without_biases_the_winning_probability_sums_to_one_at_every_stage(case):
    """Positive inputs, no bias, BatchNorm a positive scale: no unit is on without excitation, so no P is lost
    (but at the logit itself: a class whose positive weights all meet zero activations passes nothing on).
    Residual blocks are left out here: their branches add units with no ReLU after them, which can be
    negative without any excitation and lose their P (the layer-by-layer test above covers them)."""
    case = {**case, "block": "none", "inverted": False}
    model = random_net(case, strict=True)
    x = np.abs(np.random.default_rng(case["seed"] % 997).standard_normal((2, case["channels"], case["size"],
                                                                            case["size"]))) + 0.01
    model.forward(x)
    targets = np.array([1, 0])
    seed = onehot(targets, 3, np.float64)
    z_plus, _ = Excitation.positive_part(model["fc"]).forward(model.inputs["fc"])
    one = (z_plus[[0, 1], targets] > 0).astype(float)                           # 1, or 0 where the class is dead
    P_in = model.backward(seed, rules=excitation_rules(model))
    for stage in stages_of(model.root):
        np.testing.assert_allclose(np.asarray(model.gradients[stage]).reshape(2, -1).sum(axis=1),
                                   1.0 if stage == "fc" else one, rtol=1e-9, err_msg=stage)
    np.testing.assert_allclose(P_in.reshape(2, -1).sum(axis=1), one, rtol=1e-9)
    assert (P_in >= 0).all()                                     # a probability: non-negative inputs throughout
    model.backward(seed, rules=excitation_rules(model, contrastive=True))
    z_dual, _ = Excitation.positive_part(modified(model["fc"], np.negative)).forward(model.inputs["fc"])
    both = one * (z_dual[[0, 1], targets] > 0)
    for stage in stages_of(model.root)[:-1]:                                      # below the classifier: 1 - 1
        np.testing.assert_allclose(np.asarray(model.gradients[stage]).reshape(2, -1).sum(axis=1),
                                   one - (z_dual[[0, 1], targets] > 0), atol=1e-9, err_msg=stage)
    assert both.shape == (2,)


# ---------------------------------------------------------------- TorchRay 1.0.0.2

@pytest.mark.parametrize("model_name", ["resnet20_cifar10", "vgg_cifar10"])
def test_the_maps_equal_torchrays(model_name):
    """Within 1e-5 of the map's largest value (float32 both; measured: 1.2e-6 at worst)."""
    ref = np.load(FIXTURES / f"excitation_{model_name}.npz")
    info = json.loads(bytes(ref["info"]).decode())
    assert info["torchray"] == "1.0.0.2" and info["model"] == model_name
    model = shipped(model_name)
    np.testing.assert_allclose(model.forward(ref["x"]), ref["logits"], atol=1e-4)
    checked = 0
    for key in ref.files:
        if ":" not in key:
            continue
        layer, what = key.split(":")
        method = explain.excitation_backprop if what == "excitation" else explain.contrastive_excitation_backprop
        r = method(model, ref["x"], ref["targets"], layer)
        expected = ref[key]
        assert r.map.shape == expected.shape and np.abs(expected).max() > 0
        np.testing.assert_allclose(r.map, expected, rtol=0, atol=1e-5 * np.abs(expected).max(), err_msg=key)
        if what == "excitation":
            np.testing.assert_allclose(r.mass, 1.0, atol=1e-5)
        checked += 1
    assert checked == 5        # two layers x (excitation, contrastive), and a contrast layer above (linearity)


def test_on_mobilenet_v2_the_probability_holds_above_the_linear_bottlenecks_and_not_below():
    """The module docstring's numbers on pets.jpg: 1 down to features.17, far from 1 lower down (float32)."""
    from minicnn.inputs.images import load_image
    from minicnn.inputs.preprocess import preprocess
    from minicnn.inputs.samples import data_path
    model = shipped("mobilenet_v2")
    x = preprocess(load_image(data_path("images", "pets.jpg")), model.meta["preprocessing"])
    r = explain.excitation_backprop(model, x)
    assert r.layer == "features" and model.classes[r.targets[0]] == "Italian greyhound"
    np.testing.assert_allclose(r.mass, 1.0, atol=1e-5)
    model.forward(x)
    P_in = model.backward(onehot(r.targets, len(model.classes), np.float32), rules=excitation_rules(model))
    mass = {name: float(np.asarray(model.gradients[name], np.float64).sum())
            for name in ("features.17", "features.14", "features.13", "features.2")}
    assert abs(mass["features.17"] - 1) < 1e-5
    assert mass["features.14"] == pytest.approx(0.52, abs=0.02)
    assert mass["features.13"] == pytest.approx(-0.21, abs=0.02)
    # divisions by sums near 0, in float32: orders of magnitude, not digits
    assert 1e3 < mass["features.2"] < 4e3 and 5e3 < P_in.sum() < 2e4

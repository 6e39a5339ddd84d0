"""DeepLIFT (rescale rule), DeepLIFT-SHAP and GradientSHAP: by hand, by their axioms, against captum 0.9.0.

- By hand: a two-layer dense net (the rescale multiplier, not the gradient), the fallback to the
  derivative where a unit did not move, and captum's max-pooling rule on one window.
- Summation to delta, sum(map) = y^c(x) - y^c(x0), on random small networks in float64 (ReLU, max,
  average and global pooling) and on the three shipped models (ResNet-20, the VGG, MobileNetV2 with its
  ReLU6), to rounding.
- captum 0.9.0's DeepLift, DeepLiftShap and GradientShap recorded on both CIFAR models
  (``weights/recipes/make_deeplift_fixtures.py``, GradientShap with its own draws): the error of a map,
  max |minicnn - captum| / max |captum|, is below TOLERANCE = 1e-4 in float64 and in float32
  (measured: about 3e-8 in float64, 5e-6 in float32).
"""

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from strategies import network_cases
from test_explain_helpers import shipped

from explain.test_attribution_axioms import network, per_image
from minicnn import explain
from minicnn.errors import InputError
from minicnn.explain.deeplift import EPS, deeplift, deeplift_shap, gradient_shap
from minicnn.layers import Flatten, Layer, Linear, MaxPool2d, ReLU, Sequential
from minicnn.model import Model

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TOLERANCE = 1e-4


def error(mine, reference):
    return float(np.abs(mine - reference).max() / np.abs(reference).max())


def dense(w1, b1, w2, b2):
    """flatten -> Linear(w1, b1) -> ReLU -> Linear(w2, b2), float64."""
    fc1, fc2 = Linear(*np.shape(w1)[::-1]), Linear(*np.shape(w2)[::-1])
    fc1.params = {"weight": np.array(w1, float), "bias": np.array(b1, float)}
    fc2.params = {"weight": np.array(w2, float), "bias": np.array(b2, float)}
    return Model(Sequential([("flatten", Flatten()), ("fc1", fc1), ("relu", ReLU()), ("fc2", fc2)]), {"name": "dense"})


# ---------------------------------------------------------------- by hand

def test_the_rescale_rule_on_a_two_layer_net_by_hand():
    """h = W1 x + b1 = [2, 6], h0 = W1 x0 + b1 = [0, -1]; m = (ReLU(h) - ReLU(h0)) / (h - h0) = [1, 6/7].

    Input multipliers W1^T (W2 * m) = [1 + 2 * 6/7 * 2, -1 + 2 * 6/7] = [31/7, 5/7]; times x - x0 = [3, 1]:
    [93/7, 5/7], summing to 14 = f(x) - f(x0) = 14.5 - 0.5. (The gradient would give [15, 1], summing to 16.)
    """
    model = dense([[1, -1], [2, 1]], [0, -1], [[1, 2]], [0.5])
    x = np.array([3.0, 1.0]).reshape(1, 1, 1, 2)
    r = deeplift(model, x, 0)
    np.testing.assert_allclose(r.map.ravel(), [93 / 7, 5 / 7], rtol=1e-14)
    np.testing.assert_allclose(r.scores - r.baseline_scores, [14.0])
    np.testing.assert_allclose(r.gap, [0.0], atol=1e-14)
    np.testing.assert_array_equal(r.baseline, np.zeros_like(x))


def test_a_unit_that_did_not_move_passes_its_derivative():
    """x0 = [2, 3]: h - h0 = [2 - (-1), 6 - 6] = [3, 0]. Unit 1 did not move: its multiplier is ReLU'(6) = 1,
    not 0/0; unit 0 crosses zero, m0 = (2 - 0) / 3. Input multipliers [2/3 + 4, -2/3 + 2] = [14/3, 4/3], times
    x - x0 = [1, -2]: [14/3, -8/3], summing to 2 = f(x) - f(x0) = 14.5 - 12.5."""
    model = dense([[1, -1], [2, 1]], [0, -1], [[1, 2]], [0.5])
    x, x0 = np.array([3.0, 1.0]).reshape(1, 1, 1, 2), np.array([2.0, 3.0]).reshape(1, 1, 1, 2)
    r = deeplift(model, x, 0, baseline=x0)
    np.testing.assert_allclose(r.map.ravel(), [14 / 3, -8 / 3], rtol=1e-14)
    np.testing.assert_allclose(r.gap, [0.0], atol=1e-14)


def test_max_pooling_follows_captum_rule_on_one_window():
    """Window x = [[1, 4], [2, 3]] (max 4 at (0, 1)), x0 = [[5, 0], [0, 0]] (max 5 at (0, 0)), dout = 2.

    t = max(4, 5) = 5: route_x(2 * (5 - 5)) = 0 at (0, 1); route_x0(2 * (4 - 5)) = -2 at (0, 0);
    dx = u / (x - x0) = -2 / (1 - 5) = 0.5 at (0, 0): attribution (1 - 5) * 0.5 = -2 = 2 * (4 - 5).
    (The gradient would put all of it on (0, 1), where x - x0 = 4: +8.)
    """
    fc = Linear(1, 1)
    fc.params = {"weight": np.array([[2.0]]), "bias": np.array([0.0])}
    model = Model(Sequential([("pool", MaxPool2d(2)), ("flatten", Flatten()), ("fc", fc)]), {"name": "pool"})
    x = np.array([[1.0, 4.0], [2.0, 3.0]]).reshape(1, 1, 2, 2)
    x0 = np.array([[5.0, 0.0], [0.0, 0.0]]).reshape(1, 1, 2, 2)
    r = deeplift(model, x, 0, baseline=x0)
    np.testing.assert_allclose(r.map.reshape(2, 2), [[-2.0, 0.0], [0.0, 0.0]], rtol=1e-14)
    # x0 - 5 = [[0, -5], [-5, -5]], y0 = 0 < y = 4: all of 2 * (4 - 0) = 8 goes to x's maximum (0, 1)
    r = deeplift(model, x, 0, baseline=x0 - 5)
    np.testing.assert_allclose(r.map.reshape(2, 2), [[0.0, 8.0], [0.0, 0.0]], rtol=1e-14)


def test_deeplift_shap_is_the_mean_over_the_baselines_and_gradient_shap_is_exact_on_a_linear_model():
    model = dense([[1, -1], [2, 1]], [0, -1], [[1, 2]], [0.5])
    x = np.array([[3.0, 1.0], [-1.0, 2.0]]).reshape(2, 1, 1, 2)
    base = np.array([[0.0, 0.0], [1.0, 3.0], [-2.0, 0.5]]).reshape(3, 1, 1, 2)
    r = deeplift_shap(model, x, 0, baselines=base)
    each = [deeplift(model, x, 0, baseline=np.broadcast_to(b, x.shape)).map for b in base]
    np.testing.assert_allclose(r.map, np.mean(each, axis=0), rtol=1e-14)
    np.testing.assert_allclose(r.gap, 0, atol=1e-13)
    assert r.baseline_scores.shape == (2, 3)
    # a linear model: the gradient is w everywhere, so each draw gives (x + e - x0) * w
    fc = Linear(2, 1)
    fc.params = {"weight": np.array([[2.0, -3.0]]), "bias": np.array([1.0])}
    linear = Model(Sequential([("flatten", Flatten()), ("fc", fc)]), {"name": "linear"})
    draws = {"index": np.array([[0, 2], [1, 1]]), "alpha": np.array([[0.25, 0.5], [0.9, 0.1]]),
             "noise": np.arange(8.0).reshape(2, 2, 1, 1, 2) / 10}
    g = gradient_shap(linear, x, 0, baselines=base, draws=draws)
    w = np.array([2.0, -3.0]).reshape(1, 1, 2)
    expected = [np.mean([(x[i] + draws["noise"][i, k] - base[draws["index"][i, k]]) * w for k in range(2)], axis=0)
                for i in range(2)]
    np.testing.assert_allclose(g.map, expected, rtol=1e-14)


def test_gradient_shap_takes_the_gradient_at_the_drawn_point():
    """One ReLU unit, f = ReLU(x1 + x2): at a = 0.25 between x0 = 0 and x = (1, 1) the point is (0.25, 0.25), the
    gradient (1, 1); between x0 = (-4, -4) and x: z = (-2.75, -2.75), where the unit is off: no attribution."""
    model = dense([[1, 1]], [0], [[1]], [0])
    x = np.ones((1, 1, 1, 2))
    base = np.stack([np.zeros((1, 1, 2)), np.full((1, 1, 2), -4.0)])
    on = gradient_shap(model, x, 0, baselines=base, draws={"index": [[0]], "alpha": [[0.25]],
                                                           "noise": np.zeros((1, 1, 1, 1, 2))})
    off = gradient_shap(model, x, 0, baselines=base, draws={"index": [[1]], "alpha": [[0.25]],
                                                            "noise": np.zeros((1, 1, 1, 1, 2))})
    np.testing.assert_allclose(on.map.ravel(), [1.0, 1.0])
    np.testing.assert_allclose(off.map.ravel(), [0.0, 0.0])


# ---------------------------------------------------------------- axioms, batches

@settings(max_examples=15, deadline=None)
@given(network_cases())
def test_summation_to_delta_on_random_networks(case):
    """sum(DeepLIFT) = y^c(x) - y^c(x0) for any baseline (here random); DeepLIFT-SHAP: minus the mean over the set."""
    model, x = network(case)
    rng = np.random.default_rng(case["seed"] + 1)
    x0 = rng.standard_normal(x.shape)
    target = rng.integers(0, case["classes"], len(x))
    r = deeplift(model, x, target, baseline=x0)
    scale = np.abs(r.scores).max() + np.abs(r.baseline_scores).max() + np.abs(r.map).sum()
    assert np.abs(per_image(r.map) - (r.scores - r.baseline_scores)).max() <= 1e-10 * scale
    np.testing.assert_allclose(model.forward(x0)[np.arange(len(x)), target], r.baseline_scores, rtol=1e-12)
    base = rng.standard_normal((3, *x.shape[1:]))
    s = deeplift_shap(model, x, target, baselines=base)
    y0 = model.forward(base)[:, target].T.mean(axis=1)
    scale = np.abs(s.scores).max() + np.abs(y0).max() + np.abs(s.map).sum()
    assert np.abs(per_image(s.map) - (s.scores - y0)).max() <= 1e-10 * scale


@pytest.mark.parametrize("name, size", [("resnet20_cifar10", 32), ("vgg_cifar10", 32), ("mobilenet_v2", 64)])
def test_summation_to_delta_on_the_shipped_models(name, size):
    """Exact to rounding in float64 on every shipped architecture, MobileNetV2's ReLU6 included (64x64 input: the
    network is fully convolutional), with a blurred baseline; DeepLIFT-SHAP too on the CIFAR models."""
    model = shipped(name).astype(np.float64)
    x = np.random.default_rng(3).standard_normal((2, 3, size, size))
    r = deeplift(model, x, [1, 7], baseline="blur")
    delta = r.scores - r.baseline_scores
    assert np.abs(per_image(r.map) - delta).max() < 1e-9 * np.abs(delta).max(), (per_image(r.map), delta)
    assert np.abs(r.gap).max() < 1e-9 * np.abs(delta).max()
    if size == 32:
        s = deeplift_shap(model, x, [1, 7], samples=2, seed=5)
        assert np.abs(s.gap).max() < 1e-9 * np.abs(s.scores - s.baseline_scores.mean(axis=1)).max()


def test_targets_are_per_image_and_batches_change_nothing():
    model = shipped("resnet20_cifar10")
    x = np.random.default_rng(4).standard_normal((3, 3, 32, 32)).astype(np.float32)
    both = deeplift(model, x, [2, 5, 9], baseline="uniform", seed=1)
    one = np.concatenate([deeplift(model, x[i:i + 1], t, baseline=both.baseline[i:i + 1]).map
                          for i, t in enumerate([2, 5, 9])])
    assert error(both.map, one) < 1e-5
    assert error(deeplift(model, x, [2, 5, 9], baseline="uniform", seed=1, batch_size=1).map, both.map) < 1e-5
    s = deeplift_shap(model, x[:2], [2, 5], samples=3, seed=2)
    assert error(deeplift_shap(model, x[:2], [2, 5], samples=3, seed=2, batch_size=2).map, s.map) < 1e-5
    np.testing.assert_array_equal(s.baseline, deeplift_shap(model, x[:1], 2, samples=3, seed=2).baseline)
    g = gradient_shap(model, x[:2], [2, 5], samples=5, stdevs=0.3, seed=6)
    assert error(gradient_shap(model, x[:2], [2, 5], samples=5, stdevs=0.3, seed=6, batch_size=3).map, g.map) < 1e-5
    assert error(gradient_shap(model, x[:2], [2, 5], samples=5, stdevs=0.3, seed=7).map, g.map) > 1e-2
    assert g.draws["index"].shape == g.draws["alpha"].shape == (2, 5)


def test_bad_options_are_one_line_errors():
    model = shipped("resnet20_cifar10")
    x = np.zeros((1, 3, 32, 32), np.float32)
    for call, match in [
        (lambda: deeplift_shap(model, x, baselines=np.zeros((1, 3, 32, 32))), "B >= 2"),
        (lambda: deeplift_shap(model, x, samples=1), "samples must be an integer from 2|of at least 2"),
        (lambda: deeplift_shap(model, x, baselines="zeros"), "unknown baseline set 'zeros'"),
        (lambda: deeplift_shap(model, x, baselines=np.zeros((2, 3, 16, 16))), r"\(B, 3, 32, 32\)"),
        (lambda: gradient_shap(model, x, stdevs=float("inf")), "stdevs must be a number"),
        (lambda: gradient_shap(model, x, samples=10 ** 6), "over the cap"),
        (lambda: gradient_shap(model, x, draws={"index": [[25]], "alpha": [[0.5]],
                                                "noise": np.zeros((1, 1, 3, 32, 32))}), "pick baselines"),
        (lambda: gradient_shap(model, x, draws={"index": [[0]]}), "draws must be a dict"),
        (lambda: deeplift(model, x, batch_size=0), "batch_size must be"),
        (lambda: deeplift(model, x, eps=-1.0), "eps must be"),
    ]:
        with pytest.raises(InputError, match=match):
            call()


def test_a_layer_without_a_rule_is_refused():
    class Square(Layer):
        def forward(self, x):
            return x * x, x

    model = Model(Sequential([("square", Square()), ("flatten", Flatten()), ("fc", Linear(2, 1))]), {"name": "sq"})
    with pytest.raises(InputError, match="no rule for layer 'square' \\(Square\\)"):
        deeplift(model, np.ones((1, 1, 1, 2)), 0)


def test_the_threshold_is_captum():
    assert EPS == 1e-10


# ---------------------------------------------------------------- captum 0.9.0

@pytest.fixture(scope="module", params=["vgg_cifar10", "resnet20_cifar10"])
def recorded(request):
    with np.load(FIXTURES / f"deeplift_{request.param}.npz", allow_pickle=False) as f:
        ref = {k: f[k] for k in f.files}
    ref["info"] = json.loads(bytes(ref["info"]))
    return request.param, ref


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_deeplift_deeplift_shap_and_gradient_shap_match_captum(recorded, dtype):
    name, ref = recorded
    model = shipped(name).astype(dtype)
    x, target = ref["x"].astype(dtype), ref["target"]
    np.testing.assert_allclose(model.forward(x), ref["logits"], rtol=1e-5, atol=1e-4)
    base = ref["baseline.set"]
    draws = {k: ref[f"gradient_shap.{k}"] for k in ("index", "noise", "alpha")}
    results = {"deeplift.pair": deeplift(model, x, target, baseline=ref["baseline.pair"]),
               "deeplift_shap": deeplift_shap(model, x, target, baselines=base),
               "gradient_shap": gradient_shap(model, x, target, baselines=base, draws=draws)}
    zeros = deeplift(model, x, target)
    if name == "resnet20_cifar10":
        results["deeplift.zeros"] = zeros
    for key, r in results.items():
        assert error(r.map, ref[key]) < TOLERANCE, (key, error(r.map, ref[key]))
    # The VGG against the zero baseline: its feature maps are constant per channel, every max-pooling window of
    # the baseline is a tie, and the rounding of each library picks the winner (maps differ by 2e-2 in float64).
    # Both add up to the same delta.
    np.testing.assert_allclose(per_image(zeros.map), per_image(ref["deeplift.zeros"]), rtol=1e-4)


def test_captum_recorded_summation_to_delta():
    for name in ("vgg_cifar10", "resnet20_cifar10"):
        with np.load(FIXTURES / f"deeplift_{name}.npz", allow_pickle=False) as f:
            assert np.abs(f["deeplift.zeros.delta"]).max() < 1e-6


def test_the_registry_runs_them():
    model = shipped("vgg_cifar10")
    x = np.random.default_rng(5).standard_normal((1, 3, 32, 32)).astype(np.float32)
    for name in ("deeplift", "deeplift-shap", "gradient-shap"):
        row = explain.registry.get(name)
        r = row.run(model, x, 3, samples=2) if name != "deeplift" else row.run(model, x, 3)
        assert r.map.shape == x.shape and r.method == name and row.key == name.replace("-", "_")

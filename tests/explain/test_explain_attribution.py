"""Integrated Gradients, SmoothGrad, Input x Gradient, DeconvNet and LRP as an API: arguments, batches, errors."""

import numpy as np
import pytest
from test_explain_helpers import DENSE_X, dense_model, small_cnn

from minicnn import explain
from minicnn.errors import InputError, UnknownNameError
from minicnn.explain.integrated_gradients import make_baseline, quadrature_rule


@pytest.fixture(scope="module")
def cnn():
    model = small_cnn(5, dense=True)
    model.meta["preprocessing"] = {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.3, 0.25]}
    return model, np.random.default_rng(5).standard_normal((2, 3, 8, 8))


def test_input_x_gradient_and_deconvnet_by_hand():
    # dense_model: A = ReLU(x) = [[1, 0], [3, 0.5]], dy^q/dA = W[q] = [[2, 1], [1, -1]] (see test_explain_guided)
    r = explain.input_x_gradient(dense_model(), DENSE_X)
    assert r.method == "input-x-gradient" and r.target_names == ["q"]
    np.testing.assert_allclose(r.map, DENSE_X * [[[[2.0, 0.0], [1.0, -1.0]]]])
    d = explain.deconvnet(dense_model(), DENSE_X)            # the deconvnet ignores x: ReLU of the signal
    np.testing.assert_allclose(d.map, [[[[2.0, 1.0], [1.0, 0.0]]]])


def test_quadrature_rules_are_the_textbook_ones():
    a, w = quadrature_rule("riemann_trapezoid", 5)
    np.testing.assert_allclose(a, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(w, [0.125, 0.25, 0.25, 0.25, 0.125])
    np.testing.assert_allclose(quadrature_rule("riemann_middle", 4)[0], [0.125, 0.375, 0.625, 0.875])
    np.testing.assert_allclose(quadrature_rule("riemann_left", 4)[0], [0, 0.25, 0.5, 0.75])
    np.testing.assert_allclose(quadrature_rule("riemann_right", 4)[0], [0.25, 0.5, 0.75, 1])
    a, w = quadrature_rule("gausslegendre", 3)                 # exact for polynomials of degree 5
    assert abs(np.sum(w * a ** 5) - 1 / 6) < 1e-15 and abs(w.sum() - 1) < 1e-15


def test_integrated_gradients_does_not_depend_on_the_batching(cnn):
    model, x = cnn
    whole = explain.integrated_gradients(model, x, [0, 2], steps=7)
    one = explain.integrated_gradients(model, x, [0, 2], steps=7, batch_size=1)
    np.testing.assert_allclose(one.map, whole.map, rtol=1e-12, atol=1e-14)
    assert whole.map.shape == x.shape and whole.gap.shape == (2,) and list(whole.targets) == [0, 2]
    first = explain.integrated_gradients(model, x[1:], 2, steps=7)     # each image on its own
    np.testing.assert_allclose(first.map[0], whole.map[1], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(whole.gap, whole.scores - whole.baseline_scores - whole.map.sum(axis=(1, 2, 3)))


def test_baselines(cnn):
    model, x = cnn
    mean, std = np.array([0.5, 0.4, 0.3])[:, None, None], np.array([0.2, 0.3, 0.25])[:, None, None]
    np.testing.assert_allclose(make_baseline(model, x, "black")[1], np.broadcast_to(-mean / std, x.shape[1:]))
    uniform = make_baseline(model, x, "uniform", seed=3)
    assert np.all(uniform >= -mean / std) and np.all(uniform <= (1 - mean) / std)
    assert np.array_equal(uniform, make_baseline(model, x, "uniform", seed=3))
    blur = make_baseline(model, x, "blur")
    assert blur.shape == x.shape and blur.std() < x.std() and abs(blur.mean() - x.mean()) < 0.1
    r = explain.integrated_gradients(model, x, 0, baseline=x[::-1], steps=4)     # an array
    np.testing.assert_array_equal(r.baseline, x[::-1])


@pytest.mark.parametrize("kwargs, message", [
    ({"quadrature": "simpson"}, "unknown quadrature 'simpson'; choose one of: riemann_left"),
    ({"steps": 0}, "steps must be a positive integer"),
    ({"steps": 1, "quadrature": "riemann_trapezoid"}, "the trapezoid rule needs at least 2 steps"),
    ({"baseline": "grey"}, "unknown baseline 'grey'; choose one of: zeros, black, blur, uniform"),
    ({"baseline": np.zeros((3, 3))}, "the baseline must broadcast to the input's shape"),
    ({"baseline": "blur", "blur_sigma": 0}, "blur_sigma must be a positive number"),
    ({"batch_size": 0}, "batch_size must be a positive integer"),
])
def test_integrated_gradients_refuses_bad_arguments_in_one_line(cnn, kwargs, message):
    model, x = cnn
    with pytest.raises(InputError, match=message):
        explain.integrated_gradients(model, x, **kwargs)


def test_integrated_gradients_shows_progress_when_asked(cnn, capsys):
    model, x = cnn
    explain.integrated_gradients(model, x, steps=5, progress=True)
    assert "integrated gradients" in capsys.readouterr().err
    explain.integrated_gradients(model, x, steps=5)                      # quick: quiet
    assert capsys.readouterr().err == ""


def test_smoothgrad_is_repeatable_and_does_not_depend_on_the_batching(cnn):
    model, x = cnn
    a = explain.smoothgrad(model, x, [1, 2], samples=6, seed=4)            # a class per image
    b = explain.smoothgrad(model, x, [1, 2], samples=6, seed=4, batch_size=1)
    np.testing.assert_allclose(a.map, b.map, rtol=1e-12, atol=1e-15)
    assert not np.allclose(a.map, explain.smoothgrad(model, x, [1, 2], samples=6, seed=5).map)
    assert not np.allclose(a.map[1], explain.smoothgrad(model, x, 1, samples=6, seed=4).map[1])
    flat = x.reshape(2, -1)
    np.testing.assert_allclose(a.sigma, 0.15 * (flat.max(axis=1) - flat.min(axis=1)))
    assert a.base == "saliency" and a.samples == 6 and a.method == "smoothgrad"
    # VarGrad is the mean square less the squared mean, never negative beyond rounding
    sq = explain.smoothgrad_squared(model, x, [1, 2], samples=6, seed=4)
    var = explain.vargrad(model, x, [1, 2], samples=6, seed=4)
    np.testing.assert_allclose(var.map, sq.map - a.map ** 2, atol=1e-15)
    assert var.map.min() > -1e-15


def test_smoothgrad_takes_the_base_methods_options(cnn):
    model, x = cnn
    noise = np.random.default_rng(0).standard_normal((2, *x.shape)) * 0.1
    r = explain.smoothgrad(model, x, [0, 2], base="integrated-gradients", noise=noise, base_options={"steps": 3})
    by_hand = np.mean([[explain.integrated_gradients(model, x[i:i + 1] + e[i:i + 1], c, steps=3).map[0]
                        for i, c in enumerate([0, 2])] for e in noise], axis=0)
    np.testing.assert_allclose(r.map, by_hand, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("kwargs, message", [
    ({"base": "gradcam"}, "needs a base method with a map over the input"),
    ({"base": "vargrad"}, "needs a base method with a map over the input"),
    ({"base": "salency"}, "did you mean 'saliency'"),
    ({"samples": 0}, "samples must be a positive integer"),
    ({"noise_level": -0.1}, "noise_level must be a number >= 0"),
    ({"noise": np.zeros((2, 3, 8, 8))}, "noise must be shaped"),
    ({"noise": np.zeros((2, 2, 3, 4, 4))}, "does not broadcast to"),
])
def test_smoothgrad_refuses_bad_arguments_in_one_line(cnn, kwargs, message):
    model, x = cnn
    with pytest.raises((InputError, UnknownNameError), match=message):
        explain.smoothgrad(model, x, **kwargs)


def test_lrp_reports_its_rules_and_leaves_the_relevance_of_every_layer(cnn):
    model, x = cnn
    r = explain.lrp(model, x, 1, "epsilon-gamma-box")
    assert r.method == "lrp-epsilon-gamma-box" and r.composite == "epsilon-gamma-box"
    assert r.rules["features.0"] == "ZBox(low, high)" and r.rules["features.3"].startswith("Gamma(gamma=0.25")
    assert r.rules["classifier.2"].startswith("Epsilon") and r.rules["features.1"] == "Pass()"
    np.testing.assert_allclose(model.gradients["classifier.2"][:, 1], r.scores)     # R starts as y^c
    assert np.count_nonzero(model.gradients["classifier.2"]) == 2
    np.testing.assert_allclose(explain.lrp_epsilon_gamma_box(model, x, 1).map, r.map)
    custom = explain.lrp(model, x, 1, "epsilon-gamma-box", low=-3.0, high=3.0)
    assert not np.allclose(custom.map, r.map)


@pytest.mark.parametrize("kwargs, message", [
    ({"composite": "epsilon-pluss"}, "did you mean 'epsilon-plus'"),
    ({"epsilon": -1.0}, "LRP epsilon must be a number >= 0"),
    ({"gamma": "a"}, "LRP gamma must be a number >= 0"),
])
def test_lrp_refuses_bad_arguments_in_one_line(cnn, kwargs, message):
    model, x = cnn
    with pytest.raises((InputError, UnknownNameError), match=message):
        explain.lrp(model, x, **kwargs)


def test_z_box_needs_the_input_bounds():
    with pytest.raises(InputError, match="z\\^B needs the bounds of the input"):
        explain.lrp_epsilon_gamma_box(small_cnn(0), np.zeros((1, 3, 8, 8)))
    r = explain.lrp(small_cnn(0), np.ones((1, 3, 8, 8)), 0, "epsilon-gamma-box", low=-1.0, high=2.0)
    assert r.map.shape == (1, 3, 8, 8)


@pytest.mark.parametrize("composite", ["epsilon", "epsilon-plus", "epsilon-gamma-box"])
def test_lrp_of_a_batch_in_chunks_is_that_of_each_image(monkeypatch, composite):
    """A batch cut into chunks (on threads) merges every BatchNorm into its convolution, as one image does."""
    from minicnn import model as model_module
    from minicnn import parallel
    from minicnn.layers import BatchNorm2d
    from minicnn.models import zoo
    model = zoo.init_weights(zoo.resnet20(), seed=3).astype(np.float64)
    rng = np.random.default_rng(13)
    for _, layer in model.layers():
        if isinstance(layer, BatchNorm2d):                 # statistics that make each BatchNorm matter
            c = layer.num_features
            layer.params.update(weight=rng.uniform(0.5, 2, c), bias=rng.normal(0, 0.5, c))
            layer.buffers.update(running_mean=rng.normal(0, 0.5, c), running_var=rng.uniform(0.5, 2, c))
    model.meta["preprocessing"] = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
    x = rng.standard_normal((5, 3, 8, 8))
    targets = [1, 7, 0, 4, 9]                              # a class per image
    each = np.concatenate([explain.lrp(model, x[i:i + 1], targets[i], composite).map for i in range(5)])
    monkeypatch.setattr(parallel, "_blas_threads", lambda: 3)
    monkeypatch.setattr(model_module, "CHUNK_ELEMENTS", 2 * 192)             # chunks of 1 to 3 images
    batch = explain.lrp(model, x, targets, composite).map
    assert isinstance(model._run, model_module.Chunks)
    np.testing.assert_allclose(batch, each, rtol=1e-10, atol=1e-12 * np.abs(each).max())

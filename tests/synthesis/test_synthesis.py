"""minicnn.synthesis: every backward is the adjoint of its forward, proven by central differences.

Like a layer (tests/test_layers.py): float64, a random upstream gradient G, and
L = sum(f(x) * G) differentiated one coordinate at a time (minicnn.gradcheck).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_explain_helpers import small_cnn

from minicnn.errors import InputError
from minicnn.gradcheck import check_function
from minicnn.layers import AdaptiveAvgPool2d, Flatten, Linear, Sequential
from minicnn.model import Model
from minicnn.synthesis import (
    Affine,
    ClassScore,
    FourierImage,
    LayerObjective,
    PixelImage,
    RandomTransform,
    jitter,
    jitter_backward,
    visualise,
)
from minicnn.synthesis.parameterise import (
    COLOR,
    decorrelate,
    decorrelate_backward,
    irfft2,
    irfft2_backward,
    sigmoid,
    sigmoid_backward,
)

PREP = {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3], "resize": "exact", "size": [8, 8]}


def tiny(seed=0):
    model = small_cnn(seed)
    model.meta["preprocessing"] = PREP
    return model


def check_linear_map(forward, backward, x, rng, tol=1e-7):
    """forward is linear (or smooth) in x; backward(G) must be dL/dx for L = sum(forward(x) * G)."""
    G = rng.standard_normal(forward(x).shape)
    check_function(forward, x, backward(G), dout=G, tol=tol)


# ---------------------------------------------------------------- transforms

@pytest.mark.parametrize("dy, dx", [(0, 0), (1, -2), (-3, 3), (5, 1)])
def test_jitter_backward_is_its_adjoint(dy, dx, rng):
    x = rng.standard_normal((2, 3, 5, 6))
    check_linear_map(lambda v: jitter(v, dy, dx), lambda G: jitter_backward(G, dy, dx), x, rng)


def test_jitter_moves_a_pixel_where_the_docstring_says():
    x = np.zeros((1, 1, 4, 5))
    x[0, 0, 1, 2] = 1
    assert jitter(x, 2, -1)[0, 0, 3, 1] == 1


@pytest.mark.parametrize("scale, degrees, hw", [(1.0, 0.0, (6, 6)), (1.1, 0.0, (6, 7)), (0.9, 7.0, (7, 5)),
                                                (1.0, -12.0, (6, 6)), (1.3, 30.0, (5, 8))])
def test_affine_backward_is_its_adjoint(scale, degrees, hw, rng):
    T = Affine(hw, scale, degrees)
    x = rng.standard_normal((2, 3, *hw))
    check_linear_map(T.forward, T.backward, x, rng)


def test_affine_identity_leaves_the_image_and_rows_sum_to_one(rng):
    x = rng.standard_normal((1, 2, 5, 6))
    np.testing.assert_allclose(Affine((5, 6)).forward(x), x, atol=1e-12)
    T = Affine((5, 6), 1.2, 10.0)
    np.testing.assert_allclose(T.forward(np.full((1, 1, 5, 6), 3.0)), 3.0)   # weights per output sum to 1


def test_a_quarter_turn_of_a_square_is_a_rotation_of_the_array(rng):
    x = rng.standard_normal((1, 1, 5, 5))
    out = Affine((5, 5), 1.0, 90.0).forward(x)
    assert any(np.allclose(out, np.rot90(x, k, axes=(2, 3)), atol=1e-9) for k in (1, 3))


def test_random_transform_backward_is_its_adjoint(rng):
    T = RandomTransform(np.random.default_rng(3), (6, 7), jitter=2, scales=(1.1,), degrees=(5.0,))
    check_linear_map(T.forward, T.backward, rng.standard_normal((1, 3, 6, 7)), rng)


# ---------------------------------------------------------------- parameterisations

def test_colour_decorrelation_backward_is_its_adjoint(rng):
    check_linear_map(decorrelate, decorrelate_backward, rng.standard_normal((2, 3, 3, 4)), rng)
    assert np.isclose(np.max(np.linalg.norm(COLOR, axis=0)), 1.0)


def test_sigmoid_backward(rng):
    z = rng.standard_normal((1, 3, 4, 4)) * 3
    G = rng.standard_normal(z.shape)
    check_function(sigmoid, z, sigmoid_backward(G, sigmoid(z)), dout=G)
    assert sigmoid(np.array([-1000.0, 1000.0])).tolist() == [0.0, 1.0]


@pytest.mark.parametrize("hw", [(4, 4), (5, 6), (6, 5), (3, 7)])
def test_irfft2_backward_is_its_adjoint(hw, rng):
    """The half spectrum's real and imaginary parts as one real array; even and odd widths (Hermitian weights)."""
    h, w = hw
    ab = rng.standard_normal((2, 2, h, w // 2 + 1))

    def forward(v):
        return irfft2(v[0] + 1j * v[1], hw)

    G = rng.standard_normal((2, h, w))
    d = irfft2_backward(G, hw)
    check_function(forward, ab, np.stack([d.real, d.imag]), dout=G)


def test_fourier_image_backward_matches_finite_differences(rng):
    image = FourierImage((3, 6, 7), np.random.default_rng(0), sd=0.3)

    def forward(theta):
        image.theta = theta
        return image.image()

    theta = image.theta.copy()
    G = rng.standard_normal((1, 3, 6, 7))
    forward(theta.copy())
    check_function(forward, theta, image.backward(G), dout=G)


def test_fourier_image_stays_in_the_input_domain_and_pixel_image_is_clipped():
    image = FourierImage((3, 8, 8), np.random.default_rng(0), sd=50.0)
    x = image.image()
    assert x.shape == (1, 3, 8, 8) and x.min() >= 0 and x.max() <= 1
    p = PixelImage((3, 4, 4), np.random.default_rng(0))
    p.theta += 5
    p.project()
    assert p.theta.max() == 1


# ---------------------------------------------------------------- objectives

def test_class_score_gradient_matches_finite_differences(rng):
    model = tiny()
    x = rng.standard_normal((2, 3, 8, 8))
    J, dx = ClassScore(1).value_and_grad(model, x)
    np.testing.assert_allclose(J, model.forward(x)[:, 1])
    check_function(lambda v: model.forward(v)[:, 1], x, dx, dout=np.ones(2), max_checks=60)


@pytest.mark.parametrize("layer, channel, unit", [("features.3", 2, None), ("features.4", 1, "centre"),
                                                  ("features", 4, None), ("features.1", 3, (1, 5)),
                                                  ("fc", 2, None)])
def test_layer_objective_gradient_matches_finite_differences(layer, channel, unit, rng):
    model = tiny(1)
    objective = LayerObjective(layer, channel, unit)
    x = rng.standard_normal((2, 3, 8, 6))                 # not square: H and W must not be confused
    J, dx = objective.value_and_grad(model, x)

    def J_of(v):
        model.forward(v)
        return objective.value(model.activations[layer])

    A = model.activations[layer]
    expected = A[:, channel].reshape(2, -1).mean(axis=1) if unit is None or A.ndim == 2 else None
    if expected is not None:
        np.testing.assert_allclose(J, expected)
    check_function(J_of, x, dx, dout=np.ones(2), max_checks=60)


def test_layer_objective_inside_a_residual_block(rng):
    """A block's output is its last leaf's (the relu after the Add): the seed goes there; the shortcut carries it."""
    from minicnn.layers.residual import BasicBlock
    block = BasicBlock(3, 3, 1)
    model = Model(Sequential([("block", block), ("pool", AdaptiveAvgPool2d(1)), ("flat", Flatten()),
                              ("fc", Linear(3, 2))]), {"name": "res", "input_size": [3, 5, 5]})
    for _, layer in model.layers():
        for k, p in layer.params.items():
            layer.params[k] = rng.standard_normal(p.shape) * 0.5
        for k in layer.buffers:
            if k == "running_var":
                layer.buffers[k] = np.abs(rng.standard_normal(layer.buffers[k].shape)) + 0.5
    model = model.astype(np.float64)
    objective = LayerObjective("block", 1)
    x = rng.standard_normal((1, 3, 5, 5))
    J, dx = objective.value_and_grad(model, x)

    def J_of(v):
        model.forward(v)
        return objective.value(model.activations["block"])

    check_function(J_of, x, dx, dout=np.ones(1))


def test_objectives_refuse_in_one_line():
    model = tiny()
    for objective, words in [(ClassScore(3), "out of range"), (LayerObjective("nope", 0), "nope"),
                             (LayerObjective("features.3", -1), "non-negative")]:
        with pytest.raises(Exception) as e:
            objective.check(model)
        assert words in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(InputError, match="has 5 channels"):
        LayerObjective("features.3", 9).value_and_grad(model, np.zeros((1, 3, 8, 8)))


def test_a_class_by_index_name_or_first_imagenet_name():
    from minicnn.synthesis import class_of
    model = tiny()
    model.meta["classes"] = ["background", "goldfish, Carassius auratus", "school bus"]
    assert [class_of(model, v) for v in ("2", 1, "goldfish", "Carassius auratus", "school bus")] == [2, 1, 1, 1, 2]
    for bad, words in [("3", "out of range"), ("kangaroo", "unknown class 'kangaroo'"), ("-1", "unknown class")]:
        with pytest.raises(Exception, match=words) as e:
            class_of(model, bad)
        assert "\n" not in str(e.value)


# ---------------------------------------------------------------- the ascent

@pytest.mark.parametrize("param", ["pixel", "fourier"])
def test_visualisation_raises_the_objective_and_is_reproducible(param):
    model = tiny(2)
    objective = ClassScore(0)
    a = visualise(model, objective, param=param, steps=30, seed=4, lr=0.1)
    b = visualise(model, objective, param=param, steps=30, seed=4, lr=0.1)
    np.testing.assert_array_equal(a.image, b.image)
    assert a.image.shape == (8, 8, 3) and a.image.min() >= 0 and a.image.max() <= 1
    grey = ((np.full((1, 3, 8, 8), 0.5) - np.array(PREP["mean"]).reshape(1, 3, 1, 1))
            / np.array(PREP["std"]).reshape(1, 3, 1, 1))
    assert a.final_value > model.forward(grey)[0, 0] + 0.5
    c = visualise(model, objective, param=param, steps=5, seed=5)
    assert not np.array_equal(c.image, visualise(model, objective, param=param, steps=5, seed=4).image)


@pytest.mark.parametrize("kwargs, words", [({"steps": 0}, "steps"), ({"steps": 10 ** 6}, "steps"),
                                           ({"param": "wavelet"}, "param"), ({"size": (4000, 4000)}, "pixels")])
def test_visualisation_refuses_before_any_work(kwargs, words):
    with pytest.raises(InputError, match=words) as e:
        visualise(tiny(), ClassScore(0), **kwargs)
    assert "\n" not in str(e.value)


def test_a_model_without_preprocessing_is_refused():
    model = small_cnn(0)
    with pytest.raises(InputError, match="preprocessing"):
        visualise(model, ClassScore(0), steps=1)


@settings(max_examples=10, deadline=None)
@given(st.integers(1, 5), st.integers(1, 5), st.floats(0.8, 1.25), st.floats(-20, 20), st.integers(0, 2 ** 16))
def test_affine_adjoint_property(h, w, scale, degrees, seed):
    """<T x, y> = <x, T^T y> for random x, y: the definition of the adjoint."""
    r = np.random.default_rng(seed)
    T = Affine((h, w), scale, degrees)
    x, y = r.standard_normal((1, 2, h, w)), r.standard_normal((1, 2, h, w))
    assert np.isclose(np.sum(T.forward(x) * y), np.sum(x * T.backward(y)))

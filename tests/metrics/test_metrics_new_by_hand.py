"""Average Drop, faithfulness correlation, infidelity, max-sensitivity, sparseness, complexity and random-logit
on inputs small enough to compute by hand, and their axioms (one-hot and flat maps, scaling, exact linear maps)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from minicnn.errors import InputError
from minicnn.metrics.complexity import complexity, sparseness
from minicnn.metrics.confidence import average_drop, explanation_mask, increase_in_confidence, masked_inputs
from minicnn.metrics.perturbation import faithfulness_correlation, gaussian_perturbations, infidelity, random_subsets
from minicnn.metrics.random_logit import other_classes, random_logit, ssim_rows
from minicnn.metrics.robustness import max_sensitivity, uniform_noise

maps_3x4 = arrays(np.float64, (2, 3, 4), elements=st.floats(-5, 5, allow_subnormal=False))


def total(copies, rows):
    """score = the sum of the input's values, the same for every image."""
    return np.asarray(copies, dtype=np.float64).sum(axis=(1, 2, 3))


# sparseness and complexity

def test_sparseness_by_hand_one_hot_is_nearly_one_and_flat_is_zero():
    # |[0, -1, 3]| / 3 = [0, 1/3, 1]: sum_k (2k - 4) w_(k) / (3 sum w) = (-2*0 + 0*1/3 + 2*1) / (3 * 4/3) = 1/2
    assert sparseness(np.array([[0.0, -1.0, 3.0]]))[0] == pytest.approx(0.5, abs=1e-6)
    one_hot = np.zeros((1, 5, 5))
    one_hot[0, 2, 3] = -7.0
    assert sparseness(one_hot)[0] == pytest.approx(24 / 25, abs=1e-5)           # (P - 1) / P, less the 1e-7's
    assert sparseness(np.full((1, 5, 5), 0.3))[0] == pytest.approx(0.0, abs=1e-12)
    assert sparseness(np.zeros((1, 5, 5)))[0] == pytest.approx(0.0, abs=1e-12)  # 1e-7 everywhere: flat


def test_complexity_by_hand_uniform_is_log_n_and_one_hot_is_zero():
    # [1, -1, 2] -> p = [1/4, 1/4, 1/2]: -(2 * 1/4 log 1/4 + 1/2 log 1/2) = 1.5 log 2
    assert complexity(np.array([[1.0, -1.0, 2.0]]))[0] == pytest.approx(1.5 * math.log(2), abs=1e-10)
    assert complexity(np.full((1, 4, 8), -2.0))[0] == pytest.approx(math.log(32), abs=1e-9)
    one_hot = np.zeros((1, 4, 8))
    one_hot[0, 1, 1] = 5.0
    assert complexity(one_hot)[0] == pytest.approx(0.0, abs=1e-9)
    assert complexity(np.zeros((1, 4, 8)))[0] == 0.0                           # no mass: nothing to spread
    with pytest.raises(InputError, match="maps must have shape"):
        complexity(np.zeros(3))


@settings(max_examples=30, deadline=None)
@given(maps_3x4, st.floats(0.01, 100))
def test_sparseness_and_complexity_are_bounded_and_blind_to_scale(m, scale):
    P = 12
    s, c = sparseness(m), complexity(m)
    assert np.all(s >= -1e-12) and np.all(s <= (P - 1) / P + 1e-6)
    assert np.all(c >= -1e-9) and np.all(c <= math.log(P) + 1e-9)
    np.testing.assert_allclose(sparseness(scale * m), s, atol=1e-5)
    np.testing.assert_allclose(complexity(scale * m), c, atol=1e-6)
    perm = np.random.default_rng(0).permutation(P)
    np.testing.assert_allclose(sparseness(m.reshape(2, -1)[:, perm]), s, atol=1e-12)


# Average Drop and Increase in Confidence

def test_explanation_mask_by_hand_scales_then_resizes():
    m = np.array([[[1.0, 3.0], [2.0, 5.0]]])                 # min 1, max - min 4
    np.testing.assert_allclose(explanation_mask(m, (2, 2)), [[[0, 0.5], [0.25, 1.0]]], atol=1e-8)
    up = explanation_mask(m, (4, 4))                         # half-pixel bilinear: the corners keep their values
    assert up.shape == (1, 4, 4) and up[0, 0, 0] == pytest.approx(0) and up[0, 3, 3] == pytest.approx(1, abs=1e-8)
    assert up[0, 0, 1] == pytest.approx(0.125, abs=1e-8)     # a quarter of the way from 0 to 0.5
    assert np.all(explanation_mask(np.full((1, 3, 3), 4.0), (3, 3)) == 0)   # flat: nothing kept
    x = np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2)
    np.testing.assert_allclose(masked_inputs(x, explanation_mask(m, (2, 2))),
                               [[[[0, 0.5], [0.5, 3]], [[0, 2.5], [1.5, 7]]]], atol=1e-6)


def test_average_drop_and_increase_by_hand():
    p, p_masked = np.array([0.5, 0.2, 0.4, 0.0]), np.array([0.2, 0.5, 0.4, 0.0])
    np.testing.assert_allclose(average_drop(p, p_masked), [0.3 / (0.5 + 1e-7), 0, 0, 0], rtol=1e-12)
    assert increase_in_confidence(p, p_masked).tolist() == [0, 1, 0, 0]           # equal is no increase


# faithfulness correlation and infidelity

def test_faithfulness_correlation_by_hand():
    x = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 1, 4)
    a = np.array([1.0, 0.0, 0.0, 1.0]).reshape(1, 1, 4)
    subsets = np.array([[[0], [1], [3]]])
    # baseline 0: drops d = [1, 2, 4], sums s = [1, 0, 1]: pearson = (1/3) / sqrt(6/9 * 42/9) = 3 / sqrt(252)
    fc = faithfulness_correlation(total, x, a, subsets, baseline=0.0)
    assert fc[0] == pytest.approx(3 / math.sqrt(252), abs=1e-12)
    # "black" fills with the image's minimum, 1: drops [0, 1, 3], the same deviations from their mean as above
    assert faithfulness_correlation(total, x, a, subsets)[0] == pytest.approx(3 / math.sqrt(252), abs=1e-12)
    assert faithfulness_correlation(total, x, x[:, 0], subsets)[0] == pytest.approx(1.0)   # a = x: s = d + 1
    assert math.isnan(faithfulness_correlation(total, x, np.ones((1, 1, 4)), subsets)[0])  # sums all 1: undefined


def test_faithfulness_correlation_of_the_exact_map_of_a_linear_model_is_one():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 2, 4, 4))
    w = rng.standard_normal((2, 4, 4))
    score = lambda copies, rows: (copies * w).sum(axis=(1, 2, 3))         # noqa: E731
    subsets = random_subsets(3, 10, 32, 5, seed=2)
    np.testing.assert_allclose(faithfulness_correlation(score, x, w * x, subsets, baseline=0.0), 1.0, atol=1e-12)
    np.testing.assert_allclose(faithfulness_correlation(score, x, -w * x, subsets, baseline=0.0), -1.0, atol=1e-12)


def test_infidelity_by_hand_on_a_square():
    x = np.ones((1, 1, 1, 1))
    square = lambda copies, rows: (np.asarray(copies) ** 2).sum(axis=(1, 2, 3))    # noqa: E731
    a = np.full((1, 1, 1), 2.0)                                                     # the gradient 2x at x = 1
    I = np.array([0.5, 1.0]).reshape(1, 2, 1, 1, 1)
    # s = I a = [1, 2], d = f(1) - f(1 - I) = [0.75, 1]: ((1 - 0.75)^2 + (2 - 1)^2) / 2
    assert infidelity(square, x, a, I)[0] == pytest.approx(0.53125)
    # beta = (0.75 + 2) / (1 + 4) = 0.55: ((0.55 - 0.75)^2 + (1.1 - 1)^2) / 2
    assert infidelity(square, x, a, I, normalize=True)[0] == pytest.approx(0.025)
    assert infidelity(square, x, np.zeros((1, 1, 1)), I, normalize=True)[0] == pytest.approx((0.75**2 + 1) / 2)


def test_infidelity_of_the_exact_map_of_a_linear_model_is_zero():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 4, 4))
    w = rng.standard_normal((3, 4, 4))
    score = lambda copies, rows: (copies * w).sum(axis=(1, 2, 3))         # noqa: E731
    I = gaussian_perturbations(x.shape, 6, 0.5, seed=4).astype(np.float64)
    assert I.shape == (2, 6, 3, 4, 4)
    np.testing.assert_allclose(infidelity(score, x, np.broadcast_to(w, x.shape), I), 0.0, atol=1e-20)
    assert np.all(infidelity(score, x, 2 * np.broadcast_to(w, x.shape), I) > 0.1)      # twice too large
    np.testing.assert_allclose(infidelity(score, x, 2 * np.broadcast_to(w, x.shape), I, normalize=True), 0,
                               atol=1e-20)                                              # ... but rightly shaped


def test_random_draws_are_seeded_and_in_range():
    s = random_subsets(2, 3, 10, 4, seed=5)
    assert s.shape == (2, 3, 4) and all(len(set(r)) == 4 for r in s.reshape(-1, 4)) and s.max() < 10
    assert np.array_equal(s, random_subsets(2, 3, 10, 4, seed=5))
    with pytest.raises(InputError, match="subset size"):
        random_subsets(1, 1, 10, 11)
    noise = uniform_noise((3, 1, 2, 2), 4, 0.1, seed=1)
    assert noise.shape == (3, 4, 1, 2, 2) and np.abs(noise).max() <= 0.1 and np.abs(noise).max() > 0.05


# max-sensitivity

def test_max_sensitivity_by_hand():
    x = np.array([1.0, 2.0]).reshape(1, 1, 1, 2)
    noise = np.array([[0.1, 0.0], [0.0, -0.1]]).reshape(1, 2, 1, 1, 2)
    square = lambda copies, rows: copies ** 2                              # noqa: E731
    # e = [1, 4]; sample 1: [1.21, 4], change 0.21; sample 2: [1, 3.61], change 0.39; over ||e|| = sqrt(17)
    assert max_sensitivity(square, x, noise)[0] == pytest.approx(0.39 / math.sqrt(17))
    assert max_sensitivity(lambda c, r: np.ones_like(c), x, noise)[0] == 0.0       # a map that ignores x
    assert max_sensitivity(lambda c, r: c - 1, np.ones((1, 1, 1, 2)), noise)[0] == pytest.approx(0.1)  # ||e|| = 0: 1


# random-logit

def test_ssim_of_rows_by_hand():
    a = np.arange(7.0)[None]
    assert ssim_rows(a, a)[0] == pytest.approx(1.0)
    # b = -a: one window; mu = 3, -3; variances 7/6 * (13 - 9) = 14/3; covariance -14/3; L = 12
    c1, c2 = (0.01 * 12) ** 2, (0.03 * 12) ** 2
    expected = (-18 + c1) * (-28 / 3 + c2) / ((18 + c1) * (28 / 3 + c2))
    assert ssim_rows(a, -a)[0] == pytest.approx(expected, rel=1e-12)
    with pytest.raises(InputError, match="P >= 7"):
        ssim_rows(a[:, :6], a[:, :6])


def test_random_logit_of_a_class_blind_map_is_one_and_other_classes_are_others():
    m = np.random.default_rng(6).standard_normal((3, 4, 4))
    np.testing.assert_allclose(random_logit(m, 3 * m), 1.0, atol=1e-12)          # scaled by each map's max
    other = np.random.default_rng(8).standard_normal((3, 4, 4))
    assert np.all(random_logit(m, other) < 0.5)                                 # unrelated maps: far from 1
    targets = np.repeat(np.arange(10), 30)
    others = other_classes(targets, 10, seed=7)
    assert not np.any(others == targets) and set(others) == set(range(10))
    assert np.array_equal(others, other_classes(targets, 10, seed=7))
    for c in (0, 9):
        assert set(others[targets == c]) == set(range(10)) - {c}                  # every other class drawn

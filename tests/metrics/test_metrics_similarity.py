"""Spearman and SSIM: scipy's answers, hand-worked cases, and the properties their definitions promise."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr

from minicnn.errors import InputError
from minicnn.metrics.intervals import mean_ci95, summary
from minicnn.metrics.similarity import gaussian_window, pearson, scale01, spearman, spearman_abs, ssim


@settings(max_examples=30)
@given(seed=st.integers(0, 2**16), ties=st.booleans())
def test_spearman_equals_scipy_spearmanr_with_ties_and_signs(seed, ties):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((2, 3, 5, 6))
    if ties:                                            # many equal values, as in a ReLU'd map
        a, b = np.maximum(np.round(a), 0), np.round(2 * b) / 2
    for i in range(3):
        expected = spearmanr(a[i].ravel(), b[i].ravel())[0]
        if np.isnan(expected):                          # a constant map: our rule says 0
            assert spearman(a, b)[i] == 0
        else:
            assert spearman(a, b)[i] == pytest.approx(expected, abs=1e-12)
        assert spearman_abs(a, b)[i] == pytest.approx(
            np.nan_to_num(spearmanr(np.abs(a[i]).ravel(), np.abs(b[i]).ravel())[0]), abs=1e-12)


def test_spearman_by_hand_and_the_constant_map_rule():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert spearman(a, a) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert spearman(a, a ** 3) == pytest.approx(1.0)                # ranks only: any increasing function
    assert spearman_abs(a, -a) == pytest.approx(1.0)                # the sign is dropped
    assert spearman(a, np.zeros((2, 2))) == 0.0                     # no ranking: taken as 0, not NaN
    assert pearson(np.ones((2, 2)), a) == 0.0
    with pytest.raises(InputError, match="share one shape"):
        spearman(a, a[:1])


def test_gaussian_window_sums_to_one_and_is_symmetric():
    g = gaussian_window(11, 1.5)
    assert g.shape == (11,) and g.sum() == pytest.approx(1.0) and np.allclose(g, g[::-1])
    assert g[5] / g[4] == pytest.approx(np.exp(1 / (2 * 1.5 ** 2)))


def _ssim_one_window(a, b, weights, data_range, n_over_n1=1.0):
    """SSIM of two maps that are exactly one window: weighted moments written out, no sliding."""
    mu_a, mu_b = (weights * a).sum(), (weights * b).sum()
    var_a = n_over_n1 * ((weights * a * a).sum() - mu_a ** 2)
    var_b = n_over_n1 * ((weights * b * b).sum() - mu_b ** 2)
    cov = n_over_n1 * ((weights * a * b).sum() - mu_a * mu_b)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    return (2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))


def test_ssim_with_data_range_two_by_hand_in_one_window():
    # 11x11 maps in [-1, 1] (L = 2): C1 = (0.01 * 2)^2 = 4e-4, C2 = (0.03 * 2)^2 = 3.6e-3; the map is one window
    r, c = np.mgrid[0:11, 0:11]
    a = np.where((r + 2 * c) % 3 == 0, 1.0, -1.0)
    b = np.clip(0.3 * a + 0.1 * (r - c) / 5, -1, 1) - 0.05
    g = gaussian_window(11, 1.5)
    ours = ssim(a, b, data_range=2.0)
    assert ours == pytest.approx(_ssim_one_window(a, b, np.outer(g, g), 2.0), rel=1e-12, abs=1e-15)
    assert ours != pytest.approx(ssim(a, b, data_range=1.0), rel=1e-3)            # the range matters
    uniform = np.full((11, 11), 1 / 121)
    assert ssim(a, b, data_range=2.0, window="uniform", size=11) == pytest.approx(
        _ssim_one_window(a, b, uniform, 2.0), rel=1e-12, abs=1e-15)
    assert ssim(a, b, data_range=2.0, window="uniform", size=11, sample_covariance=True) == pytest.approx(
        _ssim_one_window(a, b, uniform, 2.0, 121 / 120), rel=1e-12, abs=1e-15)
    # constants with L = 2: mu_a = 0.4, mu_b = -1.2, no variance: (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1)
    assert ssim(np.full((11, 11), 0.4), np.full((11, 11), -1.2), data_range=2.0) == pytest.approx(
        (2 * 0.4 * -1.2 + 4e-4) / (0.16 + 1.44 + 4e-4), rel=1e-12)


def test_ssim_averages_the_windows_of_each_map_separately(rng):
    # a batch of two 12x13 maps: 2x3 windows each; every window by hand, the mean per map
    a, b = rng.random((2, 2, 12, 13))
    b[1] = a[1] ** 2
    g = gaussian_window(11, 1.5)
    w = np.outer(g, g)
    expected = [np.mean([_ssim_one_window(a[n, i:i + 11, j:j + 11], b[n, i:i + 11, j:j + 11], w, 1.0)
                         for i in range(2) for j in range(3)]) for n in range(2)]
    np.testing.assert_allclose(ssim(a, b), expected, rtol=1e-12)
    np.testing.assert_allclose(ssim(a, a), 1.0, atol=1e-12)
    np.testing.assert_allclose(ssim(a, b), ssim(b, a), atol=1e-12)


def test_ssim_of_constant_maps_by_hand():
    # mu_a = 0.2, mu_b = 0.6, no variance: SSIM = (2 * 0.12 + C1) / (0.04 + 0.36 + C1), C2 cancels
    a, b = np.full((12, 12), 0.2), np.full((12, 12), 0.6)
    c1 = 0.01 ** 2
    assert ssim(a, b) == pytest.approx((2 * 0.2 * 0.6 + c1) / (0.2 ** 2 + 0.6 ** 2 + c1))


def test_ssim_refuses_maps_smaller_than_its_window_and_unknown_windows():
    with pytest.raises(InputError, match="at least 11x11"):
        ssim(np.zeros((8, 8)), np.zeros((8, 8)))
    with pytest.raises(InputError, match="gaussian"):
        ssim(np.zeros((16, 16)), np.zeros((16, 16)), window="box")


def test_scale01_maps_each_map_to_zero_one_and_constants_to_zero():
    m = np.array([[[1.0, 3.0], [2.0, 5.0]], [[7.0, 7.0], [7.0, 7.0]]])
    np.testing.assert_allclose(scale01(m), [[[0, 0.5], [0.25, 1]], [[0, 0], [0, 0]]])


def test_mean_ci95_is_students_t_interval():
    v = np.array([0.2, 0.4, 0.9, 0.5])
    m, lo, hi = mean_ci95(v)
    half = 3.182446305284263 * v.std(ddof=1) / 2          # t_{0.975, 3}
    assert (m, lo, hi) == pytest.approx((0.5, 0.5 - half, 0.5 + half))
    assert mean_ci95([0.3, 0.3, 0.3]) == (0.3, 0.3, 0.3)
    m, lo, hi = mean_ci95([0.7])                       # one value: a mean, but no interval
    assert m == 0.7 and np.isnan(lo) and np.isnan(hi)
    assert mean_ci95([1.0, np.nan, 3.0])[0] == 2.0
    assert np.isnan(mean_ci95([])[0])
    assert summary([1.0, 1.0]) == {"mean": 1.0, "ci95": [1.0, 1.0]}

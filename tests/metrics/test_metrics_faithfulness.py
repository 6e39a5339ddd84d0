"""Deletion, insertion and ROAD on linear models, whose curves and areas have closed forms."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicnn.errors import InputError
from minicnn.metrics.deletion import auc, blur, counts, deletion_curve, insertion_curve, pixel_ranks
from minicnn.metrics.road import NEIGHBOURS, impute, impute_reference, noisy_linear_imputation, road_curves


def linear_score(w):
    """score(batch, rows) = sum_p w_p x_p: a linear model of the pixels (the same for every image)."""
    return lambda batch, rows: (np.asarray(batch) * w).sum(axis=(1, 2, 3))


def test_auc_is_the_trapezoid_rule_and_counts_round_not_floor():
    assert auc(np.array([10.0, 6.0, 3.0, 1.0, 0.0])) == pytest.approx((5 + 6 + 3 + 1 + 0) / 4)
    assert auc(np.ones((2, 17))).tolist() == [1.0, 1.0]
    assert auc(np.array([[136.0, 91, 55, 21, 6, 0], [0, 1, 2, 3, 4, 10]])).tolist() == pytest.approx(
        [(68 + 91 + 55 + 21 + 6 + 0) / 5, (0 + 1 + 2 + 3 + 4 + 5) / 5])
    # 16 pixels in 5 steps: k * 16 / 5 = 0, 3.2, 6.4, 9.6, 12.8, 16 (floor would give 9 and 12; k * (16 // 5) 15)
    assert counts(16, 5).tolist() == [0, 3, 6, 10, 13, 16]
    assert counts(1024, 16).tolist() == list(range(0, 1025, 64))


def _two_images_of_sixteen_pixels():
    """x (2, 1, 4, 4) = 1..16 in reading order; image 0 ranks the pixels by x (16 first), image 1 by -x (1 first);
    score(batch, rows) = sign[target of the row] * sum of the pixels, image 0 explained for class 0 (+),
    image 1 for class 1 (-)."""
    x = np.tile(np.arange(1.0, 17.0).reshape(1, 1, 4, 4), (2, 1, 1, 1))
    relevance = np.stack([x[0, 0], -x[0, 0]])
    sign, targets = np.array([1.0, -1.0]), np.array([0, 1])
    return x, relevance, lambda batch, rows: sign[targets[rows]] * np.asarray(batch).sum(axis=(1, 2, 3))


def test_deletion_and_insertion_of_a_4x4_map_by_hand():
    x, relevance, score = _two_images_of_sixteen_pixels()
    # 5 steps delete 0, 3, 6, 10, 13, 16 pixels; image 0 loses 16, 15, 14 first: 136 - 45 = 91, then
    # 136 - 81 = 55, 136 - 115 = 21, 136 - 130 = 6, 0; image 1 loses 1, 2, 3 first: -(136 - 6) = -130, ...
    curve = deletion_curve(score, x, relevance, steps=5)
    np.testing.assert_allclose(curve, [[136, 91, 55, 21, 6, 0], [-136, -130, -115, -81, -45, 0]])
    np.testing.assert_allclose(auc(curve), [48.2, (-68 - 130 - 115 - 81 - 45) / 5])
    # deleting to 0.5 instead: each deleted pixel leaves 0.5 behind
    half = deletion_curve(score, x, relevance, steps=5, baseline=0.5)
    np.testing.assert_allclose(half, [[136, 92.5, 58, 26, 12.5, 8], [-136, -131.5, -118, -86, -51.5, -8]])
    # insertion into a start of zeros puts the same pixels back: the sums of the deleted ones
    ins = insertion_curve(score, x, relevance, steps=5, start=np.zeros_like(x))
    np.testing.assert_allclose(ins, [[0, 45, 81, 115, 130, 136], [0, -6, -21, -55, -91, -136]])
    # the default start is blur(x): at step k, sum(blur) + (the k pixels put back) - (their blurred values)
    b = blur(x)
    ins = insertion_curve(score, x, relevance, steps=5)
    flat, blurred = x[0, 0].ravel(), b[:, 0].reshape(2, -1)
    for n, order in enumerate((np.arange(15, -1, -1), np.arange(16))):
        expected = [blurred[n].sum() + sum(flat[p] - blurred[n, p] for p in order[:k]) for k in (0, 3, 6, 10, 13, 16)]
        np.testing.assert_allclose(ins[n], (1, -1)[n] * np.array(expected), rtol=1e-12)


def test_deletion_of_a_linear_model_in_oracle_order_by_hand():
    # contributions w * x = 4, 3, 2, 1 (one channel, 1 x 4 pixels); deleting one pixel per step
    # leaves 10, 6, 3, 1, 0, whose area is (10/2 + 6 + 3 + 1 + 0/2) / 4 = 3.75
    x = np.array([4.0, 3.0, 2.0, 1.0]).reshape(1, 1, 1, 4)
    w = np.ones_like(x)
    curve = deletion_curve(linear_score(w), x, (w * x)[:, 0], steps=4)
    np.testing.assert_allclose(curve, [[10, 6, 3, 1, 0]])
    assert auc(curve)[0] == pytest.approx(3.75)


@settings(max_examples=25)
@given(seed=st.integers(0, 2**16))
def test_deletion_and_insertion_areas_of_a_linear_model_have_a_closed_form(seed):
    # with P pixels, S = P steps and the contributions sorted c_1 >= ... >= c_P (total f):
    #   deletion  AUC = (f/2 + sum_j (j - 1) c_j) / P      insertion AUC = (f/2 + sum_j (P - j) c_j) / P
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 2, 3, 4))
    w = rng.standard_normal((1, 2, 3, 4))
    contribution = (w * x).sum(axis=1)                                  # per pixel, both channels
    p = contribution[0].size
    score = linear_score(w)
    dele = auc(deletion_curve(score, x, contribution, steps=p))
    ins = auc(insertion_curve(score, x, contribution, steps=p, start=np.zeros_like(x)))
    c = -np.sort(-contribution.reshape(2, -1), axis=1)
    j = np.arange(1, p + 1)
    f = c.sum(axis=1)
    np.testing.assert_allclose(dele, (f / 2 + (c * (j - 1)).sum(axis=1)) / p, atol=1e-10)
    np.testing.assert_allclose(ins, (f / 2 + (c * (p - j)).sum(axis=1)) / p, atol=1e-10)
    # no other order deletes faster: the oracle's deletion area is the smallest
    other = auc(deletion_curve(score, x, rng.standard_normal(contribution.shape), steps=p))
    assert np.all(dele <= other + 1e-10)


def test_known_ends_give_the_same_curve(rng):
    x = rng.standard_normal((3, 1, 4, 4))
    w = rng.standard_normal((1, 1, 4, 4))
    m = rng.standard_normal((3, 4, 4))
    score = linear_score(w)
    ends = (score(x, None), np.zeros(3))
    np.testing.assert_allclose(deletion_curve(score, x, m, steps=8), deletion_curve(score, x, m, steps=8, ends=ends))
    start = blur(x)
    ends = (score(start, None), score(x, None))
    np.testing.assert_allclose(insertion_curve(score, x, m, steps=8),
                               insertion_curve(score, x, m, steps=8, start=start, ends=ends))


def test_ties_are_broken_in_a_seeded_random_order_not_top_row_first():
    flat = np.zeros((1, 8, 8))
    a, b, c = pixel_ranks(flat, seed=0), pixel_ranks(flat, seed=0), pixel_ranks(flat, seed=1)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert sorted(a.ravel().tolist()) == list(range(64))
    assert a[0, 0].mean() > 10                                # the top row is not removed first
    m = np.array([[[3.0, 1.0], [1.0, 2.0]]])
    assert pixel_ranks(m)[0, 0, 0] == 0 and pixel_ranks(m)[0, 1, 1] == 1


def test_blur_of_a_point_is_the_two_dimensional_gaussian_by_hand():
    # an 11x11 image, one bright pixel in the middle: the blur is g g^T with g_i = exp(-(i - 5)^2 / 50) / sum
    x = np.zeros((1, 1, 11, 11))
    x[0, 0, 5, 5] = 1.0
    g = np.exp(-(np.arange(11) - 5.0) ** 2 / (2 * 5.0 ** 2))
    g /= g.sum()
    np.testing.assert_allclose(blur(x)[0, 0], np.outer(g, g), rtol=1e-12, atol=1e-15)
    # a constant image: zero padding loses what falls outside, in both directions at a corner
    y = blur(np.ones((1, 1, 32, 32)))
    assert y[0, 0, 16, 16] == pytest.approx(1.0)
    assert y[0, 0, 0, 0] == pytest.approx(g[5:].sum() ** 2, rel=1e-12)
    assert y[0, 0, 0, 16] == pytest.approx(g[5:].sum(), rel=1e-12)


def test_curves_refuse_a_map_of_the_wrong_shape(rng):
    with pytest.raises(InputError, match="relevance must be"):
        deletion_curve(linear_score(1.0), rng.standard_normal((2, 3, 4, 4)), np.zeros((2, 3, 4)))


# ---------------------------------------------------------------- ROAD


@settings(max_examples=20)
@given(seed=st.integers(0, 2**16), fraction=st.floats(0.05, 0.95))
def test_every_imputed_pixel_is_the_weighted_mean_of_its_neighbours(seed, fraction):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 2, 6, 7))
    removed = rng.random((2, 6, 7)) < fraction
    removed[:, 0, 0] = False                                 # keep at least one pixel
    v = impute(x, removed)
    np.testing.assert_array_equal(v[~np.broadcast_to(removed[:, None], x.shape)],
                                  x[~np.broadcast_to(removed[:, None], x.shape)])
    for n, r, c in zip(*np.nonzero(removed)):
        near = [(w, v[n, :, r + dr, c + dc]) for (dr, dc), w in NEIGHBOURS.items()
                if 0 <= r + dr < 6 and 0 <= c + dc < 7]
        mean = sum(w * value for w, value in near) / sum(w for w, _ in near)
        np.testing.assert_allclose(v[n, :, r, c], mean, atol=1e-10)
    np.testing.assert_allclose(v, impute_reference(x, removed), atol=1e-10)


def test_imputation_fills_a_hole_in_a_constant_or_a_ramp_exactly():
    r, c = np.mgrid[0:8, 0:8]
    ramp = np.stack([np.full((8, 8), 0.3), 2 * r - 0.5 * c])[None].astype(np.float64)
    removed = np.zeros((1, 8, 8), dtype=bool)
    removed[0, 2:6, 3:6] = True                              # a hole away from the border
    np.testing.assert_allclose(impute(ramp, removed), ramp, atol=1e-12)


def test_noise_is_added_to_imputed_pixels_only(rng):
    x = np.zeros((4, 3, 16, 16))
    removed = rng.random((4, 16, 16)) < 0.5
    y = noisy_linear_imputation(x, removed, np.random.default_rng(0), noise=0.01)
    inside = np.broadcast_to(removed[:, None], x.shape)
    assert np.all(y[~inside] == 0) and y[inside].std() == pytest.approx(0.01, rel=0.1)


def test_imputation_needs_a_kept_pixel():
    with pytest.raises(InputError, match="at least one kept pixel"):
        impute(np.zeros((1, 1, 3, 3)), np.ones((1, 3, 3), dtype=bool))


def test_road_steps_counted_pixel_by_pixel_with_per_image_targets():
    # 4x4 images (P = 16): the percentiles 10..90 remove round(p * 16 / 100) = 2, 3, 5, 6, 8, 10, 11, 13, 14 pixels
    # (flooring would remove 1, 3, 4, 6, 8, 9, 11, 12, 14). Image 0 ranks pixel 15 (reading order) first,
    # image 1 pixel 0; MoRF removes the first k of that order, LeRF the last k. The noise (0.01) of image i is
    # drawn from its own generator default_rng([3, i]): one standard normal of the image's shape per percentile,
    # MoRF's nine first, so an image's curve is the same in any batch.
    x = np.random.default_rng(7).standard_normal((2, 1, 4, 4))
    relevance = np.stack([np.arange(16.0).reshape(4, 4), -np.arange(16.0).reshape(4, 4)])
    sign, targets = np.array([1.0, -1.0]), np.array([0, 1])
    score = lambda batch, rows: sign[targets[rows]] * np.asarray(batch).sum(axis=(1, 2, 3))   # noqa: E731
    k = [2, 3, 5, 6, 8, 10, 11, 13, 14]
    first = [list(range(15, -1, -1)), list(range(16))]          # each image's pixels, most relevant first
    for noise in (None, 0.05):                                  # the default, 0.01, and another
        curves = road_curves(score, x, relevance, seed=3) if noise is None else \
            road_curves(score, x, relevance, seed=3, noise=noise)
        rngs = [np.random.default_rng([3, i]) for i in range(2)]
        for order in ("morf", "lerf"):
            for j, count in enumerate(k):
                drawn = (0.01 if noise is None else noise) * np.stack([g.standard_normal(x.shape[1:]) for g in rngs])
                removed = np.zeros((2, 16), dtype=bool)
                for n in range(2):
                    removed[n, first[n][:count] if order == "morf" else first[n][16 - count:]] = True
                removed = removed.reshape(2, 4, 4)
                filled = impute_reference(x, removed) + drawn * removed[:, None]
                np.testing.assert_allclose(curves[order][:, j], sign * filled.sum(axis=(1, 2, 3)), rtol=1e-10,
                                           err_msg=f"{order} at {10 * (j + 1)}%, noise {noise}")
    # the counts by hand for the first step: MoRF 10% of image 0 removes exactly pixels 15 and 14
    assert sorted(first[0][:2]) == [14, 15] and sorted(first[0][16 - 2:]) == [0, 1]


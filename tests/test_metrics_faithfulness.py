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


def test_auc_is_the_trapezoid_rule_on_zero_one():
    assert auc(np.array([10.0, 6.0, 3.0, 1.0, 0.0])) == pytest.approx((5 + 6 + 3 + 1 + 0) / 4)
    assert auc(np.ones((2, 17))).tolist() == [1.0, 1.0]
    assert counts(1024, 16).tolist() == list(range(0, 1025, 64))


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


def test_blur_keeps_a_constant_inside_and_fades_at_the_zero_padded_border():
    x = np.ones((1, 1, 32, 32))
    y = blur(x)
    assert y[0, 0, 16, 16] == pytest.approx(1.0) and y[0, 0, 0, 0] < 0.6


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


def test_road_removes_most_relevant_first_and_least_relevant_first():
    # a linear model that sees only the left half (all ones) of an image whose right half is 0; the map
    # ranks the left half first, column 3 (beside the dark half) first of all
    x = np.zeros((2, 1, 8, 8))
    x[..., :4] = 1.0
    w = x[:1].copy()
    relevance = np.zeros((2, 8, 8))
    relevance[..., :4] = 1.0 + np.arange(4)
    curves = road_curves(linear_score(w), x, relevance, noise=0.0)
    assert curves["morf"].shape == curves["lerf"].shape == (2, 9)
    # MoRF at 10%: six pixels of column 3 are imputed from neighbours that include the dark half: the score
    # falls below its 32; LeRF up to 50% removes dark pixels only, which the model ignores: it stays at 32
    assert np.all(curves["morf"][:, 0] < 32) and np.all(curves["lerf"][:, :5] == pytest.approx(32.0))
    assert np.all(curves["morf"].mean(axis=1) < curves["lerf"].mean(axis=1))

"""minicnn.metrics against scikit-image, Quantus 0.6.0 and PyTorch, on the same inputs.

The reference answers were recorded once by weights/recipes/make_metrics_fixture.py into
tests/fixtures/metrics_reference.npz (maps in [0, 1]) and by
tests/fixtures/recipes/make_metrics_reference_ranges.py into tests/fixtures/metrics_reference_ranges.npz
(data ranges 2, 0.5 and 3, maps with ties, masks that are not quarters); none of those libraries is needed here.
"""

from pathlib import Path

import numpy as np
import pytest

from minicnn.layers import BatchNorm2d, Conv2d, Linear
from minicnn.metrics.localisation import energy_pointing_game, pointing_game
from minicnn.metrics.randomisation import reset_parameters
from minicnn.metrics.road import impute, impute_reference
from minicnn.metrics.similarity import spearman, spearman_abs, ssim

REF = dict(np.load(Path(__file__).resolve().parents[1] / "fixtures" / "metrics_reference.npz"))
RANGES = dict(np.load(Path(__file__).resolve().parents[1] / "fixtures" / "metrics_reference_ranges.npz"))


def test_the_fixture_records_its_libraries():
    assert "quantus 0.6.0" in str(REF["versions"]) and "scikit-image" in str(REF["versions"])


def test_ssim_equals_scikit_image_with_wangs_gaussian_window():
    np.testing.assert_allclose(ssim(REF["ssim_a"], REF["ssim_b"]), REF["ssim_skimage"], rtol=0, atol=1e-12)


def test_ssim_with_a_uniform_window_equals_quantus_at_data_ranges_other_than_one():
    # Quantus takes the pair's max - min as L (2, 0.5 and 3 here), so C1 = (0.01 L)^2 differs from 0.01^2 L
    a, b = RANGES["ssim_a"], RANGES["ssim_b"]
    span = np.array([np.ptp(np.concatenate([p, q])) for p, q in zip(a, b)])
    np.testing.assert_allclose(span, RANGES["ssim_range"], rtol=1e-12)
    ours = [ssim(p, q, window="uniform", sample_covariance=True, data_range=r) for p, q, r in zip(a, b, span)]
    np.testing.assert_allclose(ours, RANGES["ssim_quantus"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(ssim(a, b, data_range=2.0)[0], RANGES["ssim_skimage"][0], rtol=0, atol=1e-12)
    gaussian = [ssim(p, q, data_range=r) for p, q, r in zip(a, b, RANGES["ssim_range"])]
    np.testing.assert_allclose(gaussian, RANGES["ssim_skimage"], rtol=0, atol=1e-12)
    # and the [0, 1] maps of the first fixture with Quantus's own range (1 there)
    a, b = REF["ssim_a"], REF["ssim_b"]
    ours = [ssim(p, q, window="uniform", sample_covariance=True) for p, q in zip(a, b)]
    np.testing.assert_allclose(ours, REF["ssim_quantus"], rtol=0, atol=1e-12)


def test_spearman_equals_quantus_on_signed_maps_with_ties():
    a, b = RANGES["rank_a"], RANGES["rank_b"]
    np.testing.assert_allclose(spearman(a, b), RANGES["spearman_quantus"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(spearman_abs(a, b), RANGES["spearman_abs_quantus"], rtol=0, atol=1e-12)
    assert np.abs(RANGES["spearman_quantus"] - RANGES["spearman_abs_quantus"]).min() > 0.3   # the sign matters


def test_spearman_equals_quantus_mprt_similarities():
    a, b = REF["ssim_a"] - 0.5, REF["ssim_b"] - 0.5
    np.testing.assert_allclose(spearman(a, b), REF["spearman_quantus"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(spearman_abs(a, b), REF["spearman_abs_quantus"], rtol=0, atol=1e-12)


def test_pointing_game_and_relevance_mass_equal_quantus():
    np.testing.assert_array_equal(pointing_game(REF["point_maps"], REF["point_masks"]), REF["pointing_game_quantus"])
    np.testing.assert_allclose(energy_pointing_game(REF["point_maps_positive"], REF["point_masks"]),
                               REF["mass_quantus"], rtol=0, atol=1e-12)


def test_pointing_game_and_relevance_mass_equal_quantus_on_masks_that_are_not_quarters():
    maps, masks = RANGES["point_maps"], RANGES["point_masks"]
    assert 0 < RANGES["pointing_game_quantus"].sum() < len(maps)           # hits and misses both
    np.testing.assert_array_equal(pointing_game(maps, masks), RANGES["pointing_game_quantus"])
    # the same answers by hand: is each map's arg-max inside its mask?
    hits = [float(m.ravel()[np.argmax(m)] == m[k].max()) if k.any() else 0.0 for m, k in zip(maps, masks)]
    np.testing.assert_array_equal(hits, RANGES["pointing_game_quantus"])
    mass = RANGES["mass_maps"]
    np.testing.assert_allclose(energy_pointing_game(mass, masks), RANGES["mass_quantus"], rtol=0, atol=1e-12)
    np.testing.assert_allclose([m[k].sum() / m.sum() for m, k in zip(mass, masks)], RANGES["mass_quantus"],
                               rtol=0, atol=1e-12)


def test_linear_imputation_equals_quantus_road_without_noise():
    x, removed = REF["impute_x"], REF["impute_removed"]
    np.testing.assert_allclose(impute(x, removed), REF["impute_quantus"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(impute_reference(x, removed), REF["impute_quantus"], rtol=0, atol=1e-12)


@pytest.mark.parametrize("name, layer", [("conv", Conv2d(64, 128, 3)), ("linear", Linear(2048, 256))])
def test_default_initialisation_draws_what_pytorch_draws(name, layer):
    reset_parameters(layer, np.random.default_rng(0))
    w = layer.params["weight"].astype(np.float64)
    bound = 1 / np.sqrt(REF[f"init_{name}_fan_in"])
    assert REF[f"init_{name}_max"] <= bound and np.abs(w).max() <= bound
    assert REF[f"init_{name}_max"] == pytest.approx(bound, rel=1e-3)
    assert np.abs(w).max() == pytest.approx(bound, rel=1e-3)
    assert w.std() == pytest.approx(float(REF[f"init_{name}_std"]), rel=0.02)         # bound / sqrt(3)
    assert np.abs(layer.params["bias"]).max() <= bound


def test_batchnorm_reset_equals_pytorchs_fresh_layer():
    bn = BatchNorm2d(8)
    bn.params["weight"][:] = 3.0
    bn.buffers["running_var"][:] = 9.0
    reset_parameters(bn, np.random.default_rng(0))
    assert [bn.params["weight"][0], bn.params["bias"][0], bn.buffers["running_mean"][0],
            bn.buffers["running_var"][0]] == REF["init_bn"].tolist()

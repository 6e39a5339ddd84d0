"""minicnn.metrics against scikit-image, Quantus 0.6.0 and PyTorch, on the same inputs.

The reference answers were recorded once by weights/recipes/make_metrics_fixture.py into
tests/fixtures/metrics_reference.npz; none of those libraries is needed here.
"""

from pathlib import Path

import numpy as np
import pytest

from minicnn.layers import BatchNorm2d, Conv2d, Linear
from minicnn.metrics.localisation import energy_pointing_game, pointing_game
from minicnn.metrics.randomisation import reset_parameters
from minicnn.metrics.road import impute, impute_reference
from minicnn.metrics.similarity import spearman, spearman_abs, ssim

REF = dict(np.load(Path(__file__).parent / "fixtures" / "metrics_reference.npz"))


def test_the_fixture_records_its_libraries():
    assert "quantus 0.6.0" in str(REF["versions"]) and "scikit-image" in str(REF["versions"])


def test_ssim_equals_scikit_image_with_wangs_gaussian_window():
    np.testing.assert_allclose(ssim(REF["ssim_a"], REF["ssim_b"]), REF["ssim_skimage"], rtol=0, atol=1e-12)


def test_ssim_with_a_uniform_window_equals_quantus():
    a, b = REF["ssim_a"], REF["ssim_b"]
    span = np.array([np.ptp(np.concatenate([p, q])) for p, q in zip(a, b)])   # Quantus: the pair's range
    ours = [ssim(p, q, window="uniform", sample_covariance=True, data_range=r) for p, q, r in zip(a, b, span)]
    np.testing.assert_allclose(ours, REF["ssim_quantus"], rtol=0, atol=1e-12)


def test_spearman_equals_quantus_mprt_similarities():
    a, b = REF["ssim_a"] - 0.5, REF["ssim_b"] - 0.5
    np.testing.assert_allclose(spearman(a, b), REF["spearman_quantus"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(spearman_abs(a, b), REF["spearman_abs_quantus"], rtol=0, atol=1e-12)


def test_pointing_game_and_relevance_mass_equal_quantus():
    np.testing.assert_array_equal(pointing_game(REF["point_maps"], REF["point_masks"]), REF["pointing_game_quantus"])
    assert REF["pointing_game_quantus"].tolist() == [1, 0, 1, 0, 1, 0, 1, 0] or REF["pointing_game_quantus"][::2].all()
    np.testing.assert_allclose(energy_pointing_game(REF["point_maps_positive"], REF["point_masks"]),
                               REF["mass_quantus"], rtol=0, atol=1e-12)


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
    assert REF[f"init_{name}_max"] == pytest.approx(bound, rel=1e-3) and np.abs(w).max() == pytest.approx(bound, rel=1e-3)
    assert w.std() == pytest.approx(float(REF[f"init_{name}_std"]), rel=0.02)         # bound / sqrt(3)
    assert np.abs(layer.params["bias"]).max() <= bound


def test_batchnorm_reset_equals_pytorchs_fresh_layer():
    bn = BatchNorm2d(8)
    bn.params["weight"][:] = 3.0
    bn.buffers["running_var"][:] = 9.0
    reset_parameters(bn, np.random.default_rng(0))
    assert [bn.params["weight"][0], bn.params["bias"][0], bn.buffers["running_mean"][0],
            bn.buffers["running_var"][0]] == REF["init_bn"].tolist()

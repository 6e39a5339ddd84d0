"""Average Drop, faithfulness correlation, infidelity, max-sensitivity, sparseness, complexity and random-logit
against Quantus 0.6.0, captum 0.9.0 and torch-cam's formulas, given the same inputs and the same random draws.

The references were recorded once by tests/fixtures/recipes/make_new_metrics_reference.py into
tests/fixtures/new_metrics_reference.npz, on a small MLP that is rebuilt here in NumPy (float64 there and here).
Tolerances: 1e-10 for the metrics of maps alone; 1e-9 (relative) where the network's scores enter.
"""

from pathlib import Path

import numpy as np
import pytest

from minicnn.layers import softmax
from minicnn.metrics.complexity import complexity, sparseness
from minicnn.metrics.confidence import average_drop, explanation_mask, increase_in_confidence, masked_inputs
from minicnn.metrics.perturbation import faithfulness_correlation, infidelity
from minicnn.metrics.random_logit import random_logit
from minicnn.metrics.robustness import max_sensitivity

REF = dict(np.load(Path(__file__).resolve().parents[1] / "fixtures" / "new_metrics_reference.npz"))


def logits(x):
    """The recorded MLP: W2 relu(W1 flatten(x) + b1) + b2, (M, 3, 8, 8) -> (M, 5)."""
    z = x.reshape(len(x), -1) @ REF["w1"].T + REF["b1"]
    return np.maximum(z, 0) @ REF["w2"].T + REF["b2"]


def logit_score(copies, rows):
    return logits(copies)[np.arange(len(copies)), REF["y"][rows]]


def input_x_gradient(x, classes):
    """x * d f_c / dx for the MLP: the gradient is W1^T ((z > 0) * W2[c])."""
    z = x.reshape(len(x), -1) @ REF["w1"].T + REF["b1"]
    grad = ((z > 0) * REF["w2"][classes]) @ REF["w1"]
    return x * grad.reshape(x.shape)


def test_the_fixture_records_its_libraries():
    versions = str(REF["versions"])
    assert "quantus 0.6.0" in versions and "captum 0.9.0" in versions and "torch 2.13.0" in versions


def test_sparseness_and_complexity_equal_quantus():
    np.testing.assert_allclose(sparseness(REF["maps"]), REF["sparseness_quantus"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(complexity(REF["maps"]), REF["complexity_quantus"], rtol=0, atol=1e-10)


@pytest.mark.parametrize("key", ["fc", "fc_pixels"])
def test_faithfulness_correlation_equals_quantus_given_its_subsets(key):
    a = REF["maps"] if key == "fc" else REF["fc_pixels"]             # (N, C, H, W), and (N, H, W) broadcast
    ours = faithfulness_correlation(logit_score, REF["x"], a, REF[f"{key}_subsets"])
    np.testing.assert_allclose(ours, REF[f"{key}_quantus"], rtol=1e-9, atol=1e-12, equal_nan=True)
    assert np.isnan(REF["fc_quantus"]).sum() == 1                     # a flat map's sums do not vary: undefined


@pytest.mark.parametrize("normalize", [False, True])
def test_infidelity_equals_captum_given_its_perturbations(normalize):
    ours = infidelity(logit_score, REF["x"], REF["maps"], REF["infid_noise"], normalize=normalize)
    np.testing.assert_allclose(ours, REF["infid_norm_captum" if normalize else "infid_captum"], rtol=1e-9)


def test_max_sensitivity_equals_captum_given_its_noise():
    y = REF["y"]
    ours = max_sensitivity(lambda copies, rows: input_x_gradient(copies, y[rows]), REF["x"], REF["sens_noise"])
    np.testing.assert_allclose(ours, REF["sens_captum"], rtol=1e-9)


def test_random_logit_equals_quantus_given_its_other_classes():
    x, y, others = REF["x"], REF["y"], REF["rl_others"]
    assert not np.any(others == y)
    ours = random_logit(input_x_gradient(x, y), input_x_gradient(x, others))
    np.testing.assert_allclose(ours, REF["rl_quantus"], rtol=0, atol=1e-10)


def test_average_drop_and_increase_equal_torch_cams_formulas():
    x, y = REF["x"], REF["y"]
    mask = explanation_mask(REF["cam_maps"], (8, 8))
    p = softmax(logits(x))[np.arange(6), y]
    p_masked = softmax(logits(masked_inputs(x, mask)))[np.arange(6), y]
    np.testing.assert_allclose(p, REF["cam_p"], rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(p_masked, REF["cam_p_masked"], rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(average_drop(p, p_masked), REF["cam_drop"], rtol=1e-9, atol=1e-15)
    np.testing.assert_array_equal(increase_in_confidence(p, p_masked), REF["cam_increase"])
    assert 0 < REF["cam_increase"].sum() < 6 and 0 < np.count_nonzero(REF["cam_drop"]) < 6   # both cases met

"""Attribution maps against captum 0.9.0 and zennit 0.5.1, recorded on both shipped models.

The references were computed in float64 on PyTorch twins of the shipped
models (``weights/recipes/make_attribution_fixtures.py``) and stored as
float32; minicnn runs the same models in float64 here. The error of a map is
max |minicnn - reference| / max |reference|, asserted below 1e-4 (about
5e-8 is measured: the float32 rounding of the stored reference).
"""

import json
from pathlib import Path

import numpy as np
import pytest
from test_explain_helpers import shipped

from minicnn import explain

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
QUADRATURES = ["riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre"]
TOLERANCE = 1e-4


def error(mine, reference):
    return float(np.abs(mine - reference).max() / np.abs(reference).max())


@pytest.fixture(scope="module", params=["vgg_cifar10", "resnet20_cifar10"])
def case(request):
    model = shipped(request.param).astype(np.float64)
    with np.load(FIXTURES / f"attribution_{request.param}.npz", allow_pickle=False) as f:
        ref = {k: f[k] for k in f.files}
    ref["info"] = json.loads(bytes(ref["info"]))
    x = ref["x"].astype(np.float64)
    np.testing.assert_allclose(model.forward(x), ref["logits"], rtol=1e-6, atol=1e-5)   # the same network
    return model, x, ref["target"], ref


def test_integrated_gradients_with_every_quadrature_matches_captum(case):
    model, x, target, ref = case
    steps = ref["info"]["steps"]
    for q in QUADRATURES:
        r = explain.integrated_gradients(model, x[:1], target[:1], quadrature=q, steps=steps, progress=False)
        # captum weights its trapezoid's n points by 1/n, not 1/(n - 1): its sum is (n - 1)/n of the integral
        scale = (steps - 1) / steps if q == "riemann_trapezoid" else 1.0
        assert error(scale * r.map, ref[f"ig.{q}"]) < TOLERANCE, q
        if q != "riemann_trapezoid":                  # the gap is minus captum's convergence delta
            np.testing.assert_allclose(r.gap, -ref[f"ig.{q}.delta"], rtol=1e-5)


def test_integrated_gradients_with_other_baselines_matches_captum(case):
    model, x, target, ref = case
    for name, baseline in [("black", "black"), ("blur", "blur"), ("uniform", ref["baseline.uniform"])]:
        r = explain.integrated_gradients(model, x[:1], target[:1], baseline=baseline, steps=ref["info"]["steps"],
                                         progress=False)
        assert error(r.map, ref[f"ig.baseline.{name}"]) < TOLERANCE, name


def test_input_x_gradient_and_deconvnet_match_captum(case):
    model, x, target, ref = case
    assert error(explain.input_x_gradient(model, x, target).map, ref["input_x_gradient"]) < TOLERANCE
    assert error(explain.deconvnet(model, x, target).map, ref["deconvnet"]) < TOLERANCE


def test_smoothgrad_squared_and_vargrad_match_captums_noise_tunnel_given_the_same_noise(case):
    model, x, target, ref = case
    noise = ref["noise"].astype(np.float64)
    for key, method in [("smoothgrad", explain.smoothgrad), ("smoothgrad_squared", explain.smoothgrad_squared),
                        ("vargrad", explain.vargrad)]:
        assert error(method(model, x[:1], target[:1], noise=noise).map, ref[key]) < TOLERANCE, key
    r = explain.smoothgrad(model, x[:1], target[:1], base="input-x-gradient", noise=noise)
    assert error(r.map, ref["smoothgrad.input_x_gradient"]) < TOLERANCE


@pytest.mark.parametrize("composite", ["epsilon", "epsilon-plus", "epsilon-gamma-box", "epsilon-alpha2-beta1",
                                       "epsilon-plus-flat"])
def test_lrp_composites_match_zennit(case, composite):
    model, x, target, ref = case
    r = explain.lrp(model, x, target, composite)
    assert error(r.map, ref["lrp." + composite.replace("-", "_")]) < TOLERANCE

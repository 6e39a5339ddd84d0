"""LRP on the shipped mobilenet_v2 against zennit 0.5.1, recorded on a PyTorch twin built from the same weights.

The reference (``weights/recipes/make_lrp_mobilenet_v2_fixture.py``) is pets.jpg
at 64x64, run in float64 and stored as float32: the relevance at the input
for five composites, and the total relevance at the output of every block
(``features.0`` ... ``features.18``, ``avgpool``, ``classifier``) then at the
input. minicnn agrees with zennit (measured: 3e-8 of the map's largest value
in float64, 1e-6 in float32 for the z+ composites), so the little relevance
that reaches the input (8.7e-6 of y^c with epsilon-plus) is what the rules
give on this network, not a defect: the biases absorb the rest, and
``LRP.budget`` says where.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from minicnn import explain

from test_explain_helpers import shipped

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "lrp_mobilenet_v2.npz"
COMPOSITES = ["epsilon", "epsilon-plus", "epsilon-gamma-box", "epsilon-alpha2-beta1", "epsilon-plus-flat"]


def error(mine, reference):
    """max |mine - reference| / max |reference|: an error relative to the map's scale."""
    return float(np.abs(mine - reference).max() / np.abs(reference).max())


@pytest.fixture(scope="module")
def ref():
    with np.load(FIXTURE, allow_pickle=False) as f:
        out = {k: f[k] for k in f.files}
    out["info"] = json.loads(bytes(out["info"]))
    return out


@pytest.fixture(scope="module")
def model64():
    return shipped("mobilenet_v2").astype(np.float64)


@pytest.mark.parametrize("composite", COMPOSITES)
def test_lrp_on_mobilenet_v2_matches_zennit_in_float64(ref, model64, composite):
    key = composite.replace("-", "_")
    r = explain.lrp(model64, ref["x"].astype(np.float64), ref["target"], composite)
    np.testing.assert_allclose(r.logits, ref["logits"], rtol=1e-5, atol=1e-5)       # the same network
    assert error(r.map, ref["lrp." + key]) < 1e-5
    # the total relevance at every block's output, then at the input, as zennit's pass leaves it
    totals = [float(model64.gradients[b].sum()) for b in ref["blocks"]] + [float(r.map.sum())]
    y = float(r.scores[0])
    np.testing.assert_allclose(np.array(totals) / y, ref["sums." + key] / y, rtol=0, atol=1e-6)


def test_lrp_epsilon_plus_on_mobilenet_v2_matches_zennit_in_float32(ref):
    model = shipped("mobilenet_v2")
    r = explain.lrp(model, ref["x"], ref["target"], "epsilon-plus")
    assert r.map.dtype == np.float32
    assert error(r.map, ref["lrp.epsilon_plus"]) < 1e-4           # 1e-6 measured
    # almost nothing reaches the input: zennit and minicnn agree on the fraction
    y = float(r.scores[0])
    assert abs(float(r.map.sum()) / y - float(ref["sums.epsilon_plus"][-1]) / y) < 1e-7
    assert 0 < float(r.map.sum()) / y < 1e-4

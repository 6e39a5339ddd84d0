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
from test_explain_helpers import shipped

from minicnn import explain

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "lrp_mobilenet_v2.npz"
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


# ---------------------------------------------------------------- the relevance budget, by hand

def budget_model():
    """x (1, 1, 1, 2) -> flatten -> fc1 (W1, b1) -> ReLU -> fc2 (W2, b2); classes "a", "b".

    x = [1, 2]; W1 = [[1, 1], [1, -1]], b1 = [1, 0]: z1 = [4, -1], a = [4, 0];
    W2 = [[0.5, 1], [1, 1]], b2 = [2, -1]: y = [4, 3].
    """
    from minicnn.layers import Flatten, Linear, ReLU, Sequential
    from minicnn.model import Model
    fc1, fc2 = Linear(2, 2), Linear(2, 2)
    fc1.params = {"weight": np.array([[1.0, 1.0], [1.0, -1.0]]), "bias": np.array([1.0, 0.0])}
    fc2.params = {"weight": np.array([[0.5, 1.0], [1.0, 1.0]]), "bias": np.array([2.0, -1.0])}
    root = Sequential([("flatten", Flatten()), ("fc1", fc1), ("relu", ReLU()), ("fc2", fc2)])
    return Model(root, {"name": "budget", "classes": ["a", "b"], "input_size": [1, 1, 2]})


def test_the_budget_of_lrp_0_adds_up_to_y_c_on_a_network_worked_by_hand():
    from minicnn.explain.lrp import Composite, base_map
    from minicnn.explain.lrp_rules import Epsilon
    from minicnn.layers import Linear
    x = np.array([1.0, 2.0]).reshape(1, 1, 1, 2)
    lrp_0 = Composite("zero", base_map(0.0) + ((Linear, Epsilon(0.0)),))
    r = explain.lrp(budget_model(), x, "a", lrp_0)
    # fc2: R = [4, 0], s = R / y = [1, 0], R_a = a * W2^T s = [4 * 0.5, 0] = [2, 0]: b2 took s . b2 = 2
    # ReLU passes [2, 0]; fc1: s = [2 / 4, 0] = [0.5, 0], R_x = x * W1^T s = [0.5, 1]: b1 took s . b1 = 0.5
    np.testing.assert_allclose(r.map.reshape(-1), [0.5, 1.0])
    b = r.budget
    assert b.stages == ("flatten", "fc1", "relu", "fc2")
    np.testing.assert_allclose(b.absorbed[0], [0.0, 0.5, 0.0, 2.0])
    np.testing.assert_allclose(b.at_input, [1.5])
    np.testing.assert_allclose(b.start, [4.0])
    np.testing.assert_allclose(b.fraction_at_input, [0.375])
    np.testing.assert_allclose(b.shares[0], [0.0, 0.125, 0.0, 0.5])
    assert b.fraction_at_input[0] + b.shares[0].sum() == pytest.approx(1.0)
    assert b.largest(0, 2) == [("fc2", 0.5), ("fc1", 0.125)]
    assert b.summary() == "relevance at the input = 0.38 of y^c = 4; the biases took: fc2 50%, fc1 12%"
    d = b.as_dict()
    assert d["fraction_at_input"] == pytest.approx(0.375) and [s["name"] for s in d["stages"]] == list(b.stages)


def test_relevance_budget_telescopes_given_totals_and_refuses_mismatched_shapes():
    from minicnn.errors import InputError
    from minicnn.explain.lrp import relevance_budget
    b = relevance_budget(["s1", "s2", "s3"], np.array([[3.0, 2.0, 10.0], [1.0, 1.0, -2.0]]), np.array([1.0, 0.5]))
    np.testing.assert_allclose(b.absorbed, [[2.0, -1.0, 8.0], [0.5, 0.0, -3.0]])
    np.testing.assert_allclose(b.start, [10.0, -2.0])
    np.testing.assert_allclose(b.fraction_at_input + b.shares.sum(axis=1), [1.0, 1.0])
    with pytest.raises(InputError):
        relevance_budget(["s1"], np.zeros((2, 3)), np.zeros(2))


def test_the_budget_on_mobilenet_v2_says_the_biases_of_the_last_blocks_took_the_relevance(ref):
    r = explain.lrp(shipped("mobilenet_v2"), ref["x"], ref["target"], "epsilon-plus")
    b = r.budget
    y = float(r.scores[0])
    assert b.start[0] == pytest.approx(y, rel=1e-6)
    assert b.fraction_at_input[0] == pytest.approx(float(ref["sums.epsilon_plus"][-1]) / y, abs=1e-7)
    assert b.fraction_at_input[0] + b.shares[0].sum() == pytest.approx(1.0, abs=1e-6)
    # the share of each block is zennit's: the drop of the total between its input and its output
    zennit = ref["sums.epsilon_plus"] / y
    blocks = list(ref["blocks"])
    for k in range(1, 18):                                  # features.18 is opened: 18.0, 18.2
        assert b.shares[0][b.stages.index(f"features.{k}")] == pytest.approx(zennit[k] - zennit[k - 1], abs=1e-6)
    assert "relevance at the input = " in b.summary() and "the biases took: features." in b.summary()
    assert blocks[0] == "features.0"


def test_the_budget_of_a_batch_in_chunks_is_that_of_each_image(monkeypatch):
    from test_explain_helpers import small_cnn

    from minicnn import model as model_module
    from minicnn import parallel
    model = small_cnn(4)
    x = np.random.default_rng(5).standard_normal((5, 3, 8, 8))
    targets = [0, 1, 2, 1, 0]
    each = [explain.lrp(model, x[i:i + 1], targets[i], "epsilon-plus").budget for i in range(5)]
    monkeypatch.setattr(parallel, "_blas_threads", lambda: 3)
    monkeypatch.setattr(model_module, "CHUNK_ELEMENTS", 2 * 192)             # chunks of 1 to 3 images
    batch = explain.lrp(model, x, targets, "epsilon-plus").budget
    assert isinstance(model._run, model_module.Chunks)
    assert batch.stages == each[0].stages
    np.testing.assert_allclose(batch.absorbed, np.concatenate([b.absorbed for b in each]), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(batch.at_input, np.concatenate([b.at_input for b in each]), rtol=1e-9)
    np.testing.assert_allclose(batch.start, np.concatenate([b.start for b in each]), rtol=1e-12)
    assert np.abs(batch.absorbed).max() > 1e-3                     # the biases took something
    np.testing.assert_allclose(batch.fraction_at_input + batch.shares.sum(axis=1), 1.0, rtol=1e-9)

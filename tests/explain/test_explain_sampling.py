"""LIME, Kernel SHAP and RISE: by hand on tiny networks, and against captum 0.9.0 and the RISE authors' code.

The references (``weights/recipes/make_sampling_fixtures.py``) ran a float64 PyTorch twin of
ResNet-20; minicnn is given the very draws they made (captum's coalitions, the authors' mask grids
and shifts). The error of a map is max |minicnn - reference| / max |reference|:

    LIME          < 1e-3   captum fits its Lasso in float32 with scikit-learn's tolerance 1e-4
                           (measured: 4.6e-5)
    Kernel SHAP   < 1e-4   a float32 weighted least squares (measured: 1.3e-6)
    RISE          < 1e-5   the masks in float32 (measured: 7e-8)
"""

import importlib
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from test_explain_helpers import _model, shipped

from minicnn import explain
from minicnn.errors import InputError
from minicnn.explain import features
from minicnn.layers import Conv2d, Flatten, Linear, ReLU, softmax

# the modules, not the functions of the same name that minicnn.explain exports
lime_module = importlib.import_module("minicnn.explain.lime")
rise_module = importlib.import_module("minicnn.explain.rise")

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def error(mine, reference):
    return float(np.abs(mine - reference).max() / np.abs(reference).max())


# ---------------------------------------------------------------- tiny networks

def linear_model(weight):
    """x (1, 1, 2, 2) -> flatten -> Linear W (2 x 4), no bias: y^c = sum_ij W[c, 2i + j] x_ij."""
    fc = Linear(4, 2, bias=False)
    fc.params["weight"] = np.asarray(weight, np.float64)
    return _model([("flatten", Flatten()), ("fc", fc)], ["p", "q"], [1, 2, 2], "linear")


def relu_model():
    """x (1, 1, 1, 3) -> conv 1x1 (w = 1) -> ReLU -> flatten -> Linear -> ReLU -> Linear: a non-additive f."""
    conv = Conv2d(1, 1, 1, bias=False)
    conv.params["weight"] = np.ones((1, 1, 1, 1))
    hidden = Linear(3, 2)
    hidden.params["weight"] = np.array([[1.0, -2.0, 1.5], [0.5, 1.0, -1.0]])
    hidden.params["bias"] = np.array([-0.5, 0.25])
    out = Linear(2, 2)
    out.params["weight"] = np.array([[2.0, -1.0], [1.0, 1.0]])
    out.params["bias"] = np.array([0.1, -0.2])
    return _model([("conv", conv), ("relu", ReLU()), ("flatten", Flatten()), ("hidden", hidden), ("relu2", ReLU()),
                   ("out", out)], ["a", "b"], [1, 1, 3], "relu")


W = [[1.0, 2.0, -1.0, 0.5], [2.0, 1.0, 1.0, -1.0]]
X = np.array([[1.0, -2.0], [3.0, 0.5]]).reshape(1, 1, 2, 2)
COLUMNS = np.array([[0, 1], [0, 1]])              # feature 0: the left column, feature 1: the right one


def test_lime_without_penalty_recovers_a_linear_models_contributions_exactly():
    """y(x_z) = y(b) + sum_m z_m W_m (x - b) over feature m's pixels: the fit is exact whatever the weights."""
    model = linear_model(W)
    z = np.array([[1, 0], [0, 1], [1, 1], [0, 0], [1, 0]])
    r = explain.lime(model, X, 0, features=COLUMNS, coalitions=z, alpha=0.0, baseline=0.5)
    left = 1.0 * (1 - 0.5) + -1.0 * (3 - 0.5)               # W[0, 0] (x00 - b) + W[0, 2] (x10 - b) = -2
    right = 2.0 * (-2 - 0.5) + 0.5 * (0.5 - 0.5)            # -5
    np.testing.assert_allclose(r.coefficients[0], [left, right], atol=1e-9)
    np.testing.assert_allclose(r.map[0], [[left, right], [left, right]], atol=1e-9)
    np.testing.assert_allclose(r.intercepts[0], model.forward(np.full_like(X, 0.5))[0, 0], atol=1e-9)


def test_lime_weights_are_the_exponential_kernel_of_the_cosine_distance():
    x = np.array([1.0, 2.0, 0.0, -1.0]).reshape(1, 1, 2, 2)
    copies = np.stack([x[0], x[0] * 0, np.array([1.0, 0.0, 0.0, -1.0]).reshape(1, 2, 2)])
    cos = (1 + 1) / (math.sqrt(6) * math.sqrt(2))            # x . x_z / (|x| |x_z|) for the third copy
    expected = [1.0, math.exp(-0.5), math.exp(-((1 - cos) ** 2) / 2)]   # all off: cos = 0, d = 1
    np.testing.assert_allclose(lime_module.cosine_kernel(x[0], copies), expected, rtol=1e-12)
    np.testing.assert_allclose(lime_module.cosine_kernel(x[0], copies[2:], 0.5), [math.exp(-((1 - cos) ** 2) / 0.5)])


def test_lasso_by_coordinate_descent_solves_a_case_written_out():
    """One feature, weights v: phi = S(sum v zc yc, alpha) / sum v zc^2 (the soft threshold)."""
    z = np.array([[0.0], [1.0], [1.0], [0.0]])
    y = np.array([1.0, 3.0, 4.0, 0.0])
    pi = np.array([1.0, 1.0, 2.0, 2.0])
    phi, phi_0 = lime_module.weighted_fit(z, y, pi, alpha=0.1)
    v = pi / pi.sum()
    zc, yc = z[:, 0] - v @ z[:, 0], y - v @ y
    expected = (v @ (zc * yc) - 0.1) / (v @ (zc * zc))
    np.testing.assert_allclose(phi, [expected], rtol=1e-12)
    np.testing.assert_allclose(phi_0, v @ y - (v @ z[:, 0]) * expected, rtol=1e-12)
    assert lime_module.weighted_fit(z, y, pi, alpha=10.0)[0][0] == 0.0     # a large penalty: no feature


def test_kernel_shap_with_every_coalition_is_the_brute_force_shapley_value():
    """M = 3: the Shapley kernel is 1/3 for |z| = 1 and 2, so each coalition once is the exact weighting."""
    model = relu_model()
    x = np.array([1.0, 0.5, -0.8]).reshape(1, 1, 1, 3)
    b = np.array([0.2, -0.3, 0.4]).reshape(1, 1, 1, 3)
    mask = np.array([[0, 1, 2]])
    coalitions = [(1, 1, 1), (0, 0, 0)] + [z for z in itertools.product((0, 1), repeat=3) if 0 < sum(z) < 3]
    assert {lime_module.shapley_kernel(3, k) for k in (1, 2)} == {1 / 3}
    r = explain.kernel_shap(model, x, 1, features=mask, baseline=b, coalitions=np.array(coalitions))

    def f(on):                                                   # y^1 with the features in ``on`` from x
        keep = np.isin(np.arange(3), list(on)).reshape(1, 1, 1, 3)
        return model.forward(np.where(keep, x, b))[0, 1]

    shapley = [sum(math.factorial(len(s)) * math.factorial(3 - len(s) - 1) / math.factorial(3) * (f({*s, m}) - f(s))
                   for k in range(3) for s in itertools.combinations([j for j in range(3) if j != m], k))
               for m in range(3)]
    np.testing.assert_allclose(r.coefficients[0], shapley, atol=1e-5)
    assert abs(r.gap[0]) < 1e-5 and np.ptp(shapley) > 0.1                # efficiency; not a trivial answer


def test_kernel_shap_draws_sizes_by_the_shapley_kernel_and_weighs_the_ends_by_a_million():
    rng = np.random.default_rng(0)
    z = lime_module.shap_coalitions(rng, 4002, 5)
    assert z[0].all() and not z[1].any() and (z[2:].sum(1) > 0).all() and (z[2:].sum(1) < 5).all()
    p = lime_module.shapley_size_probabilities(5)                 # (M - 1) / (k (M - k)): 1, 2/3, 2/3, 1 over 10/3
    np.testing.assert_allclose(p, [0, 0.3, 0.2, 0.2, 0.3])
    sizes = np.bincount(z[2:].sum(1), minlength=5) / 4000
    np.testing.assert_allclose(sizes, p, atol=0.03)
    np.testing.assert_array_equal(lime_module.shap_weights(z[:3]), [1e6, 1e6, 1.0])
    assert lime_module.shapley_kernel(5, 2) == 4 / (10 * 2 * 3)


def test_lime_and_kernel_shap_are_seeded_and_explain_each_image_of_a_batch_for_its_own_target():
    model = relu_model()
    x = np.random.default_rng(1).standard_normal((2, 1, 1, 3))
    mask = np.array([[[0, 1, 2]], [[0, 0, 1]]])                  # each image its own superpixels
    for method in (explain.lime, explain.kernel_shap):
        a = method(model, x, [0, 1], features=mask, samples=12, seed=3)
        b = method(model, x, [0, 1], features=mask, samples=12, seed=3)
        np.testing.assert_array_equal(a.map, b.map)
        assert a.coalitions[1].shape == (12, 2) and a.map[1, 0, 0] == a.map[1, 0, 1]
        one = method(model, x[1:], [1], features=mask[1], coalitions=a.coalitions[1])
        np.testing.assert_allclose(one.map[0], a.map[1], atol=1e-9)
        assert list(a.targets) == [0, 1]
        np.testing.assert_array_equal(method(model, x, [0, 1], features=mask, coalitions=a.coalitions).map, a.map)


# ---------------------------------------------------------------- feature masks

def test_the_grid_mask_cuts_rows_and_columns_at_floor_k_h_over_cells():
    np.testing.assert_array_equal(features.grid_mask((4, 6), 2), [[0, 0, 0, 1, 1, 1]] * 2 + [[2, 2, 2, 3, 3, 3]] * 2)
    np.testing.assert_array_equal(features.grid_mask((3, 3), 2), [[0, 0, 1], [0, 0, 1], [2, 2, 3]])
    labels, counts = features.feature_mask(np.zeros((1, 3, 32, 32)), "grid", 4)
    assert counts.tolist() == [16] and np.bincount(labels.ravel()).tolist() == [64] * 16


def test_a_mask_passed_in_is_relabelled_in_order_and_checked():
    labels, counts = features.feature_mask(np.zeros((1, 1, 2, 2)), np.array([[7, 3], [3, 9]]))
    np.testing.assert_array_equal(labels[0], [[1, 0], [0, 2]])
    assert counts.tolist() == [3]
    for bad, match in [(np.array([[0.5, 1], [1, 0]]), "integer labels"), (np.zeros((3, 3), int), "size"),
                       (np.array([[-1, 0], [0, 0]]), ">= 0"), ("circles", "grid, slic")]:
        with pytest.raises(InputError, match=match):
            features.feature_mask(np.zeros((1, 1, 2, 2)), bad)
    with pytest.raises(InputError, match="over the limit"):
        features.feature_mask(np.zeros((1, 1, 40, 40)), np.arange(1600).reshape(40, 40))


def test_slic_superpixels_need_scikit_image_or_say_so_in_one_line():
    x = np.random.default_rng(0).random((1, 3, 16, 16))
    try:
        import skimage.segmentation  # noqa: F401
    except ImportError:
        with pytest.raises(InputError, match="scikit-image"):
            features.feature_mask(x, "slic", 2)
        return
    labels, counts = features.feature_mask(x, "slic", 2)
    assert labels.shape == (1, 16, 16) and 1 <= counts[0] <= 16
    with np.load(FIXTURES / "sampling_resnet20_cifar10.npz", allow_pickle=False) as f:   # the recipe's SLIC
        np.testing.assert_array_equal(features.slic_mask(f["x"], 12), f["kernel_shap.mask"])


def test_feature_mask_files_are_read_as_pngs_or_npy_arrays_and_refused_otherwise(tmp_path):
    from PIL import Image
    labels = np.array([[0, 0, 1], [2, 2, 1]])
    Image.fromarray(labels.astype(np.uint8)).save(tmp_path / "m.png")
    np.save(tmp_path / "m.npy", labels)
    for name in ("m.png", "m.npy"):
        np.testing.assert_array_equal(features.load_feature_mask(tmp_path / name, (2, 3)), labels)
    np.save(tmp_path / "f.npy", labels.astype(float))
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    Image.fromarray(np.zeros((2, 3, 3), np.uint8)).save(tmp_path / "rgb.png")
    (tmp_path / "t.txt").write_text("0 1")
    for name, match in [("f.npy", "integer labels"), ("o.npy", "not a readable .npy"), ("rgb.png", "grey"),
                        ("t.txt", "neither a PNG"), ("missing.png", "not found")]:
        with pytest.raises(InputError, match=match):
            features.load_feature_mask(tmp_path / name, (2, 3))
    with pytest.raises(InputError, match="network input's size"):
        features.load_feature_mask(tmp_path / "m.png", (3, 3))
    with pytest.raises(InputError, match="folder"):
        features.load_feature_mask(tmp_path, (2, 3))


# ---------------------------------------------------------------- RISE by hand

def test_rise_masks_are_upsampled_with_mirrored_edges_shifted_and_cropped_by_hand():
    """s = 2 on 2 x 2: cell 1, upsampled to 3 x 3, where pixel o reads the grid at (o + 1/2) 2/3 - 1/2.

    Row weights A = [[5/6, 1/6], [1/2, 1/2], [1/6, 5/6]] (o = 0 reads -1/6: 5/6 of G[0] and 1/6 of the
    mirrored G[-1] = G[1]); the mask of G = e_0 e_0^T is a a^T with a = A[dy : dy + 2, 0].
    """
    np.testing.assert_allclose(rise_module.interpolation_weights(2, 3),
                               [[5 / 6, 1 / 6], [1 / 2, 1 / 2], [1 / 6, 5 / 6]])
    grid = np.array([[[1, 0], [0, 0]]] * 2)
    masks = rise_module.masks_of(grid, np.array([[0, 0], [1, 0]]), (2, 2))
    a0, a1 = np.array([5 / 6, 1 / 2]), np.array([1 / 2, 1 / 6])
    np.testing.assert_allclose(masks[0], np.outer(a0, a0))
    np.testing.assert_allclose(masks[1], np.outer(a1, a0))                       # shifted down by one row


def test_rise_is_the_probability_weighted_sum_of_masks_over_n_p():
    model = linear_model(W)
    grids = np.array([[[1, 0], [0, 1]], [[0, 1], [1, 1]], [[0, 0], [0, 0]]])
    shifts = np.zeros((3, 2), int)                           # cell 1: no room to shift (the references shift)
    r = explain.rise(model, X, 1, grids=grids, shifts=shifts, p=0.4, batch_size=2)
    masks = rise_module.masks_of(grids, shifts, (2, 2))
    f = softmax(model.forward(X * masks[:, None]))[:, 1]
    np.testing.assert_allclose(r.map[0], np.tensordot(f, masks, axes=1) / (3 * 0.4), rtol=1e-12)
    assert np.ptp(r.map) > 0.05


def test_rise_is_seeded_and_checks_its_options():
    model = linear_model(W)
    a = explain.rise(model, X, 0, samples=7, grid=2, seed=5)
    batched = explain.rise(model, X, 0, samples=7, grid=2, seed=5, batch_size=3)
    np.testing.assert_allclose(a.map, batched.map, rtol=1e-12)
    assert a.grids.shape == (7, 2, 2) and a.shifts.shape == (7, 2) and (a.shifts == 0).all()   # cell 1: no shift
    for options, match in [({"p": 0.0}, "p must be"), ({"p": 1.5}, "p must be"), ({"grid": 3}, "grid must"),
                           ({"samples": 0}, "samples must"), ({"grids": np.ones((2, 2, 2))}, "both")]:
        with pytest.raises(InputError, match=match):
            explain.rise(model, X, 0, **options)


# ---------------------------------------------------------------- the recorded references

@pytest.fixture(scope="module")
def recorded():
    model = shipped("resnet20_cifar10").astype(np.float64)
    with np.load(FIXTURES / "sampling_resnet20_cifar10.npz", allow_pickle=False) as f:
        ref = {k: f[k] for k in f.files}
    ref["info"] = json.loads(bytes(ref["info"]))
    x = ref["x"].astype(np.float64)
    np.testing.assert_allclose(model.forward(x), ref["logits"], rtol=1e-6, atol=1e-5)   # the same network
    return model, x, ref["target"], ref


def test_lime_matches_captum_given_its_coalitions(recorded):
    model, x, target, ref = recorded
    np.testing.assert_array_equal(ref["lime.mask"], features.grid_mask((32, 32), 4))
    r = explain.lime(model, x, target, features=ref["lime.mask"], coalitions=ref["lime.coalitions"])
    assert error(r.map, ref["lime.map"]) < 1e-3


@pytest.mark.parametrize("key", ["kernel_shap", "kernel_shap.small"])
def test_kernel_shap_matches_captum_given_its_coalitions_and_adds_up(recorded, key):
    model, x, target, ref = recorded
    baseline = ref["info"][key]["baselines"]
    for i in range(2):
        r = explain.kernel_shap(model, x[i:i + 1], target[i:i + 1], features=ref[f"{key}.mask"][i], baseline=baseline,
                                coalitions=ref[f"{key}.coalitions.{i}"])
        assert error(r.map[0], ref[f"{key}.map"][i]) < 1e-4
        gain = r.scores[0] - r.baseline_scores[0]                   # efficiency: sum phi = y(x) - y(b)
        assert abs(r.coefficients[0].sum() - gain) < 1e-5 * max(1.0, abs(gain))


def test_rise_matches_the_authors_formulation_given_their_masks(recorded):
    model, x, target, ref = recorded
    masks = rise_module.masks_of(ref["rise.grids"], ref["rise.shifts"], (32, 32))
    assert np.abs(masks - ref["rise.masks"]).max() < 1e-6                  # skimage's resize, written out
    r = explain.rise(model, x, target, grids=ref["rise.grids"], shifts=ref["rise.shifts"], p=ref["info"]["rise"]["p1"])
    assert error(r.map, ref["rise.map"]) < 1e-5

"""Grad-CAM and the counterfactual map: finite differences, hand-worked answers, properties, errors."""

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_explain_helpers import DENSE_X, GAP_X, dense_model, gap_model, small_cnn

from minicnn import explain
from minicnn.errors import InputError, UnknownNameError
from minicnn.explain.resize import resize_bilinear
from minicnn.gradcheck import check_function, compare, numerical_gradient
from minicnn.models import zoo

# ---------------------------------------------------------------- finite differences

def fd_check(model, x, targets, layer, max_checks=None):
    """dy^c/dA from Grad-CAM's backward against central differences of y^c(A) (float64)."""
    r = explain.gradcam(model, x, targets, layer, relu=False)
    A = model.activations[r.layer].copy()
    dA = model.gradients[r.layer].copy()
    seed = explain.onehot(r.targets, r.logits.shape[1], np.float64)
    err = check_function(lambda a: model.forward(x, replace={r.layer: a}), A, dA, dout=seed,
                         name=f"dy^c/dA at {r.layer}", max_checks=max_checks)
    return r, A, dA, seed, err


def test_dy_dA_matches_finite_differences_on_a_small_cnn(rng):
    model = small_cnn(1)
    x = rng.standard_normal((2, 3, 8, 8))
    r, A, dA, seed, err = fd_check(model, x, [0, 2], "features.4")
    assert err < 1e-7
    # alpha is the spatial mean of that gradient, and L its weighted sum of the maps
    fd = numerical_gradient(lambda a: model.forward(x, replace={"features.4": a}), A.copy(), seed)
    compare("alpha", r.alpha, fd.mean(axis=(2, 3)))
    np.testing.assert_allclose(r.map, np.einsum("nk,nkij->nij", fd.mean(axis=(2, 3)), A), rtol=1e-6, atol=1e-9)


def test_dy_dA_matches_finite_differences_at_a_layer_with_relus_and_pooling_downstream(rng):
    # features.1 (the first ReLU's output, 4 x 8 x 8) reaches y^c through max pooling, a conv and the
    # ReLU features.4: Grad-CAM's backward must take the true derivative through both (a guided or
    # deconvnet rule there would change dy^c/dA; only a layer with ReLUs downstream shows it).
    model = small_cnn(1)
    x = rng.standard_normal((2, 3, 8, 8))
    r = explain.gradcam(model, x, [0, 2], "features.1", relu=False)
    A, dA = model.activations["features.1"].copy(), model.gradients["features.1"].copy()
    assert np.any(dA < 0) and np.any(model.gradients["features.4"] < 0)
    # Finite differences only where y^c is differentiable: not at a zero tied with zeros in its 2x2
    # pooling window (max pooling has a kink there); elsewhere off kinks (random weights and input).
    n, k, h, w = A.shape
    window_max = A.reshape(n, k, h // 2, 2, w // 2, 2).max(axis=(3, 5)).repeat(2, axis=2).repeat(2, axis=3)
    smooth = np.flatnonzero((A > 0) | (window_max > 0))
    seed = explain.onehot(r.targets, r.logits.shape[1], np.float64)
    fd = numerical_gradient(lambda a: model.forward(x, replace={"features.1": a}), A.copy(), seed,
                            indices=smooth)
    assert compare("dy^c/dA at features.1", dA, fd) < 1e-7
    # alpha_k is the mean of dy^c/dA^k over the map: all of it, so the tied zeros are handled as the
    # derivative along a uniform shift of each map (max pooling is smooth along it: max(a + t) = max(a) + t).
    h_step, Z = 1e-6, h * w
    alpha_fd = np.zeros((n, k))
    for c in range(k):
        shift = np.zeros_like(A)
        shift[:, c] = h_step
        plus = model.forward(x, replace={"features.1": A + shift})
        minus = model.forward(x, replace={"features.1": A - shift})
        alpha_fd[:, c] = ((plus - minus) * seed).sum(axis=1) / (2 * h_step * Z)
    assert compare("alpha at features.1", r.alpha, alpha_fd) < 1e-7
    np.testing.assert_allclose(r.map, np.einsum("nk,nkij->nij", alpha_fd, A), rtol=1e-6, atol=1e-9)


def test_dy_dA_matches_finite_differences_through_residual_blocks(rng):
    model = zoo.resnet20(seed=3).astype(np.float64)
    x = rng.standard_normal((1, 3, 16, 16))
    for layer in ("layer3", "layer2.1"):
        _, _, _, _, err = fd_check(model, x, [4], layer, max_checks=40)
        assert err < 1e-6


# ---------------------------------------------------------------- answers worked out by hand

def test_gradcam_on_a_gap_network_by_hand():
    # A^1 = ReLU(x) = [[1, 0], [3, 0]], A^2 = ReLU(-x) = [[0, 2], [0, 0]]; y = W mean(A) = [1.5, 2.0]
    # dy^c/dA^k_ij = W[c, k] / 4 everywhere, so alpha^c = W[c] / 4
    model = gap_model()
    r = explain.gradcam(model, GAP_X)                       # top-1 is class 1 ("b")
    assert r.layer == "relu" and r.targets.tolist() == [1] and r.target_names == ["b"]
    np.testing.assert_allclose(r.scores, [2.0])
    np.testing.assert_allclose(r.alpha, [[0.125, 0.75]])
    np.testing.assert_allclose(r.map, [[[0.125, 1.5], [0.375, 0.0]]])   # 0.125 A^1 + 0.75 A^2

    r = explain.gradcam(model, GAP_X, "a")
    np.testing.assert_allclose(r.alpha, [[0.5, -0.25]])
    np.testing.assert_allclose(r.map, [[[0.5, 0.0], [1.5, 0.0]]])       # ReLU([[0.5, -0.5], [1.5, 0]])
    r = explain.gradcam(model, GAP_X, 0, relu=False)
    np.testing.assert_allclose(r.map, [[[0.5, -0.5], [1.5, 0.0]]])


def test_counterfactual_on_a_gap_network_by_hand():
    r = explain.counterfactual(gap_model(), GAP_X, "a")
    assert r.method == "counterfactual"
    np.testing.assert_allclose(r.alpha, [[-0.5, 0.25]])                # -W[0] / 4
    np.testing.assert_allclose(r.map, [[[0.0, 0.5], [0.0, 0.0]]])      # ReLU([[-0.5, 0.5], [-1.5, 0]])


def test_gradcam_on_a_dense_head_by_hand():
    # A = ReLU(x) = [[1, 0], [3, 0.5]]; dy^q/dA = W[q] as 2x2 = [[2, 1], [1, -1]], alpha = 3/4
    model = dense_model()
    r = explain.gradcam(model, DENSE_X)
    assert r.target_names == ["q"]
    np.testing.assert_allclose(r.alpha, [[0.75]])
    np.testing.assert_allclose(r.map, [[[0.75, 0.0], [2.25, 0.375]]])
    # class p: dy^p/dA = [[1, 2], [-1, 0.5]], alpha = 0.625; its counterfactual is ReLU(-0.625 A) = 0
    np.testing.assert_allclose(explain.gradcam(model, DENSE_X, "p").map, [[[0.625, 0], [1.875, 0.3125]]])
    np.testing.assert_allclose(explain.counterfactual(model, DENSE_X, "p").map, np.zeros((1, 2, 2)))


def test_upsampling_is_the_bilinear_resize_with_half_pixel_centres(rng):
    r = explain.gradcam(small_cnn(2), rng.standard_normal((2, 3, 8, 8)))
    np.testing.assert_array_equal(r.upsampled((8, 8)), resize_bilinear(r.map, (8, 8)))
    np.testing.assert_array_equal(r.upsampled(8, align_corners=True), resize_bilinear(r.map, 8, align_corners=True))
    assert r.upsampled((8, 8)).shape == (2, 8, 8)


# ---------------------------------------------------------------- how the backward runs

def test_backward_stops_at_the_layer_and_computes_no_parameter_gradient(rng):
    model = small_cnn(0)
    explain.gradcam(model, rng.standard_normal((1, 3, 8, 8)), layer="features.4")
    assert "features.4" in model.gradients
    assert "features.3" not in model.gradients and "features.0" not in model.gradients
    assert model.param_grads == {}


def test_float32_input_gives_float32_maps(rng):
    model = small_cnn(0, dtype=np.float32)
    r = explain.gradcam(model, rng.standard_normal((1, 3, 8, 8)).astype(np.float32))
    assert r.map.dtype == np.float32 and r.alpha.dtype == np.float32


# ---------------------------------------------------------------- default layer and errors

@pytest.mark.parametrize("build, expected", [
    (lambda: zoo.vgg_cifar(fold_bn=True), "features.19"),
    (lambda: zoo.vgg_cifar(batch_norm=True), "features.19"),
    (lambda: zoo.resnet20(), "layer3"),
    (lambda: zoo.vgg(zoo.VGG_CONFIGS["vgg16"], num_classes=4, hidden=(8, 8), pool_size=(1, 1)), "features.29"),
])
def test_default_layer_is_the_last_conv_feature_map_after_its_relu(build, expected):
    model = build()
    r = explain.gradcam(model, np.zeros((1, 3, 32, 32), np.float32))
    assert r.layer == expected


def test_a_layer_without_spatial_extent_is_refused_in_one_line(rng):
    model = small_cnn(0, dense=True)
    x = rng.standard_normal((1, 3, 8, 8))
    with pytest.raises(InputError, match=r"spatial extent; layer 'classifier.0' outputs shape \(6,\); try 'features'"):
        explain.gradcam(model, x, layer="classifier.0")
    with pytest.raises(InputError, match="spatial extent"):
        explain.gradcam(small_cnn(0), x, layer="avgpool")              # 1x1 after global pooling
    with pytest.raises(UnknownNameError, match="did you mean 'features.4'"):
        explain.gradcam(model, x, layer="feature.4")


def test_targets_by_index_name_list_and_their_errors(rng):
    model = small_cnn(0)
    x = rng.standard_normal((3, 3, 8, 8))
    logits = model.forward(x)
    assert explain.gradcam(model, x).targets.tolist() == logits.argmax(1).tolist()
    assert explain.gradcam(model, x, "c2").targets.tolist() == [2, 2, 2]
    assert explain.gradcam(model, x, [1, "c0", None]).targets.tolist() == [1, 0, int(logits[2].argmax())]
    assert explain.class_index(model, "2") == 2
    with pytest.raises(UnknownNameError, match="unknown class 'c7'"):
        explain.gradcam(model, x, "c7")
    with pytest.raises(UnknownNameError, match="did you mean 'c1'"):
        explain.gradcam(model, x, "c_1")
    with pytest.raises(InputError, match=r"target class 3 is out of range; this model has classes 0..2"):
        explain.gradcam(model, x, 3)
    with pytest.raises(InputError, match="out of range"):
        explain.gradcam(model, x, -1)
    with pytest.raises(InputError, match="got 2 target classes for a batch of 3"):
        explain.gradcam(model, x, [0, 1])
    with pytest.raises(InputError, match="index or a class name"):
        explain.gradcam(model, x, 1.5)


# ---------------------------------------------------------------- properties

def scaled_last_layer(model, s):
    twin = copy.deepcopy(model)
    twin["fc"].params["weight"] = twin["fc"].params["weight"] * s
    return twin


@settings(max_examples=25)
@given(seed=st.integers(0, 2**16), s=st.floats(0.01, 100.0), target=st.integers(0, 2))
def test_scaling_the_last_layer_by_s_scales_gradcam_by_s(seed, s, target):
    model = small_cnn(seed)
    x = np.random.default_rng(seed).standard_normal((2, 3, 8, 8))
    r = explain.gradcam(model, x, target)
    r_s = explain.gradcam(scaled_last_layer(model, s), x, target)
    np.testing.assert_allclose(r_s.map, s * r.map, rtol=1e-10, atol=1e-12 * s * (np.abs(r.map).max() + 1))
    np.testing.assert_allclose(r_s.alpha, s * r.alpha, rtol=1e-10, atol=1e-14)


@settings(max_examples=20)
@given(seed=st.integers(0, 2**16), n=st.integers(2, 4), dense=st.booleans(), counterfactual=st.booleans())
def test_a_batch_gives_the_results_of_its_images_one_by_one(seed, n, dense, counterfactual):
    model = small_cnn(seed, dense=dense)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3, 8, 8))
    targets = rng.integers(0, 3, n).tolist()
    batch = explain.gradcam(model, x, targets, counterfactual=counterfactual)
    for i in range(n):
        one = explain.gradcam(model, x[i:i + 1], targets[i], counterfactual=counterfactual)
        np.testing.assert_allclose(batch.map[i], one.map[0], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(batch.alpha[i], one.alpha[0], rtol=1e-10, atol=1e-12)

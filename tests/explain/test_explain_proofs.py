"""Explanations checked against answers worked out here, on tiny networks, with a different class for each image.

Every batch below explains each image for its own class (one of them
``None``: that image's top-1), and every expected value is computed by the
test itself: from one image at a time, from the engine's plain forward and
backward passes, or by hand on a linear model whose gradients are its
weights. tests/mutation/mutants_explain.py lists the mistakes these tests
exist to catch.
"""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from test_explain_helpers import _model, small_cnn

from minicnn import explain
from minicnn.errors import InputError
from minicnn.explain import registry
from minicnn.explain.eigen_cams import first_component
from minicnn.explain.integrated_gradients import make_baseline
from minicnn.explain.lrp_rules import AlphaBeta, Epsilon, Flat, Gamma, ZBox, ZPlus, stabilize
from minicnn.explain.occlusion import offsets
from minicnn.explain.resize import resize_bilinear
from minicnn.explain.smoothgrad import noise_sigma, smooth
from minicnn.explain.target import choose_targets, class_index, default_layer, feature_map, onehot, scores_of
from minicnn.layers import AdaptiveAvgPool2d, Conv2d, Flatten, Linear, ReLU, Sequential, softmax

TOL = dict(rtol=1e-9, atol=1e-12)


@pytest.fixture(scope="module")
def net():
    """small_cnn (float64, classes c0..c2) and three images whose top-1 classes are not all the same."""
    model = small_cnn(10)
    model.meta["preprocessing"] = {"mean": [0.4, 0.5, 0.6], "std": [0.3, 0.2, 0.25]}   # z^B's bounds
    x = np.random.default_rng(12).standard_normal((3, 3, 8, 8))
    x[1] *= 3.0                                                # a different range: its own SmoothGrad sigma
    top = model.forward(x).argmax(axis=1)
    assert top[1] != top[0]
    return model, x, top


def per_image_targets(top):
    """[a class other than image 0's top-1, None (image 1's own top-1, not image 0's), another class]."""
    return [int((top[0] + 1) % 3), None, int((top[2] + 2) % 3)]


def resolved(top, targets):
    return np.array([top[i] if t is None else t for i, t in enumerate(targets)])


def layer_and_gradient(model, x, targets, layer):
    """A (N, K, h, w) and g = dy^c/dA, one image at a time, from the engine's forward and backward passes."""
    As, gs = [], []
    for i, c in enumerate(targets):
        y = model.forward(x[i:i + 1])
        As.append(model.activations[layer].copy())
        seed = np.zeros_like(y)
        seed[0, c] = 1
        model.backward(seed, stop_at=layer)
        gs.append(model.gradients[layer].copy())
    return np.concatenate(As), np.concatenate(gs)


def linear_model(weight, bias, shape, classes):
    """y = W flatten(x) + b as a minicnn model: its input gradient for class c is W[c] itself."""
    fc = Linear(int(np.prod(shape)), len(classes))
    fc.params = {"weight": np.asarray(weight, np.float64), "bias": np.asarray(bias, np.float64)}
    return _model([("flatten", Flatten()), ("fc", fc)], classes, shape, "linear")


# ---------------------------------------------------------------- the target, the seed, the layer

def test_targets_seed_scores_and_class_indices_by_hand(net):
    model, x, top = net
    logits = model.forward(x)
    targets = choose_targets(model, logits, per_image_targets(top))
    assert targets.tolist() == resolved(top, per_image_targets(top)).tolist()
    assert onehot(np.array([2, 0]), 3).tolist() == [[0, 0, 1], [1, 0, 0]]
    np.testing.assert_array_equal(scores_of(logits, np.array([2, 0, 1])), [logits[0, 2], logits[1, 0], logits[2, 1]])
    assert class_index(model, 2) == 2 and class_index(model, "c1") == 1
    with pytest.raises(InputError, match="out of range"):
        class_index(model, 3)                                  # K = 3 classes: 0..2


def test_the_default_layer_is_the_last_relus_output_by_its_outermost_name(net):
    model, x, _ = net
    model.forward(x)
    assert default_layer(model) == "features"                  # = features.4's output, named by its container
    with pytest.raises(InputError, match="spatial extent"):
        feature_map(model, "avgpool")                          # (N, 5, 1, 1)


# ---------------------------------------------------------------- a batch is its images, each for its own class

CASES = {
    "gradcam": {}, "counterfactual": {}, "gradcam-plus-plus": {}, "xgradcam": {}, "hirescam": {}, "layercam": {},
    "scorecam": {"batch_size": 2}, "ablationcam": {"batch_size": 2}, "eigengradcam": {}, "cam": {},
    "saliency": {}, "input-x-gradient": {}, "guided-backprop": {}, "deconvnet": {}, "fullgrad": {},
    "integrated-gradients": {"steps": 5, "quadrature": "riemann_middle"},
    "occlusion": {"size": 3, "stride": 2}, "lrp-epsilon": {}, "lrp-epsilon-plus": {},
    "lrp-epsilon-gamma-box": {},
}


@pytest.mark.parametrize("method", CASES)
def test_a_batch_with_a_class_per_image_is_each_image_alone(net, method):
    model, x, top = net
    m = registry.get(method)
    targets = per_image_targets(top)
    layer = "features.3" if m.uses_layer and method != "cam" else None      # a layer whose A can be negative
    run = (lambda *a: m.function(*a, layer, **CASES[method])) if m.uses_layer else \
        (lambda *a: m.function(*a, **CASES[method]))
    whole = run(model, x, targets)
    assert whole.targets.tolist() == resolved(top, targets).tolist()
    for i, t in enumerate(targets):
        alone = run(model, x[i:i + 1], t)
        assert alone.targets[0] == whole.targets[i]
        np.testing.assert_allclose(whole.map[i], alone.map[0], rtol=1e-9, atol=1e-12 * np.abs(alone.map).max())
        np.testing.assert_allclose(whole.scores[i], alone.scores[0], **TOL)


def test_smoothgrad_with_given_noise_explains_each_image_for_its_own_class(net):
    model, x, top = net
    targets = per_image_targets(top)
    noise = np.random.default_rng(4).standard_normal((3, *x.shape)) * 0.2
    for kind in ("smoothgrad", "smoothgrad-squared", "vargrad"):
        whole = registry.get(kind).function(model, x, targets, noise=noise)
        for i, t in enumerate(targets):
            alone = registry.get(kind).function(model, x[i:i + 1], t, noise=noise[:, i:i + 1])
            np.testing.assert_allclose(whole.map[i], alone.map[0], **TOL)


def test_smoothgrad_by_hand_from_the_seeded_noise(net):
    model, x, top = net
    targets = resolved(top, per_image_targets(top))
    flat = x.reshape(3, -1)
    sigma = 0.2 * (flat.max(axis=1) - flat.min(axis=1))         # each image's own range
    np.testing.assert_allclose(noise_sigma(x, 0.2), sigma, **TOL)
    noise = np.random.default_rng(7).standard_normal((4, *x.shape)) * sigma[None, :, None, None, None]
    grads = np.empty((4, *x.shape))
    for k in range(4):
        for i, c in enumerate(targets):
            y = model.forward(x[i:i + 1] + noise[k, i:i + 1])
            seed = np.zeros_like(y)
            seed[0, c] = 1
            grads[k, i] = model.backward(seed)[0]
    mean, mean_sq = grads.mean(axis=0), (grads ** 2).mean(axis=0)
    for kind, want in (("smoothgrad", mean), ("smoothgrad-squared", mean_sq), ("vargrad", mean_sq - mean ** 2)):
        r = smooth(model, x, per_image_targets(top), kind=kind, samples=4, noise_level=0.2, seed=7,
                           batch_size=3)
        np.testing.assert_allclose(r.map, want, rtol=1e-9, atol=1e-12 * np.abs(want).max())
        np.testing.assert_allclose(r.sigma, sigma, **TOL)
    assert not np.allclose(explain.smoothgrad(model, x, samples=4, seed=8).map,
                           explain.smoothgrad(model, x, samples=4, seed=7).map)


# ---------------------------------------------------------------- the gradient CAMs by hand, where A < 0

def two_convolutions(seed=0):
    """conv -> conv -> ReLU -> GAP -> dense: the first convolution's output A is negative in places, and its
    gradient is not masked by A's own sign (as at ResNet-20's layer3.2.bn2, before the shortcut's addition)."""
    rng = np.random.default_rng(seed)
    features = Sequential([("0", Conv2d(3, 4, 3, padding=1)), ("1", Conv2d(4, 5, 3, padding=1)), ("2", ReLU())])
    model = _model([("features", features), ("avgpool", AdaptiveAvgPool2d(1)), ("flatten", Flatten()),
                    ("fc", Linear(5, 3))], ["c0", "c1", "c2"], [3, 8, 8], "two-convolutions")
    for _, layer in model.layers():
        for k, p in layer.params.items():
            layer.params[k] = rng.standard_normal(p.shape) * (0.6 if k == "weight" else 0.2)
    return model


def test_gradient_cams_by_hand_at_a_layer_with_negative_values(net):
    _, x, _ = net
    model = two_convolutions()
    top = model.forward(x).argmax(axis=1)
    targets = np.array([(top[0] + 1) % 3, top[1], (top[2] + 2) % 3])
    A, g = layer_and_gradient(model, x, targets, "features.0")
    assert (A < 0).any() and (g < 0).any()
    targets = targets.tolist()
    targets[1] = None
    layer = explain.layercam(model, x, targets, "features.0")
    raw = (np.maximum(g, 0) * A).sum(axis=1)
    assert (raw < 0).any()                                     # where the final ReLU matters
    np.testing.assert_allclose(layer.map, np.maximum(raw, 0), **TOL)
    np.testing.assert_allclose(explain.layercam(model, x, targets, "features.0", relu=False).map, raw,
                               **TOL)
    hires = (g * A).sum(axis=1)
    np.testing.assert_allclose(explain.hirescam(model, x, targets, "features.0").map,
                               np.maximum(hires, 0), **TOL)
    S = A.sum(axis=(2, 3), keepdims=True)                      # S_k over map k's positions
    a = np.where(g != 0, g ** 2 / (2 * g ** 2 + S * g ** 3), 0)
    w = (a * np.maximum(g, 0)).sum(axis=(2, 3))
    pp = explain.gradcam_plus_plus(model, x, targets, "features.0", relu=False)
    np.testing.assert_allclose(pp.alpha, w, **TOL)
    np.testing.assert_allclose(pp.map, np.einsum("nk,nkij->nij", w, A), **TOL)
    wx = (A * g).sum(axis=(2, 3)) / A.sum(axis=(2, 3))
    xg = explain.xgradcam(model, x, targets, "features.0", relu=False)
    np.testing.assert_allclose(xg.alpha, wx, **TOL)


# ---------------------------------------------------------------- occlusion by hand on a linear model

def test_occlusion_by_hand_with_a_non_square_patch_and_a_repeated_image():
    rng = np.random.default_rng(2)
    shape = (2, 5, 6)
    W, b = rng.standard_normal((3, 60)), rng.standard_normal(3)
    model = linear_model(W, b, shape, ["a", "b", "c"])
    img = rng.standard_normal(shape)
    x = np.stack([img, img, rng.standard_normal(shape)])        # image 0 twice, for two classes
    targets = [0, 2, 1]
    assert offsets(5, 2, 2).tolist() == [0, 2, 3] and offsets(6, 3, 2).tolist() == [0, 2, 3]
    for fill in (0.5, "mean"):
        r = explain.occlusion(model, x, targets, size=(2, 3), stride=2, fill=fill)
        fills = x.mean(axis=(2, 3), keepdims=True) * np.ones_like(x) if fill == "mean" else np.full(x.shape, 0.5)
        total, count = np.zeros((3, 5, 6)), np.zeros((5, 6))
        grid = np.zeros((3, 3, 3))
        for i, c in enumerate(targets):
            w = W[c].reshape(shape)
            for a, r0 in enumerate([0, 2, 3]):
                for bb, s0 in enumerate([0, 2, 3]):
                    patch = (slice(None), slice(r0, r0 + 2), slice(s0, s0 + 3))
                    grid[i, a, bb] = (w[patch] * (x[i][patch] - fills[i][patch])).sum()   # y(x) - y(occluded)
                    total[i, r0:r0 + 2, s0:s0 + 3] += grid[i, a, bb]
                    if i == 0:
                        count[r0:r0 + 2, s0:s0 + 3] += 1
        np.testing.assert_allclose(r.grid, grid, **TOL)
        np.testing.assert_allclose(r.map, total / count, **TOL)
        assert count.min() < count.max()


# ---------------------------------------------------------------- Integrated Gradients by hand on a linear model

def test_integrated_gradients_by_hand_with_a_baseline_and_a_class_per_image():
    rng = np.random.default_rng(3)
    shape = (2, 3, 4)
    W, b = rng.standard_normal((3, 24)), rng.standard_normal(3)
    model = linear_model(W, b, shape, ["a", "b", "c"])
    x, x0 = rng.standard_normal((3, *shape)), rng.standard_normal((3, *shape))
    targets = [2, 0, 1]
    r = explain.integrated_gradients(model, x, targets, baseline=x0, steps=3, batch_size=2)   # 9 points, batches of 2
    want = (x - x0) * W[targets].reshape(3, *shape)             # the gradient of y^c is W[c] everywhere
    np.testing.assert_allclose(r.map, want, **TOL)
    np.testing.assert_allclose(r.gap, 0, atol=1e-12)            # exact for a linear score
    np.testing.assert_allclose(r.baseline_scores, (x0.reshape(3, -1) * W[targets]).sum(axis=1) + b[targets], **TOL)


def test_the_blur_and_uniform_baselines_by_hand():
    model = linear_model(np.zeros((2, 120)), np.zeros(2), (3, 4, 10), ["a", "b"])
    model.meta["preprocessing"] = {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.3, 0.25]}
    x = np.random.default_rng(0).standard_normal((1, 3, 4, 10))
    np.testing.assert_allclose(make_baseline(model, x, "blur"), gaussian_filter(x, (0, 0, 1.0, 1.0), mode="reflect"),
                               **TOL)                          # a tenth of the longer side: 10 / 10
    mean, std = np.array([0.5, 0.4, 0.3])[None, :, None, None], np.array([0.2, 0.3, 0.25])[None, :, None, None]
    want = np.random.default_rng(5).uniform(-mean / std, (1 - mean) / std, x.shape)
    np.testing.assert_allclose(make_baseline(model, x, "uniform", seed=5), want, **TOL)


# ---------------------------------------------------------------- Eigen-CAM by hand

def test_eigen_cam_is_the_first_principal_component_by_hand(net):
    model, x, top = net
    rng = np.random.default_rng(6)
    A = rng.standard_normal((2, 4, 3, 5)) + np.arange(4)[None, :, None, None]
    for n in range(2):
        M = A[n].reshape(4, 15).T
        M = M - M.mean(axis=0)                                 # each map centred over its positions
        values, vectors = np.linalg.eigh(M.T @ M)
        L = M @ vectors[:, -1]                                 # along the direction of largest variance
        L = -L if abs(L.min()) > abs(L.max()) else L
        got, _, s = first_component(A[n:n + 1])
        np.testing.assert_allclose(got[0].ravel(), L, **TOL)
        np.testing.assert_allclose(s[0] ** 2, values[::-1], rtol=1e-9, atol=1e-9)
    targets = resolved(top, per_image_targets(top))
    Af, g = layer_and_gradient(model, x, targets, "features.3")
    r = explain.eigengradcam(model, x, per_image_targets(top), "features.3", relu=False)
    np.testing.assert_allclose(r.map, first_component(g * Af)[0], **TOL)


# ---------------------------------------------------------------- Score-CAM and Ablation-CAM by hand

def test_score_cam_by_hand_at_a_layer_with_negative_values(net):
    model, x, top = net
    targets = resolved(top, per_image_targets(top))
    A, _ = layer_and_gradient(model, x, targets, "features.3")
    alpha = np.zeros(A.shape[:2])
    for i, c in enumerate(targets):
        U = resize_bilinear(A[i], (8, 8))
        assert (U.min(axis=(1, 2)) != 0).all()                 # min-max scaling is not division by the max
        for k in range(A.shape[1]):
            H = (U[k] - U[k].min()) / (U[k].max() - U[k].min())
            alpha[i, k] = softmax(model.forward(x[i:i + 1] * H))[0, c]
    r = explain.scorecam(model, x, per_image_targets(top), "features.3", batch_size=2, relu=False)
    np.testing.assert_allclose(r.alpha, alpha, **TOL)
    np.testing.assert_allclose(r.map, np.einsum("nk,nkij->nij", alpha, A), **TOL)


def test_ablation_cam_by_hand_on_the_gap_dense_head(net):
    model, x, top = net
    targets = resolved(top, per_image_targets(top))
    A, _ = layer_and_gradient(model, x, targets, "features.4")
    y = scores_of(model.forward(x), targets)
    W = model["fc"].params["weight"]
    ablated = y[:, None] - W[targets] * A.mean(axis=(2, 3))     # map k zeroed: y^c loses W[c, k] F_k
    r = explain.ablationcam(model, x, per_image_targets(top), "features.4", batch_size=2, relu=False)
    np.testing.assert_allclose(r.ablated, ablated, **TOL)
    np.testing.assert_allclose(r.alpha, (y[:, None] - ablated) / y[:, None], **TOL)


# ---------------------------------------------------------------- LRP's rules by hand on one dense layer

def dense(W, b):
    layer = Linear(W.shape[1], W.shape[0])
    layer.params = {"weight": np.asarray(W, np.float64), "bias": np.asarray(b, np.float64)}
    return layer


W2 = np.array([[1.0, -2.0, 0.5], [-1.0, 0.5, -2.0]])
B2 = np.array([0.3, -0.4])
X2 = np.array([[1.0, -1.5, 2.0]])
R2 = np.array([[2.0, -1.0]])


def zplus_by_hand(W, b, x, R, eps=1e-6):
    Wp, Wn, xp, xn = np.maximum(W, 0), np.minimum(W, 0), np.maximum(x, 0), np.minimum(x, 0)
    d = xp @ Wp.T + xn @ Wn.T + np.maximum(b, 0)
    s = R / (d + np.where(d >= 0, eps, -eps))
    return xp * (s @ Wp) + xn * (s @ Wn)


def test_lrp_rules_on_a_dense_layer_by_hand():
    np.testing.assert_array_equal(stabilize(np.array([0.0, 1.0, -1.0]), 0.5), [0.5, 1.5, -1.5])   # sign(0) = +1
    layer = dense(W2, B2)
    z = X2 @ W2.T + B2
    np.testing.assert_allclose(Epsilon(0.1)(layer, X2, R2), X2 * ((R2 / (z + 0.1 * np.sign(z))) @ W2), **TOL)
    zero = dense(np.array([[1.0, 1.0]]), np.array([0.0]))       # z = 0 exactly: the stabiliser's sign decides
    np.testing.assert_allclose(Epsilon(0.5)(zero, np.array([[1.0, -1.0]]), np.array([[1.0]])), [[2.0, -2.0]])
    np.testing.assert_allclose(ZPlus()(layer, X2, R2), zplus_by_hand(W2, B2, X2, R2), **TOL)
    pos = zplus_by_hand(W2, B2, X2, R2)
    Wp, Wn, xp, xn = np.maximum(W2, 0), np.minimum(W2, 0), np.maximum(X2, 0), np.minimum(X2, 0)
    d = xp @ Wn.T + xn @ Wp.T + np.minimum(B2, 0)
    s = R2 / (d + np.where(d >= 0, 1e-6, -1e-6))
    neg = xp * (s @ Wn) + xn * (s @ Wp)
    np.testing.assert_allclose(AlphaBeta(2.0, 1.0)(layer, X2, R2), 2 * pos - neg, **TOL)
    g = 0.25
    up, down = W2 + g * Wp, W2 + g * Wn
    out = np.zeros_like(X2)
    for j in range(2):                                          # z_0 > 0 rises, z_1 < 0 falls
        a, bw = (up, down) if z[0, j] > 0 else (down, up)
        bias = B2[j] + g * (max(B2[j], 0) if z[0, j] > 0 else min(B2[j], 0))
        dj = xp @ a[j] + xn @ bw[j] + bias
        sj = R2[0, j] / (dj + (1e-6 if dj >= 0 else -1e-6))
        out += xp * a[j] * sj + xn * bw[j] * sj
    assert z[0, 0] > 0 > z[0, 1]
    np.testing.assert_allclose(Gamma(g)(layer, X2, R2), out, **TOL)
    np.testing.assert_allclose(Flat()(layer, X2, R2), np.full((1, 3), (R2 / (3 + 1e-6)).sum()), **TOL)
    low, high = np.array([[-2.0, -1.0, -3.0]]), np.array([[2.5, 1.0, 4.0]])
    d = X2 @ W2.T - low @ Wp.T - high @ Wn.T
    s = R2 / (d + np.where(d >= 0, 1e-6, -1e-6))
    np.testing.assert_allclose(ZBox(low, high)(layer, X2, R2), X2 * (s @ W2) - low * (s @ Wp) - high * (s @ Wn),
                               **TOL)


def test_lrp_starts_from_the_score_and_puts_z_box_on_the_first_convolution_only(net):
    model, x, top = net
    lin = linear_model(W2, B2, (1, 1, 3), ["a", "b"])
    r = explain.lrp(lin, X2.reshape(1, 1, 1, 3), 1, "epsilon", epsilon=0.0)
    np.testing.assert_allclose(r.map.ravel(), X2[0] * W2[1], **TOL)     # R = y^c shared by LRP-0: x_i W[c, i]
    rules = explain.lrp(model, x, per_image_targets(top), "epsilon-gamma-box").rules
    assert rules["features.0"].startswith("ZBox") and rules["features.3"].startswith("Gamma")
    from minicnn.explain.lrp import input_bounds
    low, high = input_bounds(model)
    mean, std = np.array([0.4, 0.5, 0.6]), np.array([0.3, 0.2, 0.25])
    np.testing.assert_allclose(low.ravel(), -mean / std, **TOL)
    np.testing.assert_allclose(high.ravel(), (1 - mean) / std, **TOL)


# ---------------------------------------------------------------- the registry

def test_the_registry_passes_the_layer_and_names_the_save_keys(net):
    model, x, _ = net
    assert registry.get("gradcam").run(model, x, None, "features.3").layer == "features.3"
    assert registry.get("gradcam-plus-plus").key == "gradcam_plus_plus"
    assert registry.get("smoothgrad_squared").name == "smoothgrad-squared"

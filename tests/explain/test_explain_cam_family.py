"""The CAM family: recorded references, identities, the Hessian behind Grad-CAM++, hand-worked answers.

References: tests/fixtures/cam_family_<model>.npz, recorded from pytorch-grad-cam
1.5.7 and a transcription of the Score-CAM authors' code by
weights/recipes/make_cam_fixtures.py (the raw maps, before any ReLU or
normalisation). FullGrad's completeness is in test_explain_fullgrad.py.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from test_explain_helpers import DENSE_X, GAP_X, dense_model, gap_model, shipped

from minicnn import explain
from minicnn.errors import InputError
from minicnn.explain.eigen_cams import first_component
from minicnn.explain.gradient_cams import PYTORCH_GRAD_CAM_EPS
from minicnn.explain.resize import resize_bilinear
from minicnn.inputs.preprocess import preprocess

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
LAYERS = {"resnet20_cifar10": ("layer3", "layer2"), "vgg_cifar10": ("features.19", "features.12")}
CASES = [(model, layer) for model, layers in LAYERS.items() for layer in layers]


def relative_error(a, b):
    """max |a - b| / max |b|: the error relative to the map's scale."""
    return float(np.abs(a - b).max() / np.abs(b).max())


def reference(model_name):
    with np.load(FIXTURES / f"cam_family_{model_name}.npz", allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


# ---------------------------------------------------------------- against pytorch-grad-cam 1.5.7

#: method -> (function, keyword arguments reproducing the reference, fixture key, weights attribute)
REFERENCE_RUNS = {
    "gradcam_plus_plus": (explain.gradcam_plus_plus, {"eps": 1e-6}, "gradcam_plus_plus", "alpha"),
    "xgradcam": (explain.xgradcam, {"eps": 1e-7}, "xgradcam", "alpha"),
    "hirescam": (explain.hirescam, {}, "hirescam", None),
    "layercam": (explain.layercam, {}, "layercam", None),
    "eigencam": (explain.eigencam, {}, "eigencam", None),
    "eigengradcam": (explain.eigengradcam, {}, "eigengradcam", None),
    "ablationcam": (explain.ablationcam, {}, "ablationcam", "alpha"),
}


@pytest.mark.parametrize("model_name, layer", CASES)
def test_every_method_matches_its_recorded_reference(model_name, layer):
    model, ref = shipped(model_name), reference(model_name)
    x, targets = ref["x"], ref["targets"]
    assert relative_error(model.forward(x), ref["logits"]) < 1e-5
    for method, (function, kwargs, key, weights) in REFERENCE_RUNS.items():
        r = function(model, x, targets, layer, relu=False, **kwargs)
        assert r.layer == layer and r.map.dtype == np.float32
        err = relative_error(r.map, ref[f"{layer}:{key}.map"])
        assert err < 1e-4, (method, err)
        if weights:
            err = relative_error(getattr(r, weights), ref[f"{layer}:{key}.weights"])
            assert err < 1e-4, (method, "weights", err)


def test_the_stabilisers_passed_as_eps_are_the_library_constants():
    assert PYTORCH_GRAD_CAM_EPS == {"gradcam-plus-plus": 1e-6, "xgradcam": 1e-7}


@pytest.mark.parametrize("model_name, layer", CASES)
def test_score_cam_follows_the_authors_code_and_offers_the_librarys_variant(model_name, layer):
    model, ref = shipped(model_name), reference(model_name)
    x, targets = ref["x"], ref["targets"]
    r = explain.scorecam(model, x, targets, layer, relu=False)
    assert relative_error(r.alpha, ref[f"{layer}:scorecam.weights"]) < 1e-4
    assert relative_error(r.map, ref[f"{layer}:scorecam.map"]) < 1e-4
    # the authors' code sums the upsampled maps: that is this map upsampled (upsampling is linear)
    assert relative_error(resize_bilinear(r.map, x.shape[2:]), ref[f"{layer}:scorecam.map_upsampled"]) < 1e-4
    assert np.all((r.alpha >= 0) & (r.alpha <= 1)) and r.variant == "authors"
    if layer not in ("layer3", "features.19"):
        return                                      # the library's variant: at the last layers only (K forwards)
    lib = explain.scorecam(model, x, targets, layer, relu=False, variant="pytorch-grad-cam", eps=1e-8)
    assert relative_error(lib.alpha, ref[f"{layer}:scorecam_pytorch_grad_cam.weights"]) < 1e-4
    assert relative_error(lib.map, ref[f"{layer}:scorecam_pytorch_grad_cam.map"]) < 1e-4
    np.testing.assert_allclose(lib.alpha.sum(axis=1), 1, rtol=1e-5)       # a softmax over the K maps
    assert relative_error(lib.map, r.map) > 0.1                             # really a different definition


def test_the_paper_and_the_library_differ_where_the_library_adds_eps():
    model, ref = shipped("resnet20_cifar10"), reference("resnet20_cifar10")
    x, targets = ref["x"], ref["targets"]
    literal = explain.gradcam_plus_plus(model, x, targets, "layer3", relu=False)
    stabilised = explain.gradcam_plus_plus(model, x, targets, "layer3", relu=False, eps=1e-6)
    assert relative_error(literal.map, ref["layer3:gradcam_plus_plus.map"]) > 1e-3
    assert relative_error(stabilised.map, ref["layer3:gradcam_plus_plus.map"]) < 1e-5
    changed = np.abs(literal.a - stabilised.a) / np.abs(literal.a).max(axis=(2, 3), keepdims=True)
    assert changed.max() > 0.1                                              # a_ij moves by over 10% somewhere


@pytest.mark.parametrize("model_name, layer", CASES)
def test_eigen_cam_fixes_the_sign_the_librarys_eigencam_leaves_to_the_svd(model_name, layer):
    model, ref = shipped(model_name), reference(model_name)
    r = explain.eigencam(model, ref["x"], ref["targets"], layer, relu=False)
    unsigned = ref[f"{layer}:eigencam.map_unsigned"]
    for i in range(len(r.map)):
        same, negated = relative_error(r.map[i], unsigned[i]), relative_error(-r.map[i], unsigned[i])
        assert min(same, negated) < 1e-4
        assert np.abs(r.map[i]).max() == pytest.approx(r.map[i].max())     # |max| >= |min|


def test_the_librarys_eigencam_comes_out_negated_on_some_recorded_images():
    flipped = []
    for model_name, layer in CASES:
        ref = reference(model_name)
        signed, unsigned = ref[f"{layer}:eigencam.map"], ref[f"{layer}:eigencam.map_unsigned"]
        flipped += [relative_error(-signed[i], unsigned[i]) < 1e-5 for i in range(len(signed))]
    assert 0 < sum(flipped) < len(flipped)


def test_the_fixtures_record_what_the_script_says():
    for model_name, layers in LAYERS.items():
        ref = reference(model_name)
        info = json.loads(bytes(ref["info"]))
        assert info["pytorch_grad_cam"] == "1.5.7" and info["layers"] == list(layers)
        assert ref["x"].dtype == np.float32 and ref["x"].shape == (3, 3, 32, 32)
        assert info["targets"] == ["cat", "cat", "ship"] and ref["targets"].tolist() == [3, 3, 8]


# ---------------------------------------------------------------- identities on ResNet-20 (GAP -> one dense layer)

@pytest.fixture(scope="module")
def resnet64():
    """resnet20_cifar10 in float64; the cat|dog image and two single images, every image with every class."""
    model = shipped("resnet20_cifar10").astype(np.float64)
    image = explain.cat_dog_image()
    x = preprocess([image[:, :32], image[:, 32:]], model.meta["preprocessing"]).astype(np.float64)
    x = np.repeat(x, 10, axis=0)
    return model, x, np.tile(np.arange(10), 2)


def gap_head(model, x, targets):
    """(W[c] (N, K), F (N, K), y^c (N,), A (N, K, h, w)) for ResNet-20: y^c = W[c] . F + b_c."""
    logits = model.forward(x)
    A = model.activations["layer3"]
    F = A.mean(axis=(2, 3))
    W = model["linear"].params["weight"].astype(np.float64)[targets]
    return W, F, logits[np.arange(len(targets)), targets], A


def test_hirescam_and_xgradcam_equal_gradcam_and_layercam_drops_negative_weights(resnet64):
    model, x, targets = resnet64
    grad = explain.gradcam(model, x, targets, "layer3", relu=False)
    scale = np.abs(grad.map).max()
    hires = explain.hirescam(model, x, targets, "layer3", relu=False)
    xgrad = explain.xgradcam(model, x, targets, "layer3", relu=False)
    assert np.abs(hires.map - grad.map).max() < 1e-12 * scale
    assert np.abs(xgrad.map - grad.map).max() < 1e-12 * scale
    np.testing.assert_allclose(xgrad.alpha[xgrad.alpha != 0], grad.alpha[xgrad.alpha != 0], rtol=1e-10)
    layer = explain.layercam(model, x, targets, "layer3", relu=False)
    expected = np.einsum("nk,nkij->nij", np.maximum(grad.alpha, 0), model.activations["layer3"])
    assert np.abs(layer.map - expected).max() < 1e-12 * np.abs(expected).max()


def test_gradcam_plus_plus_weights_have_the_closed_form_on_resnet20(resnet64):
    # a^k_ij = 1 / (2 + S_k G_k) at every position, w_k = ReLU(W[c, k]) / (2 + W[c, k] F_k)
    model, x, targets = resnet64
    r = explain.gradcam_plus_plus(model, x, targets, "layer3")
    W, F, _, A = gap_head(model, x, targets)
    Z = A.shape[2] * A.shape[3]
    a = r.a[:, :, :1, :1]
    assert np.abs(r.a - a).max() < 1e-12 * np.abs(a).max()                 # constant over the positions
    S, G = A.sum(axis=(2, 3)), W / Z
    np.testing.assert_allclose(a[:, :, 0, 0], 1 / (2 + S * G), rtol=1e-10)
    np.testing.assert_allclose(r.alpha, np.maximum(W, 0) / (2 + W * F), rtol=1e-10, atol=1e-14)


def test_ablation_cam_weights_have_the_closed_form_on_a_gap_dense_head(resnet64):
    # zeroing A^k removes W[c, k] F_k from y^c, so w_k = W[c, k] F_k / y^c
    model, x, targets = resnet64
    r = explain.ablationcam(model, x, targets, "layer3", batch_size=32)
    W, F, y, _ = gap_head(model, x, targets)
    np.testing.assert_allclose(r.ablated, y[:, None] - W * F, rtol=1e-12, atol=1e-12)
    assert np.abs(r.alpha - W * F / y[:, None]).max() < 1e-10 * np.abs(r.alpha).max()
    assert r.forwards == len(x) * 64


# ---------------------------------------------------------------- the Hessian behind Grad-CAM++'s eq. 19

def exp_score_and_gradient(model, x, layer, c, A):
    """(exp(y^c), d exp(y^c) / dA = exp(y^c) g) with A fed in at ``layer`` (one image)."""
    y = model.forward(x, replace={layer: A})[0, c]
    model.backward(explain.onehot([c], 10, np.float64), stop_at=layer)
    return y, np.exp(y) * model.gradients[layer]


@pytest.mark.parametrize("model_name, layer", [("resnet20_cifar10", "layer2"), ("vgg_cifar10", "features.12")])
def test_hessian_of_exp_score_is_exp_score_times_g_g_transposed(model_name, layer):
    model = shipped(model_name).astype(np.float64)
    x = preprocess(explain.cat_dog_image()[:, :32], model.meta["preprocessing"]).astype(np.float64)
    c = int(model.forward(x).argmax())
    A = model.activations[layer].copy()
    y, grad = exp_score_and_gradient(model, x, layer, c, A)
    g = grad / np.exp(y)
    # A comes after a ReLU: its zeros sit on kinks (a max pool over an all-zero window is a tie), so the
    # directions move only the positive entries: random ones, and the coordinates with the largest |g|
    moving = A > 0
    rng = np.random.default_rng(0)
    random = [v / np.linalg.norm(v) for v in rng.standard_normal((3, *A.shape)) * moving]
    top = np.argsort(-np.abs(g * moving).ravel())[:3]
    basis = [np.eye(1, A.size, i).reshape(A.shape) for i in top]
    h = 1e-4
    for v in random + basis:
        y_plus, grad_plus = exp_score_and_gradient(model, x, layer, c, A + h * v)
        y_minus, grad_minus = exp_score_and_gradient(model, x, layer, c, A - h * v)
        assert abs(y_plus - 2 * y + y_minus) < 1e-10 * abs(y)                # no ReLU or max-pool kink crossed
        hessian_v = (grad_plus - grad_minus) / (2 * h)                       # H v by central differences
        expected = np.exp(y) * g * np.sum(g * v)                             # exp(y) g g^T v
        assert relative_error(hessian_v, expected) < 1e-6


# ---------------------------------------------------------------- answers worked out by hand

def test_gradient_cams_on_a_dense_head_by_hand():
    # A = [[1, 0], [3, 0.5]], S = 4.5; for class q, g = [[2, 1], [1, -1]]
    model = dense_model()
    # Grad-CAM++: a = g^2 / (2 g^2 + 4.5 g^3) = 1/11 (g = 2), 2/13 (g = 1), -2/5 (g = -1)
    r = explain.gradcam_plus_plus(model, DENSE_X, "q")
    np.testing.assert_allclose(r.a, [[[[1 / 11, 2 / 13], [2 / 13, -2 / 5]]]])
    np.testing.assert_allclose(r.alpha, [[2 / 11 + 2 / 13 + 2 / 13]])       # sum a ReLU(g); the -1 drops out
    np.testing.assert_allclose(r.map, r.alpha[0, 0] * np.array([[[1, 0], [3, 0.5]]]))
    # XGrad-CAM: (1*2 + 0*1 + 3*1 + 0.5*(-1)) / 4.5 = 1
    np.testing.assert_allclose(explain.xgradcam(model, DENSE_X, "q").alpha, [[1.0]])
    # HiResCAM: ReLU(g * A) = ReLU([[2, 0], [3, -0.5]]); LayerCAM: ReLU(g) * A
    np.testing.assert_allclose(explain.hirescam(model, DENSE_X, "q").map, [[[2, 0], [3, 0]]])
    np.testing.assert_allclose(explain.hirescam(model, DENSE_X, "q", relu=False).map, [[[2, 0], [3, -0.5]]])
    np.testing.assert_allclose(explain.layercam(model, DENSE_X, "q").map, [[[2, 0], [3, 0]]])


def test_gradcam_plus_plus_sets_a_to_zero_where_g_is_zero():
    # class p: g = W[p] = [[1, 2], [-1, 0.5]] has no zero; a GAP head whose weight is 0 does
    model = gap_model()
    model["fc"].params["weight"] = np.array([[0.0, -1.0], [0.5, 3.0]])
    r = explain.gradcam_plus_plus(model, GAP_X, "a")
    assert np.all(r.a[0, 0] == 0) and np.all(np.isfinite(r.a))
    np.testing.assert_allclose(r.alpha, [[0.0, 0.0]])                         # g = -1/4 < 0 for the other map


def sigmoid(t):
    return 1 / (1 + np.exp(-t))


def test_score_cam_on_a_gap_network_by_hand():
    # A^1 = ReLU(x) = [[1, 0], [3, 0]], A^2 = ReLU(-x) = [[0, 2], [0, 0]], already at the input size.
    # Masks: H^1 = A^1 / 3, H^2 = A^2 / 2. x * H^1 = [[1/3, 0], [3, 0]] -> F = (5/6, 0) -> y = (5/3, 5/12);
    # x * H^2 = [[0, -2], [0, 0]] -> F = (0, 1/2) -> y = (-1/2, 3/2). Two classes: p_b = sigmoid(y_b - y_a).
    model = gap_model()
    r = explain.scorecam(model, GAP_X)                                       # top-1: "b"
    alpha = [sigmoid(5 / 12 - 5 / 3), sigmoid(3 / 2 + 1 / 2)]
    np.testing.assert_allclose(r.alpha, [alpha])
    np.testing.assert_allclose(r.map, [alpha[0] * np.array([[1, 0], [3, 0]]) + alpha[1] * np.array([[0, 2], [0, 0]])])
    assert r.forwards == 2
    np.testing.assert_allclose(explain.scorecam(model, GAP_X, "a").alpha, [[1 - alpha[0], 1 - alpha[1]]])
    # pytorch-grad-cam's variant: a softmax over the two maps of the scores y_b = 5/12 and 3/2
    lib = explain.scorecam(model, GAP_X, variant="pytorch-grad-cam")
    np.testing.assert_allclose(lib.alpha, [[sigmoid(5 / 12 - 3 / 2), sigmoid(3 / 2 - 5 / 12)]])


def test_score_cam_gives_a_constant_map_weight_zero_without_a_forward_pass():
    model = gap_model()
    x = np.array([[1.0, 2.0], [3.0, 0.5]]).reshape(1, 1, 2, 2)                # A^2 = ReLU(-x) = 0 everywhere
    r = explain.scorecam(model, x, "a")
    assert r.forwards == 1 and r.alpha[0, 1] == 0
    lib = explain.scorecam(model, x, "a", variant="pytorch-grad-cam")           # the library scores it anyway
    assert lib.forwards == 2 and lib.alpha[0, 1] > 0


def test_ablation_cam_on_a_gap_network_by_hand():
    # F = (1, 1/2), y = (1.5, 2.0); zeroing A^k removes W[c, k] F_k: w_k = W[c, k] F_k / y^c
    r = explain.ablationcam(gap_model(), GAP_X)                              # "b": W[b] = (0.5, 3)
    np.testing.assert_allclose(r.ablated, [[1.5, 0.5]])
    np.testing.assert_allclose(r.alpha, [[0.25, 0.75]])
    np.testing.assert_allclose(r.map, [[[0.25, 1.5], [0.75, 0.0]]])
    r = explain.ablationcam(gap_model(), GAP_X, "a", relu=False)             # W[a] = (2, -1)
    np.testing.assert_allclose(r.alpha, [[2 / 1.5, -0.5 / 1.5]])


def test_eigen_cam_by_hand():
    # Centred columns c1 = [0, -1, 2, -1], c2 = [-1/2, 3/2, -1/2, -1/2]; M^T M = [[6, -2], [-2, 3]],
    # eigenvalues 7 and 2, v_1 = (2, -1) / sqrt 5; M v_1 = [1/2, -7/2, 9/2, -3/2] / sqrt 5 (|max| > |min|).
    r = explain.eigencam(gap_model(), GAP_X, relu=False)
    expected = np.array([[0.5, -3.5], [4.5, -1.5]]) / np.sqrt(5)
    np.testing.assert_allclose(r.map, [expected], atol=1e-12)
    np.testing.assert_allclose(r.direction, [[2 / np.sqrt(5), -1 / np.sqrt(5)]], atol=1e-12)
    np.testing.assert_allclose(r.singular_values ** 2, [[7, 2]], atol=1e-12)
    np.testing.assert_allclose(r.explained, [7 / 9])
    np.testing.assert_allclose(explain.eigencam(gap_model(), GAP_X).map, [np.maximum(expected, 0)], atol=1e-12)
    # not class-discriminative: the same map for the other class
    np.testing.assert_array_equal(explain.eigencam(gap_model(), GAP_X, "a", relu=False).map, r.map)


def test_eigen_cam_takes_the_sign_with_the_larger_magnitude():
    A = np.array([[3.0, 0], [0, 0]]), np.array([[0.0, 1], [0, -1]])       # centred maps orthogonal, |c1| > |c2|
    L, v, s = first_component(np.stack(A)[None])
    np.testing.assert_allclose(L, [[[2.25, -0.75], [-0.75, -0.75]]], atol=1e-12)
    L_neg, v_neg, _ = first_component(-np.stack(A)[None])                   # negated maps: the same picture
    np.testing.assert_allclose(L_neg, L, atol=1e-12)
    np.testing.assert_allclose(v_neg, -v, atol=1e-12)


# ---------------------------------------------------------------- batching, progress, errors

def test_perturbation_cams_do_not_depend_on_the_batch_size(rng):
    from test_explain_helpers import small_cnn
    model = small_cnn(3)
    x = rng.standard_normal((2, 3, 8, 8))
    for method in (explain.scorecam, explain.ablationcam):
        one = method(model, x, [0, 2], "features.4", batch_size=1)
        many = method(model, x, [0, 2], "features.4", batch_size=64)
        np.testing.assert_allclose(one.map, many.map, rtol=1e-12, atol=1e-15)
        single = method(model, x[1:], 2, "features.4")
        np.testing.assert_allclose(many.alpha[1], single.alpha[0], rtol=1e-12, atol=1e-15)


def test_perturbation_cams_show_progress_when_asked(rng, capsys):
    from test_explain_helpers import small_cnn
    model = small_cnn(3)
    x = rng.standard_normal((1, 3, 8, 8))
    explain.ablationcam(model, x, 0, batch_size=2, progress=True)
    assert "Ablation-CAM" in capsys.readouterr().err
    explain.scorecam(model, x, 0, batch_size=2, progress=False)
    assert capsys.readouterr().err == ""


def test_bad_options_give_one_line_errors(rng):
    from test_explain_helpers import small_cnn
    model = small_cnn(0)
    x = rng.standard_normal((1, 3, 8, 8))
    with pytest.raises(InputError, match="Score-CAM variant must be one of authors, pytorch-grad-cam"):
        explain.scorecam(model, x, variant="torch")
    for bad in (0, -1, 2.5, True):
        with pytest.raises(InputError, match="batch_size must be a positive integer"):
            explain.ablationcam(model, x, batch_size=bad)
    with pytest.raises(InputError, match="Eigen-CAM needs a convolutional feature map"):
        explain.eigencam(model, x, layer="avgpool")


# ---------------------------------------------------------------- command line

CAM_FAMILY = ["gradcam-plus-plus", "xgradcam", "hirescam", "layercam", "scorecam", "ablationcam", "eigencam",
              "eigengradcam", "fullgrad"]


def test_every_method_runs_from_the_command_line_and_saves_under_its_key(tmp_path, capsys):
    from minicnn.commands.cli import main
    from minicnn.inputs.samples import sample_images
    shipped("resnet20_cifar10")
    image = str(sample_images("cat")[explain.CAT_DOG[0][1]][0])
    npz = tmp_path / "maps.npz"
    code = main(["explain", image, "--model", "resnet20_cifar10", "--method", ",".join(CAM_FAMILY),
                 "--layer", "layer2", "--batch-size", "7", "--target", "dog", "--out", str(tmp_path / "f.png"),
                 "--save", str(npz)])
    out = capsys.readouterr().out
    assert code == 0 and "layer: layer2 (32x16x16)" in out and "target: 5 'dog' (given)" in out
    with np.load(npz, allow_pickle=False) as f:
        shapes = {k: f[k].shape for k in f.files}
        assert str(f["layer"]) == "layer2" and int(f["target"]) == 5
        saved = {k: f[k] for k in f.files}
    assert {k: v for k, v in shapes.items() if k not in ("logits", "layer", "target", "target_name", "model")} == {
        **{m.replace("-", "_"): (16, 16) for m in CAM_FAMILY[:-1]}, "fullgrad": (32, 32)}
    model = shipped("resnet20_cifar10")
    from minicnn.inputs.images import load_image
    x = preprocess(load_image(image), model.meta["preprocessing"])
    # The saved maps against the formulas worked out here from the engine's passes (not the library's functions).
    y = model.forward(x)
    A = model.activations["layer2"].copy()
    model.backward(np.eye(10, dtype=y.dtype)[[5]], stop_at="layer2")
    g = model.gradients["layer2"].astype(np.float64)
    A64 = A.astype(np.float64)
    S = A64.sum(axis=(2, 3), keepdims=True)
    a = np.where(g != 0, g ** 2 / (2 * g ** 2 + S * g ** 3), 0)
    w = (a * np.maximum(g, 0)).sum(axis=(2, 3))
    pp = np.maximum(np.einsum("nk,nkij->nij", w, A64), 0)[0]
    np.testing.assert_allclose(saved["gradcam_plus_plus"], pp, rtol=1e-4, atol=1e-5 * pp.max())
    np.testing.assert_allclose(saved["layercam"], np.maximum((np.maximum(g, 0) * A64).sum(axis=1), 0)[0],
                               rtol=1e-4, atol=1e-6)
    # Ablation-CAM: each map zeroed in turn, the pass resumed through Model.forward(replace=...). Its weights
    # are differences of float32 logits, and the CLI ran the ablated copies in batches of 7: BLAS kernels that
    # block by batch size (OPENBLAS_CORETYPE=Haswell) move them by about 1e-6 of the map's largest value, so
    # compare at that scale rather than element by element.
    ablated = []
    for k in range(A.shape[1]):
        zeroed = A.copy()
        zeroed[:, k] = 0
        ablated.append(model.forward(x, replace={"layer2": zeroed}, keep=False)[0, 5])
    wk = (y[0, 5] - np.array(ablated, np.float64)) / y[0, 5]
    ablation = np.maximum(np.einsum("k,kij->ij", wk, A64[0]), 0)
    np.testing.assert_allclose(saved["ablationcam"], ablation, rtol=1e-4, atol=1e-4 * np.abs(ablation).max())


def test_score_cam_variant_from_the_command_line(tmp_path, capsys):
    from minicnn.commands.cli import main
    from minicnn.inputs.samples import sample_images
    shipped("resnet20_cifar10")
    image = str(sample_images("ship")[0][0])
    npz = tmp_path / "maps.npz"
    assert main(["explain", image, "--model", "resnet20_cifar10", "--method", "scorecam", "--scorecam-variant",
                 "pytorch-grad-cam", "--out", str(tmp_path / "f.png"), "--save", str(npz)]) == 0
    model = shipped("resnet20_cifar10")
    from minicnn.inputs.images import load_image
    x = preprocess(load_image(image), model.meta["preprocessing"])
    # The library's weights by hand: masks upsampled with aligned corners and scaled to [0, 1], every map
    # scored, alpha = softmax over the maps of y^c(x * H^k), for the top-1 class c.
    y = model.forward(x)
    c = int(y.argmax())
    A = model.activations["layer3"][0].astype(np.float64)                       # (64, 8, 8)
    U = resize_bilinear(A, (32, 32), align_corners=True)
    lo, hi = U.min(axis=(1, 2), keepdims=True), U.max(axis=(1, 2), keepdims=True)
    H = np.divide(U - lo, hi - lo, out=np.zeros_like(U), where=hi > lo)
    scores = model.forward((x * H[:, None]).astype(x.dtype), keep=False)[:, c].astype(np.float64)
    alpha = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
    want = np.maximum(np.einsum("k,kij->ij", alpha, A), 0)
    with np.load(npz, allow_pickle=False) as f:
        np.testing.assert_allclose(f["scorecam"], want, rtol=1e-4, atol=1e-5 * want.max())
    capsys.readouterr()
    assert main(["explain", image, "--model", "resnet20_cifar10", "--method", "scorecam", "--scorecam-variant",
                 "torch", "--out", str(tmp_path / "g.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("minicnn: error: Score-CAM variant must be one of authors, pytorch-grad-cam") and \
        err.count("\n") == 1


def test_score_cam_of_an_image_whose_maps_are_all_constant_is_zero():
    r = explain.scorecam(gap_model(), np.zeros((1, 1, 2, 2)))                  # A = 0 everywhere
    assert r.forwards == 0 and np.all(r.alpha == 0) and np.all(r.map == 0)

"""`minicnn explain` and `minicnn demo` from the command line."""

import numpy as np
import pytest
from PIL import Image
from test_explain_helpers import shipped

from minicnn import explain, figures
from minicnn.commands.cli import main
from minicnn.figures import demo
from minicnn.inputs.samples import sample_images
from minicnn.models import weights, zoo


@pytest.fixture(scope="module")
def cat_path():
    shipped("resnet20_cifar10")
    return str(sample_images("cat")[explain.CAT_DOG[0][1]][0])


@pytest.fixture(scope="module")
def vgg_path(tmp_path_factory):
    """A VGG-style CIFAR model with random weights, as a weights file (dense head: no CAM)."""
    path = tmp_path_factory.mktemp("models") / "vgg_random.npz"
    weights.save(zoo.vgg_cifar(fold_bn=True), path)
    return str(path)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_explain_all_prints_the_prediction_and_writes_the_figure_and_the_raw_maps(tmp_path, capsys, cat_path):
    fig, npz = tmp_path / "cat.png", tmp_path / "cat.npz"
    code, out, err = run(capsys, "explain", cat_path, "--model", "resnet20_cifar10", "--method", "all",
                         "--out", str(fig), "--save", str(npz), "--top", "3", "--steps", "8", "--samples", "4")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1] == "top 3:" and lines[2].split()[:2] == ["1.", "cat"] and "p=" in lines[2] and "y=" in lines[2]
    assert len([l for l in lines if l.startswith("  ") and "p=" in l]) == 3
    assert "target: 3 'cat' (top-1)" in out and "layer: layer3 (64x8x8)" in out
    assert f"figure: {fig}" in out and f"maps: {npz}" in out
    with Image.open(fig) as im:
        assert im.format == "PNG"
    with np.load(npz, allow_pickle=False) as f:
        shapes = {k: f[k].shape for k in f.files}
        assert str(f["layer"]) == "layer3" and int(f["target"]) == 3 and str(f["target_name"]) == "cat"
        assert str(f["model"]) == "resnet20_cifar10"
        gradcam, up, logits = f["gradcam"], f["gradcam_upsampled"], f["logits"]
    assert shapes == {"gradcam": (8, 8), "gradcam_upsampled": (32, 32), "counterfactual": (8, 8),
                      "guided_backprop": (3, 32, 32), "guided_gradcam": (3, 32, 32), "cam": (8, 8),
                      "occlusion": (32, 32), "saliency": (3, 32, 32), "logits": (10,), "layer": (), "target": (),
                      "target_name": (), "model": (),
                      "gradcam_plus_plus": (8, 8), "xgradcam": (8, 8), "hirescam": (8, 8), "layercam": (8, 8),
                      "scorecam": (8, 8), "ablationcam": (8, 8), "eigencam": (8, 8), "eigengradcam": (8, 8),
                      "fullgrad": (32, 32), "lime": (32, 32), "kernel_shap": (32, 32), "rise": (32, 32),
                      **{key: (3, 32, 32) for key in ("input_x_gradient", "deconvnet", "integrated_gradients",
                                                      "smoothgrad", "smoothgrad_squared", "vargrad", "lrp_epsilon",
                                                      "lrp_epsilon_plus", "lrp_epsilon_gamma_box",
                                                      "deeplift", "deeplift_shap", "gradient_shap")},
                      "excitation_backprop": (8, 8), "contrastive_excitation_backprop": (8, 8)}
    assert gradcam.max() > 0 and up.shape == (32, 32) and logits.argmax() == 3
    # The saved numbers, not only their shapes: the logits and Grad-CAM worked out from the engine's passes.
    from minicnn.inputs.images import load_image
    from minicnn.inputs.preprocess import preprocess
    model = shipped("resnet20_cifar10")
    x = preprocess(load_image(cat_path), model.meta["preprocessing"])
    y = model.forward(x)
    A = model.activations["layer3"][0].astype(np.float64)
    model.backward(np.eye(10, dtype=y.dtype)[[3]], stop_at="layer3")
    alpha = model.gradients["layer3"][0].astype(np.float64).mean(axis=(1, 2))
    cam = np.maximum(np.einsum("k,kij->ij", alpha, A), 0)
    np.testing.assert_allclose(logits, y[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gradcam, cam, rtol=1e-4, atol=1e-5 * cam.max())
    assert list(tmp_path.iterdir()) and all(not p.name.startswith(".") for p in tmp_path.iterdir())


def test_explain_defaults_to_gradcam_and_a_figure_named_after_the_image(tmp_path, capsys, monkeypatch, cat_path):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "explain", cat_path, "--model", "resnet20_cifar10", "--target", "dog")
    assert code == 0
    stem = cat_path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    assert (tmp_path / f"{stem}.gradcam.png").is_file()
    assert "target: 5 'dog' (given)" in out and "layer: layer3" in out


def test_explain_a_chosen_layer_of_the_cat_dog_image(tmp_path, capsys):
    shipped("resnet20_cifar10")
    image = tmp_path / "catdog.png"
    Image.fromarray(explain.cat_dog_image()).save(image)
    code, out, _ = run(capsys, "explain", str(image), "--model", "resnet20_cifar10", "--layer", "layer2",
                       "--method", "guided-gradcam", "--out", str(tmp_path / "f.png"),
                       "--save", str(tmp_path / "m.npz"))
    assert code == 0 and "layer: layer2 (32x16x32)" in out
    with np.load(tmp_path / "m.npz", allow_pickle=False) as f:
        assert sorted(f.files) == sorted(["gradcam", "gradcam_upsampled", "guided_backprop", "guided_gradcam",
                                          "logits", "layer", "target", "target_name", "model"])
        assert f["gradcam"].shape == (16, 32) and f["guided_gradcam"].shape == (3, 32, 64)


def test_explain_all_on_a_dense_head_skips_cam_with_a_note(tmp_path, capsys, vgg_path, cat_path):
    code, out, _ = run(capsys, "explain", cat_path, "--model", vgg_path, "--method", "all",
                       "--out", str(tmp_path / "v.png"), "--save", str(tmp_path / "v.npz"), "--steps", "4",
                       "--samples", "2")
    assert code == 0
    assert "cam: skipped: CAM needs a network that ends in global average pooling" in out
    assert "layer: features.19 (128x8x8)" in out
    with np.load(tmp_path / "v.npz", allow_pickle=False) as f:
        assert "cam" not in f.files and f["gradcam"].shape == (8, 8)


def test_explain_attribution_methods_take_their_options(tmp_path, capsys, cat_path):
    code, out, _ = run(capsys, "explain", "--help")
    for flag in ("--steps", "--quadrature", "--baseline", "--samples", "--noise-level", "--seed", "--base",
                 "--epsilon", "--gamma"):
        assert flag in out
    assert "default 50" in out and "gausslegendre" in out and "default 0.15" in out
    npz = tmp_path / "a.npz"
    code, out, err = run(capsys, "explain", cat_path, "--model", "resnet20_cifar10", "--out", str(tmp_path / "a.png"),
                         "--method", "integrated-gradients,vargrad,lrp-epsilon-gamma-box,deconvnet", "--steps", "6",
                         "--quadrature", "riemann_middle", "--baseline", "blur", "--samples", "3", "--base",
                         "input-x-gradient", "--noise-level", "0.2", "--seed", "4", "--gamma", "0.5",
                         "--save", str(npz))
    assert code == 0, err
    assert "layer: none (this method works on the input pixels)" in out
    with np.load(npz, allow_pickle=False) as f:
        maps = {k: f[k] for k in ("integrated_gradients", "vargrad", "lrp_epsilon_gamma_box", "deconvnet")}
    from minicnn import load
    from minicnn.inputs.images import load_image
    from minicnn.inputs.preprocess import preprocess
    model = load("resnet20_cifar10")
    x = preprocess(load_image(cat_path), model.meta["preprocessing"])
    # Each saved map against what its options mean, worked out here from the engine's passes.
    from scipy.ndimage import gaussian_filter
    x64 = x.astype(np.float64)
    m64 = model.astype(np.float64)
    c = int(m64.forward(x64).argmax())
    seed = np.eye(10)[[c]]

    def gradient(z):
        m64.forward(z)
        return m64.backward(seed)

    # IG with the blur baseline (sigma 3.2 pixels, a tenth of 32) and 6 midpoints on the path.
    x0 = gaussian_filter(x64, (0, 0, 3.2, 3.2), mode="reflect")
    ig = (x64 - x0) * sum(gradient(x0 + (k + 0.5) / 6 * (x64 - x0)) for k in range(6)) / 6
    np.testing.assert_allclose(maps["integrated_gradients"], ig[0], rtol=1e-4, atol=1e-5 * np.abs(ig).max())
    # VarGrad of input x gradient over 3 copies with noise 0.2 (max - min), seed 4.
    e = np.random.default_rng(4).standard_normal((3, *x.shape)) * 0.2 * (x64.max() - x64.min())
    noisy = [(x64 + e[k].astype(x.dtype)) * gradient(x64 + e[k].astype(x.dtype)) for k in range(3)]
    var = np.mean([m ** 2 for m in noisy], axis=0) - np.mean(noisy, axis=0) ** 2
    np.testing.assert_allclose(maps["vargrad"], var[0], rtol=1e-3, atol=1e-4 * np.abs(var).max())
    # --gamma 0.5 reached the rule: the map is the library's at gamma 0.5 (checked against zennit in
    # test_attribution_reference.py) and not the one at the default 0.25.
    at = {g: explain.lrp_epsilon_gamma_box(model, x, gamma=g).map[0] for g in (0.5, 0.25)}
    scale = np.abs(at[0.5]).max()
    np.testing.assert_allclose(maps["lrp_epsilon_gamma_box"], at[0.5], rtol=1e-5, atol=1e-6 * scale)
    assert np.abs(at[0.5] - at[0.25]).max() > 1e-2 * scale


@pytest.mark.parametrize("extra, message", [
    (["--method", "cam"], "CAM needs a network that ends in global average pooling"),
    (["--layer", "classifier.0"], "Grad-CAM needs a convolutional feature map (N, K, h, w) with spatial extent"),
    (["--layer", "feature.19"], "unknown layer 'feature.19'; did you mean 'features.19'?"),
    (["--target", "doge"], "unknown class 'doge'; did you mean 'dog'?"),
    (["--target", "10"], "target class 10 is out of range; this model has classes 0..9"),
    (["--top", "0"], "--top must be a positive integer"),
    (["--method", "integrated-gradients", "--quadrature", "simpson"], "unknown quadrature 'simpson'"),
    (["--method", "smoothgrad", "--base", "gradcam"], "SmoothGrad needs a base method with a map over the input"),
    (["--method", "lrp-epsilon", "--epsilon", "-1"], "LRP epsilon must be a number >= 0"),
])
def test_explain_errors_are_one_line_with_status_2(tmp_path, capsys, vgg_path, cat_path, extra, message):
    code, out, err = run(capsys, "explain", cat_path, "--model", vgg_path, "--out", str(tmp_path / "x.png"), *extra)
    assert code == 2 and out == ""
    assert err.startswith("minicnn: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "x.png").exists()


def test_explain_refuses_a_missing_image_and_an_unwritable_output(tmp_path, capsys, vgg_path, cat_path):
    code, _, err = run(capsys, "explain", str(tmp_path / "none.jpg"), "--model", vgg_path,
                       "--out", str(tmp_path / "x.png"))
    assert code == 2 and "image file not found" in err
    code, _, err = run(capsys, "explain", cat_path, "--model", vgg_path, "--out", str(tmp_path / "no" / "x.png"))
    assert code == 2 and "does not exist" in err


def test_demo_writes_the_figure_1_grid_whose_rows_light_up_different_halves(tmp_path, capsys, monkeypatch):
    shipped("resnet20_cifar10")
    monkeypatch.setattr(demo, "SAMPLES", (("horse", 0),))            # one single image keeps the test short
    monkeypatch.setattr(demo, "OCCLUSION", {"size": 8, "stride": 8, "fill": 0.0})
    # the ImageNet figures: tests/models/test_mobilenet_v2.py
    monkeypatch.setattr(demo, "IMAGENET", "no_imagenet_model")
    monkeypatch.setattr(demo, "ATTRIBUTION_OPTIONS", {"steps": 4, "samples": 2})     # the gallery's wiring only
    made = {}
    save_png = figures.save_png
    monkeypatch.setattr(figures, "save_png", lambda fig, path, **kw: save_png(fig, path, dpi=72, **kw))  # quicker
    figure1 = demo.figure1
    monkeypatch.setattr(demo, "figure1", lambda vgg, resnet: made.setdefault("figure1", figure1(vgg, resnet)))
    code, out, _ = run(capsys, "demo", "--out-dir", str(tmp_path / "d"))
    assert code == 0
    paths = out.split()
    assert paths == [str(tmp_path / "d" / name) for name in ("figure1_cat_dog.png", "single_images.png",
                                                             "gallery_cam.png", "gallery_attribution.png")]
    for p in paths:
        with Image.open(p) as im:
            assert im.format == "PNG" and im.size[0] > 600
    assert sorted(x.name for x in (tmp_path / "d").iterdir()) == ["figure1_cat_dog.png", "gallery_attribution.png",
                                                                  "gallery_cam.png",
                                                                  "single_images.png"]

    # the 'cat' row's Grad-CAM maps (VGG-style column and ResNet column) sit on the left, the 'dog' row's on the right
    _, (cat, dog) = made["figure1"]
    for column in ("gradcam", "resnet"):
        m_cat, m_dog = cat[column].map[0], dog[column].map[1]
        half = m_cat.shape[1] // 2
        assert m_cat[:, :half].sum() / m_cat.sum() > 0.5 > m_dog[:, :half].sum() / m_dog.sum()


def test_explain_lime_and_kernel_shap_take_a_feature_mask_file_and_refuse_a_bad_one(tmp_path, capsys, cat_path):
    labels = np.repeat(np.repeat(np.array([[0, 1], [2, 2]]), 16, axis=0), 16, axis=1)   # 3 superpixels
    Image.fromarray(labels.astype(np.uint8)).save(tmp_path / "mask.png")
    npz = tmp_path / "m.npz"
    code, out, err = run(capsys, "explain", cat_path, "--model", "resnet20_cifar10", "--method", "lime,kernel-shap",
                         "--feature-mask", str(tmp_path / "mask.png"), "--samples", "8", "--out",
                         str(tmp_path / "m.png"), "--save", str(npz))
    assert code == 0, err
    with np.load(npz, allow_pickle=False) as f:
        for key in ("lime", "kernel_shap"):
            assert f[key].shape == (32, 32)
            for label in range(3):                                   # one value per superpixel
                assert np.ptp(f[key][labels == label]) == 0
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "small.png")
    code, out, err = run(capsys, "explain", cat_path, "--model", "resnet20_cifar10", "--method", "lime",
                         "--feature-mask", str(tmp_path / "small.png"), "--out", str(tmp_path / "n.png"))
    assert code == 2 and "network input's size" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "n.png").exists()

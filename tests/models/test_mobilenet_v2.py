"""The shipped ImageNet model, mobilenet_v2: the file, its references, and every explanation on real photos.

References (``tests/fixtures/mobilenet_v2_tflite.npz``, written once by
``weights/recipes/make_mobilenet_v2_fixtures.py``): the TensorFlow Lite
interpreter's top-1 on the shipped photos, and a PyTorch twin of the TFLite
graph built from the same dequantised arrays (its logits, Grad-CAM of the two
dogs in pets.jpg, guided backprop). ``tests/models/test_fixtures.py`` also checks
``mobilenet_v2_torch.npz`` (activations and gradients) like every shipped model's.
"""

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

import minicnn
from minicnn import explain
from minicnn.commands import cli
from minicnn.explain import registry
from minicnn.inputs.images import load_image
from minicnn.inputs.preprocess import preprocess
from minicnn.inputs.samples import data_path
from minicnn.models import weights

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "mobilenet_v2_tflite.npz"
DOGS = ("Italian greyhound", "Boston bull, Boston terrier")


@pytest.fixture(scope="module")
def model():
    return minicnn.load("mobilenet_v2")


@pytest.fixture(scope="module")
def ref():
    with np.load(FIXTURE) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def pets(model):
    return preprocess(load_image(data_path("images", "pets.jpg")), model.meta["preprocessing"])


# ---------------------------------------------------------------- the file

def test_the_file_keeps_the_8bit_values_with_their_scales():
    path = ROOT / "weights" / "mobilenet_v2.npz"
    assert path.stat().st_size < 8 * 2**20
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(z["__meta__"].tobytes())
        dtypes = {k: z[k].dtype for k in z.files if k != "__meta__"}
    quant = meta["quantization"]
    assert set(quant) == set(dtypes) and len(quant) == 2 * 53          # 53 convolutions, weight and bias each
    assert all(dtypes[k] == (np.uint8 if k.endswith(".weight") else np.int32) for k in dtypes)
    assert all(isinstance(e["scale"], float) and isinstance(e["zero_point"], int) for e in quant.values())
    assert meta["licence"]["name"] == "Apache-2.0"
    licence = (ROOT / "weights" / meta["licence"]["file"]).read_text()
    assert meta["licence"]["text"] == licence and "Apache License" in licence
    with zipfile.ZipFile(path) as zf:                                   # plain .npy members only
        assert all(name.endswith(".npy") for name in zf.namelist())


def test_dequantised_at_load(model):
    with np.load(ROOT / "weights" / "mobilenet_v2.npz", allow_pickle=False) as z:
        meta = json.loads(z["__meta__"].tobytes())
        q = z["features.2.conv.1.0.weight"]
    entry = meta["quantization"]["features.2.conv.1.0.weight"]
    w = model.state_dict()["features.2.conv.1.0.weight"]
    assert w.dtype == np.float32 and w.shape == (96, 1, 3, 3)
    expected = (np.float64(np.float32(entry["scale"]))
                * (q.astype(np.float64) - entry["zero_point"])).astype(np.float32)
    assert np.array_equal(w, expected)


def test_metadata_classes_and_preprocessing(model):
    assert model.classes[0] == "background" and len(model.classes) == 1001
    assert model.classes[model.classes.index("Italian greyhound")] == "Italian greyhound"
    assert model.input_size == (3, 224, 224) and model.meta["arch"] == "mobilenet_v2"
    p = model.meta["preprocessing"]
    assert p["resize"] == "exact" and p["size"] == [224, 224] and p["formula"] == "(pixel - 128) / 128"
    # an image already 224x224 is only scaled: x = (pixel - 128) / 128
    img = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    x = preprocess(img, p)
    np.testing.assert_allclose(x[0].transpose(1, 2, 0), (img.astype(np.float64) - 128) / 128, atol=1e-6)
    assert model.meta["source_names"]["features.2.conv.1.0"] == "MobilenetV2/expanded_conv_1/depthwise/depthwise_Fold"


def test_preprocessing_may_name_pillows_bicubic_filter():
    from PIL import Image

    from minicnn.errors import InputError
    img = np.random.default_rng(1).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    p = {"mean": [0.5] * 3, "std": [0.5] * 3, "resize": "exact", "size": [20, 30]}
    bicubic = np.asarray(Image.fromarray(img).resize((30, 20), Image.Resampling.BICUBIC))
    x = preprocess(img, {**p, "interpolation": "bicubic"}, dtype=np.float64)
    np.testing.assert_allclose(x[0].transpose(1, 2, 0), (bicubic / 255 - 0.5) / 0.5, atol=1e-12)
    assert not np.allclose(x, preprocess(img, p, dtype=np.float64))              # bilinear by default
    with pytest.raises(InputError, match="interpolation must be one of bilinear, bicubic"):
        preprocess(img, {**p, "interpolation": "lanczos"})


def test_spec_is_the_zoos_mobilenet_v2():
    from minicnn.models.zoo import mobilenet_v2
    assert weights.read_meta(ROOT / "weights" / "mobilenet_v2.npz")["spec"] == mobilenet_v2().spec()


# ---------------------------------------------------------------- against the interpreter and the twin

def test_top1_agrees_with_the_interpreter_and_logits_with_the_twin(model, ref):
    for i, photo in enumerate(ref["photos"]):
        x = preprocess(load_image(data_path("images", str(photo))), model.meta["preprocessing"])
        logits = model.forward(x)[0]
        assert np.abs(logits - ref["logits"][i]).max() < 1e-4, photo
        assert int(np.argmax(logits)) == int(ref["interpreter_top1"][i]), photo
    assert len(ref["photos"]) == 5


def test_pets_names_both_dogs(model, pets):
    logits = model.forward(pets)[0]
    top2 = [model.classes[k] for k in np.argsort(-logits)[:2]]
    assert top2 == list(DOGS)
    assert logits[model.classes.index(DOGS[0])] == pytest.approx(16.49, abs=0.005)
    assert logits[model.classes.index(DOGS[1])] == pytest.approx(16.44, abs=0.005)


def test_gradcam_and_guided_backprop_equal_the_twins(model, ref, pets):
    for k, c in enumerate(ref["gradcam_targets"]):
        r = explain.gradcam(model, pets, int(c))
        assert r.layer == "features"
        assert np.abs(r.alpha[0] - ref["gradcam_alpha"][k]).max() <= 1e-4 * np.abs(ref["gradcam_alpha"][k]).max()
        assert np.abs(r.map[0] - ref["gradcam_map"][k]).max() <= 1e-4 * np.abs(ref["gradcam_map"][k]).max()
    g = explain.guided_backprop(model, ref["guided_x"], int(ref["guided_target"]))
    assert np.abs(g.map - ref["guided_grad"]).max() <= 1e-4 * np.abs(ref["guided_grad"]).max()


# ---------------------------------------------------------------- explanations

def test_default_layer_is_the_last_relu6_map_and_cam_is_gradcam_times_z(model, pets):
    c = model.classes.index(DOGS[0])
    cam = explain.cam(model, pets, c)
    assert explain.default_layer(model) == "features" and cam.layer == "features"
    assert model.activations["features"].shape == (1, 1280, 7, 7)
    assert model.activations["features"] is model.activations["features.18.2"]
    grad = explain.gradcam(model, pets, c, relu=False)
    z = 7 * 7
    np.testing.assert_allclose(grad.map * z, cam.map, rtol=1e-4, atol=1e-4 * np.abs(cam.map).max())
    np.testing.assert_allclose(grad.alpha * z, cam.alpha, rtol=1e-4, atol=1e-7)


def test_every_registered_method_runs_on_mobilenet_v2(model, pets):
    for name, method in registry.METHODS.items():
        if name == "occlusion":      # 4 patches, not the default 169: a smoke test, not a figure
            r = explain.occlusion(model, pets, DOGS[1], size=112, stride=112)
        elif name == "scorecam":     # one forward pass per map: the 16 maps of features.1, not 1280
            r = method.run(model, pets, DOGS[1], "features.1")
            assert r.map.shape == (1, 112, 112)
            continue
        else:
            r = method.run(model, pets, DOGS[1], None)
        assert np.all(np.isfinite(r.map)), name
        assert r.target_names == [DOGS[1]], name
        shape = {"layer": (1, 7, 7), "pixels": (1, 224, 224), "input": (1, 3, 224, 224)}[method.kind]
        assert r.map.shape == shape, name


def left_share(heat: np.ndarray) -> float:
    """The part of a map's mass on the left half of the image."""
    return float(heat[:, : heat.shape[1] // 2].sum() / heat.sum())


def test_gradcam_of_each_dog_puts_more_mass_on_its_half(model, pets):
    # pets.jpg: the Italian greyhound runs on the left, the Boston terrier on the right.
    greyhound, boston = (left_share(explain.gradcam(model, pets, dog).upsampled((224, 224))[0]) for dog in DOGS)
    assert greyhound > 0.5 and boston < 0.5
    assert greyhound - boston > 0.15


def test_the_cat_dog_pair_runs_fully_convolutionally_as_the_twin(model, ref):
    # (its Grad-CAM halves: the demo test below)
    pair = explain.imagenet_cat_dog_image()
    assert pair.shape == (224, 448, 3)
    x = preprocess(pair, {**model.meta["preprocessing"], "resize": "none"})
    logits = model.forward(x)
    assert np.abs(logits - ref["catdog_logits"]).max() < 1e-4
    assert model.activations["features"].shape == (1, 1280, 7, 14)
    assert model.classes[int(logits.argmax())] == "tiger cat"


# ---------------------------------------------------------------- the command line

def test_explain_a_photo_on_the_command_line(tmp_path, capsys):
    out = tmp_path / "pets.png"
    assert cli.main(["explain", str(data_path("images", "pets.jpg")), "--model", "mobilenet_v2",
                     "--out", str(out), "--save", str(tmp_path / "maps.npz")]) == 0
    text = capsys.readouterr().out
    assert "1. Italian greyhound" in text and "2. Boston bull " in text    # the table: each class's first synonym
    assert "Boston terrier" not in text
    assert "layer: features (1280x7x7)" in text
    assert "image: 512 wide x 430 high -> network input: 224 wide x 224 high" in text
    assert out.stat().st_size > 10_000
    with np.load(tmp_path / "maps.npz") as z:
        assert z["gradcam"].shape == (7, 7) and str(z["target_name"]) == "Italian greyhound"


def test_layers_lists_blocks_and_their_parts(capsys):
    assert cli.main(["layers", "--model", "mobilenet_v2"]) == 0
    table = capsys.readouterr().out
    for text in ("features.2.conv.1.pad", "ZeroPad2d", "InvertedResidual", "features.17.conv.2", "ReLU6",
                 "1280x7x7", "classifier", "3,489,097 parameters"):
        assert text in table, text


# ---------------------------------------------------------------- the demo's ImageNet figures

def test_demo_writes_the_imagenet_figures_whose_rows_light_up_each_animal(tmp_path, monkeypatch, capsys):
    from matplotlib.figure import Figure

    from minicnn import figures
    from minicnn.figures import demo
    # the CIFAR figures are tested in test_cli_explain.py: stand-ins here
    monkeypatch.setattr(demo, "figure1", lambda vgg, resnet: (Figure(figsize=(1, 1)), []))
    monkeypatch.setattr(demo, "samples_figure", lambda vgg, resnet: Figure(figsize=(1, 1)))
    monkeypatch.setattr(demo, "cam_gallery", lambda resnet: Figure(figsize=(1, 1)))
    monkeypatch.setattr(demo, "OCCLUSION_IMAGENET", {"size": 112, "stride": 56, "fill": 0.0})   # 9 passes, not 49
    save_png = figures.save_png
    monkeypatch.setattr(figures, "save_png", lambda fig, path, **kw: save_png(fig, path, dpi=50, **kw))
    made = {}
    imagenet_figures = demo.imagenet_figures
    monkeypatch.setattr(demo, "imagenet_figures", lambda m: made.setdefault("f", imagenet_figures(m)))
    assert cli.main(["demo", "--out-dir", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert [p.split("/")[-1] for p in out.split()] == list(demo.FILES)
    assert "[5/7] Figure 1 on a real photograph: pets.jpg" in err
    (_, pets_rows), (_, pair_rows) = made["f"]
    greyhound, boston = (left_share(r["gradcam"].upsampled((224, 224))[r["index"]]) for r in pets_rows)
    assert greyhound > 0.5 > boston
    cat, dog = (left_share(r["gradcam"].upsampled((224, 448))[r["index"]]) for r in pair_rows)
    assert cat > 0.7 and dog < 0.3
    occ = pets_rows[0]["occlusion"]
    assert occ.grid.shape == (2, 3, 3) and pair_rows[0]["occlusion"] is None

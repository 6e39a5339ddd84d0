"""minicnn against PyTorch's recorded answers (no torch needed here).

The fixtures ``tests/fixtures/<model>_torch.npz`` were written by
``weights/recipes/make_fixtures.py`` from the original PyTorch checkpoints.
Everything runs in float32; the error of an array is measured relative to
its largest entry, ``max|minicnn - torch| / max|torch|``, and must stay
below 1e-4 (logits, activations, dy^c/dA and dy^c/dx).
"""

import json
from pathlib import Path

import numpy as np
import pytest

import minicnn
from minicnn import explain
from minicnn.inputs.images import load_image
from minicnn.inputs.preprocess import preprocess
from minicnn.inputs.samples import data_path
from minicnn.models import shipped

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TOL = 1e-4

# model to test -> its recorded fixture
MODELS = {
    "resnet20_cifar10": "resnet20_cifar10",                    # shipped, by name
    str(FIXTURES / "vgg11_small.npz"): "vgg11_small",          # converted test checkpoints
    str(FIXTURES / "vgg11_bn_small_folded.npz"): "vgg11_bn_small",
}
for _name in shipped.read_manifest(Path(__file__).resolve().parents[2] / "weights")["models"]:
    MODELS.setdefault(_name, _name)          # the checkout's models, whatever MINICNN_WEIGHTS_DIR says


def rel_err(a, b) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def cases(fixture: str, *, recording: str | None = None) -> list[str]:
    """The fixture's cases (those that record the array ``recording``, if given)."""
    with np.load(FIXTURES / f"{fixture}_torch.npz") as z:
        return sorted({k.split(".", 1)[0] for k in z.files
                       if k != "info" and (recording is None or k.endswith(f".{recording}"))})


def test_every_shipped_model_has_a_fixture():
    missing = [n for n in shipped.shipped_models() if not (FIXTURES / f"{n}_torch.npz").exists()]
    assert not missing, f"run weights/recipes/make_fixtures.py --model NAME ARCH CHECKPOINT for {missing}"


PARAMS = [(m, f, c) for m, f in MODELS.items() if (FIXTURES / f"{f}_torch.npz").exists() for c in cases(f)]


@pytest.mark.parametrize("model_ref,fixture,case", PARAMS, ids=[f"{f}-{c}" for _, f, c in PARAMS])
def test_matches_pytorch(model_ref, fixture, case):
    model = minicnn.load(model_ref)
    with np.load(FIXTURES / f"{fixture}_torch.npz") as z:
        rec = {k.split(".", 1)[1]: z[k] for k in z.files if k.startswith(case + ".")}
        info = json.loads(z["info"].tobytes())
    if "x" in rec:
        x = rec["x"]
    else:  # the photo: minicnn's own preprocessing must give torchvision's crop
        photo = load_image(data_path("images", "chelsea.png"))
        x = preprocess(photo, model.meta["preprocessing"])
    assert x.dtype == np.float32
    logits = model.forward(x)
    assert rel_err(logits, rec["logits"]) < TOL
    assert np.array_equal(logits.argmax(1), rec["target"])
    for key, want in rec.items():
        if key.startswith("act:"):
            assert rel_err(model.activations[key[4:]], want) < TOL, key
    onehot = np.eye(logits.shape[1], dtype=np.float32)[rec["target"]]
    dx = model.backward(onehot)
    if "input_grad" in rec:
        assert rel_err(dx, rec["input_grad"]) < TOL
    for key, want in rec.items():
        if key.startswith("grad:"):
            assert rel_err(model.gradients[key[5:]], want) < TOL, key
    assert info["gradients"] and info["activations"]


GUIDED = [(m, f, c) for m, f in MODELS.items() if (FIXTURES / f"{f}_torch.npz").exists()
          for c in cases(f, recording="guided_input_grad")]


def test_resnet20_fixture_records_guided_backprop_through_its_residual_blocks():
    assert {c for _, f, c in GUIDED if f == "resnet20_cifar10"} == {"batch", "catdog"}


@pytest.mark.parametrize("model_ref,fixture,case", GUIDED, ids=[f"{f}-{c}" for _, f, c in GUIDED])
def test_guided_backprop_and_guided_gradcam_match_pytorch(model_ref, fixture, case):
    # PyTorch's side: every ReLU module's backward replaced by dout * (x > 0) * (dout > 0)
    # (an autograd Function in the recipe; captum's GuidedBackprop gives the same arrays).
    model = minicnn.load(model_ref)
    with np.load(FIXTURES / f"{fixture}_torch.npz") as z:
        rec = {k.split(".", 1)[1]: z[k] for k in z.files if k.startswith(case + ".")}
    x, target = rec["x"], rec["target"]
    guided = explain.guided_backprop(model, x, target)
    assert rel_err(guided.map, rec["guided_input_grad"]) < TOL
    layer = next(k.split(":", 1)[1] for k in rec if k.startswith("guided_gradcam:"))
    result = explain.guided_gradcam(model, x, target, layer=layer)
    assert rel_err(result.gradcam.map, rec[f"gradcam:{layer}"]) < TOL
    assert rel_err(result.map, rec[f"guided_gradcam:{layer}"]) < TOL
    # the guided picture differs from the gradient: the rule matters at these inputs
    assert rel_err(rec["guided_input_grad"], rec["input_grad"]) > 0.1


@pytest.mark.parametrize("case", ["batch", "catdog"])
def test_preprocessing_of_the_sample_images_matches_torchvision(case):
    model = minicnn.load("resnet20_cifar10")
    with np.load(FIXTURES / "resnet20_cifar10_torch.npz") as z:
        images, x = z[f"{case}.images"], z[f"{case}.x"]
    ours = preprocess(list(images), model.meta["preprocessing"])
    assert np.abs(ours - x[len(x) - len(images):]).max() < 1e-6


def test_shipped_samples_decode_as_recorded():
    with np.load(FIXTURES / "resnet20_cifar10_torch.npz") as z:
        images, info = z["batch.images"], json.loads(z["info"].tobytes())
    paths = [s for s in info["cases"]["batch"] if s.startswith("minicnn/data/")]
    for img, rel in zip(images, paths):
        assert np.array_equal(load_image(Path(minicnn.__file__).parent.parent / rel), img)


def test_catdog_is_the_two_samples_side_by_side():
    from minicnn.inputs.preprocess import side_by_side
    from minicnn.inputs.samples import load_sample
    with np.load(FIXTURES / "resnet20_cifar10_torch.npz") as z:
        recorded = z["catdog.images"][0]
    assert np.array_equal(side_by_side(load_sample("cat", 0), load_sample("dog", 0)), recorded)

"""Bad input, end to end: one line on stderr, exit status 2, the API's own exception, nothing written.

One table per category: images, arrays, model/layer/target, weights files, writing. A row builds
its input in ``tmp_path`` and names the command line and the API call that must both refuse it,
the exception class (a MinicnnError subclass) and words the message must contain: what was
wrong, and what would be right. The command line is run in-process (``cli.main``); one test runs
the real ``python -m minicnn.cli`` in a subprocess.

Tests run as root here, where permission bits do not stop a write, so "not writable" is simulated
by making ``os.access`` answer False for the one folder concerned.
"""

from __future__ import annotations

import io
import os
import pickle
import shutil
import struct
import subprocess
import sys
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image

import minicnn
from minicnn import cli, convert, demo, explain, fetch, weights
from minicnn.commands import explain as explain_cli
from minicnn.errors import (ChecksumError, ImageError, InputError, MinicnnError, OutputError, UnknownNameError,
                            WeightsError)
from minicnn.explain.target import class_index
from minicnn.images import ImageWarning, load_image, preprocess, sample_images
from minicnn.layers import AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Flatten, Linear, ReLU, Sequential
from minicnn.model import Model

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
SHIPPED = REPO / "weights"

try:
    import torch  # noqa: F401
    HAVE_TORCH = True
except ImportError:
    HAVE_TORCH = False
needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason="reading PyTorch checkpoints needs torch")


# ---------------------------------------------------------------- helpers

@dataclass
class Case:
    """A refusal: ``make(tmp, monkeypatch)`` -> (argv, api); both must fail with ``error`` and ``words``."""

    id: str
    make: Callable
    error: type
    words: tuple[str, ...]


def params(cases, marks=None):
    marks = marks or {}
    return [pytest.param(c, id=c.id, marks=marks.get(c.id, ())) for c in cases]


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def check_refusal(case: Case, tmp_path, monkeypatch, capsys):
    """The CLI answers with status 2 and one line; the API raises the same kind of error; nothing changes on disk."""
    work = tmp_path / "work"
    work.mkdir()
    argv, api = case.make(work, monkeypatch)
    before = files_under(tmp_path)
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert out == ""
    assert err.startswith("minicnn: error: ") and err.endswith("\n") and err.count("\n") == 1, err
    for w in case.words:
        assert w in err, (w, err)
    assert files_under(tmp_path) == before  # no partial output, no temporary file, nothing overwritten
    with pytest.raises(case.error) as e:
        api()
    assert isinstance(e.value, MinicnnError)
    text = str(e.value)
    assert "\n" not in text and text in err
    assert files_under(tmp_path) == before


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header announces width x height pixels (its pixel data is a few bytes)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
            + chunk(b"IEND", b""))


def png_bytes(im: Image.Image, fmt="PNG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def tiny_model() -> Model:
    """Conv -> BN -> ReLU -> global average pool -> Linear: a 3 kB weights file."""
    root = Sequential([("conv", Conv2d(3, 2, 3, padding=1)), ("bn", BatchNorm2d(2)), ("relu", ReLU()),
                       ("pool", AdaptiveAvgPool2d(1)), ("flat", Flatten()), ("fc", Linear(2, 3))])
    return Model(root, {"name": "tiny", "classes": ["a", "b", "c"], "input_size": [3, 8, 8]})


def meta_array(model: Model) -> np.ndarray:
    return weights.encode_meta({"format": weights.FORMAT, "version": weights.VERSION, **model.meta,
                                "spec": model.spec()})


def write_npz(path: Path, **arrays) -> Path:
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


class Payload:
    """Unpickling this would create ``path`` (it reduces to ``open(path, "w")``)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


CAT = sample_images("cat")[0][0]


@pytest.fixture(scope="module")
def vgg():
    return minicnn.load("vgg_cifar10")


@pytest.fixture(scope="module")
def resnet():
    return minicnn.load("resnet20_cifar10")


def cat_batch(model):
    return preprocess(load_image(CAT), model.meta["preprocessing"])


def explain_argv(image, tmp, *extra, model="vgg_cifar10"):
    return ["explain", image, "--model", model, "--out", tmp / "out.png", *extra]


# ================================================================ images

def image_file(name, data: bytes):
    def make(tmp, _):
        path = tmp / name
        path.write_bytes(data)
        return explain_argv(path, tmp), lambda: load_image(path)
    return make


def _missing(tmp, _):
    return explain_argv(tmp / "none.jpg", tmp), lambda: load_image(tmp / "none.jpg")


def _folder(tmp, _):
    (tmp / "pics").mkdir()
    return explain_argv(tmp / "pics", tmp), lambda: load_image(tmp / "pics")


def _dataset_with_a_broken_image(tmp, _):
    from minicnn.datasets import open_dataset
    for cls in ("cat", "dog"):
        (tmp / "pets" / "test" / cls).mkdir(parents=True)
        (tmp / "pets" / "test" / cls / "0.png").write_bytes(png_bytes(Image.new("RGB", (32, 32), (9, 9, 9))))
    (tmp / "pets" / "test" / "dog" / "1.png").write_bytes(_PNG[: len(_PNG) // 2])  # cut short
    return (["evaluate", "--model", "resnet20_cifar10", "--data", tmp / "pets"],
            lambda: list(open_dataset(tmp / "pets", "test").batches(200)))


_PNG = png_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)))
_JPEG = png_bytes(Image.fromarray(np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)), "JPEG")

IMAGE_REFUSALS = [
    Case("missing", _missing, ImageError, ("image file not found", "none.jpg")),
    Case("folder", _folder, ImageError, ("is a directory, not an image file",)),
    Case("not-an-image", image_file("notes.jpg", b"shopping list: milk"), ImageError,
         ("notes.jpg is not an image file Pillow can read", "first bytes b'shopping'")),
    Case("empty", image_file("empty.png", b""), ImageError, ("empty.png is empty (0 bytes), not an image",)),
    Case("truncated-png", image_file("cut.png", _PNG[: len(_PNG) // 2]), ImageError,
         ("cut.png: the file is truncated or corrupt",)),
    Case("truncated-jpeg", image_file("cut.jpg", _JPEG[: len(_JPEG) // 2]), ImageError,
         ("cut.jpg: the file is truncated or corrupt",)),
    Case("broken-image-in-a-dataset", _dataset_with_a_broken_image, ImageError,
         ("dog/1.png: the file is truncated or corrupt",)),
    Case("bomb-over-minicnn-limit", image_file("bomb.png", png_claiming(9000, 9000)), ImageError,
         ("bomb.png is 9000x9000 = 81000000 pixels, over the limit of 64000000 pixels", "decompression bomb",
          "max_pixels")),
    Case("bomb-over-pillow-limit", image_file("huge.png", png_claiming(30000, 30000)), ImageError,
         ("huge.png is 30000x30000 = 900000000 pixels, over the limit of 64000000 pixels",)),
]


@pytest.mark.parametrize("case", params(IMAGE_REFUSALS))
def test_images_refused(case, tmp_path, monkeypatch, capsys):
    check_refusal(case, tmp_path, monkeypatch, capsys)


def _exif_rotated():
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 8 wide x 4 high, displayed rotated 90 degrees clockwise: 4 wide x 8 high
    im = Image.new("RGB", (8, 4), (250, 0, 0))
    im.paste((0, 0, 250), (0, 0, 1, 4))  # the stored left column becomes the displayed top row
    return png_bytes(im, "PNG", exif=exif)  # PNG keeps the pixels exact; JPEG's own case is in test_images


def _gif():
    frames = [Image.new("RGB", (10, 12), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    return png_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:])


def _palette():
    im = Image.new("P", (7, 5))
    im.putpalette([10, 20, 30] + [0] * 765)
    return png_bytes(im)


# (name, file bytes, displayed (H, W), one RGB pixel the array must hold at [0, 0])
IMAGE_CONVERSIONS = [
    ("gray.png", png_bytes(Image.new("L", (6, 5), 77)), (5, 6), (77, 77, 77)),
    ("rgba.png", png_bytes(Image.new("RGBA", (6, 5), (255, 0, 0, 0))), (5, 6), (255, 255, 255)),  # over white
    ("la.png", png_bytes(Image.new("LA", (6, 5), (0, 255))), (5, 6), (0, 0, 0)),
    ("palette.png", _palette(), (5, 7), (10, 20, 30)),
    ("16bit.png", png_bytes(Image.fromarray(np.full((5, 6), 65535, np.uint16))), (5, 6), (255, 255, 255)),
    ("cmyk.jpg", png_bytes(Image.new("CMYK", (6, 5), (0, 0, 0, 0)), "JPEG", quality=95), (5, 6), (255, 255, 255)),
    ("rotated.png", _exif_rotated(), (8, 4), (0, 0, 250)),
    ("one_pixel.png", png_bytes(Image.new("RGB", (1, 1), (1, 2, 3))), (1, 1), (1, 2, 3)),
    ("wide.png", png_bytes(Image.new("RGB", (50, 20), (9, 8, 7))), (20, 50), (9, 8, 7)),
    ("tall.png", png_bytes(Image.new("RGB", (3, 40), (9, 8, 7))), (40, 3), (9, 8, 7)),
    ("animated.gif", _gif(), (12, 10), (255, 0, 0)),
]


@pytest.mark.parametrize("name, data, shape, pixel", IMAGE_CONVERSIONS, ids=[c[0] for c in IMAGE_CONVERSIONS])
def test_images_converted_not_refused(name, data, shape, pixel, tmp_path, capsys):
    path = tmp_path / name
    path.write_bytes(data)
    code = cli.main(["explain", str(path), "--out", str(tmp_path / "out.png")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"(image {shape[0]}x{shape[1]})" in out and (tmp_path / "out.png").is_file()
    note = [f"{path} has 3 frames; using the first frame only"] if name.endswith(".gif") else []
    assert err == "".join(f"minicnn: note: {n}\n" for n in note)  # the CLI's one line per warning
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = load_image(path)
    assert [str(w.message) for w in caught if issubclass(w.category, ImageWarning)] == note
    assert a.shape == (*shape, 3) and a.dtype == np.uint8
    assert np.abs(a[0, 0].astype(int) - pixel).max() <= 3, a[0, 0]  # JPEG rounding


# ================================================================ arrays given to the API
# (The command line never hands arrays over: its input is an image file, above.)

def _x(shape=(2, 3, 32, 32), dtype=np.float32):
    return np.random.default_rng(3).standard_normal(shape).astype(dtype)


def _with(value):
    x = _x()
    x[1, 2, 5, 7] = value
    return x


ARRAY_REFUSALS = [
    ("one image, no batch axis", _x((3, 32, 32)), "add the batch axis with x[None]"),
    ("rank 2", _x((32, 32)), "expected a batch (N, C, H, W), got an array of shape (32, 32)"),
    ("rank 5", _x((1, 2, 3, 32, 32)), "expected a batch (N, C, H, W)"),
    ("one channel", _x((2, 1, 32, 32)), "expected 3 channels (N, 3, H, W), got shape (2, 1, 32, 32)"),
    ("channels last", _x((2, 32, 32, 3)), "is the image channels-last (N, H, W, C)?"),
    ("NaN", _with(np.nan), "input contains NaN or infinity (first at index (1, 2, 5, 7))"),
    ("infinity", _with(-np.inf), "input contains NaN or infinity (first at index (1, 2, 5, 7))"),
    ("int64", _x(dtype=np.int64), "expected floating-point input, got dtype int64; preprocess images"),
    ("uint8", _x(dtype=np.uint8), "expected floating-point input, got dtype uint8"),
    ("bool", _x() > 0, "expected floating-point input, got dtype bool"),
    ("empty batch", _x((0, 3, 32, 32)), "the batch is empty (shape (0, 3, 32, 32))"),
]

CALLERS = {
    "forward": lambda m, x: m.forward(x),
    "gradcam": lambda m, x: explain.gradcam(m, x),
    "guided_backprop": lambda m, x: explain.guided_backprop(m, x),
    "saliency": lambda m, x: explain.saliency(m, x),
}


@pytest.mark.parametrize("caller", list(CALLERS))
@pytest.mark.parametrize("what, x, words", ARRAY_REFUSALS, ids=[a[0] for a in ARRAY_REFUSALS])
def test_arrays_refused(what, x, words, caller, resnet):
    with pytest.raises(InputError) as e:
        CALLERS[caller](resnet, x)
    assert isinstance(e.value, ValueError) and "\n" not in str(e.value)
    assert words in str(e.value)


@pytest.mark.parametrize("caller", ["forward", "gradcam"])
def test_a_dense_head_refuses_another_image_size(caller, vgg):
    with pytest.raises(InputError) as e:
        CALLERS[caller](vgg, _x((1, 3, 64, 64)))
    assert "a Linear layer with in_features=2048 got an input of shape (1, 8192)" in str(e.value)
    assert "model.input_size" in str(e.value) and "\n" not in str(e.value)


IMAGE_ARRAY_REFUSALS = [
    ("float image", np.zeros((4, 4, 3), np.float32), "image 0 must be uint8 (0..255); got float32"),
    ("gray array", np.zeros((4, 4), np.uint8), "image 0 must be shaped (H, W, 3); got (4, 4)"),
    ("empty list", [], "preprocess got an empty list of images"),
    ("a path", "cat.png", "expected an (H, W, 3) uint8 array or a list of them; got str"),
]


@pytest.mark.parametrize("what, images, words", IMAGE_ARRAY_REFUSALS, ids=[a[0] for a in IMAGE_ARRAY_REFUSALS])
def test_image_arrays_refused_by_preprocess(what, images, words, resnet):
    with pytest.raises(InputError) as e:
        preprocess(images, resnet.meta["preprocessing"])
    assert words in str(e.value) and "\n" not in str(e.value)


VIEWS = {
    "reversed width": lambda x: x[..., ::-1],
    "every other column": lambda x: x[..., ::2],
    "Fortran order": np.asfortranarray,
    "H and W swapped": lambda x: x.transpose(0, 1, 3, 2),
    "channels sliced from 5": lambda x: np.concatenate([x, x[:, :2]], axis=1)[:, :3],
    "batch from the back": lambda x: x[::-1],
}


@pytest.mark.parametrize("view", list(VIEWS))
def test_non_contiguous_views_simply_work(view, resnet):
    x = VIEWS[view](_x((2, 3, 16, 24)))
    assert not x.flags["C_CONTIGUOUS"]
    copy = np.ascontiguousarray(x)
    assert np.allclose(resnet.forward(x), resnet.forward(copy), atol=1e-5)
    a, b = explain.gradcam(resnet, x), explain.gradcam(resnet, copy)
    assert np.allclose(a.map, b.map, atol=1e-5) and a.layer == b.layer == "layer3"


# ================================================================ model, layer and target

def _cli_and_api(argv_extra, api, model="vgg_cifar10"):
    def make(tmp, _):
        return explain_argv(CAT, tmp, *argv_extra, model=model), api
    return make


def _api_gradcam(model_name, **kw):
    def api():
        m = minicnn.load(model_name)
        return explain.gradcam(m, cat_batch(m), **kw)
    return api


def _api_cam():
    m = minicnn.load("vgg_cifar10")
    return explain.cam(m, cat_batch(m))


def test_gradcam_on_an_input_too_small_for_the_layer():
    # The CLI resizes every image to CIFAR scale first (a 1x1 photo becomes 32x32),
    # so only an array given to the API can be this small.
    model = minicnn.load("resnet20_cifar10")
    with pytest.raises(InputError, match=r"layer 'layer3' outputs shape \(64, 1, 1\).*use a larger image") as info:
        explain.gradcam(model, np.zeros((1, 3, 4, 4), np.float32))
    assert "\n" not in str(info.value)


MODEL_REFUSALS = [
    Case("unknown-model-layers", lambda tmp, _: (["layers", "--model", "resnet21_cifar10"],
                                                 lambda: minicnn.load("resnet21_cifar10")),
         UnknownNameError, ("unknown model 'resnet21_cifar10'; did you mean 'resnet20_cifar10'?",
                            "valid models: resnet20_cifar10, vgg_cifar10")),
    Case("unknown-model-explain", _cli_and_api([], lambda: minicnn.load("vgg"), model="vgg"), UnknownNameError,
         ("unknown model 'vgg'", "valid models: resnet20_cifar10, vgg_cifar10")),
    Case("unknown-model-evaluate", lambda tmp, _: (["evaluate", "--model", "alexnet", "--data", tmp],
                                                   lambda: minicnn.load("alexnet")),
         UnknownNameError, ("unknown model 'alexnet'", "valid models: resnet20_cifar10, vgg_cifar10")),
    Case("unknown-layer", _cli_and_api(["--layer", "features.99"], _api_gradcam("vgg_cifar10", layer="features.99")),
         UnknownNameError, ("unknown layer 'features.99'; did you mean 'features.9'?",
                            "valid layers: features, features.0, features.2", "(22 in all)")),
    Case("unknown-layer-resnet", _cli_and_api(["--layer", "layer4"], _api_gradcam("resnet20_cifar10", layer="layer4"),
                                              model="resnet20_cifar10"),
         UnknownNameError, ("unknown layer 'layer4'; did you mean 'layer3'?", "valid layers: conv1, bn1, relu")),
    Case("unknown-class", _cli_and_api(["--target", "kat"], lambda: class_index(minicnn.load("vgg_cifar10"), "kat")),
         UnknownNameError, ("unknown class 'kat'; did you mean 'cat'?", "valid classes: airplane, automobile")),
    Case("unknown-class-no-match", _cli_and_api(["--target", "zebra"], _api_gradcam("vgg_cifar10", target="zebra")),
         UnknownNameError, ("unknown class 'zebra'; valid classes: airplane, automobile, bird",)),
    Case("target-too-large", _cli_and_api(["--target", "10"], _api_gradcam("vgg_cifar10", target=10)), InputError,
         ("target class 10 is out of range; this model has classes 0..9",)),
    Case("target-negative", _cli_and_api(["--target", "-1"], _api_gradcam("vgg_cifar10", target=-1)), InputError,
         ("target class -1 is out of range; this model has classes 0..9",)),
    Case("gradcam-of-dense-layer", _cli_and_api(["--layer", "classifier.0"],
                                                _api_gradcam("vgg_cifar10", layer="classifier.0")),
         InputError, ("Grad-CAM needs a convolutional feature map (N, K, h, w) with spatial extent",
                      "layer 'classifier.0' outputs shape (256,)", "try 'features.19'")),
    Case("gradcam-of-pooled-layer", _cli_and_api(["--layer", "avgpool"],
                                                 _api_gradcam("resnet20_cifar10", layer="avgpool"),
                                                 model="resnet20_cifar10"),
         InputError, ("layer 'avgpool' outputs shape (64, 1, 1)", "try 'layer3'")),
    Case("cam-without-global-pooling", _cli_and_api(["--method", "cam"], _api_cam), InputError,
         ("CAM needs a network that ends in global average pooling", "use Grad-CAM")),
]


@pytest.mark.parametrize("case", params(MODEL_REFUSALS))
def test_model_layer_and_target_refused(case, tmp_path, monkeypatch, capsys):
    check_refusal(case, tmp_path, monkeypatch, capsys)


# ================================================================ weights files

def weights_file(build: Callable[[Path], Path]):
    def make(tmp, _):
        path = build(tmp)
        return ["layers", "--model", path], lambda: minicnn.load(path)
    return make


def _good(tmp):
    return weights.save(tiny_model(), tmp / "good.npz")


def _truncated(tmp):
    data = _good(tmp).read_bytes()
    path = tmp / "cut.npz"
    path.write_bytes(data[: len(data) * 2 // 3])
    return path


def _empty(tmp):
    (tmp / "empty.npz").write_bytes(b"")
    return tmp / "empty.npz"


def _png_as_weights(tmp):
    (tmp / "photo.npz").write_bytes(_PNG)
    return tmp / "photo.npz"


def _misfit(tmp):
    model = tiny_model()
    arrays = model.state_dict()
    arrays["conv.weight"] = np.zeros((2, 3, 5, 5), np.float32)  # first layer: 5x5 kernels where 3x3 are built
    arrays["fc.weight"] = np.zeros((3, 4), np.float32)
    return write_npz(tmp / "misfit.npz", __meta__=meta_array(model), **arrays)


def _object_array(tmp):
    model = tiny_model()
    arrays = {**model.state_dict(), "bn.running_mean": np.array([Payload(tmp / "pwned"), 1], dtype=object)}
    return write_npz(tmp / "evil.npz", __meta__=meta_array(model), **arrays)


def _raw_pickle(tmp):
    (tmp / "evil.pkl").write_bytes(pickle.dumps({"conv.weight": Payload(tmp / "pwned")}, protocol=2))
    return tmp / "evil.pkl"


def _no_meta(tmp):
    return write_npz(tmp / "bare.npz", **tiny_model().state_dict())


def _shipped_tampered(tmp, monkeypatch):
    folder = tmp / "shipped"
    folder.mkdir()
    shutil.copy(SHIPPED / "manifest.json", folder)
    data = bytearray((SHIPPED / "resnet20_cifar10.npz").read_bytes())
    data[len(data) // 2] ^= 0x04
    (folder / "resnet20_cifar10.npz").write_bytes(bytes(data))
    monkeypatch.setenv("MINICNN_WEIGHTS_DIR", str(folder))
    return ["layers", "--model", "resnet20_cifar10"], lambda: minicnn.load("resnet20_cifar10")


def _shipped_missing(tmp, monkeypatch):
    folder = tmp / "shipped"
    folder.mkdir()
    shutil.copy(SHIPPED / "manifest.json", folder)
    monkeypatch.setenv("MINICNN_WEIGHTS_DIR", str(folder))
    return ["explain", CAT, "--model", "vgg_cifar10", "--out", tmp / "o.png"], lambda: minicnn.load("vgg_cifar10")


_EXPECTED_SHA = weights.read_manifest(SHIPPED)["models"]["resnet20_cifar10"]["sha256"]


def _vgg_state() -> dict:
    with np.load(FIXTURES / "vgg11_small.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k != "__meta__"}


def _convert(ckpt_of: Callable[[Path], Path], arch: str):
    def make(tmp, _):
        ckpt = ckpt_of(tmp)
        return (["convert", ckpt, "--arch", arch, "--out", tmp / "out.npz"],
                lambda: convert.convert_checkpoint(ckpt, arch))
    return make


def _unsupported_arch(tmp, _):
    return (["convert", FIXTURES / "vgg11_small.pth", "--arch", "resnet50", "--out", tmp / "out.npz"],
            lambda: convert.convert_state_dict(_vgg_state(), "resnet50"))


def _other_arch(tmp, _):
    return (["convert", FIXTURES / "vgg11_small.pth", "--arch", "resnet20", "--out", tmp / "out.npz"],
            lambda: convert.convert_state_dict(_vgg_state(), "resnet20"))


def _torch_payload(tmp):
    import torch
    torch.save({"features.0.weight": torch.zeros(2), "hook": Payload(tmp / "pwned")}, tmp / "evil.pth")
    return tmp / "evil.pth"


def _cut_checkpoint(tmp):
    data = (FIXTURES / "vgg11_small.pth").read_bytes()
    (tmp / "cut.pth").write_bytes(data[: len(data) // 2])
    return tmp / "cut.pth"


def _wrong_digest(tmp, _):
    out = tmp / "vgg11.npz"
    return (["fetch", "vgg11", "--checkpoint", FIXTURES / "vgg11_small.pth", "--out", out],
            lambda: fetch.fetch("vgg11", checkpoint=FIXTURES / "vgg11_small.pth", out=out))


WEIGHTS_REFUSALS = [
    Case("truncated", weights_file(_truncated), WeightsError, ("cut.npz", "it may be truncated")),
    Case("empty", weights_file(_empty), WeightsError, ("empty.npz is empty (0 bytes), not a weights file",)),
    Case("not-a-weights-file", weights_file(_png_as_weights), WeightsError,
         ("photo.npz is not a minicnn weights file: expected an .npz", "starting b'\\x89PNG")),
    Case("sha256-mismatch", _shipped_tampered, ChecksumError,
         ("resnet20_cifar10.npz has sha256", f"the manifest records {_EXPECTED_SHA}",
          "the file is damaged or was modified")),
    Case("shipped-file-missing", _shipped_missing, WeightsError,
         ("vgg_cifar10.npz is missing; reinstall minicnn",)),
    Case("arrays-do-not-fit", weights_file(_misfit), WeightsError,
         ("layer 'conv' (Conv2d) does not fit: weight has shape (2, 3, 5, 5) in the file, "
          "the architecture needs (2, 3, 3, 3)",)),
    Case("pickled-object-array", weights_file(_object_array), WeightsError,
         ("array 'bn.running_mean' holds pickled Python objects; refused (minicnn never unpickles)",)),
    Case("pickle-file", weights_file(_raw_pickle), WeightsError,
         ("evil.pkl holds pickled Python objects", "minicnn never unpickles", "minicnn convert")),
    Case("no-metadata", weights_file(_no_meta), WeightsError, ("bare.npz has no __meta__ entry",)),
    Case("convert-unsupported-arch", _unsupported_arch, UnknownNameError,
         ("unknown architecture 'resnet50'", "valid architectures: resnet20, vgg11, vgg11_bn")),
    Case("convert-checkpoint-of-another-arch", _other_arch, WeightsError,
         ("the checkpoint's 'features.0.weight' has no place in resnet20", "is it a resnet20 checkpoint?",
          "supported architectures: resnet20, vgg11")),
    Case("convert-pickled-payload", _convert(_torch_payload, "vgg11"), WeightsError,
         ("evil.pth holds more than tensors", "refused, never run", "save model.state_dict()")),
    Case("convert-truncated-checkpoint", _convert(_cut_checkpoint, "vgg11"), WeightsError,
         ("cut.pth: it is truncated or corrupt",)),
    Case("convert-minicnn-file", _convert(_good, "vgg11"), WeightsError,
         ("good.npz is already a minicnn weights file",)),
    Case("convert-not-a-checkpoint", _convert(_png_as_weights, "vgg11"), WeightsError,
         ("cannot read", "photo.npz as a PyTorch checkpoint", "starts b'\\x89PNG")),
    Case("fetch-wrong-digest", _wrong_digest, ChecksumError,
         ("vgg11_small.pth has sha256", "expected one starting with 8a719046", "not the official file")),
]
_TORCH_ROWS = {"convert-checkpoint-of-another-arch", "convert-pickled-payload", "convert-truncated-checkpoint",
               "convert-minicnn-file", "convert-not-a-checkpoint"}


@pytest.mark.parametrize("case", params(WEIGHTS_REFUSALS, {k: needs_torch for k in _TORCH_ROWS}))
def test_weights_files_refused(case, tmp_path, monkeypatch, capsys):
    check_refusal(case, tmp_path, monkeypatch, capsys)
    assert not list(tmp_path.rglob("pwned"))  # the pickled payloads were never run


# ================================================================ writing

def _unwritable(monkeypatch, folder: Path):
    """As root every folder is writable; make os.access say no for this one folder."""
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == folder else real(p, mode, **kw))


def _explain_out(where: Callable[[Path], Path], flag="--out", unwritable=False):
    def make(tmp, monkeypatch):
        target = where(tmp)
        if unwritable:
            _unwritable(monkeypatch, target.parent)
        argv = ["explain", CAT, "--model", "vgg_cifar10", "--method", "saliency"]
        if flag == "--out":
            argv += [flag, target]
        else:  # the figure goes to a folder of its own, which is fine
            (tmp / "figures").mkdir()
            argv += ["--out", tmp / "figures" / "fig.png", flag, target]
        if flag == "--out":
            from matplotlib.figure import Figure
            from minicnn.figures import save_png
            return argv, lambda: save_png(Figure(), target)
        return argv, lambda: explain_cli.save_maps(target, {"logits": np.zeros(3)})
    return make


def _regular_file(tmp):
    (tmp / "results").write_text("a file, not a folder")
    return tmp / "results"


def _existing(name, content=b"keep me"):
    def where(tmp):
        (tmp / name).write_bytes(content)
        return tmp / name
    return where


def _convert_exists(tmp, _):
    out = _existing("model.npz")(tmp)
    return (["convert", FIXTURES / "vgg11_small.pth", "--arch", "vgg11", "--out", out],
            lambda: weights.save(tiny_model(), out))


def _convert_under_file(tmp, _):
    out = _regular_file(tmp) / "model.npz"
    return (["convert", FIXTURES / "vgg11_small.pth", "--arch", "vgg11", "--out", out],
            lambda: weights.save(tiny_model(), out))


def _fetch_exists(tmp, _):
    out = _existing("vgg16.npz")(tmp)
    return ["fetch", "vgg16", "--out", out], lambda: fetch.fetch("vgg16", out=out)


def _fetch_missing_folder(tmp, _):
    out = tmp / "downloads" / "vgg16.npz"
    return ["fetch", "vgg16", "--out", out], lambda: fetch.fetch("vgg16", out=out)


def _demo_into_file(tmp, _):
    path = _regular_file(tmp)
    return ["demo", "--out-dir", path], lambda: demo.run_demo(path)


def _demo_under_file(tmp, _):
    path = _regular_file(tmp) / "figures"
    return ["demo", "--out-dir", path], lambda: demo.run_demo(path)


def _demo_unwritable(tmp, monkeypatch):
    (tmp / "figures").mkdir()
    _unwritable(monkeypatch, tmp / "figures")
    return ["demo", "--out-dir", tmp / "figures"], lambda: demo.run_demo(tmp / "figures")


def _bench_json_missing_folder(tmp, monkeypatch):
    import argparse
    from minicnn import bench
    for name in bench.SLOW_BLAS_VARIABLES:  # else bench re-executes itself without them
        monkeypatch.delenv(name, raising=False)
    out = tmp / "results" / "bench.json"
    return (["bench", "--quick", "--json", out],
            lambda: bench.bench_command(argparse.Namespace(json=str(out), quick=True)))


WRITING_REFUSALS = [
    Case("out-folder-missing", _explain_out(lambda t: t / "figs" / "cat.png"), OutputError,
         ("cannot write", "figs/cat.png: the folder", "figs does not exist; create it first")),
    Case("out-under-a-file", _explain_out(lambda t: _regular_file(t) / "cat.png"), OutputError,
         ("results is a file, not a folder; choose another path",)),
    Case("out-folder-not-writable", _explain_out(lambda t: t / "cat.png", unwritable=True), OutputError,
         ("is not writable; choose another folder",)),
    Case("out-is-a-folder", _explain_out(lambda t: t), OutputError, ("it is a folder; give a file name",)),
    Case("save-folder-missing", _explain_out(lambda t: t / "maps" / "cat.npz", flag="--save"), OutputError,
         ("maps/cat.npz: the folder", "does not exist")),
    Case("save-folder-not-writable", _explain_out(lambda t: t / "cat.npz", flag="--save", unwritable=True),
         OutputError, ("is not writable",)),
    Case("convert-would-overwrite", _convert_exists, OutputError,
         ("model.npz already exists; pass --force (force=True) to overwrite it",)),
    Case("convert-out-under-a-file", _convert_under_file, OutputError, ("results is a file, not a folder",)),
    Case("fetch-would-overwrite", _fetch_exists, OutputError, ("vgg16.npz already exists; pass --force",)),
    Case("fetch-folder-missing", _fetch_missing_folder, OutputError, ("downloads does not exist",)),
    Case("demo-into-a-file", _demo_into_file, OutputError, ("it is a file, not a folder; choose another --out-dir",)),
    Case("demo-under-a-file", _demo_under_file, OutputError, ("cannot create the folder",)),
    Case("demo-folder-not-writable", _demo_unwritable, OutputError, ("figures is not writable",)),
    Case("bench-json-folder-missing", _bench_json_missing_folder, OutputError,
         ("bench.json: the folder", "results does not exist")),
]


@pytest.mark.parametrize("case", params(WRITING_REFUSALS))
def test_writing_refused(case, tmp_path, monkeypatch, capsys):
    check_refusal(case, tmp_path, monkeypatch, capsys)


class ReplaceSpy:
    """Records every os.replace(temporary, final) and checks the temporary file sits beside the final one."""

    def __init__(self, monkeypatch):
        self.renamed: list[Path] = []
        real = os.replace

        def spy(src, dst, **kw):
            src, dst = Path(src), Path(dst)
            assert src.parent == dst.parent and src.name.startswith(f".{dst.name}.") and src.name.endswith(".tmp")
            assert src.stat().st_size > 0
            self.renamed.append(dst)
            return real(src, dst, **kw)

        monkeypatch.setattr(os, "replace", spy)


def no_temporary_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def test_explain_figure_and_maps_are_written_then_renamed(tmp_path, monkeypatch, capsys):
    spy = ReplaceSpy(monkeypatch)
    fig, maps = tmp_path / "cat.png", tmp_path / "cat.npz"
    assert cli.main(["explain", str(CAT), "--method", "saliency", "--out", str(fig), "--save", str(maps)]) == 0
    assert spy.renamed == [fig, maps] and no_temporary_files(tmp_path)


def test_weights_save_is_written_then_renamed(tmp_path, monkeypatch):
    spy = ReplaceSpy(monkeypatch)
    path = weights.save(tiny_model(), tmp_path / "tiny.npz")
    assert spy.renamed == [path] and no_temporary_files(tmp_path)


def test_demo_pngs_are_written_then_renamed(tmp_path, monkeypatch, capsys):
    from matplotlib.figure import Figure
    monkeypatch.setattr(demo, "load_models", lambda: (None, None))  # the figures' content is tested elsewhere
    monkeypatch.setattr(demo, "figure1", lambda vgg, resnet: (Figure(figsize=(1, 1)), []))
    monkeypatch.setattr(demo, "samples_figure", lambda vgg, resnet: Figure(figsize=(1, 1)))
    monkeypatch.setattr(demo, "cam_gallery", lambda resnet: Figure(figsize=(1, 1)))
    spy = ReplaceSpy(monkeypatch)
    assert cli.main(["demo", "--out-dir", str(tmp_path / "d")]) == 0
    assert spy.renamed == [tmp_path / "d" / name for name in demo.FILES] and no_temporary_files(tmp_path)


@needs_torch
def test_convert_is_written_then_renamed_and_overwrites_only_with_force(tmp_path, monkeypatch, capsys):
    spy = ReplaceSpy(monkeypatch)
    out = tmp_path / "small.npz"
    argv = ["convert", str(FIXTURES / "vgg11_small.pth"), "--arch", "vgg11", "--out", str(out)]
    assert cli.main(argv) == 0 and spy.renamed == [out]
    first = out.read_bytes()
    assert cli.main(argv) == 2 and "already exists; pass --force" in capsys.readouterr().err
    assert cli.main(argv + ["--force", "--name", "again"]) == 0 and spy.renamed == [out, out]
    assert out.read_bytes() != first and minicnn.load(out).name == "again" and no_temporary_files(tmp_path)


class FakeResponse(io.BytesIO):
    """What urlopen returns, serving ``data`` (no network in tests)."""

    def __init__(self, data: bytes):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}


@needs_torch
def test_fetch_is_written_then_renamed_and_overwrites_only_with_force(tmp_path, monkeypatch, capsys):
    data = (FIXTURES / "vgg11_small.pth").read_bytes()
    import hashlib
    name = f"vgg11_small-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    monkeypatch.setitem(fetch.CHECKPOINTS, "vgg11_small", (name, "vgg11"))
    monkeypatch.setattr(fetch.urllib.request, "urlopen", lambda request, timeout: FakeResponse(data))
    spy = ReplaceSpy(monkeypatch)
    out = tmp_path / "v.npz"
    argv = ["fetch", "vgg11_small", "--out", str(out)]
    assert cli.main(argv) == 0
    assert spy.renamed == [tmp_path / name, out] and (tmp_path / name).read_bytes() == data
    assert cli.main(argv) == 2 and "v.npz already exists; pass --force" in capsys.readouterr().err
    assert cli.main(argv + ["--force"]) == 0 and spy.renamed[2:] == [tmp_path / name, out]
    assert no_temporary_files(tmp_path)


# ================================================================ the real command

def test_the_installed_command_exits_2_with_one_line():
    """``python -m minicnn.cli``, as a user runs it: status 2, one stderr line, nothing on stdout."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("MINICNN_WEIGHTS_DIR", None)
    done = subprocess.run([sys.executable, "-m", "minicnn.cli", "layers", "--model", "resnet21_cifar10"],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == ("minicnn: error: unknown model 'resnet21_cifar10'; did you mean 'resnet20_cifar10'? "
                           "valid models: resnet20_cifar10, vgg_cifar10\n")


def test_argument_mistakes_are_one_line_too(capsys):
    assert cli.main(["explain", str(CAT), "--top", "many"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("minicnn: error: argument --top: invalid int value: 'many'")
    assert err.endswith("see `minicnn explain --help`\n")


def test_an_unknown_method_is_one_line_with_a_suggestion(capsys, tmp_path):
    assert cli.main(["explain", str(CAT), "--method", "gradcan", "--out", str(tmp_path / "f.png")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("minicnn: error: unknown method 'gradcan'; did you mean 'gradcam'? valid methods: gradcam,")
    assert not (tmp_path / "f.png").exists()

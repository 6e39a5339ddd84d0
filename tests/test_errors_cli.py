"""Bad input, end to end: one line on stderr, exit status 2, the API's own exception, nothing written.

One table per category: images, arrays, model/layer/target, weights files, writing. A row builds
its input in ``tmp_path`` and names the command line and the API call that must both refuse it,
the exception class (a MinicnnError subclass) and words the message must contain: what was
wrong, and what would be right. The command line is run in-process (``cli.main``); one test runs
the real ``python -m minicnn.commands.cli`` in a subprocess.

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
from minicnn.commands import cli
from minicnn.models.convert import pytorch as convert
from minicnn.figures import demo
from minicnn import explain
from minicnn.models import fetch, weights
from minicnn.commands import explain as explain_cli
from minicnn.errors import (ChecksumError, ImageError, InputError, MinicnnError, OutputError, UnknownNameError,
                            WeightsError)
from minicnn.explain.target import class_index
from minicnn.inputs.images import ImageWarning, load_image, preprocess, sample_images
from minicnn.layers import AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Flatten, Linear, ReLU, Sequential
from minicnn.model import Model

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
SHIPPED = REPO / "weights"

needs_torch = pytest.mark.torch   # skipped without torch (tests/conftest.py), run by CI's torch step


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
    assert "\n" not in text and text.replace("force=True", "--force") in err
    assert "--force" not in text and "force=True" not in err       # the API speaks of force=True, the CLI of --force
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
    from minicnn.inputs.datasets import open_dataset
    for cls in ("cat", "dog"):
        (tmp / "pets" / "test" / cls).mkdir(parents=True)
        (tmp / "pets" / "test" / cls / "0.png").write_bytes(png_bytes(Image.new("RGB", (32, 32), (9, 9, 9))))
    (tmp / "pets" / "test" / "dog" / "1.png").write_bytes(_PNG[: len(_PNG) // 2])  # cut short
    return (["evaluate", "--model", "resnet20_cifar10", "--data", tmp / "pets"],
            lambda: list(open_dataset(tmp / "pets", "test").batches(200)))


def with_xmp(png: bytes, compressed_bytes: int = 2_000_000) -> bytes:
    """``png`` with an iTXt chunk after IHDR holding about ``compressed_bytes`` of zlib-compressed XMP text."""
    text = np.random.default_rng(5).bytes(compressed_bytes).hex().encode()  # hex: compresses to about half
    data = b"XML:com.adobe.xmp\0" + b"\x01\x00" + b"\0" + b"\0" + zlib.compress(text, 1)
    chunk = struct.pack(">I", len(data)) + b"iTXt" + data + struct.pack(">I", zlib.crc32(b"iTXt" + data))
    end_of_ihdr = 8 + 4 + 4 + 13 + 4
    return png[:end_of_ihdr] + chunk + png[end_of_ihdr:]


def _non_regular(path):
    def make(tmp, _):
        return explain_argv(path, tmp), lambda: load_image(path)
    return make


def _fifo(tmp, _):
    os.mkfifo(tmp / "pipe.png")  # reading it would wait for a writer forever
    return explain_argv(tmp / "pipe.png", tmp), lambda: load_image(tmp / "pipe.png")


def _strip(width, height):
    """A 1x10000 image: resnet20_cifar10 resizes its shorter side to 32, so it would enter as 32x320000."""
    def make(tmp, _):
        path = tmp / "strip.png"
        path.write_bytes(png_bytes(Image.new("RGB", (width, height), (9, 9, 9))))

        def api():
            return preprocess(load_image(path), minicnn.load("resnet20_cifar10").meta["preprocessing"])
        return explain_argv(path, tmp, model="resnet20_cifar10"), api
    return make


def _over_max_pixels_flag(tmp, _):
    path = tmp / "small.png"
    path.write_bytes(png_bytes(Image.new("RGB", (20, 10), (9, 9, 9))))
    return explain_argv(path, tmp, "--max-pixels", 100), lambda: load_image(path, max_pixels=100)


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
         ("bomb.png is 9000 wide x 9000 high = 81000000 pixels, over the limit of 64000000 pixels", "decompression bomb",
          "max_pixels", "minicnn explain --max-pixels N")),
    Case("bomb-carrying-large-xmp", image_file("bomb.png", with_xmp(png_claiming(9000, 9000))), ImageError,
         ("bomb.png is 9000 wide x 9000 high = 81000000 pixels, over the limit of 64000000 pixels",)),
    Case("over-the-max-pixels-flag", _over_max_pixels_flag, ImageError,
         ("small.png is 20 wide x 10 high = 200 pixels, over the limit of 100 pixels",)),
    Case("dev-zero", _non_regular("/dev/zero"), ImageError,
         ("/dev/zero is not a regular file (a device, pipe or socket); save the image to a file first",)),
    Case("fifo", _fifo, ImageError, ("pipe.png is not a regular file",)),
    Case("network-input-too-wide", _strip(10000, 1), InputError,
         ("the image (10000 wide x 1 high) would enter the network as 320000 wide x 32 high = 10240000 pixels "
          "(its shorter side resized to 32), over the limit of 262144", "--max-input-pixels N")),
    Case("network-input-too-tall", _strip(1, 10000), InputError,
         ("the image (1 wide x 10000 high) would enter the network as 32 wide x 320000 high = 10240000 pixels",)),
    Case("bomb-over-pillow-limit", image_file("huge.png", png_claiming(30000, 30000)), ImageError,
         ("huge.png is 30000 wide x 30000 high = 900000000 pixels, over the limit of 64000000 pixels",)),
]


@pytest.mark.parametrize("case", params(IMAGE_REFUSALS))
def test_images_refused(case, tmp_path, monkeypatch, capsys):
    check_refusal(case, tmp_path, monkeypatch, capsys)


def test_png_with_megabytes_of_xmp_is_read_not_refused(tmp_path, capsys):
    """2 MB of compressed XMP in an iTXt chunk: Pillow alone calls it corrupt (MAX_TEXT_CHUNK); it is not pixels."""
    path = tmp_path / "xmp.png"
    path.write_bytes(with_xmp(_PNG))
    assert path.stat().st_size > 2_000_000
    assert np.array_equal(load_image(path), load_image(_write(tmp_path / "plain.png", _PNG)))
    assert cli.main(["explain", str(path), "--model", "resnet20_cifar10", "--out", str(tmp_path / "x.png")]) == 0
    assert "image: 30 wide x 20 high" in capsys.readouterr().out


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_image_files_over_the_byte_limit_are_refused_before_reading(tmp_path):
    path = _write(tmp_path / "a.png", _PNG)
    assert load_image(path, max_bytes=len(_PNG)).shape == (20, 30, 3)
    with pytest.raises(ImageError, match=rf"a.png is larger than the limit of {len(_PNG) - 1} bytes"):
        load_image(path, max_bytes=len(_PNG) - 1)


def test_the_network_input_limit_can_be_raised(resnet):
    strip = np.zeros((1, 1000, 3), np.uint8)  # 32x32000 = 1024000 pixels after the resize
    with pytest.raises(InputError, match="over the limit of 262144"):
        preprocess(strip, resnet.meta["preprocessing"])
    assert preprocess(strip, resnet.meta["preprocessing"], max_input_pixels=1_100_000).shape == (1, 3, 32, 32000)
    crop = {"mean": [0.5] * 3, "std": [0.5] * 3, "resize": "shorter_then_center_crop", "size": [224, 224],
            "resize_shorter": 256}  # the resize before the crop is bounded too
    with pytest.raises(InputError, match="would be resized to 2560000 wide x 256 high = 655360000 pixels before its centre crop"):
        preprocess(np.zeros((1, 10000, 3), np.uint8), crop)


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
    assert f"image: {shape[1]} wide x {shape[0]} high" in out and (tmp_path / "out.png").is_file()
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


# ---------------------------------------------------------------- the API used out of order or with odd values

def test_backward_after_a_forward_that_raised_asks_for_a_forward(vgg):
    fresh = minicnn.load("vgg_cifar10")
    with pytest.raises(InputError) as never:
        fresh.backward(np.eye(10)[:1])
    vgg.forward(_x((1, 3, 32, 32)))
    with pytest.raises(InputError):
        vgg.forward(_x((1, 3, 64, 64)))                # the dense head refuses 64x64, half way through the pass
    with pytest.raises(InputError) as after:
        vgg.backward(np.eye(10)[:1])
    assert str(after.value) == str(never.value) == "call model.forward(x) before model.backward(dlogits)"


@pytest.mark.parametrize("value, words", [
    ("x", "replace['layer3'] must be a floating-point array (the output that layer 'layer3' should have); got a str"),
    (None, "got a NoneType"),
    (np.zeros((1, 64, 8, 8), np.int64), "got a dtype int64 array"),
    (np.full((1, 64, 8, 8), np.nan, np.float32), "replace['layer3'] contains NaN or infinity"),
])
def test_forward_replace_must_be_a_float_array(value, words, resnet):
    with pytest.raises(InputError) as e:
        resnet.forward(_x((1, 3, 32, 32)), replace={"layer3": value})
    assert words in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(InputError, match="replace must be a dict"):
        resnet.forward(_x((1, 3, 32, 32)), replace=[("layer3", value)])


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_backward_refuses_a_seed_that_is_not_finite(value, resnet):
    resnet.forward(_x((2, 3, 32, 32)))
    seed = np.zeros((2, 10))
    seed[1, 4] = value
    with pytest.raises(InputError) as e:
        resnet.backward(seed)
    assert str(e.value) == ("dlogits contains NaN or infinity (first at index (1, 4)); the seed must be finite, "
                            "e.g. the one-hot e_c")
    with pytest.raises(InputError, match="dlogits must be real numbers"):
        resnet.backward(np.full((2, 10), "1"))
    assert resnet.backward(np.eye(10)[[3, 5]]).shape == (2, 3, 32, 32)  # the pass is still there


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
                            "valid models: mobilenet_v2, resnet20_cifar10, vgg_cifar10")),
    Case("unknown-model-explain", _cli_and_api([], lambda: minicnn.load("vgg"), model="vgg"), UnknownNameError,
         ("unknown model 'vgg'", "valid models: mobilenet_v2, resnet20_cifar10, vgg_cifar10")),
    Case("unknown-model-evaluate", lambda tmp, _: (["evaluate", "--model", "alexnet", "--data", tmp],
                                                   lambda: minicnn.load("alexnet")),
         UnknownNameError, ("unknown model 'alexnet'", "valid models: mobilenet_v2, resnet20_cifar10, vgg_cifar10")),
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


def _convert_a_folder(tmp, _):
    (tmp / "checkpoints").mkdir()
    return (["convert", tmp / "checkpoints", "--arch", "vgg11", "--out", tmp / "out.npz"],
            lambda: convert.convert_checkpoint(tmp / "checkpoints", "vgg11"))


def _fetch_a_folder(tmp, _):
    (tmp / "checkpoints").mkdir()
    out = tmp / "vgg11.npz"
    return (["fetch", "vgg11", "--checkpoint", tmp / "checkpoints", "--out", out],
            lambda: fetch.fetch("vgg11", checkpoint=tmp / "checkpoints", out=out))


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
    Case("a-device", lambda tmp, _: (["layers", "--model", "/dev/null"], lambda: minicnn.load("/dev/null")),
         WeightsError, ("/dev/null is not a regular file (a device, pipe or socket), not a weights file",)),
    Case("a-folder", weights_file(lambda tmp: tmp), WeightsError, ("is a folder, not a weights file",)),
    Case("convert-a-folder", _convert_a_folder, WeightsError,
         ("checkpoints is a folder, not a checkpoint file; give the .pth file inside it",)),
    Case("fetch-checkpoint-is-a-folder", _fetch_a_folder, InputError,
         ("checkpoints is a folder, not a checkpoint file",)),
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
    from minicnn.bench import machine
    from minicnn.commands import bench as bench_command
    for name in machine.SLOW_BLAS_VARIABLES:  # else bench re-executes itself without them
        monkeypatch.delenv(name, raising=False)
    out = tmp / "results" / "bench.json"
    return (["bench", "--quick", "--json", out],
            lambda: bench_command.run(argparse.Namespace(json=str(out), quick=True)))


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
         ("model.npz already exists; pass --force to overwrite it",)),
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


# ================================================================ one file, one role
# An output is never an input (the image, the weights, a checkpoint) nor another output, whatever
# the spelling (symbolic link, hard link), not even with --force; an existing file is replaced
# only with --force, by every command; a file's extension says what it holds.

def _users_files(tmp):
    """The user's photo and weights file (the model is never loaded: every refusal comes first)."""
    photo = tmp / "photo.jpg"
    photo.write_bytes(CAT.read_bytes())
    return photo, weights.save(tiny_model(), tmp / "my.npz")


def _symlink(link: Path, target: Path) -> Path:
    link.symlink_to(target)
    return link


def _hardlink(link: Path, target: Path) -> Path:
    os.link(target, link)
    return link


def _via_subfolder(tmp: Path, name: str) -> Path:
    (tmp / "sub").mkdir()
    return tmp / "sub" / ".." / name


def _explain_files(out=None, save=None, force=False):
    """explain photo.jpg --model my.npz --out OUT [--save SAVE] [--force]; ``out(tmp, photo, weights)`` names OUT."""
    def make(tmp, _):
        photo, mine = _users_files(tmp)
        o = out(tmp, photo, mine) if out else tmp / "fig.png"
        s = save(tmp, photo, mine) if save else None
        argv = ["explain", photo, "--model", mine, "--method", "saliency", "--out", o]
        argv += (["--save", s] if s is not None else []) + (["--force"] if force else [])
        return argv, lambda: explain_cli.declare_outputs(photo, mine, o, s, method="saliency", force=force)
    return make


def _shipped_weights_as_out(tmp, monkeypatch):
    folder = tmp / "shipped"
    folder.mkdir()
    for name in ("manifest.json", "vgg_cifar10.npz"):
        shutil.copy(SHIPPED / name, folder)
    monkeypatch.setenv("MINICNN_WEIGHTS_DIR", str(folder))
    out = folder / "vgg_cifar10.npz"
    return (["explain", CAT, "--model", "vgg_cifar10", "--out", out, "--force"],
            lambda: explain_cli.declare_outputs(CAT, "vgg_cifar10", out, force=True))


def _demo_exists(tmp, _):
    (tmp / "d").mkdir()
    (tmp / "d" / demo.FILES[0]).write_bytes(b"keep me")
    return ["demo", "--out-dir", tmp / "d"], lambda: demo.run_demo(tmp / "d")


def _bench_json_exists(tmp, monkeypatch):
    import argparse
    from minicnn.bench import machine
    from minicnn.commands import bench as bench_command
    for name in machine.SLOW_BLAS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    out = _existing("bench.json")(tmp)
    return (["bench", "--quick", "--json", out],
            lambda: bench_command.run(argparse.Namespace(json=str(out), quick=True)))


def _convert_over_its_checkpoint(tmp, _):
    import argparse
    ckpt = tmp / "small.pth"
    shutil.copy(FIXTURES / "vgg11_small.pth", ckpt)
    args = argparse.Namespace(checkpoint=str(ckpt), arch="vgg11", out=str(ckpt), force=True, meta=None, name=None,
                              fold_bn=False)
    from minicnn.commands import convert as convert_command
    return ["convert", ckpt, "--arch", "vgg11", "--out", ckpt, "--force"], lambda: convert_command.run(args)


def _fetch_over_its_checkpoint(tmp, _):
    ckpt = tmp / "vgg11.pth"
    shutil.copy(FIXTURES / "vgg11_small.pth", ckpt)
    link = _symlink(tmp / "vgg11.npz", ckpt)
    return (["fetch", "vgg11", "--checkpoint", ckpt, "--out", link, "--force"],
            lambda: fetch.fetch("vgg11", checkpoint=ckpt, out=link, force=True))


_INPUT = "an output never replaces an input, not even with --force: choose another name"
_FIGURE_NAMES = "name it .png, .jpg, .jpeg, .pdf or .svg"

ROLE_REFUSALS = [
    Case("out-is-the-image", _explain_files(out=lambda t, photo, w: photo), OutputError,
         ("--out", "photo.jpg is the same file as IMAGE", _INPUT)),
    Case("out-is-the-image-with-force", _explain_files(out=lambda t, photo, w: photo, force=True), OutputError,
         ("photo.jpg is the same file as IMAGE", _INPUT)),
    Case("out-is-a-symlink-to-the-image",
         _explain_files(out=lambda t, photo, w: _symlink(t / "link.png", photo), force=True), OutputError,
         ("link.png is the same file as IMAGE", "through a link or another spelling of its path")),
    Case("out-is-a-hard-link-to-the-image",
         _explain_files(out=lambda t, photo, w: _hardlink(t / "copy.png", photo), force=True), OutputError,
         ("copy.png is the same file as IMAGE", _INPUT)),
    Case("out-spells-the-image-another-way", _explain_files(out=lambda t, photo, w: _via_subfolder(t, photo.name)),
         OutputError, ("sub/../photo.jpg is the same file as IMAGE",)),
    Case("save-is-the-image", _explain_files(save=lambda t, photo, w: photo), OutputError,
         ("--save", "photo.jpg is the same file as IMAGE", _INPUT)),
    Case("save-is-the-weights-file", _explain_files(save=lambda t, p, weights_file: weights_file, force=True),
         OutputError, ("--save", "my.npz is the same file as --model", _INPUT)),
    Case("out-is-a-symlink-to-the-weights-file",
         _explain_files(out=lambda t, p, w: _symlink(t / "fig.png", w), force=True), OutputError,
         ("fig.png is the same file as --model",)),
    Case("out-is-a-shipped-weights-file", _shipped_weights_as_out, OutputError,
         ("vgg_cifar10.npz is the same file as --model", _INPUT)),
    Case("out-and-save-are-one-file", _explain_files(out=lambda t, p, w: t / "same.png",
                                                     save=lambda t, p, w: t / "same.png"), OutputError,
         ("--save", "same.png and --out", "same.png are the same file; give each output its own name")),
    Case("save-is-a-symlink-to-out", _explain_files(out=lambda t, p, w: t / "fig.png",
                                                    save=lambda t, p, w: _symlink(t / "maps.npz", t / "fig.png")),
         OutputError, ("are the same file",)),
    Case("out-unknown-extension", _explain_files(out=lambda t, p, w: t / "fig.txt"), OutputError,
         ("--out", "fig.txt: '.txt' is not a format for a figure", _FIGURE_NAMES)),
    Case("out-no-extension", _explain_files(out=lambda t, p, w: t / "fig"), OutputError,
         ("fig: the name has no extension to say the format of a figure", _FIGURE_NAMES)),
    Case("out-bin", _explain_files(out=lambda t, p, w: t / "same.bin", save=lambda t, p, w: t / "same.bin"),
         OutputError, ("same.bin: '.bin' is not a format for a figure",)),
    Case("save-not-npz", _explain_files(save=lambda t, p, w: t / "maps.json"), OutputError,
         ("--save", "maps.json: '.json' is not a format for the raw maps (an .npz archive); name it .npz",)),
    Case("explain-would-overwrite", _explain_files(out=lambda t, p, w: _existing("fig.png")(t)), OutputError,
         ("fig.png already exists; pass --force to overwrite it",)),
    Case("explain-save-would-overwrite", _explain_files(save=lambda t, p, w: _existing("maps.npz")(t)), OutputError,
         ("maps.npz already exists; pass --force",)),
    Case("out-is-a-device", _explain_files(out=lambda t, p, w: Path("/dev/null"), force=True), OutputError,
         ("cannot write /dev/null: it is not a regular file (a device, pipe or socket)",)),
    Case("demo-would-overwrite", _demo_exists, OutputError,
         ("figure1_cat_dog.png already exists; pass --force",)),
    Case("bench-json-would-overwrite", _bench_json_exists, OutputError, ("bench.json already exists; pass --force",)),
    Case("convert-over-its-checkpoint", _convert_over_its_checkpoint, OutputError,
         ("--out", "small.pth is the same file as CHECKPOINT", _INPUT)),
    Case("fetch-over-its-checkpoint", _fetch_over_its_checkpoint, OutputError,
         ("vgg11.npz is the same file as --checkpoint",)),
]
if sys.platform.startswith("linux") and os.path.isdir("/proc/self"):
    ROLE_REFUSALS.append(Case("save-where-files-cannot-be-created",
                              _explain_files(save=lambda t, p, w: Path("/proc/maps.npz")), OutputError,
                              ("cannot write /proc/maps.npz",)))


@pytest.mark.parametrize("case", params(ROLE_REFUSALS))
def test_outputs_keep_to_their_role(case, tmp_path, monkeypatch, capsys):
    check_refusal(case, tmp_path, monkeypatch, capsys)


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """A weights file explain can run in milliseconds: 8x8 inputs, random weights, a preprocessing rule."""
    model = tiny_model()
    rng = np.random.default_rng(0)
    model.load_state_dict({k: rng.standard_normal(a.shape).astype(np.float32) + k.endswith("var")
                           for k, a in model.state_dict().items()})
    model.meta["preprocessing"] = {"mean": [0.5] * 3, "std": [0.25] * 3, "resize": "exact", "size": [8, 8]}
    return weights.save(model, tmp_path_factory.mktemp("tiny") / "tiny.npz")


def run_cli(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name, check", [
    ("fig.png", lambda data: Image.open(io.BytesIO(data)).format == "PNG"),
    ("fig.PNG", lambda data: Image.open(io.BytesIO(data)).format == "PNG"),
    ("fig.jpg", lambda data: Image.open(io.BytesIO(data)).format == "JPEG"),
    ("fig.jpeg", lambda data: Image.open(io.BytesIO(data)).format == "JPEG"),
    ("fig.pdf", lambda data: data.startswith(b"%PDF-")),
    ("fig.svg", lambda data: b"<svg" in data[:2000]),
])
def test_the_figure_is_in_the_format_its_name_says(name, check, tmp_path, capsys, tiny_weights):
    code, out, err = run_cli(capsys, "explain", CAT, "--model", tiny_weights, "--method", "saliency",
                             "--out", tmp_path / name)
    assert code == 0 and err == "", err
    assert f"figure: {tmp_path / name}" in out and check((tmp_path / name).read_bytes())
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_force_replaces_both_outputs_and_nothing_else(tmp_path, capsys, tiny_weights):
    fig, maps = _existing("fig.png")(tmp_path), _existing("maps.npz")(tmp_path)
    argv = ["explain", CAT, "--model", tiny_weights, "--method", "saliency", "--out", fig, "--save", maps]
    assert run_cli(capsys, *argv)[0] == 2 and fig.read_bytes() == maps.read_bytes() == b"keep me"
    assert run_cli(capsys, *argv, "--force")[0] == 0
    assert fig.read_bytes().startswith(b"\x89PNG") and maps.read_bytes().startswith(b"PK")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.png", "maps.npz"]


def test_demo_replaces_its_own_pngs_only_with_force(tmp_path, monkeypatch, capsys):
    from matplotlib.figure import Figure
    monkeypatch.setattr(demo, "load_models", lambda: (None, None))  # the figures' content is tested elsewhere
    monkeypatch.setattr(demo, "figure1", lambda vgg, resnet: (Figure(figsize=(1, 1)), []))
    monkeypatch.setattr(demo, "samples_figure", lambda vgg, resnet: Figure(figsize=(1, 1)))
    monkeypatch.setattr(demo, "cam_gallery", lambda resnet: Figure(figsize=(1, 1)))
    monkeypatch.setattr(demo, "imagenet_figures", lambda model: ((Figure(figsize=(1, 1)), []), (Figure(figsize=(1, 1)), [])))
    monkeypatch.setattr(demo, "attribution_gallery", lambda resnet: Figure(figsize=(1, 1)))
    out = tmp_path / "d" / "e"
    assert run_cli(capsys, "demo", "--out-dir", out)[0] == 0                        # creates its folder
    code, _, err = run_cli(capsys, "demo", "--out-dir", out)
    assert code == 2 and "figure1_cat_dog.png already exists; pass --force" in err
    assert run_cli(capsys, "demo", "--out-dir", out, "--force")[0] == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(demo.FILES)


def test_a_failed_demo_removes_the_folder_it_created(tmp_path, monkeypatch, capsys):
    from matplotlib.figure import Figure
    monkeypatch.setattr(demo, "load_models", lambda: (None, None))
    monkeypatch.setattr(demo, "figure1", lambda vgg, resnet: (Figure(figsize=(1, 1)), []))
    monkeypatch.setattr(demo, "samples_figure", lambda vgg, resnet: Figure(figsize=(1, 1)))
    monkeypatch.setattr(demo, "cam_gallery", lambda resnet: Figure(figsize=(1, 1)))
    monkeypatch.setattr(demo, "imagenet_figures", lambda model: ((Figure(figsize=(1, 1)), []), (Figure(figsize=(1, 1)), [])))
    monkeypatch.setattr(demo, "attribution_gallery", lambda resnet: Figure(figsize=(1, 1)))
    monkeypatch.setattr(Figure, "savefig", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space left")))
    code, _, err = run_cli(capsys, "demo", "--out-dir", tmp_path / "new" / "demo")
    assert code == 2 and "No space left" in err and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("method, note", [
    ("saliency", "--layer conv is ignored by saliency (none of the chosen methods works at a layer)"),
    ("occlusion,guided-backprop", "--layer conv is ignored by occlusion, guided-backprop (none of the chosen "
                                  "methods works at a layer)"),
    ("gradcam,saliency", "--layer conv is ignored by saliency"),
    ("all", "--layer conv is ignored by " + ", ".join(explain_cli.ignoring_layer("all"))),
    ("gradcam", None),
])
def test_layer_with_methods_that_have_none_is_a_note(method, note, tmp_path, capsys, tiny_weights):
    code, out, err = run_cli(capsys, "explain", CAT, "--model", tiny_weights, "--method", method, "--layer", "conv",
                             "--out", tmp_path / "f.png")
    assert code == 0, err
    assert err == (f"minicnn: note: {note}\n" if note else "")


def test_a_note_never_joins_an_error_line(tmp_path, capsys, tiny_weights):
    code, _, err = run_cli(capsys, "explain", CAT, "--model", tiny_weights, "--method", "saliency", "--layer", "conv",
                           "--target", "zebra", "--out", tmp_path / "f.png")
    assert code == 2 and err.count("\n") == 1 and err.startswith("minicnn: error: unknown class 'zebra'")


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
    monkeypatch.setattr(demo, "imagenet_figures", lambda model: ((Figure(figsize=(1, 1)), []), (Figure(figsize=(1, 1)), [])))
    monkeypatch.setattr(demo, "attribution_gallery", lambda resnet: Figure(figsize=(1, 1)))
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
    """``python -m minicnn.commands.cli``, as a user runs it: status 2, one stderr line, nothing on stdout."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("MINICNN_WEIGHTS_DIR", None)
    done = subprocess.run([sys.executable, "-m", "minicnn.commands.cli", "layers", "--model", "resnet21_cifar10"],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == ("minicnn: error: unknown model 'resnet21_cifar10'; did you mean 'resnet20_cifar10'? "
                           "valid models: mobilenet_v2, resnet20_cifar10, vgg_cifar10\n")


@pytest.mark.parametrize("argv", [["layers", "--model", "vgg_cifar10"],
                                  ["explain", str(CAT), "--model", "vgg_cifar10", "--top", "10"]],
                         ids=["layers", "explain"])
def test_a_reader_that_leaves_early_gets_no_traceback(tmp_path, argv):
    """``minicnn ... | head -1``: stdout's reader is gone before minicnn writes; SIGPIPE's status, no traceback."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "minicnn.commands.cli", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env)
    proc.stdout.close()
    try:
        err = proc.stderr.read()
        assert proc.wait(timeout=120) == 141
    finally:
        proc.kill()
        proc.stderr.close()
    assert "Traceback" not in err and "Exception ignored" not in err and "BrokenPipe" not in err, err


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

"""Hostile and damaged input, generated: the loaders raise only their own error, never run code, never half-write.

- Corrupt weights files (cut, bytes changed, chunks replaced, random metadata) and random bytes
  given to every loader (weights.load, images.load_image, datasets.open_dataset, the checkpoint
  reader of ``convert``) give either a result or the loader's own MinicnnError subclass, in one
  line: never IndexError, zlib.error, struct.error, ... from deep inside a parser.
- Pickled payloads that would create a file when unpickled leave no file, whichever loader gets them.
- A failure in the middle of a write (the disk fills, the rename fails, Ctrl-C) leaves the previous
  file as it was and no temporary file behind; a run with several outputs leaves all or none.
- Any combination of output paths (the input image, the weights file, links to them, folders,
  existing files, the other output) is either refused in one line with every file unchanged, or
  written as asked.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import io
import json
import os
import pathlib
import pickle
import shutil
import tarfile
import warnings
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import minicnn
from minicnn.commands import cli
from minicnn.commands import explain as explain_cli
from minicnn.errors import (
    ChecksumError,
    DownloadError,
    ImageError,
    MinicnnError,
    OutputError,
    UnknownNameError,
    WeightsError,
)
from minicnn.figures import demo
from minicnn.inputs.datasets import open_dataset
from minicnn.inputs.images import image_from_bytes, load_image
from minicnn.inputs.samples import sample_images
from minicnn.layers import MODULE_TYPES, AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Flatten, Linear, ReLU, Sequential
from minicnn.model import Model
from minicnn.models import fetch, weights
from minicnn.models.convert import pytorch as convert
from minicnn.util import atomic

try:
    import torch
except ImportError:
    torch = None
needs_torch = pytest.mark.torch   # skipped without torch (tests/conftest.py), run by CI's torch step

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures"
CAT = sample_images("cat")[0][0]
#: Enough examples to find the odd exception, few enough for two shared cores; "thorough" raises it.
MANY = max(120, settings.default.max_examples)


# ---------------------------------------------------------------- helpers

def tiny_model(seed: int = 0) -> Model:
    root = Sequential([("conv", Conv2d(3, 2, 3, padding=1)), ("bn", BatchNorm2d(2)), ("relu", ReLU()),
                       ("pool", AdaptiveAvgPool2d(1)), ("flat", Flatten()), ("fc", Linear(2, 3))])
    model = Model(root, {"name": "tiny", "classes": ["a", "b", "c"], "input_size": [3, 8, 8]})
    rng = np.random.default_rng(seed)
    model.load_state_dict({k: rng.standard_normal(a.shape).astype(np.float32) + (k.endswith("var") * 2.0)
                           for k, a in model.state_dict().items()})
    return model


def one_line(e: BaseException) -> str:
    text = str(e)
    assert text and "\n" not in text, text
    return text


@st.composite
def damaged(draw, good: bytes):
    """``good`` cut short, with bytes changed, with a chunk replaced, or replaced by random bytes."""
    kind = draw(st.sampled_from(["cut", "flip", "splice", "random"]))
    data = bytearray(good)
    if kind == "cut":
        return bytes(data[: draw(st.integers(0, len(data) - 1))])
    if kind == "flip":
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    if kind == "splice":
        start = draw(st.integers(0, len(data) - 1))
        data[start:start + draw(st.integers(1, 64))] = draw(st.binary(max_size=64))
        return bytes(data)
    return draw(st.binary(max_size=400))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("robust")


def _npz_bytes(compressed: bool) -> bytes:
    model = tiny_model()
    meta = weights.encode_meta({"format": weights.FORMAT, "version": weights.VERSION, **model.meta,
                                "spec": model.spec()})
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, __meta__=meta, **model.state_dict())
    return buf.getvalue()


GOOD_NPZ = {False: _npz_bytes(False), True: _npz_bytes(True)}


# ---------------------------------------------------------------- weights files

@settings(max_examples=MANY)
@given(st.data())
def test_damaged_weights_files_give_a_model_or_a_weights_error(scratch, data):
    compressed = data.draw(st.booleans())
    path = scratch / "damaged.npz"
    path.write_bytes(data.draw(damaged(GOOD_NPZ[compressed])))
    try:
        model = weights.load(path)
    except WeightsError as e:
        one_line(e)
    else:  # a change inside an array's numbers leaves a valid file
        assert sorted(model.state_dict()) == sorted(tiny_model().state_dict())


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """A weights folder whose manifest records the tiny model's sha256."""
    folder = tmp_path_factory.mktemp("shipped")
    weights.save(tiny_model(), folder / "tiny.npz")
    weights.register(folder / "tiny.npz", folder)
    return folder


@settings(max_examples=60)
@given(st.data())
def test_any_change_to_a_registered_file_is_a_checksum_error(registered, data):
    good = (registered / "tiny.npz").read_bytes()
    bad = data.draw(damaged(good))
    if bad == good:
        return
    folder = registered / "copy"
    folder.mkdir(exist_ok=True)
    shutil.copy(registered / "manifest.json", folder)
    (folder / "tiny.npz").write_bytes(bad)
    old = os.environ.get("MINICNN_WEIGHTS_DIR")
    os.environ["MINICNN_WEIGHTS_DIR"] = str(folder)
    try:
        with pytest.raises(ChecksumError) as e:
            minicnn.load("tiny")
    finally:
        if old is None:
            del os.environ["MINICNN_WEIGHTS_DIR"]
        else:
            os.environ["MINICNN_WEIGHTS_DIR"] = old
    assert "the manifest records" in one_line(e.value)


SMALL_INT = st.integers(-2, 12)
JSON = st.recursive(st.none() | st.booleans() | SMALL_INT | st.floats(-4, 4) | st.text(max_size=6),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
                    max_leaves=12)


@st.composite
def layer_specs(draw, depth=0):
    """Architecture entries that look almost right: real and made-up types, odd children and hyper-parameters."""
    kind = draw(st.sampled_from([*MODULE_TYPES, "Lambda", "Sequential", "Sequential"]) | JSON)
    if kind == "Sequential" and depth < 2:
        pair = st.tuples(st.text("ab.", max_size=3), layer_specs(depth + 1)).map(list)
        return {"type": kind, "children": draw(st.lists(pair | JSON, max_size=3) | JSON)}
    keys = ["in_channels", "out_channels", "kernel_size", "stride", "padding", "in_features", "out_features",
            "num_features", "planes", "output_size", "p", "bias", "eps"]
    kwargs = draw(st.dictionaries(st.sampled_from(keys), SMALL_INT | JSON, max_size=5))
    return {"type": kind, **kwargs}


@settings(max_examples=MANY)
@given(spec=layer_specs() | JSON, extra=st.dictionaries(st.sampled_from(["name", "classes", "input_size",
                                                                        "preprocessing", "arch"]), JSON))
def test_random_metadata_gives_a_model_or_a_weights_error(scratch, spec, extra):
    meta = {"format": weights.FORMAT, "version": weights.VERSION, **extra, "spec": spec}
    path = scratch / "meta.npz"
    with open(path, "wb") as f:
        np.savez(f, __meta__=weights.encode_meta(meta))
    try:
        weights.load(path)
    except WeightsError as e:
        one_line(e)


@settings(max_examples=MANY)
@given(head=st.sampled_from([b"", b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY", b"\x80\x02", b"\x80\x04"]),
       body=st.binary(max_size=300))
def test_random_bytes_to_weights_load(scratch, head, body):
    path = scratch / "random.npz"
    path.write_bytes(head + body)
    with pytest.raises(WeightsError) as e:
        weights.load(path)
    one_line(e.value)


# ---------------------------------------------------------------- images

def _encoded(fmt: str, **kw) -> bytes:
    rng = np.random.default_rng(5)
    im = Image.fromarray(rng.integers(0, 256, (9, 13, 3), dtype=np.uint8))
    buf = io.BytesIO()
    if fmt == "APNG":
        im.save(buf, "PNG", save_all=True, append_images=[im.rotate(90)])
    elif fmt == "GIF":
        im.save(buf, "GIF", save_all=True, append_images=[im.rotate(90)])
    else:
        im.save(buf, fmt, **kw)
    return buf.getvalue()


GOOD_IMAGES = {"PNG": _encoded("PNG"), "JPEG": _encoded("JPEG"), "GIF": _encoded("GIF"), "BMP": _encoded("BMP"),
               "TIFF": _encoded("TIFF"), "TIFF-LZW": _encoded("TIFF", compression="tiff_lzw"),
               "WEBP": _encoded("WEBP"), "APNG": _encoded("APNG"), "PPM": _encoded("PPM")}


@settings(max_examples=2 * MANY)
@given(st.data())
def test_damaged_images_give_an_rgb_array_or_an_image_error(data):
    fmt = data.draw(st.sampled_from(sorted(GOOD_IMAGES)))
    encoded = data.draw(damaged(GOOD_IMAGES[fmt]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            a = image_from_bytes(encoded, name=f"damaged.{fmt.lower()}", max_pixels=1 << 20)
        except ImageError as e:
            one_line(e)
        else:
            assert a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3 and a.flags["C_CONTIGUOUS"]


@settings(max_examples=MANY)
@given(head=st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"\xff\xd8\xff\xe0", b"BM", b"II*\x00",
                             b"MM\x00*", b"RIFF\x00\x00\x00\x00WEBP", b"P6\n"]),
       body=st.binary(max_size=300))
def test_random_bytes_to_load_image(scratch, head, body):
    path = scratch / "random.img"
    path.write_bytes(head + body)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            a = load_image(path)  # the default pixel limit: headers claiming huge sizes are refused unread
        except ImageError as e:
            one_line(e)
        else:
            assert a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3


# ---------------------------------------------------------------- datasets

def _png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return buf.getvalue()


def _zip_dataset() -> bytes:
    rng = np.random.default_rng(1)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for split in ("test", "train"):
            for cls in ("cat", "dog"):
                z.writestr(f"pets/{split}/{cls}/0.png", _png(rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)))
    return buf.getvalue()


def _cifar_tar(mode: str) -> bytes:
    rng = np.random.default_rng(2)

    def batch(n):
        return {b"labels": [int(v) for v in rng.integers(0, 3, n)],
                b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)}

    members = [("batches.meta", {b"label_names": [b"a", b"b", b"c"]}), ("test_batch", batch(2))]
    members += [(f"data_batch_{i}", batch(1)) for i in range(1, 6)]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as t:
        for name, obj in members:
            raw = pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            t.addfile(info, io.BytesIO(raw))
    return buf.getvalue()


GOOD_DATASETS = {"data.zip": _zip_dataset(), "cifar-10-python.tar.gz": _cifar_tar("w:gz"),
                 "cifar.tar": _cifar_tar("w")}


def read_everything(path) -> None:
    for split in ("test", "train"):
        ds = open_dataset(path, split)
        for _ in ds.batches(2):
            pass
        len(ds)
        list(ds)


@settings(max_examples=MANY)
@given(st.data())
def test_damaged_datasets_read_or_raise_image_error(scratch, data):
    name = data.draw(st.sampled_from(sorted(GOOD_DATASETS)))
    path = scratch / name
    path.write_bytes(data.draw(damaged(GOOD_DATASETS[name])))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            read_everything(path)
        except (ImageError, UnknownNameError) as e:  # UnknownNameError: a damaged name hid a split
            one_line(e)


@settings(max_examples=MANY)
@given(name=st.sampled_from(["data.zip", "cifar-10-python.tar.gz", "plain.bin"]),
       head=st.sampled_from([b"", b"PK\x03\x04", b"\x1f\x8b\x08", b"BZh9"]), body=st.binary(max_size=300))
def test_random_bytes_to_open_dataset(scratch, name, head, body):
    path = scratch / f"random-{name}"
    path.write_bytes(head + body)
    with pytest.raises(ImageError) as e:
        read_everything(path)
    one_line(e.value)


# ---------------------------------------------------------------- checkpoints (convert)

@needs_torch
@settings(max_examples=40)
@given(st.data())
def test_damaged_checkpoints_give_arrays_or_a_weights_error(scratch, data):
    name = data.draw(st.sampled_from(["vgg11_small.pth", "vgg11_bn_small.pth"]))  # zip and legacy formats
    path = scratch / "damaged.pth"
    path.write_bytes(data.draw(damaged((FIXTURES / name).read_bytes())))
    try:
        convert.read_checkpoint(path)
    except WeightsError as e:
        one_line(e)


# ---------------------------------------------------------------- pickled payloads

class WritesFile:
    """Unpickling runs ``call(*args)``, which would create the marker file."""

    def __init__(self, call, args):
        self.call, self.args = call, args

    def __reduce__(self):
        return (self.call, self.args)


def payloads(marker: pathlib.Path):
    return {
        "open": WritesFile(open, (str(marker), "w")),
        "os.system": WritesFile(os.system, (f"touch {marker}",)),
        "exec": WritesFile(builtins.exec, (f"open({str(marker)!r}, 'w')",)),
        "Path.touch": WritesFile(pathlib.Path.touch, (marker,)),
    }


def _weights_pickle(folder, obj, protocol):
    path = folder / "evil.npz"
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return lambda: weights.load(path), WeightsError


def _weights_object_array(folder, obj, protocol):
    model = tiny_model()
    arrays = {**model.state_dict(), "fc.bias": np.array([obj, 0, 0], dtype=object)}
    meta = weights.encode_meta({"format": weights.FORMAT, "version": weights.VERSION, **model.meta,
                                "spec": model.spec()})
    with open(folder / "evil.npz", "wb") as f:
        np.savez(f, __meta__=meta, **arrays)
    return lambda: weights.load(folder / "evil.npz"), WeightsError


def _weights_zip_member(folder, obj, protocol):
    with zipfile.ZipFile(folder / "evil.npz", "w") as z:
        z.writestr("__meta__.npy", pickle.dumps(obj, protocol=protocol))
        z.writestr("conv.weight.npy", pickle.dumps([obj], protocol=protocol))
    return lambda: weights.load(folder / "evil.npz"), WeightsError


def _cifar_batch(folder, obj, protocol):
    data = folder / "cifar-10-batches-py"
    data.mkdir()
    (data / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"a", b"b"]}, protocol=2))
    (data / "test_batch").write_bytes(pickle.dumps({b"data": obj, b"labels": [0]}, protocol=protocol))
    return lambda: list(open_dataset(folder, "test")), ImageError


def _image(folder, obj, protocol):
    (folder / "evil.png").write_bytes(pickle.dumps(obj, protocol=protocol))
    return lambda: load_image(folder / "evil.png"), ImageError


def _checkpoint(folder, obj, protocol):
    if torch is None:
        pytest.skip("reading PyTorch checkpoints needs torch")
    torch.save({"features.0.weight": torch.zeros(1), "extra": obj}, folder / "evil.pth")  # torch's own protocol
    return lambda: convert.read_checkpoint(folder / "evil.pth"), WeightsError


def _legacy_checkpoint(folder, obj, protocol):
    if torch is None:
        pytest.skip("reading PyTorch checkpoints needs torch")
    (folder / "evil.pth").write_bytes(pickle.dumps({"state_dict": {"w": obj}}, protocol=protocol))
    return lambda: convert.read_checkpoint(folder / "evil.pth"), WeightsError


CARRIERS = {"weights: a pickle file": _weights_pickle, "weights: an object array": _weights_object_array,
            "weights: a pickled zip member": _weights_zip_member, "datasets: a CIFAR-10 batch": _cifar_batch,
            "images: a pickle as an image": _image, "convert: torch.save": _checkpoint,
            "convert: a legacy pickle": _legacy_checkpoint}


@pytest.mark.parametrize("carrier", [pytest.param(c, marks=needs_torch) if c.startswith("convert") else c
                                     for c in CARRIERS])
def test_pickled_payloads_are_refused_and_never_run(tmp_path, carrier):
    """Every payload, in every pickle protocol (0-5), through every loader that could meet a pickle."""
    tried = 0
    for payload in ("open", "os.system", "exec", "Path.touch"):
        for protocol in range(6):
            folder = tmp_path / f"{payload}-{protocol}"
            folder.mkdir()
            marker = folder / "pwned"
            load, error = CARRIERS[carrier](folder, payloads(marker)[payload], protocol)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with pytest.raises(error) as e:
                    load()
            one_line(e.value)
            assert not marker.exists(), (payload, protocol, str(e.value))
            tried += 1
    assert tried == 24


# ---------------------------------------------------------------- failures in the middle of a write

def entries(folder: pathlib.Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def disk_full_after(k: int, savez):
    """``np.savez`` that writes the first k bytes of the real file, then fails like a full disk."""
    def failing(f, **arrays):
        buf = io.BytesIO()
        savez(buf, **arrays)
        f.write(buf.getvalue()[:k])
        raise OSError(28, "No space left on device")
    return failing


def savefig_disk_full_after(k: int, savefig):
    """``Figure.savefig`` that writes the first k bytes of the real PNG, then fails like a full disk."""
    def failing(fig, f, **kwargs):
        buf = io.BytesIO()
        savefig(fig, buf, **kwargs)
        f.write(buf.getvalue()[:k])
        raise OSError(28, "No space left on device")
    return failing


def fails_with(error: OSError):
    def failing(*args, **kwargs):
        raise error
    return failing


@settings(max_examples=40)
@given(k=st.integers(0, len(GOOD_NPZ[False])))
def test_weights_save_failing_after_k_bytes_keeps_the_previous_file(tmp_path_factory, k):
    folder = tmp_path_factory.mktemp("save")
    path = weights.save(tiny_model(0), folder / "m.npz")
    before = entries(folder)
    real = np.savez
    np.savez = disk_full_after(k, real)
    try:
        with pytest.raises(OutputError) as e:
            weights.save(tiny_model(1), path, force=True)
    finally:
        np.savez = real
    assert "No space left on device" in one_line(e.value)
    assert entries(folder) == before  # the previous file, byte for byte, and no temporary file


def _previous(path: pathlib.Path, content: bytes = b"the previous version") -> bytes:
    path.write_bytes(content)
    return content


def explain_argv(tmp_path):
    return ["explain", str(CAT), "--method", "saliency", "--out", str(tmp_path / "cat.png"),
            "--save", str(tmp_path / "cat.npz"), "--force"]


@pytest.mark.parametrize("what", ["figure", "maps"])
def test_explain_failing_mid_write_keeps_previous_files(tmp_path, monkeypatch, capsys, what):
    from matplotlib.figure import Figure
    _previous(tmp_path / "cat.png", b"old figure")
    _previous(tmp_path / "cat.npz", b"old maps")
    if what == "figure":
        monkeypatch.setattr(Figure, "savefig", savefig_disk_full_after(100, Figure.savefig))
    else:
        monkeypatch.setattr(np, "savez", disk_full_after(100, np.savez))
    assert cli.main(explain_argv(tmp_path)) == 2
    out, err = capsys.readouterr()
    assert err.startswith("minicnn: error: writing ") and "No space left on device" in err and err.count("\n") == 1
    # the figure and the maps are renamed together at the end: a failure in either keeps both old files
    assert entries(tmp_path) == {"cat.png": b"old figure", "cat.npz": b"old maps"}


@pytest.mark.parametrize("fail", ["os.replace", "os.fsync"])
def test_a_failed_rename_or_flush_keeps_the_previous_file(tmp_path, monkeypatch, capsys, fail):
    _previous(tmp_path / "cat.png", b"old figure")
    monkeypatch.setattr(os, fail.split(".")[1], fails_with(OSError(18, "Invalid cross-device link")))
    assert cli.main(["explain", str(CAT), "--method", "saliency", "--out", str(tmp_path / "cat.png"), "--force"]) == 2
    err = capsys.readouterr().err
    assert "Invalid cross-device link" in err and err.count("\n") == 1
    assert entries(tmp_path) == {"cat.png": b"old figure"}


def test_ctrl_c_mid_write_keeps_the_previous_file(tmp_path, monkeypatch, capsys):
    _previous(tmp_path / "cat.npz", b"old maps")

    def interrupted(f, **arrays):
        f.write(b"PK\x03\x04 half")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupted)
    assert cli.main(explain_argv(tmp_path)) == 130
    assert capsys.readouterr().err == "minicnn: interrupted\n"
    assert entries(tmp_path) == {"cat.npz": b"old maps"}  # nor is the figure of the interrupted run left


def test_explain_failing_on_its_second_output_leaves_neither(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(np, "savez", disk_full_after(100, np.savez))
    assert cli.main(explain_argv(tmp_path)) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert entries(tmp_path) == {} and list(tmp_path.iterdir()) == []  # no figure, no maps, no temporary file


@pytest.mark.parametrize("old", [True, False])
def test_a_failed_rename_of_the_second_output_rolls_the_first_back(tmp_path, monkeypatch, capsys, old):
    if old:
        _previous(tmp_path / "cat.png", b"old figure")
        _previous(tmp_path / "cat.npz", b"old maps")
    real, calls = os.replace, []

    def second_fails(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(5, "Input/output error")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", second_fails)
    assert cli.main(explain_argv(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err == f"minicnn: error: writing {tmp_path / 'cat.npz'} failed: Input/output error\n"
    assert entries(tmp_path) == ({"cat.png": b"old figure", "cat.npz": b"old maps"} if old else {})
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_outputs_writes_all_three_or_restores_all_three(tmp_path, monkeypatch):
    paths = [tmp_path / f"{k}.bin" for k in "abc"]
    for p in paths[:2]:
        p.write_bytes(b"old " + p.name.encode())
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (_ for _ in ()).throw(OSError(28, "No space left"))
                        if pathlib.Path(dst) == paths[2] else real(src, dst))
    outputs = atomic.Outputs(force=True)
    for p in paths:
        outputs.output(p)
    with pytest.raises(OutputError, match=r"writing .*c.bin failed: No space left"):
        with outputs.writing():
            for p in paths:
                with outputs.open(p) as f:
                    f.write(b"new")
    assert entries(tmp_path) == {"a.bin": b"old a.bin", "b.bin": b"old b.bin"}
    monkeypatch.setattr(os, "replace", real)
    outputs = atomic.Outputs(force=True)
    with outputs.writing():
        for p in paths:
            with outputs.open(outputs.output(p)) as f:
                f.write(b"new")
    assert entries(tmp_path) == {p.name: b"new" for p in paths}


def test_save_maps_failing_mid_write_keeps_the_previous_file(tmp_path, monkeypatch):
    _previous(tmp_path / "m.npz", b"old maps")
    monkeypatch.setattr(np, "savez", disk_full_after(10, np.savez))
    with pytest.raises(OutputError):
        explain_cli.save_maps(tmp_path / "m.npz", {"logits": np.zeros(3)})
    assert entries(tmp_path) == {"m.npz": b"old maps"}


def test_demo_failing_on_its_second_png_keeps_both_previous_files(tmp_path, monkeypatch, capsys):
    from matplotlib.figure import Figure
    out = tmp_path / "d"
    out.mkdir()
    for name in demo.FILES:
        _previous(out / name, b"old " + name.encode())
    monkeypatch.setattr(demo, "load_models", lambda: ("vgg", "resnet"))
    monkeypatch.setattr(demo, "figure1", lambda vgg, resnet: (Figure(figsize=(1, 1)), []))
    monkeypatch.setattr(demo, "samples_figure", lambda vgg, resnet: Figure(figsize=(1, 1)))
    monkeypatch.setattr(demo, "cam_gallery", lambda resnet: Figure(figsize=(1, 1)))
    monkeypatch.setattr(demo, "imagenet_figures",
                        lambda model: ((Figure(figsize=(1, 1)), []), (Figure(figsize=(1, 1)), [])))
    monkeypatch.setattr(demo, "attribution_gallery", lambda resnet: Figure(figsize=(1, 1)))
    real, calls = Figure.savefig, []

    def second_fails(fig, f, **kw):
        calls.append(f)
        if len(calls) == 2:
            savefig_disk_full_after(50, real)(fig, f, **kw)
        real(fig, f, **kw)

    monkeypatch.setattr(Figure, "savefig", second_fails)
    assert cli.main(["demo", "--out-dir", str(out), "--force"]) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert entries(out) == {name: b"old " + name.encode() for name in demo.FILES}  # both PNGs, or neither


@needs_torch
def test_convert_failing_at_the_rename_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(os, "replace", fails_with(OSError(13, "Permission denied")))
    argv = ["convert", str(FIXTURES / "vgg11_small.pth"), "--arch", "vgg11", "--out", str(tmp_path / "v.npz")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"minicnn: error: writing {tmp_path / 'v.npz'} failed: Permission denied\n"
    assert entries(tmp_path) == {}


class CutResponse(io.BytesIO):
    """A download whose connection drops after ``k`` of its bytes."""

    def __init__(self, data: bytes, k: int):
        super().__init__(data)
        self.headers, self.k = {"Content-Length": str(len(data))}, k

    def read(self, n=-1):
        if self.tell() >= self.k:
            raise ConnectionResetError(104, "Connection reset by peer")
        return super().read(min(n, self.k - self.tell()) if n >= 0 else self.k - self.tell())


@settings(max_examples=20)
@given(k=st.integers(0, 175_000))
def test_a_download_cut_after_k_bytes_leaves_nothing(tmp_path_factory, k):
    folder = tmp_path_factory.mktemp("fetch")
    data = (FIXTURES / "vgg11_small.pth").read_bytes()
    real = fetch.urllib.request.urlopen
    fetch.urllib.request.urlopen = lambda request, timeout: CutResponse(data, min(k, len(data) - 1))
    try:
        with pytest.raises(DownloadError) as e:
            fetch.download("https://example.invalid/c.pth", folder / "c.pth",
                           expected_sha256=hashlib.sha256(data).hexdigest(), progress=False)
    finally:
        fetch.urllib.request.urlopen = real
    assert "Connection reset by peer" in one_line(e.value)
    assert entries(folder) == {}


def test_errors_are_minicnn_errors_that_keep_their_builtin_kind():
    """``except ValueError`` / ``except OSError`` keep working around minicnn."""
    assert issubclass(WeightsError, ValueError) and issubclass(ImageError, ValueError)
    assert issubclass(OutputError, OSError) and issubclass(DownloadError, OSError)
    assert issubclass(UnknownNameError, LookupError)
    for cls in (WeightsError, ImageError, OutputError, DownloadError, UnknownNameError):
        assert issubclass(cls, MinicnnError)
    assert json.dumps(str(UnknownNameError("unknown layer 'x'"))) == '"unknown layer \'x\'"'


# ---------------------------------------------------------------- output paths, generated

#: What an output path can be, next to the user's photo.jpg and tiny.npz.
ROLES = ("fresh", "existing", "folder", "image", "image-symlink", "image-hardlink", "image-respelled", "weights",
         "weights-symlink", "other", "other-symlink")


def _place(folder: pathlib.Path, role: str, name: str, other: pathlib.Path | None) -> pathlib.Path:
    """Make ``folder / name`` (or another path) play ``role``; returns the path to give the command."""
    photo, model = folder / "photo.jpg", folder / "tiny.npz"
    path = folder / name
    if role == "existing":
        path.write_bytes(b"keep me")
    elif role == "folder":
        path.mkdir()
    elif role == "image":
        return photo
    elif role == "image-symlink":
        path.symlink_to(photo)
    elif role == "image-hardlink":
        os.link(photo, path)
    elif role == "image-respelled":
        return folder / "." / ".." / folder.name / "photo.jpg"
    elif role == "weights":
        return model
    elif role == "weights-symlink":
        path.symlink_to(model)
    elif role == "other":
        return other
    elif role == "other-symlink":
        path.symlink_to(other.name)
    return path


def _snapshot(folder: pathlib.Path) -> dict:
    return {p.name: ("link", os.readlink(p)) if p.is_symlink() else ("dir",) if p.is_dir() else p.read_bytes()
            for p in sorted(folder.iterdir())}


def _expected_refusal(role: str, ext: str, force: bool, kind: str, first: bool) -> str | None:
    """The words of the refusal the rule promises for one output (None: it is written)."""
    if role.startswith("image"):
        return "is the same file as IMAGE"
    if role.startswith("weights"):
        return "is the same file as --model"
    if role.startswith("other") and not first:
        return "are the same file"
    if role == "folder":
        return "it is a folder; give a file name"
    if ext not in ((".png", ".svg", ".PDF") if kind == "figure" else (".npz",)):
        return f"'{ext}' is not a format for" if ext else "the name has no extension to say the format"
    if role == "existing" and not force:
        return "already exists; pass --force"
    return None


@settings(max_examples=40)
@given(out_role=st.sampled_from([r for r in ROLES if not r.startswith("other")]),
       out_ext=st.sampled_from([".png", ".svg", ".PDF", ".txt", ""]),
       save_role=st.none() | st.sampled_from(ROLES), save_ext=st.sampled_from([".npz", ".png"]),
       force=st.booleans())
def test_any_output_paths_are_refused_in_one_line_or_written(tmp_path_factory, tiny_npz, out_role, out_ext,
                                                            save_role, save_ext, force):
    folder = tmp_path_factory.mktemp("paths")
    (folder / "photo.jpg").write_bytes(CAT.read_bytes())
    (folder / "tiny.npz").write_bytes(tiny_npz)
    out = _place(folder, out_role, "fig" + out_ext, None)
    save = None if save_role is None else _place(folder, save_role, "maps" + save_ext, out)
    expected = _expected_refusal(out_role, out_ext, force, "figure", True)
    if expected is None and save_role is not None:
        expected = _expected_refusal(save_role, save_ext, force, "maps", False)
    argv = ["explain", str(folder / "photo.jpg"), "--model", str(folder / "tiny.npz"), "--method", "saliency",
            "--out", str(out)] + (["--save", str(save)] if save is not None else []) + (["--force"] if force else [])
    before = _snapshot(folder)
    stdout, stderr = io.StringIO(), io.StringIO()
    real_figure = explain_cli.explanation_figure
    explain_cli.explanation_figure = lambda *a, **k: _small_figure()   # the figure's content is tested elsewhere
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = cli.main(argv)
    finally:
        explain_cli.explanation_figure = real_figure
    err = stderr.getvalue()
    after = _snapshot(folder)
    assert after["photo.jpg"] == CAT.read_bytes() and after["tiny.npz"] == tiny_npz  # inputs, always untouched
    if expected is not None:
        assert code == 2 and err.startswith("minicnn: error: ") and err.count("\n") == 1, err
        assert expected in err, (expected, err)
        assert after == before                                                 # nothing written, nothing left
        return
    assert code == 0 and err == "", err
    written = [out] + ([save] if save is not None else [])
    for path in written:
        data = path.read_bytes()
        assert data != b"keep me" and len(data) > 100
    assert out.read_bytes()[:4] in (b"\x89PNG", b"<?xm", b"%PDF")
    if save is not None:
        assert save.read_bytes()[:2] == b"PK"
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    changed = {k for k in set(after) | set(before) if after.get(k) != before.get(k)}
    assert changed <= {p.name for p in written}                                 # nothing else touched


def _small_figure():
    from matplotlib.figure import Figure
    fig = Figure(figsize=(1, 1))
    fig.add_subplot().plot([0, 1])
    return fig


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory):
    model = tiny_model()
    model.meta["preprocessing"] = {"mean": [0.5] * 3, "std": [0.25] * 3, "resize": "exact", "size": [8, 8]}
    return weights.save(model, tmp_path_factory.mktemp("tiny") / "tiny.npz").read_bytes()

"""Bad weights files and checkpoints, end to end (layers, explain, convert, fetch): truncated, empty, not a
weights file, a checksum that differs, arrays that do not fit, pickles (never run), the wrong architecture.
The table's rows and their check are in ``refusals.py``.
"""

from __future__ import annotations

import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from refusals import _PNG, CAT, FIXTURES, SHIPPED, Case, check_refusal, needs_torch, params, tiny_model

import minicnn
from minicnn.errors import ChecksumError, InputError, UnknownNameError, WeightsError
from minicnn.model import Model
from minicnn.models import fetch, weights
from minicnn.models.convert import pytorch as convert

# ================================================================ weights files

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

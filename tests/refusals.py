"""The error tests' shared helpers (tests/app/test_errors_*.py): a refusal's table row and its check, image
bytes, a tiny model, the shipped models as fixtures.

Each error test has one table per category. A row builds its input in ``tmp_path`` and names the command line
and the API call that must both refuse it, the exception class (a MinicnnError subclass) and words the message
must contain: what was wrong, and what would be right. ``check_refusal`` runs the command line in-process
(``cli.main``): one line on stderr, exit status 2, the API's own exception, nothing written.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import minicnn
from minicnn.commands import cli
from minicnn.errors import MinicnnError
from minicnn.inputs.samples import sample_images
from minicnn.layers import AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Flatten, Linear, ReLU, Sequential
from minicnn.model import Model
from minicnn.models import weights

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



CAT = sample_images("cat")[0][0]


@pytest.fixture(scope="module")
def vgg():
    return minicnn.load("vgg_cifar10")


@pytest.fixture(scope="module")
def resnet():
    return minicnn.load("resnet20_cifar10")


def explain_argv(image, tmp, *extra, model="vgg_cifar10"):
    return ["explain", image, "--model", model, "--out", tmp / "out.png", *extra]

_PNG = png_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)))


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

"""Writing, per command (explain, convert, fetch, demo, bench): outputs that cannot be written are refused
before any work; an output is never an input nor another output; an existing file is replaced only with
--force; every file is written to a temporary beside it, then renamed. The tables' rows and their check are
in ``refusals.py``.

Tests run as root here, where permission bits do not stop a write, so "not writable" is simulated
by making ``os.access`` answer False for the one folder concerned.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from refusals import (
    CAT,
    FIXTURES,
    SHIPPED,
    Case,
    check_refusal,
    needs_torch,
    params,
    run_cli,
    tiny_model,
    tiny_weights,  # noqa: F401  (fixtures)
)

import minicnn
from minicnn.commands import cli
from minicnn.commands import explain as explain_cli
from minicnn.errors import OutputError
from minicnn.figures import demo
from minicnn.models import fetch, weights

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
    monkeypatch.setattr(demo, "imagenet_figures",
                        lambda model: ((Figure(figsize=(1, 1)), []), (Figure(figsize=(1, 1)), [])))
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
    monkeypatch.setattr(demo, "imagenet_figures",
                        lambda model: ((Figure(figsize=(1, 1)), []), (Figure(figsize=(1, 1)), [])))
    monkeypatch.setattr(demo, "attribution_gallery", lambda resnet: Figure(figsize=(1, 1)))
    monkeypatch.setattr(Figure, "savefig", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space left")))
    code, _, err = run_cli(capsys, "demo", "--out-dir", tmp_path / "new" / "demo")
    assert code == 2 and "No space left" in err and list(tmp_path.iterdir()) == []


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
    monkeypatch.setattr(demo, "imagenet_figures",
                        lambda model: ((Figure(figsize=(1, 1)), []), (Figure(figsize=(1, 1)), [])))
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

"""Hostile input at the command line and the Python API: one line, exit status 2, nothing written.

Every row of the table runs ``minicnn`` in-process in a scratch folder that holds the user's files
(an image, an EPS file named .png, a FIFO, an existing figure) and checks the promise: status 2,
exactly one stderr line starting "minicnn: error:", no traceback, no file written, the user's files
byte-for-byte unchanged. A stand-in ``gs`` first on PATH leaves a marker if any image path ever
starts Ghostscript. The recorded fuzz run is tests/fuzz/cli.md; a small seeded version runs here.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from minicnn import explain, load
from minicnn.commands import cli
from minicnn.errors import ImageError, InputError
from minicnn.inputs.images import image_from_bytes, load_image
from minicnn.inputs.preprocess import preprocess
from minicnn.inputs.samples import sample_images

from . import fuzz_cli

REPO = Path(__file__).resolve().parents[2]
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nnewpath 0 0 moveto 8 8 lineto stroke\nshowpage\n"
LONG = "n" * 300                                           # over the 255 bytes a file name may have
TORCH = __import__("importlib").util.find_spec("torch") is not None


@pytest.fixture
def user(tmp_path, monkeypatch):
    """A scratch folder as the current one, the user's files in it, and a marker-writing ``gs`` first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    marker = tmp_path / "GS-RAN"
    (bin_dir / "gs").write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    (bin_dir / "gs").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.chdir(home)
    shutil.copy(sample_images("cat")[0][0], "cat.jpg")
    Path("eps.png").write_bytes(EPS)
    Path("drawing.eps").write_bytes(EPS)
    Path("figure.png").write_bytes(b"the user's own figure")
    tiff = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tiff, format="TIFF")
    Path("cut.tif").write_bytes(tiff.getvalue()[:100])       # Pillow warns "Truncated File Read", then refuses
    rng = np.random.default_rng(0)                            # an animated PNG whose first frame is damaged
    frames = [Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)) for _ in range(3)]
    apng = io.BytesIO()
    frames[0].save(apng, format="PNG", save_all=True, append_images=frames[1:])
    broken = bytearray(apng.getvalue())
    broken[99:107] = bytes(b ^ 0xFF for b in broken[99:107])
    Path("anim.png").write_bytes(bytes(broken))
    Path("meta.json").write_text('{"licence": "MIT"}')
    Path("deep.json").write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    os.mkfifo("fifo")
    for split in ("test",):                                  # a dataset whose one image is PostScript
        Path(f"eps_data/{split}/cat").mkdir(parents=True)
        Path(f"eps_data/{split}/cat/0.png").write_bytes(EPS)
    Path("data/test/cat").mkdir(parents=True)
    shutil.copy("cat.jpg", "data/test/cat/0.jpg")
    return home, marker


def snapshot(folder: Path) -> dict:
    """{relative path: bytes} of every regular file under ``folder`` (a FIFO as its type only)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(folder))] = p.read_bytes() if stat.S_ISREG(st.st_mode) else stat.S_IFMT(st.st_mode)
    return out


def refused(capsys, argv) -> str:
    """Run the command line; assert status 2, one stderr line, no stdout; return that line."""
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (argv, code, out, err)
    assert "Traceback" not in err and err.startswith("minicnn: error: ") and err.count("\n") == 1, err
    return err


M = ["--model", "resnet20_cifar10"]
ROWS = [  # (row of the hostile-input table, argv, words of the one line)
    ("1 eps named .png", ["explain", "eps.png", *M], "PostScript/EPS"),
    ("1 eps", ["explain", "drawing.eps", *M], "PostScript/EPS"),
    ("1 eps in a dataset", ["evaluate", *M, "--data", "eps_data"], "PostScript/EPS"),
    ("1 a cut TIFF (found by the fuzz run)", ["explain", "cut.tif", *M], "Pillow can read"),
    ("1 an animation that does not decode (fuzz)", ["explain", "anim.png", *M], "corrupt"),
    ("6 smoothgrad seed", ["explain", "cat.jpg", *M, "--method", "smoothgrad", "--seed", "-1"], "seed"),
    ("6 uniform baseline seed", ["explain", "cat.jpg", *M, "--method", "integrated-gradients", "--baseline",
                                 "uniform", "--seed", "-1"], "seed"),
    ("6 seed too large", ["explain", "cat.jpg", *M, "--method", "smoothgrad", "--seed", str(2**64)], "seed"),
    ("6 sanity seed", ["sanity", *M, "--seed", "-1", "--images", "1"], "seed"),
    ("6 scorecard seed", ["scorecard", *M, "--seed", "-1", "--images", "1"], "seed"),
    ("7 --out", ["explain", "cat.jpg", *M, "--out", LONG + ".png"], "255 bytes"),
    ("7 IMAGE", ["explain", LONG + ".png", *M], "255 bytes"),
    ("7 --model", ["layers", "--model", LONG + ".npz"], "255 bytes"),
    ("7 --data", ["evaluate", *M, "--data", LONG], "255 bytes"),
    ("7 --out-dir", ["scorecard", *M, "--out-dir", f"{LONG}/x"], "255 bytes"),
    ("7 --save", ["explain", "cat.jpg", *M, "--save", LONG + ".npz"], "255 bytes"),
    ("7 --json", ["sanity", *M, "--json", LONG + ".json"], "255 bytes"),
    ("7 CHECKPOINT", ["convert", LONG + ".pth", "--arch", "resnet20", "--out", "x.npz"], "255 bytes"),
    ("7 --labels", ["convert", "fifo", "--labels", LONG, "--out", "x.npz"], "255 bytes"),
    ("8 --meta /dev/zero", ["convert", "x.pth", "--arch", "resnet20", "--meta", "/dev/zero", "--out", "x.npz"],
     "not a regular file"),
    ("8 --meta nested 100000 deep", ["convert", "x.pth", "--arch", "resnet20", "--meta", "deep.json", "--out", "x.npz"],
     "not valid JSON"),
    ("8 --labels /dev/zero", ["convert", "x.tflite", "--labels", "/dev/zero", "--out", "x.npz"], "not a regular file"),
    ("8 --data /dev/zero", ["evaluate", *M, "--data", "/dev/zero"], "not a regular file"),
    ("8 --data FIFO", ["evaluate", *M, "--data", "fifo"], "not a regular file"),
    ("8 --meta FIFO", ["convert", "x.pth", "--arch", "resnet20", "--meta", "fifo", "--out", "x.npz"],
     "not a regular file"),
    ("8 --labels FIFO", ["convert", "x.tflite", "--labels", "fifo", "--out", "x.npz"], "not a regular file"),
    ("8 checkpoint FIFO", ["convert", "fifo", "--arch", "resnet20", "--out", "x.npz"], "not a regular file"),
    ("8 --model FIFO", ["layers", "--model", "fifo"], "not a regular file"),
    ("8 --model /dev/zero", ["layers", "--model", "/dev/zero"], "not a regular file"),
    ("8 IMAGE FIFO", ["explain", "fifo", *M], "not a regular file"),
    ("14 noise level 1e308", ["explain", "cat.jpg", *M, "--method", "smoothgrad", "--noise-level", "1e308"],
     "noise_level"),
    ("14 noise level nan", ["explain", "cat.jpg", *M, "--method", "smoothgrad", "--noise-level", "nan"], "noise_level"),
    ("14 epsilon inf", ["explain", "cat.jpg", *M, "--method", "lrp-epsilon", "--epsilon", "inf"], "epsilon"),
    ("14 epsilon nan", ["explain", "cat.jpg", *M, "--method", "lrp-epsilon-plus", "--epsilon", "nan"], "epsilon"),
    ("14 epsilon negative", ["explain", "cat.jpg", *M, "--method", "lrp-epsilon", "--epsilon", "-1"], "epsilon"),
    ("14 gamma inf", ["explain", "cat.jpg", *M, "--method", "lrp-epsilon-gamma-box", "--gamma", "inf"], "gamma"),
    ("14 bench --models bogus", ["bench", "--models", "bogus", "--quick", "--no-memory", "--keep-env"], "bogus"),
    ("14 bench --models ,", ["bench", "--models", ",", "--quick", "--keep-env"], "--models"),
    ("14 evaluate --batch-size", ["evaluate", *M, "--batch-size", "-1"], "batch size"),
]


@pytest.mark.parametrize("row, argv, words", ROWS, ids=[r[0] for r in ROWS])
def test_cli_refuses_in_one_line_and_writes_nothing(user, capsys, row, argv, words):
    home, marker = user
    before = snapshot(home)
    line = refused(capsys, argv)
    assert words in line, line
    assert snapshot(home) == before and not marker.exists()


def test_a_legal_250_byte_output_name_is_written(user, capsys):
    out = "o" * 246 + ".png"                                   # 250 bytes: its temporary must fit too
    assert cli.main(["explain", "cat.jpg", "--model", "resnet20_cifar10", "--out", out]) == 0
    assert Path(out).read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in Path().iterdir() if p.name.startswith(".")) == []


def test_an_unreadable_dataset_folder_is_one_line(user, capsys, monkeypatch):
    real = Path.iterdir

    def iterdir(self):                 # tests run as root, where permission bits do not stop a read
        if self.name == "cat":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)
    monkeypatch.setattr(Path, "iterdir", iterdir)
    assert "Permission denied" in refused(capsys, ["evaluate", *M, "--data", "data"])


@pytest.mark.parametrize("redirect", ["> /dev/full", ">&-"])
def test_stdout_full_or_closed_is_one_line(redirect):
    run = subprocess.run(f"{sys.executable} -m minicnn.commands.cli models {redirect}", shell=True, capture_output=True,
                         text=True, cwd=REPO, timeout=60)
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "stdout" in run.stderr, run.stderr


def test_a_closed_pipe_keeps_sigpipe_status():
    """A reader that left (``| head``): the pipe's read end is closed before the command writes, no race."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        run = subprocess.run([sys.executable, "-m", "minicnn.commands.cli", "models"], stdout=write_end,
                             stderr=subprocess.PIPE, text=True, cwd=REPO, timeout=60)
    finally:
        os.close(write_end)
    assert run.returncode == 141 and run.stderr == ""


@pytest.mark.skipif(TORCH, reason="the check is for a machine without PyTorch")
def test_fetch_without_torch_says_so_before_any_download(user, capsys):
    line = refused(capsys, ["fetch", "vgg16", "--url", "http://127.0.0.1:9/never", "--out", "v.npz"])
    assert "PyTorch" in line and not Path("vgg16-397923af.pth").exists()


# ---------------------------------------------------------------- the Python API


@pytest.fixture(scope="module")
def model_and_x():
    model = load("resnet20_cifar10")
    return model, preprocess(load_image(sample_images("cat")[0][0]), model.meta["preprocessing"])


@pytest.mark.parametrize("call, words", [
    (lambda m, x: explain.smoothgrad(m, x, seed=-1, samples=2), "seed"),
    (lambda m, x: explain.smoothgrad(m, x, noise_level=1e308, samples=2), "noise_level"),
    (lambda m, x: explain.integrated_gradients(m, x, baseline="uniform", seed=-1, steps=2), "seed"),
    (lambda m, x: explain.lrp(m, x, epsilon=float("inf")), "epsilon"),
    (lambda m, x: explain.lrp(m, x, epsilon=float("nan")), "epsilon"),
    (lambda m, x: explain.lrp(m, x, gamma=-0.5, composite="epsilon-gamma-box"), "gamma"),
    (lambda m, x: explain.registry.get("smoothgrad").run(m, x, seed=-3, samples=2), "seed"),
    (lambda m, x: explain.occlusion(m, x, fill=float("nan")), "finite"),
    (lambda m, x: explain.integrated_gradients(m, x, baseline="blur", blur_sigma=float("inf"), steps=2), "blur_sigma"),
    (lambda m, x: explain.lrp(m, x, composite="epsilon-gamma-box", low=float("nan"), high=1.0), "finite"),
    (lambda m, x: explain.lrp(m, x, stabilizer=float("inf")), "stabilizer"),
], ids=["smoothgrad-seed", "noise", "ig-seed", "eps-inf", "eps-nan", "gamma-neg", "registry-seed", "fill-nan",
        "blur-inf", "zbox-nan", "stabilizer-inf"])
def test_api_refuses_with_input_error(model_and_x, call, words):
    with pytest.raises(InputError, match=words):
        call(*model_and_x)


@pytest.mark.parametrize("arg", [None, 3, True, b"\x89PNG", ["x.png"]])
def test_load_image_of_a_non_path_is_input_error(arg):
    with pytest.raises(InputError, match="load_image expects"):
        load_image(arg)


def test_the_stand_in_gs_would_be_run_by_pillows_eps_plugin(user):
    """Without the allow-list, Pillow's EPS plugin runs the ``gs`` first on PATH: the marker proves it."""
    home, marker = user
    try:
        with Image.open(io.BytesIO(EPS), formats=["EPS"]) as im:
            im.load()
    except Exception:             # noqa: BLE001 - the stand-in exits 1: Pillow's error, after it ran
        pass
    assert marker.exists()


def test_no_image_path_starts_ghostscript(user):
    home, marker = user
    for call in (lambda: load_image("eps.png"), lambda: load_image("drawing.eps"),
                 lambda: image_from_bytes(EPS), lambda: image_from_bytes(b"\xc5\xd0\xd3\xc6" + EPS)):
        with pytest.raises(ImageError, match="PostScript/EPS"):
            call()
    assert not marker.exists()


def test_server_upload_of_eps_is_400_and_runs_nothing(user):
    from minicnn.server import ModelStore
    from tests.server_helpers import explain as post
    from tests.server_helpers import running
    home, marker = user
    with running(ModelStore(["resnet20_cifar10"], workers=1)) as server:
        status, answer = post(server, EPS, "model=resnet20_cifar10")
        assert status == 400 and "PostScript/EPS" in answer["error"]
        status, answer = post(server, Path("cat.jpg").read_bytes(), "model=resnet20_cifar10&method=smoothgrad&seed=-1")
        assert status == 400 and "seed" in answer["error"]
    assert not marker.exists()


def test_rgba_memory_stays_within_the_budget(tmp_path):
    """Peak RSS of load_image on a 3000x3000 RGBA PNG, beyond the imports, within 9 bytes a pixel (budget 7)."""
    a = np.zeros((3000, 3000, 4), np.uint8)
    a[..., 0], a[..., 3] = 200, 128
    Image.fromarray(a, "RGBA").save(tmp_path / "big.png")
    code = ("import resource, sys; from minicnn.inputs.images import load_image; import numpy, PIL.PngImagePlugin;"
            "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss;"
            f"img = load_image({str(tmp_path / 'big.png')!r});"
            "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    grown = int(run.stdout.strip())
    assert grown < 9 * 3000 * 3000, f"{grown / 2**20:.0f} MiB for 9 megapixels"


def test_banded_conversion_equals_the_whole_image(monkeypatch):
    from minicnn.inputs import images
    rng = np.random.default_rng(0)
    rgba = Image.fromarray(rng.integers(0, 256, (37, 23, 4), dtype=np.uint8), "RGBA")
    pal = rgba.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE)
    pal.info["transparency"] = 3
    cases = [rgba, rgba.convert("LA"), rgba.convert("CMYK"), pal, rgba.convert("L"), rgba.convert("1")]
    whole = [images.to_rgb(im) for im in cases]
    monkeypatch.setattr(images, "BAND_PIXELS", 50)            # bands of 2 rows
    for im, expected in zip(cases, whole):
        assert np.array_equal(images.to_rgb(im), expected), im.mode


# ---------------------------------------------------------------- the seeded fuzz run, small


def test_fuzz_decoder_small():
    outcomes = fuzz_cli.fuzz_decoder(cases=150, seed=24)
    assert outcomes["crash"] == [] and outcomes["decoded"] + outcomes["refused"] == 150


def test_fuzz_cli_small(user, capsys):
    home, marker = user
    outcomes = fuzz_cli.fuzz_cli(cases=12, seed=24, capsys=capsys)
    assert outcomes["crash"] == [] and not marker.exists()


def test_long_names_from_python_are_one_line_errors(tmp_path):
    from minicnn.errors import OutputError, WeightsError
    from minicnn.inputs.datasets import open_dataset
    from minicnn.util.atomic import atomic_output
    for call, error in [(lambda: load(LONG + ".npz"), WeightsError), (lambda: open_dataset(LONG), ImageError),
                        (lambda: load_image(LONG + ".png"), ImageError),
                        (lambda: atomic_output(tmp_path / LONG).__enter__(), OutputError)]:
        with pytest.raises(error, match="255 bytes"):
            call()


def test_read_regular_file_bounds_and_names(tmp_path):
    from minicnn.util.files import check_name, read_regular_file, read_text_file
    (tmp_path / "five").write_bytes(b"12345")
    assert read_regular_file(tmp_path / "five", 5) == b"12345"
    for call, words in [(lambda: read_regular_file(tmp_path / "five", 4), "over the limit of 4 bytes"),
                        (lambda: read_regular_file("/dev/zero", 10), "not a regular file"),
                        (lambda: read_regular_file(tmp_path, 10), "is a folder"),
                        (lambda: read_regular_file(tmp_path / "none", 10), "not found"),
                        (lambda: check_name("a\0b"), "NUL"), (lambda: check_name("a/" * 2100), "4096"),
                        (lambda: check_name(None), "file name"),
                        (lambda: read_text_file(tmp_path / "latin", 10), "UTF-8")]:
        (tmp_path / "latin").write_bytes(b"caf\xe9")
        with pytest.raises(InputError, match=words):
            call()


@pytest.mark.parametrize("kwargs, words", [({"steps": 0}, "steps"), ({"steps": 10**6}, "steps"),
                                           ({"batch": 0}, "batch"),
                                           ({"chunk": -1}, "chunk"), ({"examples": -1}, "examples"),
                                           ({"seed": -1}, "seed")])
def test_scorecard_and_sanity_counts_are_checked_before_work(model_and_x, kwargs, words):
    from minicnn.metrics.sanity import sanity
    from minicnn.metrics.scorecard import scorecard
    with pytest.raises(InputError, match=words):
        scorecard(model_and_x[0], methods="gradcam", images=1, progress=False, **kwargs)
    if set(kwargs) <= {"chunk", "seed"}:
        with pytest.raises(InputError, match=words):
            sanity(model_and_x[0], methods="gradcam", images=1, progress=False, **kwargs)

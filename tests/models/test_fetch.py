"""``minicnn fetch`` against a loopback HTTP server (never the internet)."""

import functools
import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest

import minicnn
from minicnn.commands import cli
from minicnn.errors import ChecksumError, DownloadError, InputError, OutputError, UnknownNameError
from minicnn.models import fetch

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SMALL = FIXTURES / "vgg11_small.pth"
SMALL_SHA = hashlib.sha256(SMALL.read_bytes()).hexdigest()


class Handler(http.server.SimpleHTTPRequestHandler):
    hits: list = []

    def do_GET(self):
        Handler.hits.append(self.path)
        if self.path == "/cut.pth":  # announces more bytes than it sends
            body = SMALL.read_bytes()[:1000]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body) + 500))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    handler = functools.partial(Handler, directory=str(FIXTURES))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def small_entry(monkeypatch):
    """A checkpoint table entry for the small test VGG, named like torchvision's files."""
    monkeypatch.setitem(fetch.CHECKPOINTS, "vgg11_small", (f"vgg11_small-{SMALL_SHA[:8]}.pth", "vgg11"))
    monkeypatch.setitem(fetch.CHECKPOINTS, "vgg11_wrong", ("vgg11_wrong-00000000.pth", "vgg11"))
    Handler.hits.clear()


def test_official_table():
    name, arch = fetch.CHECKPOINTS["vgg16"]
    assert fetch.BASE_URL + name == "https://download.pytorch.org/models/vgg16-397923af.pth"
    assert fetch.hash_prefix(name) == "397923af" and arch == "vgg16"
    assert set(fetch.CHECKPOINTS) == {f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")}


def test_download_verifies_and_writes_atomically(server, tmp_path, capsys):
    dest = fetch.download(f"{server}/vgg11_small.pth", tmp_path / "c.pth", expected_sha256=SMALL_SHA[:8])
    assert dest.read_bytes() == SMALL.read_bytes()
    assert "downloading c.pth" in capsys.readouterr().err
    with pytest.raises(OutputError, match="already exists"):
        fetch.download(f"{server}/vgg11_small.pth", dest, expected_sha256=SMALL_SHA)
    fetch.download(f"{server}/vgg11_small.pth", dest, expected_sha256=SMALL_SHA, force=True, progress=False)


def test_hash_mismatch_leaves_nothing(server, tmp_path):
    with pytest.raises(ChecksumError) as e:
        fetch.download(f"{server}/vgg11_small.pth", tmp_path / "c.pth", expected_sha256="deadbeef", progress=False)
    msg = str(e.value)
    assert "\n" not in msg and SMALL_SHA in msg and "deadbeef" in msg
    assert list(tmp_path.iterdir()) == []


def test_http_errors_and_cut_connections(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch.download(f"{server}/nothing.pth", tmp_path / "c.pth", expected_sha256="0", progress=False)
    with pytest.raises(DownloadError, match="stopped after 1,000 of 1,500 bytes|failed after"):
        fetch.download(f"{server}/cut.pth", tmp_path / "c.pth", expected_sha256="0", progress=False)
    with pytest.raises(DownloadError):
        fetch.download("http://127.0.0.1:9/x.pth", tmp_path / "c.pth", expected_sha256="0", progress=False)
    with pytest.raises(InputError, match="http"):
        fetch.download("file:///etc/passwd", tmp_path / "c.pth", expected_sha256="0")
    assert list(tmp_path.iterdir()) == []


def test_unknown_name_and_existing_output(tmp_path, small_entry):
    with pytest.raises(UnknownNameError, match="did you mean 'vgg16'"):
        fetch.fetch("vgg-16", out=tmp_path / "x.npz")
    out = tmp_path / "x.npz"
    out.write_bytes(b"old")
    with pytest.raises(OutputError, match="already exists"):  # refused before any download
        fetch.fetch("vgg11_small", out=out, url="http://127.0.0.1:9/never")
    assert out.read_bytes() == b"old" and Handler.hits == []


def test_fetch_wrong_hash_from_a_mirror(server, tmp_path, small_entry, capsys, monkeypatch):
    # the hash is checked before torch is used
    monkeypatch.setattr("minicnn.models.convert.pytorch.import_torch", lambda: None)
    argv = ["fetch", "vgg11_wrong", "--url", f"{server}/vgg11_small.pth", "--out", str(tmp_path / "v.npz")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("minicnn: error:") and "00000000" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.torch
def test_fetch_downloads_and_converts(server, tmp_path, small_entry, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "v.npz"
    argv = ["fetch", "vgg11_small", "--url", f"{server}/vgg11_small.pth", "--out", str(out)]
    assert cli.main(argv) == 0
    assert capsys.readouterr().out.strip().endswith(f"wrote {out}")
    ckpt = tmp_path / f"vgg11_small-{SMALL_SHA[:8]}.pth"
    assert ckpt.read_bytes() == SMALL.read_bytes()
    model = minicnn.load(out)
    with np.load(FIXTURES / "vgg11_small_torch.npz") as z:
        x, logits = z["random64.x"], z["random64.logits"]
    assert np.abs(model.forward(x) - logits).max() < 1e-4 * np.abs(logits).max()
    assert model.meta["preprocessing"]["resize_shorter"] == 256
    assert model.meta["provenance"]["source_url"] == f"{server}/vgg11_small.pth"
    # again: refused without --force; with --force the verified download is fetched anew
    assert cli.main(argv) == 2
    assert cli.main(argv + ["--force"]) == 0
    assert Handler.hits.count("/vgg11_small.pth") == 2


@pytest.mark.torch
def test_fetch_local_checkpoint(tmp_path, small_entry):
    pytest.importorskip("torch")
    out = fetch.fetch("vgg11_small", checkpoint=SMALL, out=tmp_path / "v.npz", progress=False)
    assert minicnn.load(out).meta["provenance"]["source_sha256"] == SMALL_SHA
    with pytest.raises(ChecksumError):
        fetch.fetch("vgg11_wrong", checkpoint=SMALL, out=tmp_path / "w.npz")
    with pytest.raises(InputError, match="not found"):
        fetch.fetch("vgg11_small", checkpoint=tmp_path / "absent.pth", out=tmp_path / "w.npz")
    assert not (tmp_path / "w.npz").exists()


@pytest.mark.torch
def test_already_downloaded_checkpoint_is_reused_only_if_verified(tmp_path, small_entry, capsys):
    pytest.importorskip("torch")
    ckpt = tmp_path / f"vgg11_small-{SMALL_SHA[:8]}.pth"
    ckpt.write_bytes(SMALL.read_bytes())
    fetch.fetch("vgg11_small", out=tmp_path / "v.npz", url="http://127.0.0.1:9/never", progress=False)
    assert "already downloaded" in capsys.readouterr().out
    ckpt.write_bytes(b"damaged")
    with pytest.raises(ChecksumError, match="force=True") as info:            # the API speaks of force=True
        fetch.fetch("vgg11_small", out=tmp_path / "w.npz", url="http://127.0.0.1:9/never")
    assert "--force" in info.value.cli_message                                   # the command line of --force

"""`minicnn serve` on the command line, and a short version of the load test (loopback only, bounded)."""

import argparse
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from types import SimpleNamespace

import pytest
from server_helpers import explain, running, store  # noqa: F401

from minicnn.commands import options
from minicnn.commands import serve as serve_cmd
from minicnn.commands.cli import main
from minicnn.inputs.samples import sample_images


def test_serve_prints_its_address_first_serves_and_stops_cleanly_on_ctrl_c(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "minicnn.commands.cli", "serve", "--port", "0", "--quiet"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        m = re.fullmatch(r"minicnn serving on (http://127\.0\.0\.1:(\d+)/)\n", first)
        assert m, first
        with urllib.request.urlopen(m.group(1) + "api/models", timeout=60) as r:
            assert r.status == 200 and json.load(r)["models"]
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0 and out == "" and err.strip().splitlines()[-1] == "minicnn: stopped"


def test_a_port_in_use_is_one_line_and_status_2(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main(["serve", "--port", str(taken.getsockname()[1])]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1
    assert err.startswith("minicnn: error: cannot listen on 127.0.0.1:") and "--port 0" in err


def test_open_starts_a_browser_and_a_public_address_warns(monkeypatch, capsys, store):
    opened, served = [], []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url))

    def fake_make_server(host, port, **kw):
        fake = SimpleNamespace(url=f"http://{host}:{port}/", store=store, served=served)
        return fake

    monkeypatch.setattr("minicnn.server.make_server", fake_make_server)
    monkeypatch.setattr(serve_cmd, "serve_until_stopped", lambda server: served.append(server.url) or 0)
    args = SimpleNamespace(host="0.0.0.0", port=8123, open=True, max_upload=100, workers=1, quiet=True)
    assert serve_cmd.run(args) == 0
    for _ in range(100):
        if opened:
            break
        time.sleep(0.05)
    out, err = capsys.readouterr()
    assert out == "minicnn serving on http://0.0.0.0:8123/\n" and served == ["http://0.0.0.0:8123/"]
    assert opened == ["http://127.0.0.1:8123/"]
    assert err.startswith("minicnn: warning: bound to 0.0.0.0, not a loopback address")
    args.host, args.open = "127.0.0.1", False
    assert serve_cmd.run(args) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("text, size", [("10485760", 10485760), ("10MiB", 10485760), ("512k", 512000),
                                        ("1.5 KiB", 1536), ("2MB", 2000000)])
def test_byte_sizes(text, size):
    assert options.byte_size(text) == size


@pytest.mark.parametrize("text", ["", "ten", "-5", "10 parsecs", "0"])
def test_bad_byte_sizes(text):
    with pytest.raises(argparse.ArgumentTypeError):
        options.byte_size(text)


def test_twenty_clients_at_once_get_only_200s_and_the_same_maps(store):
    """The load test of benchmarks/serve_load.py, bounded: 20 clients, one request each, at most 3 minutes."""
    image = sample_images("cat")[18][0].read_bytes()
    query = "model=vgg_cifar10&target=cat"
    with running(store) as server:
        status, reference = explain(server, image, query)
        assert status == 200
        results, errors = [], []

        def client():
            try:
                results.append(explain(server, image, query, timeout=120))
            except Exception as e:  # reported in the test's thread
                errors.append(e)

        threads = [threading.Thread(target=client, daemon=True) for _ in range(20)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=max(1.0, 180 - (time.monotonic() - started)))
    assert not errors and len(results) == 20
    for status, body in results:
        assert status == 200
        assert body["maps"]["gradcam"]["data"] == reference["maps"]["gradcam"]["data"]
        assert body["predictions"] == reference["predictions"]


def exit_status(argv) -> int:
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


def test_help_states_the_servers_limits(capsys):
    assert exit_status(["serve", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for words in ("--max-pixels", "16000000, below the 64000000 of `minicnn explain`", "--deadline",
                  "--read-timeout", "--max-connections"):
        assert words in text


def test_serve_passes_its_limits_to_the_server(monkeypatch, store):
    seen = {}

    def fake_make_server(host, port, **kw):
        seen.update(kw)
        return SimpleNamespace(url=f"http://{host}:{port}/", store=store)

    monkeypatch.setattr("minicnn.server.make_server", fake_make_server)
    monkeypatch.setattr(serve_cmd, "serve_until_stopped", lambda server: 0)
    assert main(["serve", "--quiet", "--max-pixels", "1000", "--deadline", "2.5", "--read-timeout", "0.5",
                 "--max-connections", "3"]) == 0
    assert (seen["max_pixels"], seen["deadline"], seen["read_timeout"], seen["max_connections"]) == (1000, 2.5, 0.5, 3)


@pytest.mark.parametrize("flag, value", [("--deadline", "0"), ("--deadline", "inf"), ("--read-timeout", "-1"),
                                         ("--read-timeout", "nan"), ("--max-connections", "0"),
                                         ("--max-pixels", "-5")])
def test_bad_limits_are_one_line_and_status_2(capsys, flag, value):
    assert exit_status(["serve", flag, value]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and flag in err


@pytest.mark.parametrize("kw", [{"deadline": 0}, {"read_timeout": float("nan")}, {"max_connections": 0},
                                {"max_pixels": True}, {"deadline": "5"}])
def test_make_server_refuses_bad_limits(store, kw):
    from minicnn.errors import InputError
    from minicnn.server import make_server
    with pytest.raises(InputError):
        make_server("127.0.0.1", 0, store=store, **kw)

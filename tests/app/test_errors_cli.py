"""The command line itself: the installed command (``python -m minicnn.commands.cli``, in a subprocess) exits 2
with one line, a reader that leaves early gets no traceback, argument mistakes are one line, and notes never
join an error line. Bad input by category is in tests/app/test_errors_*.py.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from refusals import (
    CAT,
    REPO,
    run_cli,
    tiny_weights,  # noqa: F401  (fixtures)
)

from minicnn.commands import cli
from minicnn.commands import explain as explain_cli


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

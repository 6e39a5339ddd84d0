"""The command line speaks of itself (--force), the API of itself (force=True); hints name the next step."""

import webbrowser

import pytest

import minicnn
from minicnn.commands import cli
from minicnn.errors import OutputError, UnknownNameError, WeightsError
from minicnn.inputs.samples import sample_images
from minicnn.util import atomic


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_an_existing_output_is_refused_in_each_front_ends_words(tmp_path, capsys):
    path = tmp_path / "model.npz"
    path.write_bytes(b"keep me")
    with pytest.raises(OutputError) as info:                          # the API
        with atomic.atomic_output(path) as f:
            f.write(b"new")
    assert str(info.value) == f"{path} already exists; pass force=True to overwrite it"
    figure = tmp_path / "fig.png"
    figure.write_bytes(b"keep me too")
    code, _, err = run(capsys, "explain", sample_images("cat")[0][0], "--out", figure)
    assert code == 2 and err == f"minicnn: error: {figure} already exists; pass --force to overwrite it\n"
    assert path.read_bytes() == b"keep me" and figure.read_bytes() == b"keep me too"


def test_an_output_on_an_input_is_refused_in_each_front_ends_words(tmp_path, capsys):
    from minicnn.commands.explain import declare_outputs
    image = tmp_path / "photo.png"
    image.write_bytes(b"not read")
    with pytest.raises(OutputError, match="not even with force=True: choose another name"):
        declare_outputs(image, "vgg_cifar10", out=image, force=True)
    code, _, err = run(capsys, "explain", image, "--out", image, "--force")
    assert code == 2 and "not even with --force: choose another name" in err and "force=True" not in err


def test_the_help_epilog_names_every_command_that_takes_force():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.choices and "explain" in a.choices)
    takes = {name for name, p in sub.choices.items() if any("--force" in a.option_strings for a in p._actions)}
    assert {"explain", "convert", "fetch", "demo", "bench", "sanity", "scorecard"} <= takes
    listed = parser.epilog.split("(")[1].split(")")[0].split(", ")
    assert set(listed) == takes


@pytest.mark.parametrize("model, words, error", [
    ("vgg16.npz", "weights file not found: vgg16.npz; `minicnn fetch vgg16` downloads and converts it", WeightsError),
    ("nets/vgg19_bn.npz", "`minicnn fetch vgg19_bn --out nets/vgg19_bn.npz` downloads", WeightsError),
    ("vgg16", "unknown model 'vgg16' (not shipped); `minicnn fetch vgg16` downloads and converts it (needs PyTorch); "
              "then --model vgg16.npz", UnknownNameError),
])
def test_a_missing_official_model_names_the_fetch_command(capsys, tmp_path, monkeypatch, model, words, error):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "layers", "--model", model)
    assert code == 2 and words in err and err.count("\n") == 1
    with pytest.raises(error, match=r"minicnn\.models\.fetch\.fetch\('vgg") as info:
        minicnn.load(model)
    assert "`minicnn fetch" not in str(info.value)
    code, _, err = run(capsys, "layers", "--model", "resnet50.npz")
    assert code == 2 and err == "minicnn: error: weights file not found: resnet50.npz\n"


def test_serve_open_says_so_when_there_is_no_browser(monkeypatch):
    from minicnn.commands.serve import open_page
    lines = []
    monkeypatch.setattr(webbrowser, "open", lambda url: False)
    assert open_page("http://127.0.0.1:8000/", lines.append) is False
    assert lines == ["minicnn: note: --open found no web browser on this machine; open http://127.0.0.1:8000/ in "
                     "one yourself"]

    def broken(url):
        raise webbrowser.Error("could not locate runnable browser")
    monkeypatch.setattr(webbrowser, "open", broken)
    assert open_page("http://127.0.0.1:1/", lines.append) is False and len(lines) == 2
    monkeypatch.setattr(webbrowser, "open", lambda url: True)
    assert open_page("http://127.0.0.1:1/", lines.append) is True and len(lines) == 2

"""``minicnn visualize`` and ``minicnn attack`` as a user types them, and their one-line refusals."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from minicnn.commands import cli

CAT = str(Path(__file__).resolve().parents[2] / "minicnn" / "data" / "cifar10" / "test" / "cat" / "0000.jpg")


def test_visualize_a_class_writes_a_reproducible_png_at_the_input_size(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["visualize", "--model", "vgg_cifar10", "--class", "cat", "--steps", "8"]) == 0
    out = capsys.readouterr().out
    assert "class 3 (cat)" in out and "vgg_cifar10.class-cat.png" in out
    first = np.asarray(Image.open("vgg_cifar10.class-cat.png"))
    assert first.shape == (32, 32, 3)
    assert cli.main(["visualize", "--model", "vgg_cifar10", "--class", "3", "--steps", "8", "--out", "again.png"]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open("again.png")), first)     # the same seed, the same image
    before, after = (float(v) for v in capsys.readouterr().out.split("objective: ")[2].split(" on")[0]
                     .split(" at the first step -> "))
    assert after > before


def test_visualize_a_channel_with_the_pixel_route(tmp_path, capsys):
    out = tmp_path / "ch.png"
    assert cli.main(["visualize", "--model", "resnet20_cifar10", "--layer", "layer2", "--channel", "5", "--unit",
                     "--param", "pixel", "--steps", "4", "--seed", "2", "--out", str(out)]) == 0
    assert "layer2 channel 5 unit centre" in capsys.readouterr().out
    assert np.asarray(Image.open(out)).shape == (32, 32, 3)


def test_attack_prints_before_and_after_and_writes_the_png_and_arrays(tmp_path, capsys):
    out, save = tmp_path / "adv.png", tmp_path / "adv.npz"
    argv = ["attack", CAT, "--model", "resnet20_cifar10", "--epsilon", "8/255", "--out", str(out), "--save", str(save)]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert "before: cat" in text and "after:" in text and "fooled: yes" in text
    with np.load(save) as f:
        assert f["adversarial"].shape == (1, 3, 32, 32) and f["target"][0] == -1
        assert np.abs(f["adversarial"] - f["pixels"]).max() <= 8 / 255 + 1e-6
        png = np.asarray(Image.open(out)).astype(np.float64) / 255
        np.testing.assert_allclose(png, f["adversarial"][0].transpose(1, 2, 0), atol=0.5 / 255 + 1e-6)
    assert cli.main(argv) == 2                                             # the overwrite rule
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--force" in err
    assert cli.main([*argv, "--force", "--method", "pgd", "--steps", "3", "--target", "dog"]) == 0
    assert "after:  dog" in capsys.readouterr().out


@pytest.mark.parametrize("argv, words", [
    (["visualize", "--class", "cat", "--layer", "features.0", "--channel", "1"], "either --class"),
    (["visualize"], "either --class"),
    (["visualize", "--layer", "features.0"], "needs --channel"),
    (["visualize", "--class", "cat", "--channel", "2"], "go with --layer"),
    (["visualize", "--class", "kangaroo"], "kangaroo"),
    (["visualize", "--class", "12"], "out of range"),
    (["visualize", "--layer", "features.99", "--channel", "0"], "features.99"),
    (["visualize", "--layer", "features.0", "--channel", "999", "--steps", "1"], "channels"),
    (["visualize", "--class", "cat", "--steps", "100000"], "steps"),
    (["visualize", "--class", "cat", "--steps", "0"], "positive integer"),
    (["visualize", "--class", "cat", "--param", "wavelet"], "invalid choice"),
    (["visualize", "--class", "cat", "--out", "x.jpg"], "lossless PNG"),
    (["attack", CAT, "--epsilon", "8/0"], "epsilon"),
    (["attack", CAT, "--epsilon", "2"], "epsilon"),
    (["attack", CAT, "--method", "cw"], "invalid choice"),
    (["attack", CAT, "--steps", "5000", "--method", "pgd"], "at most 1000"),
    (["attack", CAT, "--target", "unicorn"], "unicorn"),
    (["attack", CAT, "--out", "adv.jpg"], "lossless PNG"),
    (["attack", CAT, "--save", "adv.txt"], ".npz"),
    (["attack", "missing.png"], "missing.png"),
    (["attack", CAT, "--out", CAT.replace(".jpg", ".png").replace("0000", "nope") + "/x.png"], "x.png"),
])
def test_refusals_are_one_line_exit_2_and_write_nothing(argv, words, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("minicnn: error:") and words in err, err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []

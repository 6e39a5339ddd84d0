"""Image sizes as people read them: width first, the resize rule in words, a note far from the training size."""

import numpy as np
import pytest

from minicnn import load
from minicnn.commands import cli
from minicnn.inputs.preprocess import (
    FAR_FROM_TRAINING,
    InputSizeWarning,
    how_resized,
    preprocess,
    size_text,
    training_size_note,
)
from minicnn.inputs.samples import data_path

CIFAR_EXACT = {"mean": [0.5] * 3, "std": [0.25] * 3, "resize": "exact", "size": [32, 32]}
CIFAR_SHORTER = {**CIFAR_EXACT, "resize": "shorter", "resize_shorter": 32}
IMAGENET_CROP = {**CIFAR_EXACT, "resize": "shorter_then_center_crop", "size": [224, 224], "resize_shorter": 256}


def test_sizes_name_their_sides_width_first():
    assert size_text((300, 451)) == "451 wide x 300 high"
    assert size_text((300, 451, 3)) == "451 wide x 300 high"          # an image's shape
    assert size_text(np.zeros((1, 3, 32, 48)).shape[2:]) == "48 wide x 32 high"


@pytest.mark.parametrize("prep, hw, words", [
    (CIFAR_EXACT, (300, 451), "squashed: aspect ratio not kept"),
    (CIFAR_EXACT, (64, 64), "resized, aspect ratio kept"),
    (CIFAR_EXACT, (32, 32), "not resized"),
    (CIFAR_SHORTER, (300, 451), "shorter side to 32, aspect ratio kept"),
    (CIFAR_SHORTER, (32, 64), "not resized"),
    (IMAGENET_CROP, (300, 451), "shorter side to 256, aspect ratio kept, then the central crop"),
    ({**CIFAR_EXACT, "resize": "none"}, (5, 7), "not resized"),
])
def test_how_resized_says_what_preprocess_does(prep, hw, words):
    assert how_resized(hw, prep) == words
    x = preprocess(np.zeros((*hw, 3), np.uint8), prep)
    if words == "not resized":
        assert x.shape[2:] == hw
    if "aspect ratio kept" in words and "crop" not in words:
        assert abs(x.shape[3] / x.shape[2] - hw[1] / hw[0]) < 0.05


def test_the_note_appears_only_far_from_the_training_size():
    assert FAR_FROM_TRAINING == 1.5
    assert training_size_note((32, 48), CIFAR_SHORTER) is None         # a 3:2 photo: 1.5 exactly, not far
    assert training_size_note((32, 32), CIFAR_EXACT) is None
    note = training_size_note((32, 56), CIFAR_SHORTER, "resnet20_cifar10")   # a 16:9 photo
    assert note.startswith("the network input is 56 wide x 32 high, far from the 32 wide x 32 high images "
                           "resnet20_cifar10 was trained on (a side 1.8x off)")
    assert "\n" not in note
    assert training_size_note((16, 16), CIFAR_SHORTER) is not None     # smaller counts too (2x off)


def test_explain_prints_both_sizes_and_a_note_for_the_wide_cat_dog_image(tmp_path, capsys):
    from PIL import Image

    from minicnn.explain import cat_dog_image
    path = tmp_path / "catdog.png"
    Image.fromarray(cat_dog_image()).save(path)
    assert cli.main(["explain", str(path), "--model", "resnet20_cifar10", "--out", str(tmp_path / "f.png")]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == ("model: resnet20_cifar10  image: 64 wide x 32 high -> network input: "
                                   "64 wide x 32 high (not resized)")
    assert err.strip().splitlines() == [
        "minicnn: note: the network input is 64 wide x 32 high, far from the 32 wide x 32 high images "
        "resnet20_cifar10 was trained on (a side 2.0x off): it never saw inputs of this size; read its classes "
        "and maps with care"]
    assert cli.main(["explain", str(data_path("images", "chelsea.png")), "--out", str(tmp_path / "g.png")]) == 0
    out, err = capsys.readouterr()
    assert "image: 451 wide x 300 high -> network input: 32 wide x 32 high (squashed: aspect ratio not kept)" in out
    assert "note" not in err


def test_the_size_note_is_a_warning_category_of_its_own():
    assert issubclass(InputSizeWarning, UserWarning)
    assert load("vgg_cifar10").meta["preprocessing"]["resize"] == "exact"     # the README's "squashes"
    assert load("resnet20_cifar10").meta["preprocessing"]["resize"] == "shorter"   # "keeps the aspect ratio"

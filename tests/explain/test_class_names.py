"""Naming a class: ImageNet labels are synonym lists ("tabby, tabby cat"); any synonym, or its beginning, names it.

Target resolution needs only the labels, so most tests give ``class_index`` an object with the shipped
MobileNetV2's 1001 labels (or minicnn/data/imagenet_classes.txt's 1000) and run no network.
"""

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from test_explain_helpers import shipped, small_cnn

from minicnn import explain
from minicnn.commands.cli import main
from minicnn.errors import InputError, UnknownNameError
from minicnn.explain.target import class_index, short_name, synonyms
from minicnn.inputs import datasets
from minicnn.models import weights


@pytest.fixture(scope="module")
def mobilenet_labels():
    """The shipped MobileNetV2's labels: 'background', then ImageNet's 1000 as WordNet synonym lists."""
    return SimpleNamespace(classes=list(shipped("mobilenet_v2").classes))


@pytest.fixture(scope="module")
def imagenet_file_labels():
    """minicnn/data/imagenet_classes.txt: one name per class (torchvision's), 'crane' twice."""
    return SimpleNamespace(classes=datasets.class_names("imagenet"))


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_synonyms_and_the_short_name():
    assert synonyms("Boston bull, Boston terrier") == ["Boston bull", "Boston terrier"]
    assert synonyms("cat") == ["cat"] and short_name("tabby, tabby cat") == "tabby"


@pytest.mark.parametrize("name, index", [
    ("Boston bull", 196),                  # the first synonym (suggested 'stone wall' before)
    ("Boston terrier", 196),               # a later one
    ("boston BULL", 196),                  # any case
    ("tabby", 282), ("Tabby Cat", 282),    # ('tabby' suggested 'tray' before)
    ("Boston", 196),                       # the beginning of one class's synonyms only
    ("dragonf", 320),                      # dragonfly, darning needle, ... ("drag": Komodo dragon too)
    ("tabby, tabby cat", 282),             # the whole label
    ("282", 282), (282, 282),              # an index
    ("background", 0),
])
def test_a_class_is_named_by_any_synonym_in_any_case_or_a_unique_beginning(mobilenet_labels, name, index):
    assert class_index(mobilenet_labels, name) == index


def test_a_name_shared_by_classes_names_them_all_with_their_indices(mobilenet_labels, imagenet_file_labels):
    for labels in (mobilenet_labels, imagenet_file_labels):
        with pytest.raises(InputError) as info:
            class_index(labels, "crane")                      # the bird and the machine
        k = labels.classes.index("crane")
        assert str(info.value) == (f"class name 'crane' is shared by 2 classes: {k} 'crane', {k + 383} 'crane'; "
                                   "give the index")
    with pytest.raises(InputError, match=r"shared by 2 classes: 388 'lesser panda' \(as 'panda'\), "
                                         r"389 'giant panda' \(as 'panda'\)"):
        class_index(mobilenet_labels, "panda")


def test_an_ambiguous_beginning_is_one_line_naming_the_candidates(mobilenet_labels):
    with pytest.raises(InputError) as info:
        class_index(mobilenet_labels, "cat")
    message = str(info.value)
    assert "\n" not in message and message.startswith("'cat' begins the names of 5 classes: ")
    assert "287 'cougar' (as 'catamount')" in message and "485 'catamaran'" in message
    assert message.endswith("type more of the name, or give the index")
    with pytest.raises(InputError, match=r"begins the names of \d+ classes: .*, \.\.\.; type more"):
        class_index(mobilenet_labels, "s")                     # many: the first 8, then "..."
    assert len(str(pytest.raises(InputError, class_index, mobilenet_labels, "s").value)) < 400


@pytest.mark.parametrize("name, suggestion", [
    ("tabyy", "tabby"), ("Bostn bull", "Boston bull"), ("dragonfli", "dragonfly"), ("gold fish", "goldfish"),
])
def test_an_unknown_name_suggests_the_closest_synonym(mobilenet_labels, name, suggestion):
    with pytest.raises(UnknownNameError) as info:
        class_index(mobilenet_labels, name)
    message = str(info.value)
    assert message.startswith(f"unknown class {name!r}; did you mean {suggestion!r}? the model has 1001 classes")
    assert "\n" not in message and len(message) < 250          # no 1001 comma-ridden labels inline


def test_labels_without_synonyms_keep_their_message_and_accept_prefixes():
    cifar = SimpleNamespace(classes=datasets.class_names("cifar10"))
    assert class_index(cifar, "do") == 5 and class_index(cifar, "CAT") == 3 and class_index(cifar, "3") == 3
    with pytest.raises(UnknownNameError, match=r"^unknown class 'doge'; did you mean 'dog'\? valid classes: airplane"):
        class_index(cifar, "doge")
    with pytest.raises(InputError, match="'a' begins the names of 2 classes: 0 'airplane', 1 'automobile'"):
        class_index(cifar, "a")
    with pytest.raises(InputError, match="a target class name is empty"):
        class_index(cifar, " ")
    with pytest.raises(InputError, match="out of range; this model has classes 0..9"):
        class_index(cifar, "10")


def test_the_api_targets_resolve_synonyms_too(rng):
    model = small_cnn(0, dtype=np.float32, classes=3)
    model.meta["classes"] = ["tench, Tinca tinca", "tabby, tabby cat", "tiger cat"]
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    assert model.classes[1] == "tabby, tabby cat"
    assert explain.gradcam(model, x, target="Tabby Cat").targets.tolist() == [1, 1]
    assert explain.saliency(model, x, target=["tig", "tinca tinca"]).targets.tolist() == [2, 0]
    with pytest.raises(InputError, match="'t' begins the names of 3 classes"):
        explain.gradcam(model, x, target="t")


def test_minicnn_classes_prints_one_class_a_line_with_its_index(capsys):
    code, out, err = run(capsys, "classes", "--model", "mobilenet_v2")
    lines = out.splitlines()
    assert code == 0 and err == "" and len(lines) == 1001
    assert lines[0] == "   0  background" and lines[282] == " 282  tabby, tabby cat"
    code, out, _ = run(capsys, "classes")
    assert code == 0 and out.splitlines()[:2] == ["0  airplane", "1  automobile"]


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("photo") / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize("target, message", [
    ("tabyy", "unknown class 'tabyy'; did you mean 'tabby'? the model has 1001 classes, each named by any of its "
              "comma-separated synonyms or an unambiguous beginning of one; `minicnn classes --model mobilenet_v2` "
              "lists them, one a line with its index"),
    ("stone wal", None),                                       # a beginning: accepted (826 'stone wall')
    ("cat", "'cat' begins the names of 5 classes: 287 'cougar' (as 'catamount'), 288 'lynx' (as 'catamount')"),
])
def test_the_command_line_refuses_a_wrong_target_in_one_line_before_any_pass(capsys, tmp_path, photo, target,
                                                                           message, monkeypatch):
    from minicnn.commands import explain as command
    from minicnn.errors import MinicnnError
    passes = []

    def stub(model, x, method, target, *rest, **options):
        passes.append(target)
        raise MinicnnError("stopped before the network's passes")
    monkeypatch.setattr(command, "compute", stub)
    code, out, err = run(capsys, "explain", photo, "--model", "mobilenet_v2", "--target", target,
                         "--out", tmp_path / "f.png")
    if message is None:                                        # resolved, then stopped at the (stubbed) passes
        assert passes == [826] and err == "minicnn: error: stopped before the network's passes\n"
        return
    assert passes == []
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("minicnn: error: " + message)


def test_explain_on_mobilenet_takes_a_synonym_and_prints_first_synonyms(capsys, tmp_path, photo):
    code, out, err = run(capsys, "explain", photo, "--model", "mobilenet_v2", "--target", "boston bull",
                         "--out", tmp_path / "f.png")
    assert code == 0, err
    assert "target: 196 'Boston bull' (given), p=" in out
    table = [line for line in out.splitlines() if line.startswith("  ") and "p=" in line]
    assert len(table) == 5 and all("," not in line and len(line) < 60 for line in table)


def test_a_weights_file_with_synonyms_keeps_the_whole_label_in_its_maps(tmp_path, capsys, photo, rng):
    model = small_cnn(0, dtype=np.float32, classes=3)
    model.meta["classes"] = ["tench, Tinca tinca", "tabby, tabby cat", "tiger cat"]
    model.meta["preprocessing"] = {"mean": [0.5] * 3, "std": [0.25] * 3, "resize": "exact", "size": [8, 8]}
    path = weights.save(model, tmp_path / "small.npz")
    code, out, err = run(capsys, "explain", photo, "--model", path, "--target", "TABBY CAT", "--out",
                         tmp_path / "f.png", "--save", tmp_path / "m.npz")
    assert code == 0, err
    assert "target: 1 'tabby' (given)" in out
    with np.load(tmp_path / "m.npz") as f:
        assert str(f["target_name"]) == "tabby, tabby cat"     # the saved maps keep the whole label

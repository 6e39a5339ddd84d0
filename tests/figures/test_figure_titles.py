"""Titles say what a figure shows (class by its first synonym, p and y, the options given) and stay readable.

A figure's pixel size is bounded whatever the class names: ImageNet's longest label (121 characters,
the dragonfly's eight synonyms) once made a 5712x3377 figure of unreadable text.
"""

import numpy as np
import pytest
from test_explain_helpers import shipped, small_cnn

from minicnn import explain, figures
from minicnn.commands.explain import explanation_figure
from minicnn.explain import registry
from minicnn.explain.target import Explanation
from minicnn.inputs import datasets

DPI = 120                                              # save_figure's


@pytest.fixture(scope="module")
def longest_label():
    labels = list(shipped("mobilenet_v2").classes) + datasets.class_names("imagenet")
    return max(labels, key=len)


def fake(method, classes, rng, *, layer="features.16.conv.2", shape=(1, 7, 7)):
    """An Explanation of ``method`` for class 0 with logits (2, 0, ...): p = e^2 / (e^2 + K - 1)."""
    logits = np.zeros((1, len(classes)), np.float32)
    logits[0, 0] = 2.0
    return Explanation(method=method, map=rng.random(shape).astype(np.float32), targets=np.array([0]),
                       scores=np.array([2.0], np.float32), logits=logits, layer=layer, classes=classes)


def pixels(fig):
    w, h = fig.get_size_inches() * DPI
    return int(w), int(h)


def titles(fig):
    return [ax.get_title() for ax in fig.axes if ax.get_title()]


def test_an_explain_figure_is_bounded_with_the_longest_imagenet_name(rng, longest_label):
    assert len(longest_label) > 110 and longest_label.startswith("dragonfly, ")
    classes = [longest_label, "tench, Tinca tinca"]
    methods = ["gradcam", "gradcam-plus-plus", "layercam", "scorecam", "eigencam", "xgradcam", "hirescam"]
    results = {m: fake(m, classes, rng) for m in methods}
    picture = rng.random((224, 224, 3))
    fig = explanation_figure(results, picture, SimpleModel("mobilenet_v2"), "dragonfly.jpg: 4000 wide x 3000 high")
    w, h = pixels(fig)
    assert w <= 2000 and h <= 1600, (w, h)             # 5712x3377 with the whole label in every title
    for title in titles(fig) + [fig.get_suptitle()]:
        assert "darning needle" not in title           # the first synonym only
        assert all(len(line) <= 120 for line in title.splitlines())
    assert all(len(line) <= figures.TITLE_CHARS for t in titles(fig) for line in t.splitlines())
    assert "'dragonfly'" in fig.get_suptitle() and all("'dragonfly'" in t for t in titles(fig)[1:])


def test_a_panel_title_is_wrapped_whatever_its_length(rng, longest_label):
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    panel = figures.Panel("heat", rng.random((4, 4)), longest_label, image=image, label="x")
    fig = figures.grid_figure([[panel] * 4], row_labels=[longest_label], title=longest_label * 2)
    w, h = pixels(fig)
    assert w <= 2000 and h <= 1200, (w, h)
    assert all(len(line) <= figures.TITLE_CHARS for t in titles(fig) for line in t.splitlines())
    assert fig.axes[0].get_ylabel().count("\n") >= 4   # the row label, wrapped too
    assert fig.get_suptitle().replace("\n", " ").count("dragonfly") == 2


def test_the_gallery_names_classes_by_their_first_synonym(rng, longest_label):
    from minicnn.figures.gallery import gallery_figure
    model = small_cnn(0, dtype=np.float32, classes=3)
    model.meta["classes"] = [longest_label, "tabby, tabby cat", "tiger cat"]
    model.meta["preprocessing"] = {"mean": [0.5] * 3, "std": [0.25] * 3, "resize": "exact", "size": [8, 8]}
    image = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    fig = gallery_figure(model, image, [0, 1], ["gradcam", "saliency"])
    w, h = pixels(fig)
    assert w <= 1400 and h <= 1400, (w, h)
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert labels == ["'dragonfly'", "'tabby'"]
    assert not any("tabby cat" in t or "darning" in t for t in titles(fig))


class SimpleModel:
    def __init__(self, name):
        self.name = name


def test_explain_titles_show_p_and_the_options_that_change_a_map(rng):
    classes = ["tabby, tabby cat", "b", "c"]
    results = {m: fake(m, classes, rng, layer=None, shape=(1, 3, 8, 8))
               for m in ("integrated-gradients", "smoothgrad", "saliency")}
    results["scorecam"] = fake("scorecam", classes, rng, layer="features.4", shape=(1, 4, 4))
    options = {"steps": 256, "baseline": "blur", "quadrature": None, "base": "input-x-gradient", "samples": 4,
               "batch_size": 8, "epsilon": 0.5}
    fig = explanation_figure(results, rng.random((8, 8, 3)), SimpleModel("small"), "x.png", options)
    by_method = dict(zip(["image", *results], titles(fig)))
    p = np.exp(2.0) / (np.exp(2.0) + 2)                 # softmax of (2, 0, 0) at class 0: 0.79
    for method, title in list(by_method.items())[1:]:
        assert title.splitlines()[0] == f"{registry.get(method).title}: 'tabby'", title
        assert title.splitlines()[1].startswith(f"p={p:.2f}, y=2.00 · small"), title
    assert by_method["integrated-gradients"].splitlines()[-1] == "steps=256, baseline=blur"
    assert by_method["smoothgrad"].splitlines()[-1] == "base=input-x-gradient, samples=4"
    assert "batch_size" not in by_method["scorecam"] and "epsilon" not in by_method["saliency"]
    assert by_method["saliency"].count("\n") == 1
    assert by_method["scorecam"].splitlines()[1].endswith(" · small · features.4")
    assert fig.get_suptitle() == f"small: explaining 'tabby' (class 0, p={p:.2f}, y=2.00)"


def test_settings_text_leaves_out_what_only_changes_the_cost():
    assert registry.settings_text("scorecam", {"batch_size": 8, "variant": "pytorch-grad-cam"}) == \
        "variant=pytorch-grad-cam"
    assert registry.settings_text("gradcam", {"steps": 3}) == ""
    assert registry.settings_text("lrp-epsilon-gamma-box", {"epsilon": 0.01, "gamma": None}) == "epsilon=0.01"


def test_a_tiny_probability_keeps_two_significant_digits():
    assert figures.probability_text(0.802) == "0.80" and figures.probability_text(8.4e-7) == "8.4e-07"
    assert figures.probability_text(0.0) == "0.00"


def test_explain_prints_the_layer_shape_when_score_cam_runs_alone(tmp_path, capsys, rng):
    from PIL import Image

    from minicnn.commands.cli import main
    from minicnn.models import weights
    model = small_cnn(0, dtype=np.float32)
    model.meta["preprocessing"] = {"mean": [0.5] * 3, "std": [0.25] * 3, "resize": "exact", "size": [8, 8]}
    path = weights.save(model, tmp_path / "small.npz")
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp_path / "x.png")
    for method in ("scorecam", "ablationcam,scorecam"):
        code = main(["explain", str(tmp_path / "x.png"), "--model", str(path), "--method", method,
                     "--out", str(tmp_path / "f.png"), "--force"])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert "layer: features (5x4x4)" in out and "(?)" not in out     # its outermost name
    assert explain.scorecam(model, rng.standard_normal((1, 3, 8, 8)).astype(np.float32)).layer == "features"

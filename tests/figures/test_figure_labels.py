"""Every colour bar says what its numbers are; every figure's caption says what y, p and the colours mean."""

import numpy as np
from test_explain_helpers import small_cnn

from minicnn import figures
from minicnn.explain import registry


def colour_bars(fig):
    return [ax._colorbar for ax in fig.axes if getattr(ax, "_colorbar", None) is not None]


def caption(fig):
    return "\n".join(t.get_text() for ax in fig.axes for t in ax.texts)


def test_every_method_in_an_explain_figure_has_a_labelled_bar_or_a_caption(rng):
    from minicnn.commands.explain import explanation_figure
    from minicnn.explain.run import compute
    model = small_cnn(0, dtype=np.float32)
    model.meta["preprocessing"] = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}  # LRP's z^B box bounds
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    results = compute(model, x, "all", log=lambda _: None, options={"batch_size": 8})
    assert set(results) == set(registry.names("all"))
    picture = rng.random((8, 8, 3))
    fig = explanation_figure(results, picture, model, "x.png: 8 wide x 8 high")
    bars = colour_bars(fig)
    shown = [m for m in results.values() if registry.get(m.method).display != "gradient"]
    assert len(bars) == len(shown) and all(bar.ax.get_xlabel() for bar in bars)
    assert sorted(bar.ax.get_xlabel() for bar in bars) == sorted(registry.get(r.method).value for r in shown)
    text = caption(fig)
    assert figures.Y_AND_P in text
    for m in results:                                  # the colours of every method without a bar are explained
        row = registry.get(m)
        if row.display in ("gradient", "signed") or row.caption:
            assert (row.caption or figures.DISPLAY_CAPTIONS[row.display]).split(":")[0] in text, m
    assert "red: covering it lowers y" in text and "evidence against the class" in text


def test_every_display_without_a_method_caption_has_one():
    for m in registry.METHODS.values():
        assert m.caption or m.display in figures.DISPLAY_CAPTIONS or m.display == "magnitude", (
            f"{m.name}: say what its colours mean, in its registry row's caption or in a line for display "
            f"{m.display!r} in minicnn.figures.DISPLAY_CAPTIONS")


def test_captions_are_wrapped_to_the_figure_and_printed_once(rng):
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    long = "a caption line " * 20
    rows = [[figures.Panel("heat", rng.random((4, 4)), "a", image=image, label="x", notes=(long, "short"))] * 3]
    fig = figures.grid_figure(rows)
    lines = caption(fig).splitlines()
    assert lines.count("short") == 1 and len(lines) > 2
    width_chars = fig.get_figwidth() * 72 / (0.55 * 9)
    assert all(len(line) <= width_chars for line in lines)
    assert not caption(figures.grid_figure([[figures.Panel("image", image, "plain")]]))   # no notes, no caption


def test_the_demo_names_its_images_and_its_sizes():
    from minicnn.figures.demo import figure1, load_models
    vgg, resnet = load_models()
    fig, _ = figure1(vgg, resnet)
    title = fig.get_suptitle()
    assert "a cat (cat/0018.jpg) and a dog (dog/0001.jpg), 64 wide x 32 high" in title
    assert "vgg_cifar10, which sees 32 wide x 32 high" in title and "which sees 64 wide x 32 high" in title
    assert all(bar.ax.get_xlabel() for bar in colour_bars(fig)) and len(colour_bars(fig)) == 6
    assert figures.Y_AND_P in caption(fig) and "Occlusion: a patch slid" in caption(fig)


def test_the_gallery_labels_every_bar():
    from minicnn import load
    from minicnn.explain import cat_dog_image
    from minicnn.figures.gallery import gallery_figure
    fig = gallery_figure(load("resnet20_cifar10"), cat_dog_image(), ["cat", "dog"], ["gradcam", "eigencam", "cam"],
                         layer="layer3")
    bars = colour_bars(fig)
    assert len(bars) == 6 and all(bar.ax.get_xlabel() for bar in bars)
    assert figures.DISPLAY_CAPTIONS["heat"] in caption(fig).replace("\n  ", " ")

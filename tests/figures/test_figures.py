"""Figures: display transforms, panels, grids, atomic PNG writing."""

import os

import numpy as np
import pytest
from PIL import Image
from test_explain_helpers import small_cnn

from minicnn import explain, figures
from minicnn.errors import InputError, OutputError


def test_normalize_maps_min_to_0_and_max_to_1():
    np.testing.assert_allclose(figures.normalize(np.array([[2.0, 4.0], [3.0, 6.0]])), [[0, 0.5], [0.25, 1]])
    np.testing.assert_array_equal(figures.normalize(np.full((2, 2), 3.0)), np.zeros((2, 2)))


def test_gradient_to_rgb_is_mid_grey_at_the_mean_and_independent_of_scale(rng):
    g = rng.standard_normal((3, 5, 4))
    img = figures.gradient_to_rgb(g)
    assert img.shape == (5, 4, 3) and img.min() >= 0 and img.max() <= 1
    np.testing.assert_allclose(figures.gradient_to_rgb(1e-6 * g), img, atol=1e-5)
    np.testing.assert_allclose(figures.gradient_to_rgb(np.zeros((3, 2, 2))), np.full((2, 2, 3), 0.5))
    with pytest.raises(InputError, match=r"\(C, H, W\)"):
        figures.gradient_to_rgb(np.zeros((2, 2)))


def test_heat_range_is_symmetric_for_signed_maps_and_starts_at_zero_otherwise():
    m = np.array([[-1.0, 3.0]])
    assert figures.heat_range(m, signed=True) == (-3.0, 3.0)
    assert figures.heat_range(np.array([[0.5, 2.0]]), signed=False) == (0.0, 2.0)
    assert figures.heat_range(np.zeros((2, 2)), signed=False) == (0.0, 1.0)


def test_a_grid_of_every_panel_kind_is_written_as_a_png(tmp_path, rng):
    image = rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)
    rows = [[figures.Panel("image", image, "input"),
             figures.Panel("heat", rng.random((8, 16)), "heat", image=image),
             figures.Panel("signed", rng.standard_normal((32, 64)), "signed", image=image)],
            [figures.Panel("gradient", rng.standard_normal((3, 32, 64)), "gradient", image=image),
             figures.Panel("magnitude", rng.random((32, 64)), "magnitude"),
             figures.Panel("text", None, "CAM does not apply")]]
    fig = figures.grid_figure(rows, row_labels=["one", "two"], title="all kinds")
    path = figures.save_png(fig, tmp_path / "grid.png")
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 2 * im.size[1] / 2
    assert sorted(os.listdir(tmp_path)) == ["grid.png"]                 # no temporary file left behind
    # heat panels have their colour bar (in raw units), image panels none, and no panel has ticks
    axes = fig.axes
    assert all(len(ax.get_xticks()) == 0 for ax in axes[0::2])
    bar = axes[3]
    assert bar.axison and not axes[1].axison                           # heat's bar shown, image's strip hidden


def test_method_panels_resize_maps_to_the_picture(rng):
    model = small_cnn(0, dtype=np.float32)
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    picture = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    cam = explain.gradcam(model, x)
    p = figures.method_panel(cam, picture, model_name="small")
    assert p.kind == "heat" and p.data.shape == (16, 16)
    z = cam.logits[0].astype(np.float64)
    prob = np.exp(z[cam.targets[0]]) / np.exp(z).sum()                 # p = softmax(y)^c, by hand
    assert p.title == (f"Grad-CAM: {cam.target_names[0]!r}\n"
                       f"p={prob:.2f}, y={float(cam.scores[0]):.2f} · small · {cam.layer}")
    assert figures.method_panel(explain.saliency(model, x), picture).data.shape == (16, 16)
    assert figures.method_panel(explain.occlusion(model, x, size=2), picture).kind == "signed"
    assert figures.method_panel(explain.guided_backprop(model, x), picture).kind == "gradient"


def test_save_png_refuses_a_missing_folder_in_one_line(tmp_path):
    fig = figures.grid_figure([[figures.Panel("image", np.zeros((4, 4, 3), np.uint8), "x")]])
    with pytest.raises(OutputError, match="does not exist"):
        figures.save_png(fig, tmp_path / "missing" / "f.png")


def test_bad_panels_are_refused():
    with pytest.raises(InputError, match="unknown panel kind"):
        figures.grid_figure([[figures.Panel("pie", np.zeros((2, 2)))]])
    with pytest.raises(InputError, match="at least one panel"):
        figures.grid_figure([])


def test_the_engine_does_not_import_matplotlib():
    import subprocess
    import sys
    code = ("import sys, minicnn, minicnn.model, minicnn.explain; "
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"

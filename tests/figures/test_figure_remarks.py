"""Figures that say what a map alone would hide: all-zero maps, tiny scales, where LRP's relevance went, artefacts.

``figures.method_panel`` writes a remark on the panel (``figures.panel_remark``)
and adds caption lines (``figures.panel_notes``); every figure that shows a
method (explain, demo, gallery) is built from it. The tests read the text
artists of the matplotlib figure.
"""

from pathlib import Path

import numpy as np
import pytest
from explain.test_lrp_mobilenet_v2 import budget_model
from matplotlib.text import Text
from test_explain_helpers import shipped, small_cnn

from minicnn import explain, figures
from minicnn.explain.target import Explanation

PICTURE = np.full((8, 8, 3), 128, np.uint8)


def texts(fig) -> str:
    """Every text of the figure, lines (wrapped by the figure) joined with single spaces."""
    return " ".join(" ".join(t.get_text() for t in fig.findobj(Text)).split())


def figure_of(*results, picture=PICTURE):
    return figures.grid_figure([[figures.method_panel(r, picture, 0) for r in results]])


def zero_map(method, layer):
    return Explanation(method=method, map=np.zeros((1, 2, 2)), targets=np.array([1]), scores=np.array([2.5]),
                       logits=np.array([[0.5, 2.5]]), layer=layer, classes=["cat", "magpie"])


def test_an_all_zero_map_says_so_on_its_panel_and_gets_no_colour_and_no_colour_bar():
    fig = figure_of(zero_map("counterfactual", "features.18"), zero_map("gradcam", "layer3"))
    words = texts(fig)
    assert "all zero: no evidence against 'magpie' at features.18" in words     # the counterfactual
    assert "all zero: no evidence for 'magpie' at layer3" in words
    maps, bars = fig.axes[0:4:2], fig.axes[1:4:2]
    assert all(len(ax.images) == 1 for ax in maps)                 # the picture only: no uniform colour over it
    assert not any(bar.axison for bar in bars)                     # no 0 .. 1 colour bar for a map of zeros


def test_a_counterfactual_map_far_below_y_c_says_tiny_scale_and_one_near_it_says_nothing():
    tiny = Explanation(method="counterfactual", map=np.array([[[0.0, 2e-3], [1e-3, 0.0]]]), targets=np.array([1]),
                       scores=np.array([4.0]), logits=np.array([[0.5, 4.0]]), layer="features",
                       classes=["cat", "magpie"])
    words = texts(figure_of(tiny))
    assert ("tiny scale: largest value = 0.0005 of y^c (almost no evidence against 'magpie' at features)" in words)
    assert figures.panel_remark(Explanation(**{**tiny.__dict__, "map": tiny.map * 100})) == ""   # 0.05 of y^c


def test_a_map_that_is_not_zero_gets_no_remark(rng):
    model = small_cnn(0)
    x = rng.standard_normal((1, 3, 8, 8))
    r = explain.gradcam(model, x)
    assert np.any(r.map) and figures.panel_remark(r) == ""
    fig = figure_of(r)
    assert "all zero" not in texts(fig) and fig.axes[1].axison and len(fig.axes[0].images) == 2


def test_lrp_whose_biases_take_almost_all_relevance_says_tiny_scale_and_where_it_went():
    x = np.array([1.0, 2.0]).reshape(1, 1, 1, 2)
    model = budget_model()
    r = explain.lrp(model, x, "a", "epsilon", epsilon=0.0)   # LRP-0; b2 = 2 takes half of y^c = 4: not tiny
    words = texts(figure_of(r, picture=np.zeros((1, 2, 3))))
    assert "tiny scale" not in words
    assert "relevance at the input = 0.38 of y^c = 4; the biases took: fc2 50%, fc1 12%" in words
    fc2 = model.root.children()[3][1]
    fc2.params["bias"] = np.array([4e5, -1.0])          # y^c = 4e5 + 2: the bias takes all but 1.5 of it
    r = explain.lrp(model, x, "a", "epsilon", epsilon=0.0)
    fraction = float(r.map.sum()) / float(r.scores[0])
    assert 0 < fraction < 1e-5
    words = texts(figure_of(r, picture=np.zeros((1, 2, 3))))
    assert f"tiny scale: relevance at the input = {fraction:.2g} of y^c" in words
    assert "the biases took: fc2 100%" in words


def test_lrp_epsilon_plus_on_mobilenet_v2_says_how_little_reached_the_input():
    with np.load(Path(__file__).resolve().parents[1] / "fixtures" / "lrp_mobilenet_v2.npz") as f:
        x = f["x"]
    r = explain.lrp(shipped("mobilenet_v2"), x, None, "epsilon-plus")
    words = texts(figure_of(r, picture=np.zeros((64, 64, 3))))
    assert "tiny scale: relevance at the input = 8.7e-06 of y^c" in words
    assert "the biases took: features.17 91%" in words


def test_the_deconvnet_caption_explains_its_stride_pattern(rng):
    r = explain.deconvnet(small_cnn(0), rng.standard_normal((1, 3, 8, 8)))
    words = texts(figure_of(r))
    assert "checkerboard on ResNet-20" in words and "stripes on MobileNetV2" in words
    assert "checkerboard" not in texts(figure_of(explain.saliency(small_cnn(0), rng.standard_normal((1, 3, 8, 8)))))


def test_the_explorers_map_entries_carry_the_same_line_and_lrp_carries_its_budget(rng):
    import json

    from minicnn.server import overlay
    x = np.array([1.0, 2.0]).reshape(1, 1, 1, 2)
    d = overlay.display(explain.lrp(budget_model(), x, "a", "epsilon", epsilon=0.0), np.zeros((1, 2, 3)))
    assert d["note"] == "relevance at the input = 0.38 of y^c = 4; the biases took: fc2 50%, fc1 12%"
    assert d["budget"]["fraction_at_input"] == 0.375 and d["budget"]["start"] == 4.0
    assert [(s["name"], s["share"]) for s in d["budget"]["stages"]] == [("flatten", 0.0), ("fc1", 0.125),
                                                                         ("relu", 0.0), ("fc2", 0.5)]
    json.dumps(d, allow_nan=False)                                  # plain JSON numbers
    d = overlay.display(zero_map("counterfactual", "features.18"), PICTURE)
    assert d["note"] == "all zero: no evidence against 'magpie' at features.18" and "budget" not in d
    d = overlay.display(explain.gradcam(small_cnn(0), rng.standard_normal((1, 3, 8, 8))), PICTURE)
    assert d["note"] == "" and "budget" not in d


def test_the_servers_answer_for_lrp_on_mobilenet_v2_carries_its_budget_and_the_line_under_the_map():
    from server_helpers import explain as post_explain
    from server_helpers import running

    from minicnn.server import ModelStore
    photo = (Path(__file__).resolve().parents[2] / "minicnn" / "data" / "images" / "pets.jpg").read_bytes()
    with running(ModelStore(["mobilenet_v2"], workers=1)) as server:
        status, answer = post_explain(server, photo, "model=mobilenet_v2&method=lrp-epsilon-plus,counterfactual")
    assert status == 200
    lrp, cf = answer["maps"]["lrp_epsilon_plus"], answer["maps"]["counterfactual"]
    budget = lrp["budget"]
    assert budget["start"] == answer["target"]["score"]
    assert 0 < budget["fraction_at_input"] < 1e-4                  # 1.8e-5 of y^c measured
    assert budget["fraction_at_input"] + sum(s["share"] for s in budget["stages"]) == pytest.approx(1.0)
    assert lrp["note"].startswith("relevance at the input = 1.8e-05 of y^c") and "features.17 75%" in lrp["note"]
    assert cf["note"] == "all zero: no evidence against 'Italian greyhound' at features" and "budget" not in cf

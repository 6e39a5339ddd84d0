"""The sanity and scorecard figures and tables stay readable: nothing clipped, nothing off the chart, no 55-column
table, no interval printed where none can be estimated. Built from made-up results (no network runs)."""

import numpy as np
import pytest

from minicnn import figures
from minicnn.explain import registry
from minicnn.figures.metrics import deletion_insertion_curves, example_maps, sanity_curves, sanity_grid
from minicnn.metrics.baselines import BASELINES
from minicnn.metrics.sanity import SIMILARITIES, Sanity
from minicnn.metrics.scorecard import Scorecard

ROWS = list(registry.METHODS.values())


def made_up_sanity(steps: int = 20, images: int = 3, lowest: float = -0.8, rows=ROWS) -> Sanity:
    """The methods ``rows`` (occlusion among them); similarities falling from 1 with noise; occlusion's signed
    one ends at ``lowest``."""
    rng = np.random.default_rng(0)
    values = {}
    for m in rows:
        values[m.key] = {}
        for s in SIMILARITIES:
            v = np.clip(np.linspace(1, 0, steps + 1)[:, None] + 0.1 * rng.standard_normal((steps + 1, images)), -1, 1)
            v[0] = 1
            values[m.key][s] = v
    values["occlusion"]["spearman"][-1] = lowest
    return Sanity(model="mobilenet_v2", mode="cascading", images=images, steps=[f"features.{i}.conv.1+bn"
                                                                                  for i in range(steps)],
                  layers=[], methods=[m.key for m in rows], titles={m.key: m.title for m in rows},
                  kinds={m.key: "pixels" for m in rows}, displays={m.key: m.display for m in rows}, values=values,
                  examples={m.key: rng.random((steps + 1, 32, 32)) for m in rows}, picture=rng.random((32, 32, 3)))


def made_up_card(images: int = 1) -> Scorecard:
    rng = np.random.default_rng(1)
    card = Scorecard(model="resnet20_cifar10", images=images, methods=[m.key for m in ROWS],
                     titles={**{m.key: m.title for m in ROWS}, **{b: f"baseline: {b}" for b in BASELINES}})
    k = min(images, 4)
    for key in card.methods + list(BASELINES):
        card.curves[key] = {"deletion": np.sort(rng.random(11))[::-1], "insertion": np.sort(rng.random(11))}
        card.values[key] = {"deletion_auc": rng.random(images), "insertion_auc": rng.random(images)}
        card.examples[key] = rng.random((k, 32, 32))
    card.examples["images"] = rng.random((k, 32, 32, 3))
    return card


def draw(fig):
    """Lay out and draw ``fig`` (as save_figure would); returns the renderer."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def inside(fig, artist) -> bool:
    """Whether ``artist`` is drawn wholly inside the figure (one pixel of slack); call draw(fig) first."""
    box = artist.get_window_extent(fig.canvas.get_renderer())
    w, h = fig.get_size_inches() * fig.dpi
    return box.x0 >= -1 and box.y0 >= -1 and box.x1 <= w + 1 and box.y1 <= h + 1


def test_the_sanity_grid_keeps_every_row_label_inside_the_figure():
    rows = [registry.get(m) for m in ("gradcam", "occlusion", "integrated-gradients", "lrp-epsilon-gamma-box")]
    fig = sanity_grid(made_up_sanity(steps=2, rows=rows))       # the longest title last, where it was clipped
    draw(fig)
    labels = [ax.yaxis.label for ax in fig.axes if ax.get_ylabel() and ax.get_label() != "<colorbar>"]
    assert len(labels) == len(rows) and "LRP epsilon-\ngamma-box" in [t.get_text() for t in labels]
    assert all(inside(fig, t) for t in labels)


@pytest.mark.parametrize("lowest", [-0.3, -0.8, -1.0])
def test_sanity_curves_keep_every_curve_on_the_chart_and_label_the_bottom(lowest):
    rows = [registry.get(m) for m in ("gradcam", "occlusion")]
    fig = sanity_curves(made_up_sanity(lowest=lowest, rows=rows))
    curves = [ax for ax in fig.axes if ax.get_title()]
    assert len(curves) == len(rows)
    for ax in curves:
        bottom, top = ax.get_ylim()
        assert bottom <= min(lowest, -0.5) and top >= 1.0
        assert min(ax.get_yticks()) <= max(lowest, -0.5) and min(ax.get_yticks()) >= bottom  # a labelled bottom
        for line in ax.get_lines():
            y = np.asarray(line.get_ydata(), dtype=float)
            assert np.all(y[np.isfinite(y)] >= bottom)


def test_the_scorecard_curves_are_small_multiples():
    card = made_up_card(images=3)
    fig = deletion_insertion_curves(card)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert len(panels) == len(ROWS) + 1                       # a panel per method, one for the baselines
    w, h = fig.get_size_inches() * 100
    assert w <= 1600 and h <= 1800
    for ax in panels[:-1]:
        coloured = [line for line in ax.get_lines() if line.get_color() in ("tab:blue", "tab:orange")]
        assert len(coloured) == 2                              # the method's deletion and insertion, the rest grey
    assert "deletion" in panels[0].get_title() and "insertion" in panels[0].get_title()


@pytest.mark.parametrize("images", [1, 3])
def test_the_scorecard_maps_wrap_and_keep_their_colour_bar_label(images):
    fig = example_maps(made_up_card(images=images))
    w, h = fig.get_size_inches() * 90
    assert w <= 1100, (w, h)                                   # 3204 wide and 202 high with one image before
    draw(fig)
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 1 and bars[0].get_xlabel().startswith("pixel map as ranked")
    assert inside(fig, bars[0].xaxis.label)
    titled = {ax.get_title() for ax in fig.axes}
    assert {"Grad-CAM", "baseline:\nedges"} <= titled


def test_a_colour_bar_writes_its_power_of_ten_in_the_label():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    rows = [[figures.Panel("heat", rng.random((4, 4)) * 3e-3, "tiny", image=image, label="raw"),
             figures.Panel("heat", rng.random((4, 4)) * 3, "plain", image=image, label="raw")]]
    fig = figures.grid_figure(rows)
    draw(fig)
    bars = [ax for ax in fig.axes if getattr(ax, "_colorbar", None) is not None]
    assert [b.get_xlabel() for b in bars] == ["raw (x 1e-3)", "raw"]
    assert all(b.xaxis.get_offset_text().get_text() == "" for b in bars)
    ticks = [t.get_text() for t in bars[0].get_xticklabels() if t.get_text()]
    assert ticks and all(float(t) < 10 for t in ticks)       # 0, 1, 2, not 0.001, 0.002
    assert figures.bar_exponent(-4e5, 1e5) == 5 and figures.bar_exponent(0, 0.5) == 0
    assert figures.bar_exponent(0, 0) == 0


def test_a_wide_sanity_table_numbers_its_steps_and_wraps():
    result = made_up_sanity(steps=54)
    text = result.tables()
    lines = text.splitlines()
    assert max(map(len, lines)) <= 120
    assert lines[0].startswith("steps: 0 original · 1 features.0.conv.1+bn ·")
    assert "54 features.53.conv.1+bn" in text
    heads = [line for line in lines if line.startswith("| method |")]
    assert len(heads) >= 3 * 2                                 # blocks of steps, for each similarity
    shown = [int(h) for head in heads[:len(heads) // 3] for h in head.strip("| ").split(" | ")[1:]]
    assert shown == list(range(55))                            # every step once per similarity
    occlusion = [line for line in lines if line.startswith("| Occlusion |")]
    assert occlusion and all(len(line.split("|")) - 2 <= 55 for line in occlusion)


def test_a_narrow_sanity_table_keeps_its_step_names():
    result = made_up_sanity(steps=3)
    lines = result.tables().splitlines()
    assert lines[0].startswith("**spearman_abs**")
    assert "| method | original | features.0.conv.1+bn | features.1.conv.1+bn | features.2.conv.1+bn |" in lines


def test_a_mean_over_one_image_prints_no_interval():
    card = made_up_card(images=1)
    card.methods = ["gradcam"]
    card.values = {k: {m: v for m, v in card.values[k].items()} for k in ["gradcam", *BASELINES]}
    table = card.table()
    assert "[?]" in table and "[0." not in table
    assert "- [?]: no 95% interval: a mean of one value" in table and card.unknown_intervals()
    entry = card.json()["methods"]["gradcam"]["deletion_auc"]
    assert entry["ci95"] is None and entry["mean"] == pytest.approx(card.values["gradcam"]["deletion_auc"][0])
    card2 = made_up_card(images=3)
    card2.methods = ["gradcam"]
    assert not card2.unknown_intervals()
    assert "[?]" not in card2.table() and card2.json()["methods"]["gradcam"]["deletion_auc"]["ci95"] is not None


def test_the_trust_columns_figure_draws_each_mean_inside_its_panel():
    from minicnn.figures.metrics import trust_columns
    from minicnn.metrics.trust import COLUMNS
    card = made_up_card(images=5)
    rng = np.random.default_rng(2)
    for key in card.values:
        card.values[key].update({c: rng.random(5) for c in COLUMNS})
    card.values["gradcam"]["sparseness"] = np.full(5, 0.9)
    fig = trust_columns(card)
    draw(fig)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert len(panels) == len(COLUMNS)
    assert "avg drop (lower is better ↓)" in panels[0].get_title()
    sparse = next(ax for ax in panels if ax.get_title().startswith("sparseness"))
    assert "higher is better ↑" in sparse.get_title()
    assert any(np.allclose(line.get_xdata(), [0.9]) for line in sparse.lines)      # Grad-CAM's mean, a dot
    labels = [t.get_text() for t in panels[0].get_yticklabels()]
    assert labels[0] == ROWS[0].title and labels[-1] == "baseline: edges"      # top to bottom as in the table
    for ax in panels:
        assert inside(fig, ax)

"""The scorecard's assembly: every number recomputed from its definition, ends, axes and mosaic targets.

ResNet-20 on the shipped images brought to 12x12 (its global average pooling takes any size, and the
2x2 mosaics are 24x24) keeps the run to a few seconds; the building blocks have their own tests
(test_metrics_faithfulness, test_metrics_localisation, test_metrics_similarity).
"""

from types import SimpleNamespace

import numpy as np
import pytest
from test_explain_helpers import shipped, small_cnn

from metrics.test_metrics_randomisation import SMALL_PREP
from minicnn.explain import occlusion, registry
from minicnn.figures.metrics import _columns, deletion_insertion_curves, sanity_curves
from minicnn.inputs.preprocess import preprocess
from minicnn.metrics import scorecard
from minicnn.metrics.baselines import random_map
from minicnn.metrics.deletion import auc, blur, deletion_curve, insertion_curve
from minicnn.metrics.intervals import mean_ci95
from minicnn.metrics.localisation import choose_mosaics, energy_pointing_game, mosaic, pointing_game, tile_mask
from minicnn.metrics.maps import pixel_map
from minicnn.metrics.road import road_curves
from minicnn.metrics.runs import model_inputs, run_method, shipped_test_images
from minicnn.metrics.scorecard import mosaic_inputs

TINY_PREP = dict(SMALL_PREP, size=[12, 12], resize_shorter=12)


def softmax_score(model, targets):
    """score(batch, rows) = softmax(f(batch))_c with c = targets[rows], written out."""
    def score(batch, rows):
        z = np.concatenate([model.forward(np.ascontiguousarray(batch[i:i + 64])) for i in range(0, len(batch), 64)])
        z = z.astype(np.float64) - z.max(axis=1, keepdims=True)
        p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        return p[np.arange(len(p)), targets[np.asarray(rows)]]
    return score


@pytest.fixture(scope="module")
def small_resnet():
    model = shipped("resnet20_cifar10")
    model.meta["preprocessing"] = TINY_PREP
    return model


@pytest.fixture(scope="module")
def card(small_resnet):
    return scorecard(small_resnet, methods="saliency", images=8, seed=1, progress=False)


def test_the_scorecards_numbers_are_their_definitions(small_resnet, card):
    model = small_resnet
    x, _ = model_inputs(model, 8)
    targets = model.forward(x).argmax(axis=1)
    assert len(set(targets.tolist())) > 2                       # per-image targets, not one class
    score = softmax_score(model, targets)
    maps = {"saliency": pixel_map(registry.get("saliency").run(model, x, targets).map, "input", (12, 12)),
            "random": random_map(8, (12, 12), seed=1)}
    occ = occlusion(model, x, targets, progress=False).map
    for key, m in maps.items():
        v = card.values[key]
        deletion = deletion_curve(score, x, m, steps=10, seed=1)
        insertion = insertion_curve(score, x, m, steps=10, seed=1)
        assert deletion[:, -1] == pytest.approx(score(np.zeros_like(x), np.arange(8)))
        assert insertion[:, 0] == pytest.approx(score(blur(x), np.arange(8)))
        np.testing.assert_allclose(v["deletion_auc"], auc(deletion), atol=1e-5, err_msg=key)
        np.testing.assert_allclose(v["insertion_auc"], auc(insertion), atol=1e-5, err_msg=key)
        np.testing.assert_allclose(card.curves[key]["deletion"], deletion.mean(axis=0), atol=1e-5)
        np.testing.assert_allclose(card.curves[key]["insertion"], insertion.mean(axis=0), atol=1e-5)
        road = road_curves(score, x, m, seed=1)
        assert v["road_morf"].shape == v["road_lerf"].shape == (8,)
        np.testing.assert_allclose(v["road_morf"], road["morf"].mean(axis=1), atol=1e-5, err_msg=key)
        np.testing.assert_allclose(v["road_lerf"], road["lerf"].mean(axis=1), atol=1e-5, err_msg=key)
        rank_a = np.argsort(np.argsort(m.reshape(8, -1), axis=1), axis=1)          # no ties in these maps
        rank_b = np.argsort(np.argsort(occ.reshape(8, -1), axis=1), axis=1)
        rho = [np.corrcoef(p, q)[0, 1] for p, q in zip(rank_a, rank_b)]
        np.testing.assert_allclose(v["occlusion_spearman"], rho, atol=1e-6, err_msg=key)
    assert card.values["saliency"]["passes"] == 2.0


def test_the_mosaics_target_their_tiles_class_and_are_scored_on_that_tile(small_resnet, card):
    model = small_resnet
    tiles, classes, target_tiles = mosaic_inputs(model, 2, seed=1)
    images, labels, _ = shipped_test_images(40)                 # the pool: max(40, 8 * 2) images
    x = preprocess(images, TINY_PREP)
    chosen = choose_mosaics(labels, model.forward(x).argmax(axis=1), 2, seed=1)
    assert [t for _, t in chosen] == target_tiles.tolist() == [0, 1]
    assert classes.tolist() == [labels[group[tile]] for group, tile in chosen]
    assert classes[1] != labels[chosen[1][0][0]]                # tile 1's class, not tile 0's
    np.testing.assert_array_equal(tiles[1], mosaic([x[i] for i in chosen[1][0]]))
    assert card.mosaics == 2 and card.localisation_note is None
    masks = np.stack([tile_mask((24, 24), t) for t in (0, 1)])
    saliency = pixel_map(registry.get("saliency").run(model, tiles, classes).map, "input", (24, 24))
    random = random_map(2, (24, 24), seed=1)
    for key, m in (("saliency", saliency), ("random", random)):
        np.testing.assert_allclose(card.values[key]["pointing_game"], pointing_game(m, masks))
        np.testing.assert_allclose(card.values[key]["energy_pointing_game"], energy_pointing_game(m, masks),
                                   rtol=1e-6)
    assert not np.allclose(energy_pointing_game(random, masks), energy_pointing_game(random, masks[[0, 0]]))


def test_the_table_and_json_show_mean_low_high_of_the_values(card):
    data = card.json()
    head = "| Saliency \\|dy/dx\\| | "                    # the title's own bars escaped: one cell in Markdown
    line = next(row for row in card.table().splitlines() if row.startswith(head))
    cells = [c.strip() for c in line[len(head):].split("|")]
    assert line.count("|") - line.count("\\|") == len(cells) + 1
    for cell, metric in zip(cells, ["deletion_auc", "insertion_auc", "road_morf", "road_lerf", "occlusion_spearman"]):
        mean, lo, hi = mean_ci95(card.values["saliency"][metric])
        assert lo < mean < hi
        assert cell == f"{mean:.3f} [{lo:.3f}, {hi:.3f}]"
        assert data["methods"]["saliency"][metric] == {"mean": pytest.approx(mean), "ci95": [pytest.approx(lo),
                                                                                                pytest.approx(hi)]}


def test_run_method_keeps_each_images_target_across_chunks_and_counts_per_image():
    model = small_cnn(0)
    x = np.random.default_rng(0).standard_normal((5, 3, 8, 8))
    targets = np.array([0, 1, 2, 1, 0])
    run = run_method(model, registry.get("saliency"), x, targets, chunk=2)
    whole = registry.get("saliency").run(model, x, targets).map
    np.testing.assert_allclose(run.raw, whole, rtol=1e-12)
    np.testing.assert_allclose(run.pixels, np.abs(whole).sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(run.signed, whole.sum(axis=1), rtol=1e-12)
    assert run.passes == 2.0 and run.extra == {"forwards": 1.0, "backwards": 1.0}


def test_figures_thin_columns_evenly_and_plot_the_means():
    # linspace(0, 19, 10) = 0, 2.11, 4.22, 6.33, 8.44, 10.56, 12.67, 14.78, 16.89, 19, rounded
    assert _columns(20, 10) == [0, 2, 4, 6, 8, 11, 13, 15, 17, 19] and _columns(5, 10) == [0, 1, 2, 3, 4]
    card = SimpleNamespace(model="m", images=2, methods=["a"], titles={"a": "A", "random": "baseline: random"},
                           curves={"a": {"deletion": np.array([0.9, 0.5, 0.1]), "insertion": np.array([0.2, 0.6, 0.8])},
                                   "random": {"deletion": np.array([0.9, 0.7, 0.1]),
                                              "insertion": np.array([0.2, 0.3, 0.8])}},
                           values={"a": {"deletion_auc": np.array([0.1, 0.3]), "insertion_auc": np.array([0.7, 0.9])},
                                   "random": {"deletion_auc": np.array([0.5, 0.5]),
                                              "insertion_auc": np.array([0.4, 0.4])}})
    fig = deletion_insertion_curves(card)
    method, baselines = fig.axes[:2]                     # a panel per method, then the baselines' panel
    assert "deletion 0.200" in method.get_title() and "insertion 0.800" in method.get_title()   # means of the areas
    deletion, insertion, random_deletion, random_insertion = method.lines
    np.testing.assert_allclose(deletion.get_ydata(), [0.9, 0.5, 0.1])
    np.testing.assert_allclose(insertion.get_ydata(), [0.2, 0.6, 0.8])
    np.testing.assert_allclose(insertion.get_xdata(), [0, 0.5, 1])
    np.testing.assert_allclose(random_deletion.get_ydata(), [0.9, 0.7, 0.1])
    assert "random" in baselines.get_title()
    np.testing.assert_allclose(baselines.lines[-1].get_ydata(), [0.2, 0.3, 0.8])     # the random insertion curve
    values = {s: np.array([[1.0, 1.0, 1.0], [0.2, 0.5, 0.8]]) for s in ("spearman_abs", "spearman", "ssim")}
    result = SimpleNamespace(model="m", mode="cascading", images=3, steps=["fc"], methods=["a"], skipped={},
                             titles={"a": "A"}, values={"a": values})
    ax = sanity_curves(result).axes[0]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [1.0, 0.5])                 # the means over the images

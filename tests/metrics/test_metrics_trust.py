"""The scorecard's columns from Average Drop to random-logit: recomputed from their definitions on the card's
own images, maps and draws; the baselines' known answers; the table's and the JSON's new columns.

ResNet-20 on 12x12 images (as test_metrics_scorecard), 8 images, Saliency and Grad-CAM: a few seconds.
"""

import numpy as np
import pytest
from test_explain_helpers import shipped

from metrics.test_metrics_scorecard import TINY_PREP
from minicnn.explain import registry
from minicnn.layers import softmax
from minicnn.metrics import scorecard
from minicnn.metrics.baselines import BASELINES
from minicnn.metrics.complexity import complexity, sparseness
from minicnn.metrics.confidence import average_drop, explanation_mask, increase_in_confidence
from minicnn.metrics.cost import counting_passes
from minicnn.metrics.maps import pixel_map
from minicnn.metrics.perturbation import faithfulness_correlation, infidelity
from minicnn.metrics.random_logit import random_logit
from minicnn.metrics.robustness import max_sensitivity
from minicnn.metrics.runs import model_inputs
from minicnn.metrics.scorecard import HEADERS, METRICS
from minicnn.metrics.trust import COLUMNS, FORWARDS, MAPS, Draws, added_passes, class_scores, map_metrics, robustness


@pytest.fixture(scope="module")
def small_resnet():
    model = shipped("resnet20_cifar10")
    model.meta["preprocessing"] = TINY_PREP
    return model


@pytest.fixture(scope="module")
def card(small_resnet):
    return scorecard(small_resnet, methods="saliency,gradcam", images=8, seed=2, progress=False)


def test_the_new_columns_are_their_definitions(small_resnet, card):
    model = small_resnet
    x, _ = model_inputs(model, 8)
    logits = model.forward(x)
    targets = logits.argmax(axis=1)
    draws = Draws.of(x, targets, 10, 2)
    assert not np.any(draws.others == targets) and draws.robust == 8
    p = softmax(logits)[np.arange(8), targets]
    logit = class_scores(model, targets, probability=False)
    for key in ("saliency", "gradcam"):
        m = registry.get(key)
        raw = m.run(model, x, targets).map
        v = card.values[key]
        pixels = pixel_map(raw, m.kind, (12, 12))
        # Grad-CAM's mask is scaled at the layer's 3x3 and then resized; saliency's is its pixel map's
        mask = explanation_mask(raw if m.kind == "layer" else pixels, (12, 12))
        p_masked = softmax(model.forward((mask[:, None] * x).astype(np.float32)))[np.arange(8), targets]
        np.testing.assert_allclose(v["average_drop"], average_drop(p, p_masked), atol=1e-5, err_msg=key)
        np.testing.assert_array_equal(v["increase_in_confidence"], increase_in_confidence(p, p_masked))
        attribution = raw if m.kind == "input" else pixel_map(raw, m.kind, (12, 12), channels="sum")
        np.testing.assert_allclose(v["faithfulness_correlation"],
                                   faithfulness_correlation(logit, x, attribution, draws.subsets), atol=1e-4)
        np.testing.assert_allclose(v["infidelity"], infidelity(logit, x, attribution, draws.perturbations,
                                                                normalize=True), rtol=1e-4)
        # the scorecard makes maps image by image, the test in one batch: float32 rounding apart
        np.testing.assert_allclose(v["sparseness"], sparseness(pixels), rtol=1e-5)
        np.testing.assert_allclose(v["complexity"], complexity(pixels), rtol=1e-5)
        explain = lambda c, rows, m=m: m.run(model, c, targets[rows]).map        # noqa: E731
        np.testing.assert_allclose(v["max_sensitivity"], max_sensitivity(explain, x, draws.noise), rtol=1e-4)
        other = m.run(model, x, draws.others).map
        np.testing.assert_allclose(v["random_logit"], random_logit(raw, other), atol=1e-4)
        assert np.all(v["random_logit"] < 0.999)                                  # the class matters to both
    # the Gini index of Uniform[0, 1) values is 1/3 (E|u - v| / (2 E u) = (1/3) / 1)
    assert np.mean(card.values["random"]["sparseness"]) == pytest.approx(1 / 3, abs=0.03)


def test_the_baselines_known_answers(card):
    for name in BASELINES:
        v = card.values[name]
        assert set(COLUMNS) <= set(v), name
        np.testing.assert_allclose(v["random_logit"], 1.0, atol=1e-12)           # no baseline knows the class
    for name in ("random", "centre"):                                            # neither depends on the image
        np.testing.assert_allclose(card.values[name]["max_sensitivity"], 0.0, atol=1e-12)
    assert np.all(card.values["edges"]["max_sensitivity"] > 0)
    flat = card.values["centre"]["sparseness"]
    assert np.ptp(flat) < 1e-12 and 0 < flat[0] < 1                            # one map for every image


def test_the_table_and_json_carry_the_new_columns_with_their_directions(card):
    for metric, better in {"average_drop": "lower", "increase_in_confidence": "higher",
                           "faithfulness_correlation": "higher", "infidelity": "lower", "sparseness": "higher",
                           "complexity": "lower", "max_sensitivity": "lower", "random_logit": "lower"}.items():
        assert METRICS[metric] == better
    assert list(METRICS)[-2:] == ["passes", "seconds_per_image"]                # the costs stay last
    head = card.table().splitlines()[0]
    for metric in COLUMNS:
        assert f" {HEADERS[metric]} {'↓' if METRICS[metric] == 'lower' else '↑'} |" in head
    data = card.json()
    for key in ("saliency", "gradcam"):
        entry = data["methods"][key]["max_sensitivity"]
        assert entry["mean"] == pytest.approx(np.mean(card.values[key]["max_sensitivity"]))
        assert entry["ci95"][0] <= entry["mean"] <= entry["ci95"][1]
    assert data["baselines"]["random"]["random_logit"]["mean"] == pytest.approx(1.0)
    assert "images" in card.phases                 # the trust columns are timed with the rest of the images
    assert FORWARDS == {"average_drop": 1, "faithfulness_correlation": 20, "infidelity": 10}
    assert MAPS == {"max_sensitivity": 3, "random_logit": 1}


def test_the_columns_cost_the_passes_they_declare(small_resnet):
    model = small_resnet
    x, _ = model_inputs(model, 3)
    logits = model.forward(x)
    targets = logits.argmax(axis=1)
    draws = Draws.of(x, targets, 10, 0)
    saliency = registry.get("saliency")
    raw = saliency.run(model, x, targets).map
    with counting_passes(model) as count:
        map_metrics(model, x, targets, raw, "input", draws, logits=logits)
    assert count.forwards == added_passes(3, 1, 0)["forwards"] == 3 * 31 and count.backwards == 0
    with counting_passes(model) as count:
        robustness(model, saliency, x, targets, raw, draws)
    assert count.total == added_passes(3, 1, 2.0)["method_passes"] == 3 * 4 * 2


def test_a_signed_map_enters_faithfulness_and_infidelity_with_its_sign(small_resnet):
    model = small_resnet
    x, _ = model_inputs(model, 4)
    logits = model.forward(x)
    targets = logits.argmax(axis=1)
    draws = Draws.of(x, targets, 10, 1)
    signed = np.random.default_rng(3).standard_normal((4, 12, 12))         # a "pixels" map, half negative
    v = map_metrics(model, x, targets, signed, "pixels", draws, logits=logits)
    logit = class_scores(model, targets, probability=False)
    np.testing.assert_allclose(v["faithfulness_correlation"],
                               faithfulness_correlation(logit, x, signed, draws.subsets), atol=1e-4)
    np.testing.assert_allclose(v["infidelity"], infidelity(logit, x, signed, draws.perturbations, normalize=True),
                               rtol=1e-4)
    assert not np.allclose(v["faithfulness_correlation"],
                           faithfulness_correlation(logit, x, np.abs(signed), draws.subsets), atol=1e-3)
    np.testing.assert_allclose(v["sparseness"], sparseness(np.abs(signed)), atol=1e-12)

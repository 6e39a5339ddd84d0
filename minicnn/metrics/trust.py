"""The scorecard's columns after deletion, ROAD and the pointing games: each metric run on every method's maps.

    draws = Draws.of(x, targets, classes=10, seed=0)           # one set of random draws for every method
    values = map_metrics(model, x, targets, run.raw, run.kind, draws, logits=logits)
    values |= robustness(model, method_row, x, targets, run.raw, draws)

| column                       | map used                                              | per image and map | better |
|------------------------------|-------------------------------------------------------|-------------------|--------|
| ``average_drop``             | the raw map min-max scaled and resized (layer maps at | 1 forward         | lower  |
|                              | their own size; input maps as sum_c abs, the pixel map) |                 |        |
| ``increase_in_confidence``   | the same masked image                                 | (the same)        | higher |
| ``faithfulness_correlation`` | input maps as they are, the others' signed pixel map  | 20 forwards       | higher |
|                              | on every channel                                      |                   |        |
| ``infidelity``               | the same; captum's ``normalize=True``                 | 10 forwards       | lower  |
| ``sparseness``               | the pixel map (sum_c abs for input maps)              | none              | higher |
| ``complexity``               | the same                                              | none              | lower  |
| ``max_sensitivity``          | the raw map, re-run on noisy copies                   | 3 maps            | lower  |
| ``random_logit``             | the raw map, re-run for a random other class          | 1 map             | lower  |

Settings (capped here, the same for every method; the references' defaults in brackets):

    FC_RUNS = 20 runs of FC_SUBSET = 224 values of the C*H*W (Quantus: 100 runs of 224), baseline "black"
    INFIDELITY_SAMPLES = 10 draws of N(0, INFIDELITY_SIGMA^2 = 0.1^2) per value (captum: 10, the noise is the user's)
    SENSITIVITY_SAMPLES = 3 draws of Uniform[-0.1, 0.1] per value (captum: 10 of radius 0.02; Quantus: 200 of 0.2)
    ROBUSTNESS_IMAGES = 50: max-sensitivity and random-logit re-run the method, so they use the first 50 images

Radii and sigmas are in the network's input units (after normalisation: a CIFAR-10 grey level is about
0.016). Scores are the class's logit for faithfulness correlation and infidelity (the references'
default) and its softmax probability for Average Drop (torch-cam's). Every method meets the same
draws (``Draws``: drawn per image from the scorecard's seed and the image's number), so their
columns differ by their maps alone.
The baselines (random, centre, edges) are scored the same way; for the two robustness columns their
"method" is the baseline itself, redrawn on the noisy copies (the seeded random map and the centre do not
change: sensitivity 0; no baseline knows the class: random-logit 1).

What it costs, per image and map, against the 36 forwards of deletion, insertion and ROAD: 1 + 20 + 10 = 31
forwards, and (for 50 of the images) 3 + 1 = 4 more maps of the method.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..explain.run import run_or_refusal
from ..layers import softmax
from ..util.progress import Progress
from .baselines import BASELINES, baseline_maps
from .complexity import complexity, sparseness
from .confidence import average_drop, explanation_mask, increase_in_confidence, masked_inputs
from .maps import pixel_map
from .perturbation import faithfulness_correlation, gaussian_perturbations, infidelity, random_subsets
from .random_logit import other_classes, random_logit
from .robustness import max_sensitivity, uniform_noise
from .seeds import image_seed

FC_RUNS, FC_SUBSET = 20, 224
INFIDELITY_SAMPLES, INFIDELITY_SIGMA = 10, 0.1
SENSITIVITY_SAMPLES, SENSITIVITY_RADIUS = 3, 0.1
ROBUSTNESS_IMAGES = 50
#: Forwards per image and map of the columns that ask the network (not the method) again.
FORWARDS = {"average_drop": 1, "faithfulness_correlation": FC_RUNS, "infidelity": INFIDELITY_SAMPLES}
#: Maps per image of the columns that re-run the method (on ROBUSTNESS_IMAGES images at most).
MAPS = {"max_sensitivity": SENSITIVITY_SAMPLES, "random_logit": 1}
COLUMNS = ("average_drop", "increase_in_confidence", "faithfulness_correlation", "infidelity", "sparseness",
           "complexity", "max_sensitivity", "random_logit")


@dataclass
class Draws:
    """The random draws every method meets: subsets (N, FC_RUNS, FC_SUBSET), perturbations and noise
    (N, samples, C, H, W) float32, the noise for the first ``robust`` images only, other classes (N,)."""

    subsets: np.ndarray
    perturbations: np.ndarray
    noise: np.ndarray
    others: np.ndarray
    robust: int

    @classmethod
    def of(cls, x: np.ndarray, targets: np.ndarray, classes: int, seed: int, ids=None) -> Draws:
        """The draws of the images x (n, C, H, W) numbered ``ids`` in the run (default 0..n-1, ascending).

        Each image's draws come from its own seeds (``seeds.image_seed(seed, i, stream)``, one stream per
        kind of draw), so an image meets the same draws alone, in a chunk or in the whole run. The noise
        of max-sensitivity is drawn for the images numbered below ROBUSTNESS_IMAGES, the first ``robust``
        rows.
        """
        n, values, rest = len(x), int(np.prod(x.shape[1:])), x.shape[1:]
        ids = np.arange(n) if ids is None else np.asarray(ids, dtype=np.int64)
        if len(ids) != n or np.any(np.diff(ids) <= 0):
            raise ValueError(f"ids must number the {n} images in ascending order")
        robust = int((ids < ROBUSTNESS_IMAGES).sum())

        def each(draw, count, stream):
            """image r's draw(r, its seed) for the first ``count`` rows, stacked (None for no rows)."""
            rows = [draw(r, image_seed(seed, int(ids[r]), stream)) for r in range(count)]
            return np.concatenate(rows) if rows else None

        targets = np.asarray(targets)
        subsets = each(lambda r, s: random_subsets(1, FC_RUNS, values, min(FC_SUBSET, values), s), n, 1)
        perturbations = each(lambda r, s: gaussian_perturbations((1, *rest), INFIDELITY_SAMPLES, INFIDELITY_SIGMA, s),
                             n, 2)
        noise = each(lambda r, s: uniform_noise((1, *rest), SENSITIVITY_SAMPLES, SENSITIVITY_RADIUS, s), robust, 3)
        if noise is None:
            noise = np.zeros((0, SENSITIVITY_SAMPLES, *rest), np.float32)
        others = each(lambda r, s: other_classes(targets[r:r + 1], classes, s), n, 4)
        return cls(subsets=subsets, perturbations=perturbations, noise=noise, others=others, robust=robust)


def class_scores(model, targets: np.ndarray, *, probability: bool, batch: int = 32, bar=None):
    """score(copies, rows): the logit (or softmax probability) of class targets[rows[i]] of each copy.

    A forward pass never mixes the copies of two images (rows runs image by image): an image's copies are
    scored in the same batches, and so to the same float32 bits, whichever chunk of a run it is in.
    """
    def score(copies, rows):
        rows = np.asarray(rows)
        out = np.empty(len(copies))
        edges = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1], True])       # where each image's copies begin
        for begin, end in zip(edges[:-1], edges[1:], strict=False):
            for i in range(begin, end, batch):
                j = min(i + batch, end)
                logits = model.forward(np.ascontiguousarray(copies[i:j]))
                values = softmax(logits) if probability else logits
                out[i:j] = values[np.arange(j - i), targets[rows[i:j]]]
                if bar is not None:
                    bar.update(j - i)
        return out
    return score


def map_metrics(model, x, targets, raw, kind: str, draws: Draws, *, logits=None, batch: int = 32, bar=None) -> dict:
    """{column: (N,)} for the six columns that need only the map (and forwards): see the module's table.

    raw : the method's map as it returns it, of ``kind`` ("layer", "pixels", "input"); logits : (N, K) of x
    """
    n, size = len(x), x.shape[2:]
    rows = np.arange(n)
    logits = model.forward(x) if logits is None else logits
    pixels = pixel_map(raw, kind, size, channels="abs")
    attribution = raw if kind == "input" else pixel_map(raw, kind, size, channels="sum")
    mask = explanation_mask(raw if kind == "layer" else pixels, size)
    p_x = softmax(logits)[rows, targets]
    p_masked = class_scores(model, targets, probability=True, batch=batch, bar=bar)(masked_inputs(x, mask), rows)
    logit = class_scores(model, targets, probability=False, batch=batch, bar=bar)
    logit_x = logits[rows, targets]
    return {"average_drop": average_drop(p_x, p_masked),
            "increase_in_confidence": increase_in_confidence(p_x, p_masked),
            "faithfulness_correlation": faithfulness_correlation(logit, x, attribution, draws.subsets, score_x=logit_x),
            "infidelity": infidelity(logit, x, attribution, draws.perturbations, normalize=True, score_x=logit_x),
            "sparseness": sparseness(pixels), "complexity": complexity(pixels)}


def robustness(model, method, x, targets, raw, draws: Draws, *, bar=None) -> dict:
    """{"max_sensitivity", "random_logit": (R,)} for the first R = draws.robust images: registry row
    ``method`` re-run on the noisy copies and for the other classes (its default layer and options)."""
    r = draws.robust
    x, targets, raw = x[:r], targets[:r], np.asarray(raw[:r])

    def explain(copies, rows, classes=targets):
        result = run_or_refusal(method, model, copies, classes[rows])
        if bar is not None:
            bar.update(len(copies))
        return np.asarray(result.map)

    others = explain(x, np.arange(r), draws.others[:r])
    return {"max_sensitivity": max_sensitivity(explain, x, draws.noise, maps=raw),
            "random_logit": random_logit(raw, others)}


def baseline_robustness(x, draws: Draws, seed: int, ids=None) -> dict:
    """{baseline: {"max_sensitivity", "random_logit": (R,)}}: each baseline redrawn on the noisy copies;
    the same map for the other class (a baseline does not know the class). ``ids``: the images' numbers."""
    r = draws.robust
    x = x[:r]
    ids = np.arange(r) if ids is None else np.asarray(ids)[:r]
    own = baseline_maps(x, seed, ids)
    out = {}
    for name, maps in own.items():
        def explain(copies, rows, name=name):
            return baseline_maps(copies, seed, ids[rows])[name]
        out[name] = {"max_sensitivity": max_sensitivity(explain, x, draws.noise, maps=maps),
                     "random_logit": random_logit(maps, maps)}
    return out


def chunk_columns(model, methods, raws: dict, x, targets, logits, ids, *, seed: int, batch: int = 32,
                  progress: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """{key: {column: values}} for every column of the module's table, on the images x (n, C, H, W) numbered
    ``ids`` (ascending) of a scorecard's chunk: the registry rows ``methods`` whose raw maps are ``raws[key]``,
    and the baselines. Map columns (n,); the robustness columns (R,) for the R images numbered below
    ROBUSTNESS_IMAGES (the first R rows; none in a later chunk). The draws follow the image (``Draws.of``),
    so a chunk's values are the serial run's.
    """
    draws = Draws.of(x, targets, logits.shape[1], seed, ids)
    n = len(x)
    bar = Progress((len(methods) + len(BASELINES)) * n * sum(FORWARDS.values()), "perturbation", unit="forwards",
                   enabled=progress)
    out = {m.key: map_metrics(model, x, targets, raws[m.key], m.kind, draws, logits=logits, batch=batch, bar=bar)
           for m in methods}
    for name, maps in baseline_maps(x, seed, ids).items():
        out[name] = map_metrics(model, x, targets, maps, "pixels", draws, logits=logits, batch=batch, bar=bar)
    bar.close()
    bar = Progress(len(methods) * draws.robust * sum(MAPS.values()), "robustness", unit="maps",
                   enabled=progress and draws.robust > 0)
    none = {"max_sensitivity": np.empty(0), "random_logit": np.empty(0)}     # a chunk past the first R images
    for m in methods:
        out[m.key].update(robustness(model, m, x, targets, raws[m.key], draws, bar=bar) if draws.robust else none)
    for name, values in baseline_robustness(x, draws, seed, ids).items():
        out[name].update(values if draws.robust else none)
    bar.close()
    return out


def added_passes(images: int, map_sets: int, method_passes: float) -> dict:
    """What the columns add to a scorecard of ``images`` images and ``map_sets`` sets of maps (methods that ran
    and baselines), in images sent through the network, before the work:

        "forwards"        images * map_sets * (1 + FC_RUNS + INFIDELITY_SAMPLES)      the map columns
        "method_passes"   min(images, ROBUSTNESS_IMAGES) * (SENSITIVITY_SAMPLES + 1) * method_passes
                          where method_passes is the sum over the methods of their passes per map
    """
    return {"forwards": images * map_sets * sum(FORWARDS.values()),
            "method_passes": min(images, ROBUSTNESS_IMAGES) * sum(MAPS.values()) * method_passes}

"""The scorecard: faithfulness, localisation and cost of every method on one model, against baselines.

    card = scorecard(minicnn.load("vgg_cifar10"), images=200)
    card.json()                     # {"model", "images", "methods": {KEY: {METRIC: {"mean", "ci95"}}}, "baselines"}
    card.table()                    # the same as a Markdown table

For ``images`` shipped CIFAR-10 test images (class by class in turn), each
explained for the class the model predicts, every method of the registry
(or those named) gives a map; three baselines (a seeded random map, a
centred Gaussian, the image's edges: :mod:`minicnn.metrics.baselines`) are
scored the same way. Per image, with the map's pixel ranking
(:mod:`minicnn.metrics.maps`):

| metric                 | what                                                             | better |
|------------------------|------------------------------------------------------------------|--------|
| ``deletion_auc``       | area under p^c as the top-ranked pixels become 0, 10% at a time  | lower  |
| ``insertion_auc``      | area under p^c as they return into a blurred copy                | higher |
| ``road_morf``          | mean p^c over 10..90% removed by noisy linear imputation, most relevant first | lower |
| ``road_lerf``          | the same, least relevant first                                   | higher |
| ``occlusion_spearman`` | rank correlation with the occlusion map                          | higher |
| ``pointing_game``      | on 2x2 mosaics: the map's maximum in the target's tile           | higher |
| ``energy_pointing_game`` | on 2x2 mosaics: share of the positive mass in the target's tile | higher |
| ``average_drop``       | p^c lost when the image is multiplied by the map scaled to [0, 1] | lower  |
| ``increase_in_confidence`` | share of images whose p^c grows on that masked image         | higher |
| ``faithfulness_correlation`` | Pearson of the map's sums and the logit's drops, random subsets | higher |
| ``infidelity``         | squared error of the map's prediction of noise's effect (normalised) | lower |
| ``sparseness``         | Gini index of the map's magnitudes                               | higher |
| ``complexity``         | entropy of the map's magnitudes                                  | lower  |
| ``max_sensitivity``    | largest relative change of the map under small uniform noise     | lower  |
| ``random_logit``       | SSIM of the maps for the class and for a random other class      | lower  |
| ``passes``             | forward + backward passes per map (counted)                      |        |
| ``seconds_per_image``  | wall-clock seconds per map                                       |        |

(p^c: the softmax probability of the explained class.) The eight columns
from Average Drop on, their maps, settings and costs are those of
:mod:`minicnn.metrics.trust`; max-sensitivity and random-logit re-run the
method and are measured on the first ``trust.ROBUSTNESS_IMAGES`` (50) images. Deletion and
insertion move a tenth of the pixels per step, so their curves are sampled
at the same fractions as ROAD's percentiles and differ from ROAD only in
how removed pixels are filled. Each metric is
reported as its mean over the images with a 95% confidence interval
(:mod:`minicnn.metrics.intervals`); the two cost metrics are measured once
over the whole batch and have no interval (``ci95`` is null); so has a
mean over one image (``--images 1``: null in the JSON, "[?]" in the table).

The mosaics: ``images // 4`` of them (at least one), each of four shipped
test images of four classes that the model classifies correctly alone
(drawn, seeded, from the shipped test images), the target being the class
of tile i mod 4.
Only networks that accept a 64x64 input can be asked; for the others
(``vgg_cifar10``, whose dense head takes the 2048 features of a 32x32
image) the two pointing games are reported as not applicable, with the
reason.

Speed: the model's forward pass of the images is done once (targets,
p^c(x)) and reused as the first point of every deletion and the last of
every insertion curve; the all-zero and blurred images, the same for every
method, are scored once; every perturbed copy goes through the network in
batches of ``batch`` images (32: on ResNet-20, 32 copies per pass took 3.8 ms
of CPU per image and 256 took 4.7, a small batch's activations staying in the
processor's caches; on the VGG model the size made no difference).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..explain import occlusion
from ..inputs.preprocess import deprocess, preprocess
from ..layers import softmax
from ..util.checks import check_count, check_seed
from ..util.progress import Progress
from .agreement import occlusion_spearman
from .baselines import BASELINES, baseline_maps
from .deletion import auc, blur, deletion_curve, insertion_curve
from .intervals import mean_ci95, summary
from .localisation import choose_mosaics, energy_pointing_game, mosaic, pointing_game, tile_mask
from .road import PERCENTILES, road_curves
from .runs import MethodRun, forward_in_batches, model_inputs, run_method, selected_methods, shipped_test_images
from .trust import score_columns

#: The metrics of the JSON, in table order, with the direction that is better (None: a cost).
METRICS = {
    "deletion_auc": "lower", "insertion_auc": "higher", "road_morf": "lower", "road_lerf": "higher",
    "occlusion_spearman": "higher", "pointing_game": "higher", "energy_pointing_game": "higher",
    "average_drop": "lower", "increase_in_confidence": "higher", "faithfulness_correlation": "higher",
    "infidelity": "lower", "sparseness": "higher", "complexity": "lower", "max_sensitivity": "lower",
    "random_logit": "lower",
    "passes": None, "seconds_per_image": None,
}
HEADERS = {
    "deletion_auc": "deletion AUC", "insertion_auc": "insertion AUC", "road_morf": "ROAD MoRF",
    "road_lerf": "ROAD LeRF", "occlusion_spearman": "occlusion ρ", "pointing_game": "pointing game",
    "energy_pointing_game": "energy pointing", "average_drop": "avg drop", "increase_in_confidence": "conf. increase",
    "faithfulness_correlation": "faithfulness ρ", "infidelity": "infidelity", "sparseness": "sparseness",
    "complexity": "complexity", "max_sensitivity": "max-sensitivity", "random_logit": "random logit",
    "passes": "passes", "seconds_per_image": "s / image",
}
#: The most deletion/insertion steps a curve may take (each step is a forward pass per image).
MAX_STEPS = 10_000
COST = ("passes", "seconds_per_image")


@dataclass
class Scorecard:
    """Per-image values of every metric, and what the figures draw.

    values[key][metric]    : (N,) per-image values (mosaic metrics: one per mosaic), or a float for costs
    skipped[key]           : why a method does not apply to this model
    localisation_note      : why the pointing games were not run (None when they were)
    mosaic_skipped[key]    : why a method that ran on the images refused the mosaics
    curves[key]            : {"deletion": (S+1,), "insertion": (S+1,)} mean curves
    examples               : {"images": (k, H, W, 3), key: (k, H, W) pixel maps} for a figure
    """

    model: str
    images: int
    methods: list[str]
    titles: dict[str, str]
    values: dict[str, dict] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    localisation_note: str | None = None
    mosaic_skipped: dict[str, str] = field(default_factory=dict)
    curves: dict[str, dict] = field(default_factory=dict)
    examples: dict[str, np.ndarray] = field(default_factory=dict)
    mosaics: int = 0
    steps: int = 10
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)

    def _entry(self, key) -> dict:
        if key in self.skipped:
            return {"not_applicable": self.skipped[key]}
        out = {}
        for metric in METRICS:
            v = self.values[key].get(metric)
            if metric in COST:
                out[metric] = {"mean": _number(v), "ci95": None}
            elif v is None:
                why = self.localisation_note or self.mosaic_skipped.get(key, "not computed")
                out[metric] = {"mean": None, "ci95": None, "not_applicable": why}
            else:
                s = summary(v)
                ci95 = [_number(c) for c in s["ci95"]]
                out[metric] = {"mean": _number(s["mean"]), "ci95": None if None in ci95 else ci95}  # None: 1 image
        return out

    def json(self) -> dict:
        """The scorecard as the JSON of ``minicnn scorecard --json``."""
        return {"model": self.model, "images": self.images,
                "methods": {k: self._entry(k) for k in self.methods},
                "baselines": {b: {m: v for m, v in self._entry(b).items() if m not in COST} for b in BASELINES}}

    def unknown_intervals(self) -> bool:
        """Whether some metric has one value only (one image, one mosaic): a mean without a 95% interval."""
        return any(metric not in COST and isinstance(v, np.ndarray) and np.count_nonzero(~np.isnan(v)) == 1
                   for key in [*self.methods, *BASELINES] if key not in self.skipped
                   for metric, v in self.values.get(key, {}).items())

    def table(self) -> str:
        """A Markdown table: one row per method and baseline, mean [95% interval] per metric."""
        metrics = [m for m in METRICS if not (self.localisation_note and m in ("pointing_game",
                                                                                "energy_pointing_game"))]
        arrow = {"lower": " ↓", "higher": " ↑", None: ""}
        head = "| method | " + " | ".join(HEADERS[m] + arrow[METRICS[m]] for m in metrics) + " |"
        lines = [head, "|" + "---|" * (len(metrics) + 1)]
        unknown = False                                # a mean of one value: no interval
        for key in [*self.methods, *BASELINES]:
            title = self.titles[key].replace("|", "\\|")      # a bar in a title ("Saliency |dy/dx|") is no cell
            if key in self.skipped:
                lines.append(f"| {title} | " + " | ".join("n/a" for _ in metrics) + " |")
                continue
            cells = []
            for m in metrics:
                v = self.values[key].get(m)
                if m in COST:
                    cells.append("" if v is None else (f"{v:.0f}" if m == "passes" else f"{v:.4f}"))
                elif v is None:
                    cells.append("n/a")
                else:
                    mean, lo, hi = mean_ci95(v)
                    unknown |= math.isnan(lo) and not math.isnan(mean)
                    cells.append(f"{mean:.3f} [?]" if math.isnan(lo) else f"{mean:.3f} [{lo:.3f}, {hi:.3f}]")
            lines.append(f"| {title} | " + " | ".join(cells) + " |")
        notes = [f"- {self.titles[k]}: not applicable: {why}" for k, why in self.skipped.items()]
        notes += [f"- {self.titles[k]} on mosaics: not applicable: {why}" for k, why in self.mosaic_skipped.items()]
        if self.localisation_note:
            notes.append(f"- pointing games: not applicable: {self.localisation_note}")
        if unknown:
            notes.append(f"- [?]: {INTERVAL_NOTE}")
        return "\n".join(lines + ([""] + notes if notes else []))


#: Said under tables and on stderr when a 95% interval cannot be estimated (one value per metric).
INTERVAL_NOTE = ("no 95% interval: a mean of one value (one image; for the pointing games, one mosaic of 4 images) "
                 "has no spread to estimate it from; ask for more --images")


def _number(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def class_probability(model, targets: np.ndarray, *, batch: int = 32, bar: Progress | None = None):
    """score(copies, rows): p^c of each copy, c = targets[rows[i]], ``batch`` copies per forward pass."""
    def score(copies, rows):
        out = np.empty(len(copies))
        for i in range(0, len(copies), batch):
            logits = model.forward(np.ascontiguousarray(copies[i:i + batch]))
            p = softmax(logits)
            out[i:i + batch] = p[np.arange(len(p)), targets[rows[i:i + batch]]]
            if bar is not None:
                bar.update(len(p))
        return out
    return score


def mosaic_inputs(model, count: int, seed: int):
    """(mosaics (M, C, 2h, 2w), target classes (M,), target tiles (M,)) from the shipped test images.

    The tiles come from the first 8 * count shipped images (class by class in turn, at least 40),
    all 300 if those do not give ``count`` mosaics; each is classified once, alone.
    """
    for pool in sorted({min(300, max(40, 8 * count)), 300}):
        images, labels, _ = shipped_test_images(pool)
        x = preprocess(images, model.meta["preprocessing"])
        predictions = forward_in_batches(model, x).argmax(axis=1)
        chosen = choose_mosaics(labels, predictions, count, seed)
        if len(chosen) == count:
            break
    if not chosen:
        raise InputError(f"{model.name} classifies no four shipped test images of four classes correctly")
    tiles = np.stack([mosaic([x[i] for i in group]) for group, _ in chosen])
    targets = np.array([labels[group[tile]] for group, tile in chosen])
    return tiles, targets, np.array([tile for _, tile in chosen])


def scorecard(model, *, methods: str | None = None, images: int = 200, seed: int = 0, steps: int = 10,
              batch: int = 32, chunk: int = 50, examples: int = 4, progress: bool = True) -> Scorecard:
    """The scorecard of ``model`` (module docstring); ``methods``: None for every registered method."""
    seed = check_seed(seed)
    steps = check_count(steps, "steps", high=MAX_STEPS)
    batch, chunk, examples = check_count(batch, "batch"), check_count(chunk, "chunk"), check_count(examples, "examples")
    began = time.perf_counter()
    rows = selected_methods(methods)
    x, prep = model_inputs(model, images)
    n, size = len(x), x.shape[2:]
    logits = forward_in_batches(model, x, batch)
    targets = logits.argmax(axis=1)
    p_x = softmax(logits)[np.arange(n), targets]
    card = Scorecard(model=model.name, images=n, methods=[m.key for m in rows], steps=steps,
                     titles={**{m.key: m.title for m in rows}, **{b: f"baseline: {b}" for b in BASELINES}})

    # 1. every method's maps, counted and timed
    bar = Progress(n * len(rows), "maps", unit="maps", enabled=progress)
    runs: dict[str, MethodRun] = {}
    for m in rows:
        runs[m.key] = run_method(model, m, x, targets, chunk=chunk, bar=bar)
        if runs[m.key].skipped:
            card.skipped[m.key] = runs[m.key].skipped
            bar.update(n)
    bar.close()
    pixel_maps = {k: r.pixels for k, r in runs.items() if not r.skipped}
    pixel_maps.update(baseline_maps(x, seed))
    for k, r in runs.items():
        card.values[k] = {} if r.skipped else {"passes": r.passes, "seconds_per_image": r.seconds}
    for b in BASELINES:
        card.values[b] = {}

    card.phases["maps"] = time.perf_counter() - began

    # 2. faithfulness: deletion, insertion, ROAD, agreement with occlusion
    occ = runs.get("occlusion")
    if occ is None or occ.skipped:
        occ_map = occlusion(model, x, targets, progress=progress).map
    else:
        occ_map = occ.raw
    start = blur(x)
    per_set = 2 * (steps - 1) + 2 * len(PERCENTILES)
    bar = Progress(len(pixel_maps) * n * per_set + 2 * n, "faithfulness", unit="forwards", enabled=progress)
    score = class_probability(model, targets, batch=batch, bar=bar)
    p_zero = score(np.zeros_like(x), np.arange(n))
    p_blur = score(start, np.arange(n))
    for key, pm in pixel_maps.items():
        deletion = deletion_curve(score, x, pm, steps=steps, seed=seed, ends=(p_x, p_zero))
        insertion = insertion_curve(score, x, pm, steps=steps, start=start, seed=seed, ends=(p_blur, p_x))
        road = road_curves(score, x, pm, seed=seed)
        card.values[key].update(deletion_auc=auc(deletion), insertion_auc=auc(insertion),
                                road_morf=road["morf"].mean(axis=1), road_lerf=road["lerf"].mean(axis=1),
                                occlusion_spearman=occlusion_spearman(pm, occ_map))
        card.curves[key] = {"deletion": deletion.mean(axis=0), "insertion": insertion.mean(axis=0)}
    bar.close()
    card.phases["faithfulness"] = time.perf_counter() - began - sum(card.phases.values())

    # 2b. Average Drop to random-logit (minicnn.metrics.trust): its phases "perturbation" and "robustness"
    score_columns(card, model, rows, runs, x, targets, logits, seed=seed, batch=batch, progress=progress)

    # 3. localisation on mosaics
    count = max(1, n // 4)
    try:
        tiles, tile_targets, target_tiles = mosaic_inputs(model, count, seed)
    except InputError as e:
        card.localisation_note = str(e)
    else:
        try:
            model.forward(tiles[:1])
        except InputError as e:
            card.localisation_note = f"{model.name} does not accept a {2 * size[0]}x{2 * size[1]} mosaic: {e}"
    if card.localisation_note is None:
        card.mosaics = len(tiles)
        masks = np.stack([tile_mask(tiles.shape[2:], t) for t in target_tiles])
        bar = Progress(len(tiles) * len(rows), "mosaics", unit="maps", enabled=progress)
        mosaic_maps = {}
        for m in rows:
            if m.key in card.skipped:
                bar.update(len(tiles))
                continue
            run = run_method(model, m, tiles, tile_targets, chunk=max(1, chunk // 4), bar=bar)
            if run.skipped:
                card.mosaic_skipped[m.key] = run.skipped
                bar.update(len(tiles))
            else:
                mosaic_maps[m.key] = run.pixels
        bar.close()
        mosaic_maps.update(baseline_maps(tiles, seed))
        for key, pm in mosaic_maps.items():
            card.values[key].update(pointing_game=pointing_game(pm, masks),
                                    energy_pointing_game=energy_pointing_game(pm, masks))

    card.phases["mosaics"] = time.perf_counter() - began - sum(card.phases.values())

    # 4. what the figures show
    k = min(examples, n)
    card.examples = {"images": np.stack([deprocess(x[i], prep) for i in range(k)]),
                     **{key: pm[:k] for key, pm in pixel_maps.items()}}
    card.seconds = time.perf_counter() - began
    return card

"""The scorecard: faithfulness, localisation and cost of every method on one model, against baselines.

    card = scorecard(minicnn.load("vgg_cifar10"), images=200)
    card.json()                     # {"model", "images", "methods": {KEY: {METRIC: {"mean", "ci95"}}}, "baselines"}
    card.table()                    # the same as a Markdown table

For ``images`` shipped CIFAR-10 test images (class by class in turn; with
``data``, a dataset's test split in the same order: :mod:`minicnn.metrics.testset`), each
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

The mosaics: ``images // 4`` of them (at least one), each of four test
images of four classes that the model classifies correctly alone (drawn,
seeded, from the shipped test images, or with ``data`` from the dataset's),
the target being the class of tile i mod 4.
Only networks that accept a 64x64 input can be asked; for the others
(``vgg_cifar10``, whose dense head takes the 2048 features of a 32x32
image) the two pointing games are reported as not applicable, with the
reason.

Chunks and seeds: every value is computed per image (and per mosaic)
and every random draw follows the image's number, not the batch
(:mod:`minicnn.metrics.seeds`), so the serial run (one chunk of all the
images) and a run cut into chunks on Dask workers
(``cluster=``, :mod:`minicnn.metrics.distributed`) give every image the
same values; the chunks are merged in image order (:func:`merge`). The
maps are made image by image (``chunk=1`` images per method call,
:mod:`minicnn.metrics.scoring` says why).

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
from ..inputs.preprocess import deprocess, preprocess
from ..models.evaluate import label_map
from ..util.checks import check_count, check_seed
from .baselines import BASELINES
from .distributed import scorecard_parts
from .intervals import mean_ci95, summary
from .localisation import choose_mosaics, mosaic
from .runs import forward_in_batches, model_inputs, selected_methods, test_images
from .scoring import class_probability, score_images, score_mosaics  # noqa: F401  (class_probability: re-exported)
from .testset import TestImages

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
    data: str | None = None                    # where the images and mosaics come from (None: the shipped ones)

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
        """The scorecard as the JSON of ``minicnn scorecard --json`` (``data`` only for a run on a dataset)."""
        return {"model": self.model, "images": self.images, **({"data": self.data} if self.data else {}),
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


def mosaic_plan(model, count: int, seed: int, data: TestImages | None = None, *, progress: bool = False):
    """(mosaics (M, C, 2h, 2w), target classes (M,), target tiles (M,), groups (M, 4)) from the test images.

    The tiles come from the first 8 * count test images (class by class in turn, at least 40),
    all of them if those do not give ``count`` mosaics; each is classified once, alone; ``groups`` are
    the numbers of the four images of each mosaic in that order. The test images are the 300 shipped
    ones, or with ``data`` the dataset's test split (its labels mapped to the model's classes by name,
    :func:`minicnn.models.evaluate.label_map`: a one-line error for a class the model does not have).
    """
    total = 300 if data is None else len(data)
    for pool in sorted({min(total, max(40, 8 * count)), total}):
        images, labels, classes = test_images(pool, data, progress=progress)
        if data is not None:
            labels = label_map(model.classes, classes)[labels]
        x = preprocess(images, model.meta["preprocessing"])
        predictions = forward_in_batches(model, x).argmax(axis=1)
        chosen = choose_mosaics(labels, predictions, count, seed)
        if len(chosen) == count:
            break
    if not chosen:
        raise InputError(f"{model.name} classifies no four "
                         f"{'shipped test images' if data is None else 'images of the dataset'} of four classes "
                         f"correctly")
    tiles = np.stack([mosaic([x[i] for i in group]) for group, _ in chosen])
    targets = np.array([labels[group[tile]] for group, tile in chosen])
    return tiles, targets, np.array([tile for _, tile in chosen]), np.array([group for group, _ in chosen])


def mosaic_inputs(model, count: int, seed: int):
    """(mosaics (M, C, 2h, 2w), target classes (M,), target tiles (M,)): :func:`mosaic_plan` without the groups."""
    return mosaic_plan(model, count, seed)[:3]


@dataclass
class Plan:
    """What a scorecard computes, fixed before the work: the images, the mosaics, the settings.

    x (N, C, H, W): the images, numbered 0..N-1; tiles (M, C, 2h, 2w), tile_targets (M,),
    target_tiles (M,), groups (M, 4): the mosaics (None, with ``localisation_note``, where the
    model cannot be asked about them).
    """

    keys: list[str]
    x: np.ndarray
    prep: dict
    settings: dict
    tiles: np.ndarray | None = None
    tile_targets: np.ndarray | None = None
    target_tiles: np.ndarray | None = None
    groups: np.ndarray | None = None
    localisation_note: str | None = None


def plan(model, rows, images: int, *, seed: int, steps: int, data: TestImages | None = None,
         progress: bool = False) -> Plan:
    """The scorecard's images and mosaics (module docstring), and the settings its values depend on."""
    x, prep = model_inputs(model, images, data, progress=progress)
    out = Plan(keys=[m.key for m in rows] + list(BASELINES), x=x, prep=prep, settings={"seed": seed, "steps": steps})
    size = x.shape[2:]
    try:
        out.tiles, out.tile_targets, out.target_tiles, out.groups = mosaic_plan(model, max(1, len(x) // 4), seed,
                                                                                data, progress=progress)
    except InputError as e:
        out.localisation_note = str(e)
    else:
        try:
            model.forward(out.tiles[:1])
        except InputError as e:
            out.localisation_note = f"{model.name} does not accept a {2 * size[0]}x{2 * size[1]} mosaic: {e}"
    if out.localisation_note is not None:
        out.tiles = out.tile_targets = out.target_tiles = out.groups = None
    return out


def merge(card: Scorecard, image_parts: list[dict], mosaic_parts: list[dict], *, examples: int = 4) -> Scorecard:
    """Fill ``card`` from the chunks' parts (:mod:`minicnn.metrics.scoring`), each list in image (mosaic) order."""
    n = card.images
    for key in [*card.methods, *BASELINES]:
        parts = [p[key] for p in image_parts]
        skipped = next((str(p["skipped"]) for p in parts if "skipped" in p), None)
        if skipped is not None:
            card.skipped[key] = skipped
            card.values[key] = {}
            continue
        values = {m: np.concatenate([p[m] for p in parts]) for m in METRICS if m not in COST and m in parts[0]}
        if key not in BASELINES:
            values.update(passes=sum(float(p["passes_sum"]) for p in parts) / n,
                          seconds_per_image=sum(float(p["seconds_sum"]) for p in parts) / n)
        card.values[key] = values
        curves = {c: np.concatenate([p[c] for p in parts]) for c in ("deletion", "insertion")}
        card.curves[key] = {c: v.mean(axis=0) for c, v in curves.items()}
        card.examples[key] = np.concatenate([p["examples"] for p in parts])[:examples]
    for key in [*card.methods, *BASELINES]:
        if key in card.skipped or not mosaic_parts:
            continue
        parts = [p[key] for p in mosaic_parts]
        skipped = next((str(p["skipped"]) for p in parts if "skipped" in p), None)
        if skipped is not None:
            card.mosaic_skipped[key] = skipped
            continue
        for m in ("pointing_game", "energy_pointing_game"):
            card.values[key][m] = np.concatenate([p[m] for p in parts])
    return card


def scorecard(model, *, methods: str | None = None, images: int = 200, seed: int = 0, steps: int = 10,
              batch: int = 32, chunk: int = 1, examples: int = 4, progress: bool = True,
              cluster=None, source=None, data=None) -> Scorecard:
    """The scorecard of ``model`` (module docstring); ``methods``: None for every registered method.

    ``data``: None for the shipped test images, or a dataset (a path any form of
    :func:`minicnn.inputs.datasets.open_dataset` reads, or a :class:`minicnn.metrics.testset.TestImages`):
    its test split, class by class in turn; ``images`` the first that many, or "all". The mosaics
    are then made of the same dataset's images.

    ``cluster`` (a :class:`minicnn.util.cluster.Cluster`): run it in chunks of images on Dask workers,
    which load the model from ``source`` (its shipped name or weights file); the values are those of
    the serial run (:mod:`minicnn.metrics.distributed`).
    """
    seed = check_seed(seed)
    steps = check_count(steps, "steps", high=MAX_STEPS)
    batch, chunk, examples = check_count(batch, "batch"), check_count(chunk, "chunk"), check_count(examples, "examples")
    began = time.perf_counter()
    rows = selected_methods(methods)
    if data is not None and not isinstance(data, TestImages):
        data = TestImages(data)
    work = plan(model, rows, images, seed=seed, steps=steps, data=data, progress=progress)
    n = len(work.x)
    card = Scorecard(model=model.name, images=n, methods=[m.key for m in rows], steps=steps,
                     data=None if data is None else data.describe(),
                     titles={**{m.key: m.title for m in rows}, **{b: f"baseline: {b}" for b in BASELINES}},
                     localisation_note=work.localisation_note, mosaics=0 if work.tiles is None else len(work.tiles))
    if cluster is not None:
        image_parts, mosaic_parts = scorecard_parts(model, work, cluster=cluster, source=source, batch=batch,
                                                    chunk=chunk, examples=examples, progress=progress)
        card.phases["tasks"] = time.perf_counter() - began
    else:
        image_parts = [score_images(model, work.keys, work.x, np.arange(n), **work.settings, batch=batch,
                                    chunk=chunk, examples=examples, progress=progress)]
        card.phases["images"] = time.perf_counter() - began
        mosaic_parts = [] if work.tiles is None else [
            score_mosaics(model, work.keys, work.tiles, work.tile_targets, work.target_tiles,
                          np.arange(len(work.tiles)), seed=seed, chunk=max(1, chunk // 4), progress=progress)]
        card.phases["mosaics"] = time.perf_counter() - began - card.phases["images"]
    merge(card, image_parts, mosaic_parts, examples=examples)
    k = min(examples, n)
    card.examples["images"] = np.stack([deprocess(work.x[i], work.prep) for i in range(k)])
    card.seconds = time.perf_counter() - began
    return card

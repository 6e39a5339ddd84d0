"""The scorecard's work on one chunk of images or mosaics: per-image values, ready to merge.

    part = score_images(model, ["gradcam", "random"], x, ids, seed=0, steps=10)
    part["gradcam"]["deletion_auc"]       # (n,) one value per image of the chunk
    part["gradcam"]["passes_sum"]         # () forward + backward passes summed over the chunk's maps
    part[REFERENCE]["map"]                # (n, H, W) the occlusion map the rank correlations compare with

A chunk is any set of the run's images, named by their numbers ``ids`` in
the run (0 .. N-1): every random draw follows the image
(:mod:`minicnn.metrics.seeds`), so an image's values are the same whether
the chunk is the whole run (the serial scorecard) or ten images on one
worker of a cluster, and :func:`minicnn.metrics.scorecard.merge` joins the
chunks' values in image order. Every value is a NumPy array (a string is a
0-d one), so a chunk's part can be kept on disk as an ``.npz`` without
pickles (:mod:`minicnn.util.chunkcache`).

The maps are made image by image (``chunk=1``, the default, images per
method call): a float32 pass of one image in a batch of another size may
round differently in the last bits, and a map's pixel ranking (deletion,
ROAD, the rank correlation, the pointing game) can flip two nearly equal
pixels on that; one image alone has the same shapes, and so the same map
bit for bit, in any chunk. Measured on ResNet-20: image by image costs
Grad-CAM and saliency about 1 ms more per image and Integrated Gradients
and occlusion nothing (their passes batch the steps or patches of an image).
Only the perturbed copies are scored in batches mixing the images (to
~1e-7 of a probability, which no ranking reads).
"""

from __future__ import annotations

import time

import numpy as np

from ..explain import occlusion, registry
from ..layers import softmax
from ..util.progress import Progress
from .agreement import occlusion_spearman
from .baselines import BASELINES, baseline_maps
from .deletion import auc, blur, deletion_curve, insertion_curve
from .localisation import energy_pointing_game, pointing_game, tile_mask
from .road import PERCENTILES, road_curves
from .runs import forward_in_batches, run_method
from .trust import chunk_columns

#: The key of a chunk's occlusion map (for the rank correlations), beside the method keys.
REFERENCE = "occlusion reference"


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


def score_images(model, keys, x: np.ndarray, ids, *, seed: int = 0, steps: int = 10, batch: int = 32,
                 chunk: int = 1, examples: int = 4, reference: np.ndarray | None = None,
                 progress: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """{key: {value: array}} for the methods and baselines ``keys`` on the images x (n, C, H, W) numbered ``ids``.

    Per method: ``deletion_auc``, ``insertion_auc``, ``road_morf``, ``road_lerf``, ``occlusion_spearman``
    and the columns of :mod:`minicnn.metrics.trust` (n,; its robustness columns only for the images
    numbered below ``trust.ROBUSTNESS_IMAGES``), the curves ``deletion`` and ``insertion`` (n, S + 1),
    ``passes_sum`` and ``seconds_sum`` (),
    ``examples`` (maps of the images numbered below ``examples``), or ``skipped`` (why not).
    ``reference``: the chunk's occlusion map if already known (else computed, or taken from the
    occlusion method's run); it is returned under :data:`REFERENCE`.
    """
    ids = np.asarray(ids, dtype=np.int64)
    n = len(x)
    logits = np.concatenate([forward_in_batches(model, x[i:i + 1], 1) for i in range(n)])   # image by image, as
    targets = logits.argmax(axis=1)                                                          # the maps (above)
    p_x = softmax(logits)[np.arange(n), targets]
    methods = [registry.get(k) for k in keys if k not in BASELINES]
    out: dict[str, dict[str, np.ndarray]] = {}

    bar = Progress(n * len(methods), "maps", unit="maps", enabled=progress and bool(methods))
    pixel_maps, raws = {}, {}
    for m in methods:
        run = run_method(model, m, x, targets, chunk=chunk, bar=bar, ids=ids, seed=seed)
        if run.skipped:
            out[m.key] = {"skipped": np.array(run.skipped)}
            bar.update(n)
            continue
        out[m.key] = {"passes_sum": np.array(float(round(run.passes * n))), "seconds_sum": np.array(run.seconds * n)}
        pixel_maps[m.key], raws[m.key] = run.pixels, run.raw
        if m.key == "occlusion" and reference is None:
            reference = run.raw
    bar.close()
    pixel_maps.update({b: v for b, v in baseline_maps(x, seed, ids).items() if b in keys})
    for b in BASELINES:
        if b in keys:
            out[b] = {}
    if not pixel_maps:
        return out
    if reference is None:                            # image by image, as the methods' maps (module docstring)
        reference = np.concatenate([occlusion(model, x[i:i + 1], targets[i:i + 1], progress=progress).map
                                    for i in range(n)])
    out[REFERENCE] = {"map": np.asarray(reference)}

    start = blur(x)
    per_set = 2 * (steps - 1) + 2 * len(PERCENTILES)
    bar = Progress(len(pixel_maps) * n * per_set + 2 * n, "faithfulness", unit="forwards", enabled=progress)
    score = class_probability(model, targets, batch=batch, bar=bar)
    p_zero = score(np.zeros_like(x), np.arange(n))
    p_blur = score(start, np.arange(n))
    shown = ids < examples
    for key, pm in pixel_maps.items():
        deletion = deletion_curve(score, x, pm, steps=steps, seed=seed, ends=(p_x, p_zero), ids=ids)
        insertion = insertion_curve(score, x, pm, steps=steps, start=start, seed=seed, ends=(p_blur, p_x), ids=ids)
        road = road_curves(score, x, pm, seed=seed, ids=ids)
        out[key].update(deletion_auc=auc(deletion), insertion_auc=auc(insertion), road_morf=road["morf"].mean(axis=1),
                        road_lerf=road["lerf"].mean(axis=1), occlusion_spearman=occlusion_spearman(pm, reference),
                        deletion=deletion, insertion=insertion, examples=pm[shown])
    bar.close()
    ran = [m for m in methods if m.key in raws]                 # Average Drop to random-logit (metrics.trust)
    for key, values in chunk_columns(model, ran, raws, x, targets, logits, ids, seed=seed, batch=batch,
                                     progress=progress).items():
        if key in out:
            out[key].update(values)
    return out


def score_mosaics(model, keys, tiles: np.ndarray, targets: np.ndarray, target_tiles: np.ndarray, ids, *,
                  seed: int = 0, chunk: int = 1, progress: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """{key: {"pointing_game", "energy_pointing_game": (m,)}} (or ``skipped``) on the mosaics numbered ``ids``.

    tiles (m, C, 2h, 2w): the mosaics; targets (m,): the class asked about; target_tiles (m,): its tile.
    """
    ids = np.asarray(ids, dtype=np.int64)
    masks = np.stack([tile_mask(tiles.shape[2:], t) for t in target_tiles])
    methods = [registry.get(k) for k in keys if k not in BASELINES]
    bar = Progress(len(tiles) * len(methods), "mosaics", unit="maps", enabled=progress and bool(methods))
    maps, out = {}, {}
    for m in methods:
        run = run_method(model, m, tiles, targets, chunk=chunk, bar=bar, ids=ids, seed=seed)
        if run.skipped:
            out[m.key] = {"skipped": np.array(run.skipped)}
            bar.update(len(tiles))
        else:
            maps[m.key] = run.pixels
    bar.close()
    maps.update({b: v for b, v in baseline_maps(tiles, seed, ids).items() if b in keys})
    for key, pm in maps.items():
        out[key] = {"pointing_game": pointing_game(pm, masks), "energy_pointing_game": energy_pointing_game(pm, masks)}
    return out


def timed(function, *args, **kwargs):
    """(function(*args, **kwargs), seconds it took)."""
    began = time.perf_counter()
    return function(*args, **kwargs), time.perf_counter() - began

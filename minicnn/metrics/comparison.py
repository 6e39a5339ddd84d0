"""The sanity check's work on one chunk of images: per-image similarities at every randomisation step.

    part = compare_images(model, ["gradcam"], x, ids, mode="cascading", seed=0)
    part["gradcam"]["ssim"]        # (steps + 1, n): row 0 the trained map with itself (1), row s step s
    part["gradcam"]["examples"]    # (steps + 1, ...) raw maps of image 0 at every step, in the chunk that has it

A chunk is any set of the run's images, numbered ``ids`` (0 .. N-1). The
randomised networks depend on the seed and the step only (the same on
every worker, :func:`minicnn.metrics.randomisation.randomised`), a seeded
method's noise on the seed and the image (:mod:`minicnn.metrics.seeds`), so
an image's similarities are the same in any chunk; :func:`minicnn.metrics.sanity.sanity`
joins the chunks in image order. Every value is a NumPy array, so a part
can be kept on disk without pickles (:mod:`minicnn.util.chunkcache`).
"""

from __future__ import annotations

import numpy as np

from ..explain import registry
from ..util.progress import Progress
from .randomisation import randomised
from .randomisation import steps as randomisation_steps
from .runs import forward_in_batches, run_method
from .similarity import scale01, spearman, ssim

SIMILARITIES = ("spearman_abs", "spearman", "ssim")


def similarities(original, randomised_run) -> dict[str, np.ndarray]:
    """(N,) spearman_abs, spearman and ssim of a randomised method run against the original run."""
    a, b = np.abs(original.pixels), np.abs(randomised_run.pixels)
    return {"spearman_abs": spearman(a, b), "spearman": spearman(original.signed, randomised_run.signed),
            "ssim": ssim(scale01(a), scale01(b))}


def compare_images(model, keys, x: np.ndarray, ids, *, mode: str = "cascading", seed: int = 0, chunk: int = 1,
                   progress: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """{key: {similarity: (steps + 1, n), "examples": ...} or {"skipped": why}} for the images x numbered ``ids``."""
    ids = np.asarray(ids, dtype=np.int64)
    n = len(x)
    rows = [registry.get(k) for k in keys]
    targets = forward_in_batches(model, x).argmax(axis=1)
    plan = randomisation_steps(model, mode)
    first = np.nonzero(ids == 0)[0]                  # where image 0 is, whose maps the figure shows
    bar = Progress(n * len(rows) * (len(plan) + 1), f"sanity ({mode})", unit="maps", enabled=progress)
    originals, out, examples = {}, {}, {}
    for m in rows:
        run = run_method(model, m, x, targets, chunk=chunk, bar=bar, ids=ids, seed=seed)
        if run.skipped:
            out[m.key] = {"skipped": np.array(run.skipped)}
            bar.update(n * (len(plan) + 1))
            continue
        originals[m.key] = run
        out[m.key] = {s: np.ones((len(plan) + 1, n)) for s in SIMILARITIES}
        examples[m.key] = [run.raw[first[0]]] if len(first) else []
    for step, (_, layers) in enumerate(plan, start=1):
        twin = randomised(model, layers, seed)
        for m in rows:
            if m.key not in originals:
                continue
            run = run_method(twin, m, x, targets, chunk=chunk, bar=bar, ids=ids, seed=seed)
            for s, v in similarities(originals[m.key], run).items():
                out[m.key][s][step] = v
            if len(first):
                examples[m.key].append(run.raw[first[0]])
    bar.close()
    for key, maps in examples.items():
        if maps:
            out[key]["examples"] = np.stack(maps)
    return out

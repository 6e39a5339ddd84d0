"""The scorecard and the sanity check in chunks of images, on Dask workers, with a cache of finished chunks.

    cluster = Cluster(workers=2, chunk=10, cache="cache/")
    card = scorecard(model, images=200, cluster=cluster, source="resnet20_cifar10")    # = the serial card

The client cuts the run's images into chunks of ``cluster.chunk`` (mosaics
into chunks of a quarter as many: a mosaic is four images); a task is one
chunk and the methods (and baselines) it still lacks. Each worker loads the
model once (:func:`minicnn.models.worker.worker_model`: cached per process, keyed by the weights
file's SHA-256, which the worker checks against the client's), computes the
chunk's per-image values (:mod:`minicnn.metrics.scoring`,
:mod:`minicnn.metrics.comparison`) and returns them; the client puts them
back in image order. Because every value and every random draw belongs to
its image, the merged result is the serial run's, whatever the number of
workers or the chunk size (up to the rounding of float32 sums in batches
of another size: per-image values agree to about 1e-6 of their scale, the
printed means and intervals digit for digit).

With ``cluster.cache`` each finished chunk of each method is kept on disk
(:class:`minicnn.util.chunkcache.ChunkCache`), keyed by

    kind, model (SHA-256 of the weights), method, settings (seed, steps; mode), image ids
    (mosaics: their images and target tiles), the SHA-256 of the chunk's input arrays
    (:func:`minicnn.util.chunkcache.array_digest`: the images, or the mosaics and their
    targets), and the package version

so a run that was interrupted, or that adds a method, computes only the
chunks that are missing, and a run on other images (another ``--data``, or
other images under the same numbers) never reuses a chunk.
"""

from __future__ import annotations

import numpy as np

from ..models.worker import LOCK, weights_digest, worker_model
from ..util.chunkcache import ChunkCache, array_digest
from ..util.cluster import ClusterError, run_tasks
from .comparison import compare_images
from .scoring import REFERENCE, score_images, score_mosaics


def images_task(source, digest, keys, x, ids, settings, batch, chunk, examples, reference):
    """A worker's scorecard chunk (:func:`minicnn.metrics.scoring.score_images`)."""
    with LOCK:
        return score_images(worker_model(source, digest), keys, x, ids, **settings, batch=batch, chunk=chunk,
                            examples=examples, reference=reference)


def mosaics_task(source, digest, keys, tiles, targets, target_tiles, ids, seed, chunk):
    """A worker's chunk of mosaics (:func:`minicnn.metrics.scoring.score_mosaics`)."""
    with LOCK:
        return score_mosaics(worker_model(source, digest), keys, tiles, targets, target_tiles, ids, seed=seed,
                             chunk=chunk)


def sanity_task(source, digest, keys, x, ids, mode, seed, chunk):
    """A worker's sanity chunk (:func:`minicnn.metrics.comparison.compare_images`)."""
    with LOCK:
        return compare_images(worker_model(source, digest), keys, x, ids, mode=mode, seed=seed, chunk=chunk)


def cuts(n: int, size: int) -> list[np.ndarray]:
    """The numbers 0..n-1 in chunks of ``size``."""
    return [np.arange(a, min(a + size, n)) for a in range(0, n, size)]


def named(ids: np.ndarray, what: str = "images") -> str:
    return f"{what} {ids[0]}-{ids[-1]}" if len(ids) > 1 else f"{what[:-1]} {ids[0]}"


class _Parts:
    """The chunks of one run: what the cache has, what is left to compute, and the tasks that compute it."""

    def __init__(self, cache: ChunkCache | None):
        self.cache = cache
        self.parts, self.keys = [], []                              # per chunk: its arrays, its cache key
        self.tasks, self.owners, self.sizes, self.names = [], [], [], []   # per task: its chunk, size and name

    def add(self, base: dict, keys: list[str], task, size: int, name: str, extra=()) -> None:
        """One chunk: take what the cache has of ``keys`` (+ ``extra``), and a task for the rest if any."""
        have = {}
        if self.cache is not None:
            for k in [*keys, *extra]:
                got = self.cache.get({**base, "method": k})
                if got is not None:
                    have[k] = got
        missing = [k for k in keys if k not in have]
        self.parts.append(have)
        self.keys.append(base)
        if missing:
            self.tasks.append(task(missing, have))
            self.owners.append(len(self.parts) - 1)
            self.sizes.append(size)
            self.names.append(name)

    def finished(self, i: int, result: dict) -> None:
        part = self.owners[i]
        self.parts[part].update(result)
        if self.cache is not None:
            for k, arrays in result.items():
                self.cache.put({**self.keys[part], "method": k}, arrays)


def scorecard_parts(model, work, *, cluster, source, batch: int, chunk: int, examples: int, progress: bool):
    """(image parts, mosaic parts) of the scorecard ``work`` (:class:`minicnn.metrics.scorecard.Plan`), in order."""
    if source is None:
        raise ClusterError("a run on a cluster needs the model's shipped name or weights file (source=...)")
    digest = weights_digest(source)
    common = {"model": digest, "settings": work.settings}
    images = _Parts(ChunkCache(cluster.cache) if cluster.cache else None)
    for ids in cuts(len(work.x), cluster.chunk):
        def task(missing, have, ids=ids):
            reference = have.get(REFERENCE, {}).get("map")
            return images_task, (source, digest, missing, work.x[ids], ids, work.settings, batch, chunk, examples,
                                 reference)
        images.add({**common, "kind": "scorecard images", "ids": ids.tolist(), "examples": examples,
                    "inputs": array_digest(work.x[ids])}, work.keys, task, len(ids), named(ids), extra=(REFERENCE,))
    mosaics = _Parts(images.cache)
    if work.tiles is not None:
        for ids in cuts(len(work.tiles), max(1, cluster.chunk // 4)):
            def task(missing, have, ids=ids):
                return mosaics_task, (source, digest, missing, work.tiles[ids], work.tile_targets[ids],
                                      work.target_tiles[ids], ids, work.settings["seed"], max(1, chunk // 4))
            mosaics.add({**common, "kind": "scorecard mosaics", "ids": ids.tolist(),
                         "groups": work.groups[ids].tolist(), "target_tiles": work.target_tiles[ids].tolist(),
                         "inputs": array_digest(work.tiles[ids], work.tile_targets[ids])},
                        work.keys, task, 4 * len(ids), named(ids, "mosaics"))
    both = len(images.tasks)

    def finished(i, result):
        images.finished(i, result) if i < both else mosaics.finished(i - both, result)

    run_tasks(images.tasks + mosaics.tasks, cluster=cluster, sizes=images.sizes + mosaics.sizes,
              names=images.names + mosaics.names, label="scorecard", unit="images", progress=progress,
              on_result=finished)
    return images.parts, mosaics.parts


def sanity_parts(model, keys, x, *, mode: str, seed: int, chunk: int, cluster, source, progress: bool):
    """The sanity check's parts (:func:`minicnn.metrics.comparison.compare_images`), chunk by chunk, in order."""
    if source is None:
        raise ClusterError("a run on a cluster needs the model's shipped name or weights file (source=...)")
    digest = weights_digest(source)
    parts = _Parts(ChunkCache(cluster.cache) if cluster.cache else None)
    for ids in cuts(len(x), cluster.chunk):
        def task(missing, have, ids=ids):
            return sanity_task, (source, digest, missing, x[ids], ids, mode, seed, chunk)
        parts.add({"kind": "sanity", "model": digest, "settings": {"mode": mode, "seed": seed}, "ids": ids.tolist(),
                   "inputs": array_digest(x[ids])}, keys, task, len(ids), named(ids))
    run_tasks(parts.tasks, cluster=cluster, sizes=parts.sizes, names=parts.names, label=f"sanity ({mode})",
              unit="images", progress=progress, on_result=parts.finished)
    return parts.parts

"""Top-1 accuracy of a model on a labelled image dataset.

    minicnn evaluate --model resnet20_cifar10 --data cifar10-jpeg.zip
    ...
    top-1 accuracy: 81.03% (10000 images)

Without ``--data`` the 300 CIFAR-10 test images shipped in
``minicnn/data/cifar10`` are used.

For each batch of uint8 images (N, H, W, 3) with labels (N,):

    x      = preprocess(images, model.meta["preprocessing"])      (N, 3, H', W')
    logits = model.forward(x)                                      (N, K)
    correct += sum_n [argmax_k logits[n, k] == label_of(n)]

and top-1 = 100 * correct / N_total. A dataset label (the index of its class
folder, sorted by name) is mapped to the model's class of the same name, so
the dataset's order does not matter; a model without class names must have
as many outputs as the dataset has classes, in the same order.

The next batch is decoded and preprocessed in a background thread while
the model runs on the current one, and the forward passes keep nothing
but the logits (``keep=False``).

On a Dask cluster (:func:`evaluate_on`): the client decodes the images and
sends them in chunks; each worker (the model loaded once per process,
:mod:`minicnn.models.worker`) returns the predicted class of every image of
its chunk, and the client counts them in image order: the same count as
the serial run, whatever the workers or the chunk size.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from ..errors import InputError
from ..inputs.preprocess import preprocess
from ..model import Model
from ..util.cluster import run_tasks
from ..util.progress import Progress
from .weights import load as load_model
from .worker import LOCK, weights_digest, worker_model


@dataclass
class Accuracy:
    """``correct`` of ``total`` images had the true class as their top-1 prediction."""

    correct: int
    total: int

    @property
    def top1(self) -> float:
        """Top-1 accuracy in percent."""
        return 100.0 * self.correct / self.total if self.total else 0.0

    def __str__(self) -> str:
        return f"top-1 accuracy: {self.top1:.2f}% ({self.total} images)"


def label_map(model_classes: list[str], dataset_classes: list[str]) -> np.ndarray:
    """For each dataset label, the index of the same class among the model's outputs."""
    dataset_classes = [str(c) for c in dataset_classes]
    index = {c: i for i, c in enumerate(model_classes)}
    if all(c in index for c in dataset_classes):
        return np.array([index[c] for c in dataset_classes], dtype=np.int64)
    numbered = [str(i) for i in range(len(model_classes))]
    if (not model_classes or list(model_classes) == numbered) and len(model_classes) in (0, len(dataset_classes)):
        return np.arange(len(dataset_classes), dtype=np.int64)
    unknown = next(c for c in dataset_classes if c not in index)
    shown = ", ".join(model_classes[:10]) + (", ..." if len(model_classes) > 10 else "")
    raise InputError(f"the dataset's class {unknown!r} is not one of the model's classes ({shown})")


T = TypeVar("T")


def prefetched(items: Iterable[T]) -> Iterator[T]:
    """The items of ``items``, each next one produced in a background thread while the caller works.

    An exception raised while producing an item is raised here, where that
    item would have been yielded.
    """
    iterator = iter(items)
    done = object()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="minicnn-prefetch") as ahead:
        pending = ahead.submit(next, iterator, done)
        while True:
            item = pending.result()
            if item is done:
                return
            pending = ahead.submit(next, iterator, done)
            yield item


def check_counts(batch_size, limit) -> None:
    """A one-line InputError unless batch_size is a positive integer and limit is None or one."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InputError(f"batch size must be a positive integer; got {batch_size!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1):
        raise InputError(f"limit must be a positive integer; got {limit!r}")


def evaluate(model: Model, dataset, batch_size: int = 200, limit: int | None = None, *,
             progress: bool = False) -> Accuracy:
    """Top-1 accuracy of ``model`` on ``dataset`` (see minicnn.inputs.datasets.open_dataset).

    ``limit`` evaluates only the first ``limit`` images (in the dataset's
    order: class by class). ``progress`` draws a bar on stderr.
    """
    check_counts(batch_size, limit)
    prep = model.meta.get("preprocessing")
    if not prep:
        raise InputError(f"model {model.name!r} records no preprocessing; it cannot read images")
    to_model = label_map(model.classes, dataset.classes)
    total = len(dataset) if limit is None else min(limit, len(dataset))
    correct = seen = 0
    inputs = ((preprocess(images, prep), labels) for images, labels in dataset.batches(batch_size))
    with Progress(total, "evaluating", unit="images", enabled=progress) as bar:
        for x, labels in prefetched(inputs):
            if seen >= total:
                break
            x, labels = x[:total - seen], labels[:total - seen]
            logits = model.forward(x, keep=False)
            correct += int((logits.argmax(axis=1) == to_model[labels]).sum())
            seen += len(labels)
            bar.update(len(labels))
    return Accuracy(correct, seen)


def predictions_task(source, digest: str, images: np.ndarray, prep: dict, batch_size: int) -> np.ndarray:
    """A worker's chunk: the top-1 class (n,) of each image (n, H, W, 3) uint8, ``batch_size`` per pass."""
    with LOCK:
        model = worker_model(source, digest)
        return np.concatenate([model.forward(preprocess(images[i:i + batch_size], prep), keep=False).argmax(axis=1)
                               for i in range(0, len(images), batch_size)])


def evaluate_on(cluster, source, dataset, batch_size: int = 200, limit: int | None = None, *,
                progress: bool = False, model: Model | None = None) -> Accuracy:
    """:func:`evaluate` on a Dask cluster (:class:`minicnn.util.cluster.Cluster`), the model loaded from ``source``.

    The client reads the dataset in chunks of ``cluster.chunk`` images; the workers predict.
    """
    check_counts(batch_size, limit)
    model = load_model(source) if model is None else model
    prep = model.meta.get("preprocessing")
    if not prep:
        raise InputError(f"model {model.name!r} records no preprocessing; it cannot read images")
    to_model = label_map(model.classes, dataset.classes)
    digest = weights_digest(source)
    total = len(dataset) if limit is None else min(limit, len(dataset))
    tasks, labels, names, seen = [], [], [], 0
    for images, y in dataset.batches(cluster.chunk):
        if seen >= total:
            break
        images, y = images[:total - seen], y[:total - seen]
        tasks.append((predictions_task, (source, digest, images, prep, batch_size)))
        labels.append(to_model[y])
        names.append(f"images {seen}-{seen + len(y) - 1}")
        seen += len(y)
    predicted = run_tasks(tasks, cluster=cluster, sizes=[len(y) for y in labels], names=names, label="evaluating",
                          unit="images", progress=progress)
    correct = sum(int((p == y).sum()) for p, y in zip(predicted, labels))
    return Accuracy(correct, seen)

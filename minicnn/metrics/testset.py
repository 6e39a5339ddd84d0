"""The images a scorecard or a sanity check explains when ``--data`` names a dataset: its test split, in order.

    images = TestImages("cifar10_test.zip")          # any form of minicnn.inputs.datasets.open_dataset
    len(images)                                      # 10,000 for the CIFAR-10 test set
    pictures, labels = images.first(20)              # (20, H, W, 3) uint8, (20,) the dataset's labels
    pictures, labels = images.first("all")           # every image

The order is class by class in turn, as for the shipped test images
(:func:`minicnn.metrics.runs.shipped_test_images`): image 0 of every class,
then image 1 of every class, and so on, a class that has run out being
skipped. The classes are in the dataset's order (sorted folder names; for
the CIFAR-10 archive, its ``batches.meta``), and the images of a class in
the dataset's order (files sorted by name; the archive's order). So the
first N images spread over the classes, the first 10 are one of each
CIFAR-10 class, and ``"all"`` is every image of the split:

    position p = r * K' + k   <->   the r-th image of the k-th class among the K' classes that still have an r-th

Only the chosen images are decoded (folders and zips; the CIFAR-10 archive
is one 30 MB batch for its test split), with a progress bar on stderr when
it takes more than a second. Memory: the decoded images are kept as uint8
(3 KB for a 32x32 image) and the run's input as float32 (12 KB: 123 MB for
the 10,000 CIFAR-10 test images). A choice of more than
:data:`MAX_PICTURE_BYTES` of decoded pictures (1 GiB, about 4 GiB as float32)
is refused after the first image, before the rest are decoded.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..inputs.datasets import Dataset, open_dataset
from ..util.progress import Progress

#: The most bytes of decoded uint8 pictures a run may choose (the float32 input is about 4 times as much).
MAX_PICTURE_BYTES = 1024 ** 3


def class_by_class(labels) -> np.ndarray:
    """The dataset positions (N,) in the order class by class in turn (module docstring), for labels (N,).

    Example: labels [0, 0, 0, 1, 2, 2] (classes a, b, c) give [0, 3, 4, 1, 5, 2]: a0 b0 c0 a1 c1 a2.
    """
    labels = np.asarray(labels, dtype=np.int64)
    rank = np.zeros(len(labels), dtype=np.int64)                # r: the image's place within its class
    for c in np.unique(labels):
        where = np.flatnonzero(labels == c)
        rank[where] = np.arange(len(where))
    return np.lexsort((labels, rank))                           # by r, then by class


class TestImages:
    """The test split of a dataset (a path, or an opened :class:`minicnn.inputs.datasets.Dataset`), in the
    order of :func:`class_by_class`; ``classes``: the dataset's class names (label k is ``classes[k]``)."""

    __test__ = False                                            # not a pytest class despite its name

    def __init__(self, data, split: str = "test") -> None:
        self.dataset = data if isinstance(data, Dataset) else open_dataset(data, split)
        self.classes = list(self.dataset.classes)
        self._labels = self.dataset.labels()
        self.order = class_by_class(self._labels)

    def __len__(self) -> int:
        return len(self.order)

    def describe(self) -> str:
        """Where the images come from, for the command's output: "the 10000 images of the test split of PATH"."""
        return f"the {len(self)} images of the {self.dataset.split} split of {self.dataset.path}"

    def count(self, count) -> int:
        """``count`` (a positive integer, or "all") as a number of images; a one-line error above the split's."""
        if count == "all":
            return len(self)
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or not 1 <= count <= len(self):
            raise InputError(f"the number of images must be between 1 and {len(self)} ({self.describe()}); "
                             f"got {count}")
        return int(count)

    def first(self, count, *, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(pictures (n, H, W, 3) uint8, labels (n,)): the first ``count`` images of the order ("all": every one)."""
        chosen = self.order[:self.count(count)]
        one = self.dataset.take(chosen[:1])
        if one.nbytes * len(chosen) > MAX_PICTURE_BYTES:
            raise InputError(f"{len(chosen)} images of {one.shape[2]}x{one.shape[1]} pixels would take "
                             f"{one.nbytes * len(chosen) / 1024 ** 3:.1f} GiB decoded (the limit is "
                             f"{MAX_PICTURE_BYTES // 1024 ** 3} GiB); ask for fewer --images")
        with Progress(len(chosen), "reading images", unit="images", enabled=progress, after=1.0) as bar:
            bar.update(1)
            rest = self.dataset.take(chosen[1:], bar=bar) if len(chosen) > 1 else one[:0]
        if len(rest) and rest.shape[1:] != one.shape[1:]:
            raise InputError(f"the images of {self.dataset.path} differ in size ({one.shape[2]}x{one.shape[1]} "
                             f"and {rest.shape[2]}x{rest.shape[1]}); a run needs one size")
        return np.concatenate([one, rest]), self._labels[chosen]

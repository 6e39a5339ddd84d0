"""Labelled images for evaluation and training: folders, zip files, CIFAR-10.

:func:`open_dataset` reads three layouts:

- an image-folder tree ``<root>/<split>/<class>/*.jpg|jpeg|png`` (the layout
  of torchvision's ``ImageFolder``, one folder per split). Class names are the
  sorted class folder names, and a label is the index of its class;
- a zip file with the same layout, at the top of the zip or under one
  top-level folder;
- the CIFAR-10 "python version": ``cifar-10-python.tar.gz`` or its extracted
  folder ``cifar-10-batches-py`` (test split = ``test_batch``, train split =
  ``data_batch_1`` .. ``data_batch_5``). These batches are Python pickles;
  they are read with a restricted unpickler that can only rebuild numpy
  arrays, lists, dicts and bytes, so a tampered file cannot run code
  (:mod:`minicnn.inputs.cifar`).

Each dataset has ``.classes``, ``len()``, iteration over ``(image, label)``
pairs (``image``: (H, W, 3) uint8) and ``batches(batch_size)`` yielding
``(images, labels)``: (N, H, W, 3) uint8 and (N,) int64. Feed ``images`` to
:func:`minicnn.inputs.preprocess.preprocess`.

Errors: a missing path, an unknown format, an empty dataset or a corrupt or
tampered file raise :class:`~minicnn.errors.ImageError`; an unknown split
raises :class:`~minicnn.errors.UnknownNameError` listing the splits found;
a bad argument raises :class:`~minicnn.errors.InputError`.
"""

from __future__ import annotations

import numbers
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

import numpy as np

from ..errors import ImageError, InputError, unknown_name
from ..util.files import check_folder, check_name, check_regular_file, list_folder, read_regular_file
from .cifar import read_batch, read_classes
from .images import image_from_bytes, load_image
from .preprocess import size_text
from .samples import DATA_DIR

__all__ = ["IMAGE_EXTENSIONS", "Dataset", "open_dataset", "class_names", "CIFAR_SPLITS"]

#: File name endings read as images in folder and zip datasets (case-insensitive).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")

#: The batch files of each split of the CIFAR-10 python archive.
CIFAR_SPLITS = {"test": ("test_batch",), "train": tuple(f"data_batch_{i}" for i in range(1, 6))}
_CIFAR_DIR = "cifar-10-batches-py"

# A member of a zip or tar file larger than this is refused before it is read.
_MAX_MEMBER_BYTES = 512 * 1024 * 1024

# What a damaged zip or tar(.gz/.bz2/.xz) file can raise while being listed or read
# (NotImplementedError: an unknown compression method or zip version; RuntimeError:
# a member flagged as encrypted; zlib/lzma errors: damaged compressed data).
try:
    from lzma import LZMAError
except ImportError:  # a Python built without lzma cannot open .xz archives at all
    LZMAError = zlib.error
_ARCHIVE_ERRORS = (zipfile.BadZipFile, tarfile.TarError, OSError, ValueError, EOFError, KeyError,
                   NotImplementedError, RuntimeError, zlib.error, LZMAError)


class Dataset:
    """Labelled images of one split.

    Attributes: ``path`` (what was opened), ``split``, ``format`` ("folder",
    "zip" or "cifar10") and ``classes`` (list of class names; label ``k``
    means ``classes[k]``).
    """

    def __init__(self, path: Path, split: str | None, fmt: str, classes: list[str]):
        self.path = path
        self.split = split
        self.format = fmt
        self.classes = list(classes)

    def __len__(self) -> int:
        raise NotImplementedError

    def _chunks(self, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (images, labels) pieces of any length, in dataset order."""
        raise NotImplementedError

    def batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(images, labels)``: (N, H, W, 3) uint8 and (N,) int64, N <= batch_size.

        Every batch but the last has exactly ``batch_size`` images, in a
        fixed order (class by class, files sorted by name; CIFAR in file
        order). All images of a batch must share one size.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise InputError(f"batch_size must be a positive integer; got {batch_size!r}")
        pending_x: list[np.ndarray] = []
        pending_y: list[np.ndarray] = []
        have = 0
        for x, y in self._chunks(batch_size):
            pending_x.append(x)
            pending_y.append(y)
            have += len(y)
            while have >= batch_size:
                xs = _concat(pending_x, self)
                ys = np.concatenate(pending_y)
                yield xs[:batch_size], ys[:batch_size]
                pending_x, pending_y = [xs[batch_size:]], [ys[batch_size:]]
                have -= batch_size
        if have:
            yield _concat(pending_x, self), np.concatenate(pending_y)

    def __iter__(self) -> Iterator[tuple[np.ndarray, int]]:
        """Yield ``(image, label)`` pairs one at a time; images may differ in size."""
        for x, y in self._chunks(1):
            for img, label in zip(x, y):
                yield img, int(label)

    def _known_len(self) -> int | None:
        """The number of images if it is known without decoding anything."""
        return len(self)

    def labels(self) -> np.ndarray:
        """(N,) int64: every image's label, in dataset order (folders and zips: without decoding an image)."""
        return np.concatenate([y for _, y in self._chunks(256)]) if len(self) else np.zeros(0, np.int64)

    def take(self, indices, bar=None) -> np.ndarray:
        """(n, H, W, 3) uint8: the images at ``indices`` (n,) of the dataset order, in that order; only those are
        decoded where the format allows (folders and zips). ``bar``: a Progress, updated as images are read.
        All of them must share one size."""
        indices = _indices(indices, len(self))
        where = {int(i): k for k, i in enumerate(indices)}
        picked: list = [None] * len(indices)
        at = 0
        for x, _ in self._chunks(256):
            for j in range(len(x)):
                if at + j in where:
                    picked[where[at + j]] = x[j]
            at += len(x)
        if bar is not None:
            bar.update(len(indices))
        return _stack(picked, [f"image {i}" for i in indices], self) if len(indices) else np.zeros((0, 0, 0, 3),
                                                                                                    np.uint8)

    def __repr__(self) -> str:
        n = self._known_len()
        return (f"Dataset({str(self.path)!r}, split={self.split!r}, format={self.format!r}, "
                f"{'?' if n is None else n} images, {len(self.classes)} classes)")


def open_dataset(path, split: str | None = "test") -> Dataset:
    """Open the ``split`` of the labelled image collection at ``path``.

    ``path``: an image-folder tree, a zip file, ``cifar-10-python.tar.gz``, or
    a folder holding (or named) ``cifar-10-batches-py``. ``split``: a split
    folder name ("test", "train", "val", ...); for a folder tree,
    ``split=None`` means ``path`` itself holds the class folders.
    """
    if split is not None and (not isinstance(split, str) or not split or "/" in split or "\\" in split):
        raise InputError(f"split must be a folder name such as 'test' or 'train'; got {split!r}")
    p = check_name(path, "dataset", ImageError)
    if not p.exists():
        raise ImageError(f"dataset not found: {p}")
    if p.is_dir():
        check_folder(p, "the dataset folder", ImageError)
        cifar = _cifar_folder(p)
        if cifar is not None:
            return _CifarDataset(p, split, _FolderMembers(cifar))
        return _open_folder(p, split)
    check_regular_file(p, None, "the dataset", ImageError)   # never a device or a pipe (it would block)
    if zipfile.is_zipfile(p):
        return _open_zip(p, split)
    if _is_tar(p):
        return _CifarDataset(p, split, _TarMembers(p))
    raise ImageError(f"{p} is not a dataset minicnn can read: expected a folder <split>/<class>/*.jpg, "
                     f"a .zip with that layout, or cifar-10-python.tar.gz")


def class_names(which: str) -> list[str]:
    """The class names shipped with minicnn, in index order: "cifar10" (10) or "imagenet" (1000)."""
    files = {"cifar10": "cifar10_classes.txt", "imagenet": "imagenet_classes.txt"}
    if which not in files:
        raise unknown_name("class list", which, list(files))
    text = (DATA_DIR / files[which]).read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()]


# ---------------------------------------------------------------------------
# Folder trees and zip files


class _FileDataset(Dataset):
    """Images stored one per file; ``entries`` are (name, label) pairs, ``read(name)`` decodes one."""

    def __init__(self, path, split, fmt, classes, entries, read: Callable[[str], np.ndarray]):
        super().__init__(path, split, fmt, classes)
        self.entries = entries
        self._read = read

    def __len__(self) -> int:
        return len(self.entries)

    def labels(self) -> np.ndarray:
        return np.array([label for _, label in self.entries], dtype=np.int64)

    def take(self, indices, bar=None) -> np.ndarray:
        names = [self.entries[int(i)][0] for i in _indices(indices, len(self))]
        images = []
        for name in names:
            images.append(self._read(name))
            if bar is not None:
                bar.update(1)
        return _stack(images, names, self) if images else np.zeros((0, 0, 0, 3), np.uint8)

    def _chunks(self, batch_size):
        for start in range(0, len(self.entries), batch_size):
            part = self.entries[start:start + batch_size]
            images = [self._read(name) for name, _ in part]
            labels = np.array([label for _, label in part], dtype=np.int64)
            if batch_size == 1:
                yield images[0][None], labels
            else:
                yield _stack(images, [name for name, _ in part], self), labels


def _is_image_name(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return not base.startswith(".") and base.lower().endswith(IMAGE_EXTENSIONS)


def _open_folder(root: Path, split: str | None) -> Dataset:
    if split is None:
        base = root
    else:
        splits = sorted(d.name for d in _entries(root) if d.is_dir() and not d.name.startswith("."))
        if not splits:
            raise ImageError(f"{root} holds no split folders; expected {root}/<split>/<class>/*.jpg")
        if split not in splits:
            if (root / split).exists():
                raise ImageError(f"{root / split} is not a folder")
            raise unknown_name("split", split, splits)
        base = root / split
    classes = sorted(d.name for d in _entries(base) if d.is_dir() and not d.name.startswith("."))
    if not classes:
        loose = any(_is_image_name(f.name) for f in _entries(base) if f.is_file())
        hint = "; it holds images directly: put them in one folder per class" if loose else ""
        raise ImageError(f"{base} has no class folders; expected {base}/<class>/*.jpg{hint}")
    entries = []
    for label, c in enumerate(classes):
        files = sorted(f.name for f in _entries(base / c) if f.is_file() and _is_image_name(f.name))
        entries += [(str(base / c / f), label) for f in files]
    if not entries:
        raise ImageError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in the class folders of {base}")
    return _FileDataset(root, split, "folder", classes, entries, load_image)


def _entries(folder: Path) -> list[Path]:
    """The entries of a dataset folder; a one-line ImageError if it cannot be listed (no permission)."""
    return list_folder(folder, "the dataset folder", ImageError)


def _open_zip(path: Path, split: str | None) -> Dataset:
    try:
        zf = zipfile.ZipFile(path)
        infos = {i.filename: i for i in zf.infolist() if not i.is_dir()}
    except _ARCHIVE_ERRORS as e:
        raise ImageError(f"cannot read the zip file {path}: {e}") from None
    names = [n for n in infos if _is_image_name(n) and not n.startswith("__MACOSX/")]
    parts = [PurePosixPath(n).parts for n in names]
    top = {p[0] for p in parts}
    # <top>/<split>/<class>/<file>: drop one shared top-level folder
    strip = 1 if parts and len(top) == 1 and all(len(p) == 4 for p in parts) else 0
    tree = [(p[strip:], n) for p, n in zip(parts, names)]
    want = 2 if split is None else 3
    tree = [(p, n) for p, n in tree if len(p) == want]
    if not tree:
        layout = "<class>/<file>" if split is None else "<split>/<class>/<file>"
        raise ImageError(f"{path} holds no images laid out as {layout} (optionally under one top folder)")
    if split is not None:
        splits = sorted({p[0] for p, _ in tree})
        if split not in splits:
            raise unknown_name("split", split, splits)
        tree = [(p[1:], n) for p, n in tree if p[0] == split]
    classes = sorted({p[0] for p, _ in tree})
    index = {c: k for k, c in enumerate(classes)}
    entries = sorted(((n, index[p[0]]) for p, n in tree), key=lambda e: (e[1], e[0]))

    def read(name: str) -> np.ndarray:
        info = infos[name]
        if info.file_size > _MAX_MEMBER_BYTES:
            raise ImageError(f"{path}:{name} is {info.file_size} bytes, too large for an image")
        try:
            data = zf.read(info)
        except _ARCHIVE_ERRORS as e:
            raise ImageError(f"cannot read {name} from {path}: {e}") from None
        return image_from_bytes(data, name=f"{path}:{name}")

    return _FileDataset(path, split, "zip", classes, entries, read)


# ---------------------------------------------------------------------------
# CIFAR-10 python archive


class _FolderMembers:
    """The files of an extracted ``cifar-10-batches-py`` folder."""

    def __init__(self, folder: Path):
        self.where = folder

    def names(self) -> list[str]:
        return sorted(f.name for f in _entries(self.where) if f.is_file())

    def read(self, name: str) -> bytes:
        return read_regular_file(self.where / name, _MAX_MEMBER_BYTES, "the CIFAR-10 batch", ImageError)


class _TarMembers:
    """The files of ``cifar-10-python.tar.gz``, read from the archive without extracting it."""

    def __init__(self, path: Path):
        self.where = path
        try:
            with tarfile.open(path) as tf:
                self._members = {PurePosixPath(m.name).name: m.name for m in tf.getmembers() if m.isfile()}
        except _ARCHIVE_ERRORS as e:
            raise ImageError(f"cannot read the archive {path}: {e}") from None

    def names(self) -> list[str]:
        return sorted(self._members)

    def read(self, name: str) -> bytes:
        try:
            with tarfile.open(self.where) as tf:
                member = tf.getmember(self._members[name])
                if member.size > _MAX_MEMBER_BYTES:
                    raise ImageError(f"{self.where}:{name} is {member.size} bytes, too large for a CIFAR batch")
                return tf.extractfile(member).read()
        except _ARCHIVE_ERRORS as e:
            raise ImageError(f"cannot read {name} from {self.where}: {e}") from None


class _CifarDataset(Dataset):
    def __init__(self, path: Path, split: str | None, members):
        names = set(members.names())
        found = sorted(s for s, files in CIFAR_SPLITS.items() if all(f in names for f in files))
        if split not in CIFAR_SPLITS or split not in found:
            if not found:
                raise ImageError(f"{members.where} holds no CIFAR-10 batches (test_batch, data_batch_1..5)")
            raise unknown_name("split", split, found)
        if "batches.meta" not in names:
            raise ImageError(f"{members.where} has no batches.meta (the CIFAR-10 class names)")
        classes = read_classes(members.read("batches.meta"), f"{members.where}:batches.meta")
        super().__init__(path, split, "cifar10", classes)
        self._members = members
        self._files = CIFAR_SPLITS[split]
        self._lengths: list[int] | None = None
        self._last: tuple[str, tuple[np.ndarray, np.ndarray]] | None = None

    def _batch(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """One batch file's (images, labels); the last one read is kept (30 MB), so that ``labels()`` and then
        ``take()`` of the test split read (and for the .tar.gz, decompress) it once."""
        if self._last is None or self._last[0] != name:
            self._last = None                                 # free the last batch before reading the next
            self._last = (name, read_batch(self._members.read(name), f"{self._members.where}:{name}",
                                           len(self.classes)))
        return self._last[1]

    def __len__(self) -> int:
        if self._lengths is None:
            self._lengths = [len(self._batch(f)[1]) for f in self._files]
        return sum(self._lengths)

    def _known_len(self) -> int | None:
        return None if self._lengths is None else sum(self._lengths)

    def _chunks(self, batch_size):
        for name in self._files:
            yield self._batch(name)


def _cifar_folder(p: Path) -> Path | None:
    if (p / _CIFAR_DIR).is_dir():
        return p / _CIFAR_DIR
    if p.name == _CIFAR_DIR or (p / "batches.meta").is_file():
        return p
    return None


def _is_tar(p: Path) -> bool:
    try:
        return tarfile.is_tarfile(p)
    except _ARCHIVE_ERRORS:
        return False


# ---------------------------------------------------------------------------


def _indices(indices, n: int) -> np.ndarray:
    """``indices`` as an int64 array of numbers in 0..n-1; an InputError otherwise."""
    out = np.asarray(indices)
    if out.ndim != 1 or (out.size and (out.dtype.kind not in "iu" or out.min() < 0 or out.max() >= n)):
        raise InputError(f"image indices must be integers in 0..{n - 1}")
    return out.astype(np.int64)


def _stack(images: list[np.ndarray], names: list[str], ds: Dataset) -> np.ndarray:
    shapes = {img.shape for img in images}
    if len(shapes) > 1:
        first = images[0].shape
        odd = next(n for n, img in zip(names, images) if img.shape != first)
        raise ImageError(f"images in {ds.path} differ in size ({names[0]} is {size_text(first)}, {odd} is "
                         f"not); iterate over the dataset one image at a time and preprocess each")
    return np.stack(images)


def _concat(parts: list[np.ndarray], ds: Dataset) -> np.ndarray:
    parts = [p for p in parts if len(p)]
    if len({p.shape[1:] for p in parts}) > 1:
        raise ImageError(f"images in {ds.path} differ in size; iterate over the dataset one image at a time "
                         f"and preprocess each")
    return np.concatenate(parts) if len(parts) > 1 else parts[0]

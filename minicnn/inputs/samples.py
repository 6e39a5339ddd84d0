"""The data shipped with the package: CIFAR-10 test images and two photographs.

:func:`sample_images` lists the 30 CIFAR-10 test images per class in
``minicnn/data/cifar10/test``, :func:`load_sample` reads one, and
:func:`data_path` finds any other shipped file (``minicnn/data/images/...``).
"""

from __future__ import annotations

import numbers
from pathlib import Path

import numpy as np

from ..errors import ImageError, InputError, unknown_name
from .images import load_image

__all__ = ["DATA_DIR", "data_path", "sample_images", "load_sample"]

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
_SAMPLES_DIR = DATA_DIR / "cifar10" / "test"


def data_path(*parts: str) -> Path:
    """Path of a file shipped in ``minicnn/data`` (e.g. ``data_path("images", "chelsea.png")``)."""
    path = DATA_DIR.joinpath(*parts)
    if not path.exists():
        raise ImageError(f"no shipped data file {'/'.join(parts)} (looked in {DATA_DIR})")
    return path


def sample_images(class_name: str | None = None) -> list[tuple[Path, str]]:
    """The shipped CIFAR-10 test images, as sorted ``(path, class_name)`` pairs.

    30 JPEG images per class (32x32), from ``minicnn/data/cifar10/test``.
    ``class_name`` keeps one class; an unknown name raises
    :class:`~minicnn.errors.UnknownNameError`.
    """
    classes = sorted(d.name for d in _SAMPLES_DIR.iterdir() if d.is_dir()) if _SAMPLES_DIR.is_dir() else []
    if not classes:
        raise ImageError(f"the sample images are missing from {_SAMPLES_DIR}")
    if class_name is not None:
        if class_name not in classes:
            raise unknown_name("class", class_name, classes)
        classes = [class_name]
    return [(f, c) for c in classes for f in sorted((_SAMPLES_DIR / c).glob("*.jpg"))]


def load_sample(class_name: str, index: int = 0) -> np.ndarray:
    """Load shipped CIFAR-10 test image number ``index`` of ``class_name`` as (32, 32, 3) uint8."""
    samples = sample_images(class_name)
    if isinstance(index, bool) or not isinstance(index, numbers.Integral) or not 0 <= index < len(samples):
        raise InputError(f"sample index must be an integer in 0..{len(samples) - 1} "
                         f"({len(samples)} images of {class_name!r}); got {index!r}")
    return load_image(samples[index][0])

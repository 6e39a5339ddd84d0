"""Saving a figure: atomically, in the format its file name says (PNG, JPEG, PDF or SVG).

Figures are ``matplotlib.figure.Figure`` objects built without pyplot (no
global state, no window); :func:`save_figure` writes one through
``minicnn.util.atomic`` (alone, or as one of a run's all-or-nothing outputs).
"""

from __future__ import annotations

import os

from matplotlib.figure import Figure

from ..errors import OutputError
from ..util.atomic import atomic_output, refuse_folder_or_device

#: The figure formats, by file extension (matplotlib writes them; JPEG through Pillow).
FIGURE_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".pdf": "pdf", ".svg": "svg"}


def figure_format(path) -> str:
    """The format a figure file's extension names ("png", "jpeg", "pdf", "svg"); a one-line OutputError otherwise."""
    suffix = os.path.splitext(os.fspath(path))[1]
    if suffix.lower() not in FIGURE_FORMATS:
        problem = f"'{suffix}' is not a format for a figure" if suffix else "the name has no extension to say " \
                                                                             "the format of a figure"
        names = ", ".join(list(FIGURE_FORMATS)[:-1]) + " or " + list(FIGURE_FORMATS)[-1]
        raise OutputError(f"{os.fspath(path)}: {problem}; name it {names}")
    return FIGURE_FORMATS[suffix.lower()]


def save_figure(fig: Figure, path, *, dpi: int = 120, outputs=None) -> str:
    """Write ``fig`` in the format its extension names (.png, .jpg, .jpeg, .pdf, .svg); returns the path.

    Alone, the file is written atomically (temporary file, then os.replace)
    and an existing one replaced; with ``outputs`` (a ``minicnn.util.atomic.Outputs``
    inside its ``writing()`` block) it is one of that run's all-or-nothing
    outputs, under that run's overwrite rule.
    """
    refuse_folder_or_device(path)
    fmt = figure_format(path)
    if outputs is not None:
        with outputs.open(path) as f:
            fig.savefig(f, format=fmt, dpi=dpi)
    else:
        with atomic_output(path, force=True) as f:
            fig.savefig(f, format=fmt, dpi=dpi)
    return os.fspath(path)


def save_png(fig: Figure, path, *, dpi: int = 120, outputs=None) -> str:
    """Write ``fig`` as a PNG (the name must end .png); see :func:`save_figure`."""
    refuse_folder_or_device(path)
    if figure_format(path) != "png":
        raise OutputError(f"{os.fspath(path)}: save_png writes PNG; name the file .png, or use save_figure")
    return save_figure(fig, path, dpi=dpi, outputs=outputs)


"""Panels in a grid: one figure, a row per list of panels, colour bars under them, a caption under all.

Titles and row labels are wrapped (TITLE_CHARS, ROW_LABEL_CHARS), so a
figure's size is bounded whatever the class names; each panel's ``notes``
become the caption (each different line once).
"""

from __future__ import annotations

import textwrap
from dataclasses import replace

from matplotlib.figure import Figure

from ..errors import InputError
from .panels import Panel, draw_panel

#: Panel titles are wrapped at this many characters a line, row labels at ROW_LABEL_CHARS: a figure's size is
#: bounded whatever the class names (ImageNet's longest label is 121 characters).
TITLE_CHARS, ROW_LABEL_CHARS = 44, 24


def wrap_text(text: str, chars: int) -> str:
    """``text`` with every line longer than ``chars`` wrapped at spaces (long words cut)."""
    return "\n".join(part for line in str(text).split("\n") for part in (textwrap.wrap(line, chars) or [""]))



def grid_figure(rows: list[list[Panel]], *, row_labels: list[str] | None = None, title: str | None = None,
                panel_height: float = 1.1, fontsize: float = 10) -> Figure:
    """A figure with one row per list of panels; returns the Figure (not saved).

    Every panel has the same cell, as wide as the first image's aspect asks
    (32x64 images get wide panels), with a thin colour-bar strip under it
    that heat panels use: colour bars below, not beside, keep wide figures
    readable at page width. The panels' ``notes`` (each different line
    once, in order) are the caption under the figure.
    """
    if not rows or not rows[0]:
        raise InputError("a figure needs at least one panel")
    rows = [[replace(p, title=wrap_text(p.title, TITLE_CHARS)) for p in row] for row in rows]
    row_labels = [wrap_text(label, ROW_LABEL_CHARS) for label in row_labels] if row_labels else row_labels
    first = next((p for row in rows for p in row if p.kind == "image"), rows[0][0])
    ref = first.data if first.kind == "image" else (first.image if first.image is not None else first.data)
    aspect = ref.shape[1] / ref.shape[0] if ref is not None else 1.0
    ncols = max(len(r) for r in rows)
    lines = [line for row in rows for p in row for line in p.title.split("\n")]
    title_lines = max(p.title.count("\n") + 1 for row in rows for p in row)
    # widen panels (keeping their aspect) until the longest title line fits
    panel_height = max(panel_height, max(map(len, lines)) * fontsize * 0.0078 / aspect)
    bar = 0.09 * min(1.0, 2.0 / aspect)
    width = (panel_height * aspect + 0.2) * ncols + (0.35 if row_labels else 0.0)
    if any(p.notes for row in rows for p in row):
        width = max(width, 4.0)                                      # inches: room for a caption's lines
    notes = caption_lines(rows, width, fontsize - 1)
    caption = 0.17 * (fontsize - 1) / 9 * len(notes)                 # inches: 1.3 lines of the caption's font
    if title:
        title = wrap_text(title, int(width * 72 / (0.55 * (fontsize + 1))))
    height = ((panel_height * (1 + bar) + 0.35 + 0.19 * title_lines) * len(rows)
              + (0.4 + 0.21 * title.count("\n") if title else 0.0) + (caption + 0.1 if notes else 0.0))
    fig = Figure(figsize=(width, height), layout="constrained")
    fig.get_layout_engine().set(h_pad=0.06)                          # inches: titles clear of the one above
    grid = fig.add_gridspec(2 * len(rows) + bool(notes), ncols,
                            height_ratios=[1, bar] * len(rows) + ([caption / panel_height] if notes else []))
    for r, row in enumerate(rows):
        for c in range(ncols):
            ax = fig.add_subplot(grid[2 * r, c])
            cax = fig.add_subplot(grid[2 * r + 1, c])
            if c < len(row):
                draw_panel(fig, ax, row[c], cax=cax, fontsize=fontsize)
            else:
                ax.set_axis_off()
                cax.set_axis_off()
            if c == 0 and row_labels:
                ax.set_ylabel(row_labels[r], fontsize=fontsize + 1, fontweight="bold")
    if title:
        fig.suptitle(title, fontsize=fontsize + 1)
    if notes:
        ax = fig.add_subplot(grid[-1, :])
        ax.set_axis_off()
        text = ax.text(0, 1, "\n".join(notes), transform=ax.transAxes, ha="left", va="top", fontsize=fontsize - 1,
                       linespacing=1.3)
        text.set_in_layout(False)                                    # its row is sized for it; the panels keep theirs
    return fig


def caption_lines(rows: list[list[Panel]], width: float, fontsize: float) -> list[str]:
    """The panels' notes, each different one once, wrapped to a figure ``width`` inches wide."""
    notes = dict.fromkeys(line for row in rows for p in row for line in p.notes if line)
    chars = int(width * 72 / (0.55 * fontsize))                      # about 0.55 em per character
    return [wrapped for line in notes for wrapped in textwrap.wrap(line, chars, subsequent_indent="  ")]


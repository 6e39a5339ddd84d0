"""Figures of the sanity checks and the scorecard (display only: the numbers are computed elsewhere).

- :func:`sanity_grid`: the style of Adebayo et al.'s Figure 2: a row per
  method, a column per randomisation step (the trained network first), each
  panel the absolute pixel map of one image scaled to [0, 1];
- :func:`sanity_curves`: a panel per method, its three similarities against
  the randomisation step (mean over the images, the band its 95% interval);
- :func:`deletion_insertion_curves`: small multiples, a panel per method: the
  mean class probability as pixels are deleted or inserted in its map's
  order, the other methods grey behind, and a panel of the baselines;
- :func:`example_maps`: a few images with every method's and baseline's
  pixel map over them;
- :func:`trust_columns`: a panel per column from Average Drop to
  random-logit, every method's and baseline's mean and 95% interval.

Built without pyplot (``minicnn.figures`` chooses the backend); save with
``minicnn.figures.save_png``.
"""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..metrics.baselines import BASELINES
from ..metrics.intervals import mean_ci95
from ..metrics.maps import pixel_map
from ..metrics.scorecard import HEADERS, METRICS
from ..metrics.similarity import scale01
from ..metrics.trust import COLUMNS
from .colours import HEAT_CMAP, MAGNITUDE_CMAP, to_display
from .grid import wrap_text

LABELS = {"spearman_abs": "Spearman of |map|", "spearman": "Spearman of signed map", "ssim": "SSIM of |map| in [0, 1]"}


def _columns(n: int, most: int) -> list[int]:
    """Indices 0..n-1, thinned evenly to at most ``most``, first and last kept."""
    if n <= most:
        return list(range(n))
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, most)})


def _off(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def sanity_grid(result, *, most_columns: int = 10) -> Figure:
    """Rows: methods; columns: the input, then the map after each randomisation step (thinned if many)."""
    keys = [k for k in result.methods if k not in result.skipped]
    labels = ["original", *result.steps]
    cols = _columns(len(labels), most_columns)
    size = result.picture.shape[:2]
    fig = Figure(figsize=(1.25 * (len(cols) + 1) + 0.8, 1.3 * len(keys) + 1.1), layout="constrained")
    axes = fig.subplots(len(keys), len(cols) + 1, squeeze=False)
    image = None
    for r, key in enumerate(keys):
        maps = np.abs(pixel_map(result.examples[key], result.kinds[key], size))
        axes[r, 0].imshow(to_display(result.picture), interpolation="bilinear")
        axes[r, 0].set_ylabel(wrap_text(result.titles[key], 16), fontsize=8)     # within its row, even the last
        for c, step in enumerate(cols, start=1):
            image = axes[r, c].imshow(scale01(maps[step]), cmap=MAGNITUDE_CMAP, vmin=0, vmax=1,
                                      interpolation="bilinear")
            if r == 0:
                axes[r, c].set_title(labels[step].replace("+", "\n+"), fontsize=6.5, rotation=0)
        for ax in axes[r]:
            _off(ax)
    axes[0, 0].set_title("input", fontsize=7)
    if image is not None:
        fig.colorbar(image, ax=axes[:, 1:], shrink=min(0.6, 3.0 / len(keys)), label="|map|, scaled to [0, 1] per panel")
    thinned = "" if len(cols) == len(labels) else f", {len(cols)} of {len(labels)} steps shown"
    fig.suptitle(f"{result.model}: {result.mode} randomisation from the logits down, image 0 of "
                 f"{result.images}{thinned}", fontsize=9)
    return fig


def _style(i: int) -> dict:
    """Line style of the i-th method: 20 colours, each with its own marker, so no two lines look alike."""
    markers = "osv^D<>ph*"
    return {"color": colormaps["tab20"](i % 20), "marker": markers[(i + i // 20) % len(markers)]}


def sanity_curves(result, *, columns: int = 4) -> Figure:
    """A panel per method: its three similarities to the trained map against the randomisation step,
    with their 95% intervals over the images."""
    keys = [k for k in result.methods if k not in result.skipped]
    labels = ["original", *result.steps]
    rows = -(-len(keys) // columns)
    named = len(labels) <= 10                          # few steps: name them; many: number them
    fig = Figure(figsize=(3.3 * columns, 2.3 * rows + (1.3 if named else 0.9)), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False, sharex=True, sharey=True)
    x = np.arange(len(labels))
    colours = {"spearman_abs": "tab:blue", "spearman": "tab:orange", "ssim": "tab:green"}
    stats = {key: {s: np.array([mean_ci95(v) for v in result.values[key][s]]) for s in LABELS} for key in keys}
    low = np.nanmin([np.nanmin(a) for per in stats.values() for a in per.values()] or [0.0])
    bottom = max(-1.0, min(-0.5, np.floor(low / 0.25) * 0.25))           # curves (>= -1) and bands inside the chart
    for ax, key in zip(axes.flat, keys):
        for s, label in LABELS.items():
            stats_s = stats[key][s]
            ax.plot(x, stats_s[:, 0], marker=".", ms=4, lw=1.3, color=colours[s], label=label)
            ax.fill_between(x, stats_s[:, 1], stats_s[:, 2], color=colours[s], alpha=0.18, lw=0)
        ax.axhline(0, color="grey", lw=0.7, ls="--")
        ax.set_title(result.titles[key], fontsize=9)
        ax.set_ylim(bottom - 0.05, 1.05)
        ax.set_yticks(np.arange(bottom, 1.001, 0.25 if bottom > -1.01 else 0.5))  # the lowest tick at the bottom
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(keys):]:
        ax.set_axis_off()
    for ax in axes[-1]:
        if named:
            ax.set_xticks(x, labels, rotation=90, fontsize=7)
        else:
            ax.set_xticks(x[::2], [str(i) for i in x[::2]], fontsize=7)
    steps = ("layers randomised from the logits down, one more at each step" if result.mode == "cascading"
             else "one layer randomised at each step, the rest trained")
    if not named:
        steps += f" (0: trained; 1: {labels[1]}; 2: {labels[2]}; ...; {len(labels) - 1}: {labels[-1]})"
    fig.supylabel("similarity to the trained network's map", fontsize=9)
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    bands = "bands: 95% intervals" if result.images > 1 else "no 95% bands: one image"
    fig.suptitle(f"{result.model}: {result.mode} randomisation, mean over {result.images} images "
                 f"({bands})\n{steps}", fontsize=10)
    return fig


def deletion_insertion_curves(card, *, columns: int = 5) -> Figure:
    """Small multiples: a panel per method, its mean p^c as pixels are deleted (blue) and inserted (orange).

    Every other method's two curves are drawn thin and grey behind, and the random baseline's dashed, so
    each panel reads on its own and against the rest; a last panel shows the three baselines. The area
    under each curve (mean over the images) is in the panel's title.
    """
    keys = [k for k in card.methods if k in card.curves]
    baselines = [b for b in BASELINES if b in card.curves]
    panels = keys + (["baselines"] if baselines else [])
    rows = max(1, -(-len(panels) // columns))
    fig = Figure(figsize=(2.7 * min(columns, len(panels) or 1) + 0.5, 2.25 * rows + 1.2), layout="constrained")
    axes = fig.subplots(rows, min(columns, len(panels) or 1), squeeze=False, sharex=True, sharey=True)
    colours = {"deletion": "tab:blue", "insertion": "tab:orange"}
    dashes = dict(zip(BASELINES, ("--", ":", "-.")))

    def curve(key, which):
        c = card.curves[key][which]
        return np.linspace(0, 1, len(c)), c

    def area(key, which) -> str:
        v = card.values.get(key, {}).get(f"{which}_auc")
        return "?" if v is None else f"{np.mean(v):.3f}"

    for ax, key in zip(axes.flat, panels):
        for other in keys:
            if other != key:
                for which in colours:
                    ax.plot(*curve(other, which), color="0.75", lw=0.6, alpha=0.6, zorder=1)
        shown = baselines if key == "baselines" else [key]
        for k in shown:
            for which, colour in colours.items():
                style = {"ls": dashes[k], "lw": 1.4} if k in BASELINES else {"marker": ".", "ms": 4, "lw": 1.6}
                ax.plot(*curve(k, which), color=colour, zorder=3, **style)
        if key != "baselines" and "random" in baselines:
            for which in colours:
                ax.plot(*curve("random", which), color="black", ls="--", lw=0.8, alpha=0.7, zorder=2)
        if key == "baselines":
            ax.set_title("baselines: " + ", ".join(f"{b} ({dashes[b]})" for b in baselines), fontsize=8)
        else:
            ax.set_title(f"{card.titles[key]}\ndeletion {area(key, 'deletion')} ↓, insertion "
                         f"{area(key, 'insertion')} ↑", fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.tick_params(labelsize=7)
    ncols = axes.shape[1]
    for i, ax in enumerate(axes.flat):
        if i >= len(panels):
            ax.set_axis_off()
        elif i + ncols >= len(panels):                 # nothing below it: its own fractions
            ax.xaxis.set_tick_params(labelbottom=True)
    fig.supylabel("mean class probability p^c", fontsize=9)
    handles = [Line2D([], [], color=colours["deletion"], marker=".", label="deletion (lower area is better)"),
               Line2D([], [], color=colours["insertion"], marker=".", label="insertion (higher area is better)"),
               Line2D([], [], color="black", ls="--", lw=0.8, label="random baseline"),
               Line2D([], [], color="0.75", lw=0.6, label="the other methods")]
    fig.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=8, frameon=False)
    fig.suptitle(f"{card.model}: deletion and insertion, mean over {card.images} images (areas under the curves in "
                 "the titles)\nx: fraction of pixels deleted (set to 0) or inserted (into a blur), most relevant first",
                 fontsize=10)
    return fig


def example_maps(card, *, most_columns: int = 8) -> Figure:
    """Rows: example images; columns: the input, then every method's and baseline's pixel map over it.

    More than ``most_columns`` maps wrap into further blocks of rows (each image again, with its
    input), so that the figure stays about as wide as it is high; the colour bar is under the maps.
    """
    images = card.examples["images"]
    keys = [k for k in card.methods if k in card.examples] + [b for b in BASELINES if b in card.examples]
    per_row = max(1, min(most_columns, len(keys)))
    blocks = [keys[i:i + per_row] for i in range(0, len(keys), per_row)] or [[]]
    nrows = len(images) * len(blocks)
    height = 1.45 * nrows + 1.4
    fig = Figure(figsize=(1.2 * (per_row + 1) + 0.4, height), layout="constrained")
    axes = fig.subplots(nrows, per_row + 1, squeeze=False)
    shown = None
    for b, block in enumerate(blocks):
        for i, picture in enumerate(images):
            row = axes[b * len(images) + i]
            row[0].imshow(to_display(picture), interpolation="bilinear")
            if i == 0:
                row[0].set_title("input", fontsize=7)
            for c, key in enumerate(block, start=1):
                row[c].imshow(to_display(picture), interpolation="bilinear")
                shown = row[c].imshow(scale01(card.examples[key][i]), cmap=HEAT_CMAP, vmin=0, vmax=1, alpha=0.5,
                                      interpolation="bilinear")
                if i == 0:
                    row[c].set_title(wrap_text(card.titles[key].replace("baseline: ", "baseline:\n"), 16),
                                     fontsize=7)
            for ax in row[:len(block) + 1]:
                _off(ax)
            for ax in row[len(block) + 1:]:
                ax.set_axis_off()
    if shown is not None:
        fig.colorbar(shown, ax=axes, location="bottom", shrink=min(0.6, 4.0 / (per_row + 1)), aspect=30,
                     fraction=0.5 / height, label="pixel map as ranked, scaled to [0, 1]")   # about 0.5 inch high
    fig.suptitle(wrap_text(f"{card.model}: the pixel maps the scorecard ranks (input maps: sum over channels of "
                           f"|map|)", int(1.2 * (per_row + 1) * 72 / (0.55 * 9))), fontsize=9)
    return fig


def trust_columns(card, *, columns: int = 4) -> Figure:
    """A panel per column from Average Drop to random-logit: every method's and baseline's mean as a dot with its
    95% interval as a bar, one row each, the better end named in the panel's title (``METRICS``' direction)."""
    keys = [k for k in [*card.methods, *BASELINES] if k not in card.skipped and k in card.values]
    shown = [c for c in COLUMNS if any(c in card.values[k] for k in keys)]
    ncols = max(1, min(columns, len(shown)))
    nrows = max(1, -(-len(shown) // ncols))
    fig = Figure(figsize=(2.9 * ncols + 1.6, (0.17 * len(keys) + 0.9) * nrows + 0.8), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    ypos = np.arange(len(keys))[::-1]
    for ax, metric in zip(axes.flat, shown):
        for y, key in zip(ypos, keys):
            v = card.values[key].get(metric)
            if v is None:
                continue
            mean, lo, hi = mean_ci95(v)
            colour = "0.45" if key in BASELINES else "tab:blue"
            if not np.isnan(lo):
                ax.plot([lo, hi], [y, y], color=colour, lw=1.2)
            ax.plot([mean], [y], "o", color=colour, ms=3.5)
        better = METRICS[metric]
        ax.set_title(f"{HEADERS[metric]} ({better} is better {'↓' if better == 'lower' else '↑'})", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(axis="x", color="0.9", lw=0.6)
    for ax in axes[:, 0]:
        ax.set_yticks(ypos, [wrap_text(card.titles[k], 26) for k in keys], fontsize=6)
    for ax in list(axes.flat)[len(shown):]:
        ax.set_axis_off()
    fig.suptitle(f"{card.model}: mean over the images (max-sensitivity and random-logit: the first images only) "
                 "with 95% intervals; baselines grey", fontsize=9)
    return fig

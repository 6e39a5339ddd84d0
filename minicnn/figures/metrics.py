"""Figures of the sanity checks and the scorecard (display only: the numbers are computed elsewhere).

- :func:`sanity_grid`: the style of Adebayo et al.'s Figure 2: a row per
  method, a column per randomisation step (the trained network first), each
  panel the absolute pixel map of one image scaled to [0, 1];
- :func:`sanity_curves`: each similarity against the randomisation step, a
  line per method (mean over the images, the band its 95% interval);
- :func:`deletion_insertion_curves`: the mean class probability as pixels
  are deleted or inserted in each map's order, methods and baselines;
- :func:`example_maps`: a few images with every method's and baseline's
  pixel map over them.

Built without pyplot (``minicnn.figures`` chooses the backend); save with
``minicnn.figures.save_png``.
"""

from __future__ import annotations

import numpy as np

from ..figures import HEAT_CMAP, MAGNITUDE_CMAP, Figure, to_display
from ..metrics.baselines import BASELINES
from ..metrics.intervals import mean_ci95
from ..metrics.maps import pixel_map
from ..metrics.similarity import scale01

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
        axes[r, 0].set_ylabel(result.titles[key], fontsize=8)
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
    from matplotlib import colormaps
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
    for ax, key in zip(axes.flat, keys):
        for s, label in LABELS.items():
            stats = np.array([mean_ci95(v) for v in result.values[key][s]])
            ax.plot(x, stats[:, 0], marker=".", ms=4, lw=1.3, color=colours[s], label=label)
            ax.fill_between(x, stats[:, 1], stats[:, 2], color=colours[s], alpha=0.18, lw=0)
        ax.axhline(0, color="grey", lw=0.7, ls="--")
        ax.set_title(result.titles[key], fontsize=9)
        ax.set_ylim(-0.5, 1.05)
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
    fig.suptitle(f"{result.model}: {result.mode} randomisation, mean over {result.images} images "
                 f"(bands: 95% intervals)\n{steps}", fontsize=10)
    return fig


def deletion_insertion_curves(card) -> Figure:
    """Mean p^c against the fraction of pixels deleted (left) and inserted (right); baselines dashed."""
    fig = Figure(figsize=(14, 5.2), layout="constrained")
    axes = fig.subplots(1, 2)
    keys = [k for k in card.methods if k in card.curves] + [b for b in BASELINES if b in card.curves]
    dashes = dict(zip(BASELINES, ("--", ":", "-.")))
    for ax, which in zip(axes, ("deletion", "insertion")):
        for i, key in enumerate(keys):
            curve = card.curves[key][which]
            frac = np.linspace(0, 1, len(curve))
            area = np.mean(card.values[key][f"{which}_auc"])
            style = {"color": "black", "ls": dashes[key], "alpha": 0.8} if key in BASELINES else _style(i)
            ax.plot(frac, curve, lw=1.2, ms=4, label=f"{card.titles[key]} ({area:.3f})", **style)
        ax.set_xlabel(f"fraction of pixels {'deleted (set to 0)' if which == 'deletion' else 'inserted into a blur'}"
                      f", most relevant first")
        ax.set_ylabel("mean class probability p^c")
        ax.set_ylim(0, 1)
        ax.set_title(f"{which} (area in brackets: {'lower' if which == 'deletion' else 'higher'} is better)",
                     fontsize=10)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.suptitle(f"{card.model}: deletion and insertion, mean over {card.images} images", fontsize=11)
    return fig


def example_maps(card) -> Figure:
    """Rows: example images; columns: the input, every method's and baseline's pixel map over it."""
    images = card.examples["images"]
    keys = [k for k in card.methods if k in card.examples] + [b for b in BASELINES if b in card.examples]
    fig = Figure(figsize=(1.2 * (len(keys) + 1) + 0.8, 1.35 * len(images) + 0.9), layout="constrained")
    axes = fig.subplots(len(images), len(keys) + 1, squeeze=False)
    shown = None
    for r, picture in enumerate(images):
        axes[r, 0].imshow(to_display(picture), interpolation="bilinear")
        for c, key in enumerate(keys, start=1):
            axes[r, c].imshow(to_display(picture), interpolation="bilinear")
            shown = axes[r, c].imshow(scale01(card.examples[key][r]), cmap=HEAT_CMAP, vmin=0, vmax=1, alpha=0.5,
                                      interpolation="bilinear")
            if r == 0:
                axes[r, c].set_title(card.titles[key].replace("baseline: ", "baseline:\n"), fontsize=7)
        for ax in axes[r]:
            _off(ax)
    axes[0, 0].set_title("input", fontsize=7)
    if shown is not None:
        fig.colorbar(shown, ax=axes[:, 1:], shrink=0.6, label="pixel map as ranked,\nscaled to [0, 1]")
    fig.suptitle(f"{card.model}: the pixel maps the scorecard ranks (input maps: sum over channels of |map|)",
                 fontsize=9)
    return fig

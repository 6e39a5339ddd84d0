"""Figures of explanations: overlays with colour bars, gradient images, panel grids.

The only engine-side module that imports matplotlib. Everything the
explanation methods return is raw; this is where maps are resized for
display, normalised and coloured:

- heat maps (Grad-CAM, counterfactual, CAM, occlusion, saliency magnitude)
  are laid over the image, coloured between their own minimum and maximum
  (0 .. max for maps that cannot be negative, -m .. m with a diverging map
  for signed ones such as occlusion drops) and the colour bar is labelled
  in the map's raw units;
- relevance and attribution maps (LRP, Integrated Gradients, Input x
  Gradient) are signed too, but a few pixels carry extreme values: they are
  coloured between -a and a with a the 98th percentile of |m| (captum's
  ``visualize_image_attr`` default, outlier_perc=2), beyond it saturated;
- gradient images (Guided Backprop, Guided Grad-CAM, saliency) are
  (C, H, W) arrays shown as RGB after :func:`gradient_to_rgb`;
- small images (CIFAR-10, 32x32) are drawn with bilinear interpolation
  at the figure's resolution, so they are pictures, not dots;
- a caption under the panels says what y and p are and what the colours
  mean where a colour bar cannot (occlusion's red and blue, gradient
  pictures): each panel's ``notes``, from the method's registry row;
- what a map alone would hide is said on its panel (``Panel.remark``,
  :func:`panel_remark`: "all zero: ...", "tiny scale: ...") and in the
  caption (:func:`panel_notes`: where an LRP pass's relevance went, a
  method's known artefacts such as DeconvNet's stride pattern).

Figures are ``matplotlib.figure.Figure`` objects built without pyplot (no
global state, no window); :func:`save_figure` writes one atomically, in the
format its file name says (PNG, JPEG, PDF or SVG).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import numpy as np

import matplotlib
import matplotlib.ticker

if (sys.platform.startswith("linux") and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY")
        and not os.environ.get("MPLBACKEND")):
    matplotlib.use("Agg")

from matplotlib import colormaps                     # noqa: E402
from matplotlib.cm import ScalarMappable             # noqa: E402
from matplotlib.colors import Normalize              # noqa: E402
from matplotlib.figure import Figure                 # noqa: E402

from ..util.atomic import atomic_output, refuse_folder_or_device  # noqa: E402
from ..errors import InputError, OutputError  # noqa: E402
from ..explain.resize import resize_bilinear  # noqa: E402

#: Colour maps: the paper's jet for class maps, a diverging map for signed drops.
HEAT_CMAP, SIGNED_CMAP, MAGNITUDE_CMAP = "jet", "RdBu_r", "inferno"
KINDS = ("image", "heat", "signed", "relevance", "magnitude", "gradient", "text")
#: The line under every figure whose titles show a score y or a probability p.
Y_AND_P = "y: the class's score before the softmax (a logit); p: its softmax probability"
#: A line per way of drawing a map, under figures that show one, for methods whose registry row has no caption.
DISPLAY_CAPTIONS = {
    "heat": "heat maps: raw values over the input, each in its own units (see its colour bar): compare where, "
            "not how much, across methods",
    "signed": "red: positive, blue: negative, white: zero",
    "relevance": "red: relevance for the class, blue: against it, white: none; colours saturate at the 98th "
                 "percentile of |value|",
    "gradient": "gradient pictures: grey = 0; colours show the sign and size of each input channel's gradient "
                "(no units)",
}
#: Relevance maps are coloured up to this percentile of |m| (captum's outlier_perc=2).
RELEVANCE_PERCENTILE = 98.0
#: Panel titles are wrapped at this many characters a line, row labels at ROW_LABEL_CHARS: a figure's size is
#: bounded whatever the class names (ImageNet's longest label is 121 characters).
TITLE_CHARS, ROW_LABEL_CHARS = 44, 24


def wrap_text(text: str, chars: int) -> str:
    """``text`` with every line longer than ``chars`` wrapped at spaces (long words cut)."""
    import textwrap
    return "\n".join(part for line in str(text).split("\n") for part in (textwrap.wrap(line, chars) or [""]))


# ---------------------------------------------------------------- arrays for display

def normalize(m: np.ndarray) -> np.ndarray:
    """(m - min) / (max - min) in [0, 1]; all zeros for a constant map."""
    m = np.asarray(m, dtype=np.float64)
    lo, hi = float(m.min()), float(m.max())
    return (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)


def gradient_to_rgb(g: np.ndarray) -> np.ndarray:
    """A (C, H, W) gradient as an (H, W, C) picture in [0, 1].

    Centre on the mean, divide by the standard deviation, scale by 0.1 and
    shift to 0.5, then clip: zero gradient is mid grey, and the picture's
    contrast does not depend on the gradient's overall scale.
    """
    g = np.asarray(g, dtype=np.float64)
    if g.ndim != 3:
        raise InputError(f"a gradient image is (C, H, W); got shape {g.shape}")
    g = g - g.mean()
    g = g / (g.std() + 1e-12) * 0.1 + 0.5
    return np.clip(g.transpose(1, 2, 0), 0, 1)


def to_display(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 or float in [0, 1] -> float (H, W, 3) in [0, 1]."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"a background image is (H, W, 3); got shape {image.shape}")
    return image / 255.0 if image.dtype == np.uint8 else np.clip(image.astype(np.float64), 0, 1)


def relevance_range(m: np.ndarray) -> tuple[float, float]:
    """(-a, a) with a the RELEVANCE_PERCENTILE-th percentile of |m| (max |m| if that is 0)."""
    a = float(np.percentile(np.abs(m), RELEVANCE_PERCENTILE)) or float(np.abs(m).max()) or 1.0
    return -a, a


def heat_range(m: np.ndarray, signed: bool) -> tuple[float, float]:
    """Colour limits: (-a, a) with a = max|m| for signed maps, else (min(0, min m), max m)."""
    if signed:
        a = float(np.abs(m).max()) or 1.0
        return -a, a
    lo, hi = min(0.0, float(m.min())), float(m.max())
    return lo, (hi if hi > lo else lo + 1.0)


def bar_exponent(vmin: float, vmax: float) -> int:
    """The power of ten a colour bar's ticks are written in: 0 for 0.01 <= max(|vmin|, |vmax|) < 10^4, else
    floor(log10) of it (ticks 0, 2, 4 and "(x 1e-3)" in the label, not an offset text "1e-3" into the label)."""
    a = max(abs(float(vmin)), abs(float(vmax)))
    return int(np.floor(np.log10(a))) if a > 0 and np.isfinite(a) and (a < 1e-2 or a >= 1e4) else 0


# ---------------------------------------------------------------- panels

@dataclass
class Panel:
    """One square of a figure.

    kind  : "image" (data (H, W, 3)), "heat" / "signed" / "magnitude" (data (h, w),
            drawn over ``image`` when given), "gradient" (data (C, H, W)),
            "text" (title only, e.g. a method that does not apply)
    data  : the array; heat maps of any resolution are resized bilinearly to the image
    title : text above the panel
    image : the background of a heat panel, (H, W, 3)
    label : what the colour bar's numbers are (e.g. "score drop y^c(x) - y^c(occluded)")
    notes : lines for the figure's caption (what y, p and the colours mean); a figure
            prints each different line once, under its panels
    remark: a short line written on the panel itself, for what the map alone would hide
            ("all zero: ...", "relevance at the input = 1.8e-05 of y^c"); see :func:`panel_remark`
    """

    kind: str
    data: np.ndarray | None = None
    title: str = ""
    image: np.ndarray | None = None
    alpha: float = 0.5
    label: str = ""
    notes: tuple[str, ...] = ()
    remark: str = ""


def _extent(shape) -> tuple[float, float, float, float]:
    h, w = shape[:2]
    return (0, w, h, 0)


def draw_panel(fig: Figure, ax, panel: Panel, *, cax=None, fontsize: float = 10) -> None:
    """Draw ``panel`` on ``ax``: no ticks; for heat panels a horizontal colour bar in raw units on ``cax``.

    ``cax`` (an axes for the colour bar) is hidden for panels that have none.
    """
    if panel.kind not in KINDS:
        raise InputError(f"unknown panel kind {panel.kind!r}; choose one of {', '.join(KINDS)}")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(panel.title, fontsize=fontsize)
    draw_remark(ax, panel.remark, fontsize)
    blank = panel.kind in ("heat", "signed", "relevance", "magnitude") and not np.any(panel.data)
    if cax is not None and (blank or panel.kind not in ("heat", "signed", "relevance", "magnitude")):
        cax.set_axis_off()
    if blank:                                       # all zero: the picture alone, no colour and no colour bar
        panel = Panel("image", panel.image, panel.title) if panel.image is not None else Panel("text")
    if panel.kind == "text":
        for side in ax.spines.values():
            side.set_visible(False)
        return
    if panel.kind == "image":
        img = to_display(panel.data)
        ax.imshow(img, interpolation="bilinear", extent=_extent(img.shape))
        return
    if panel.kind == "gradient":
        img = gradient_to_rgb(panel.data)
        shape = panel.image.shape if panel.image is not None else img.shape
        ax.imshow(img, interpolation="bilinear", extent=_extent(shape))
        return
    m = np.asarray(panel.data, dtype=np.float64)
    if m.ndim != 2:
        raise InputError(f"a heat panel needs an (h, w) map; got shape {m.shape}")
    shape = panel.image.shape if panel.image is not None else m.shape
    if panel.image is not None:
        ax.imshow(to_display(panel.image), interpolation="bilinear", extent=_extent(shape))
    cmap = {"heat": HEAT_CMAP, "signed": SIGNED_CMAP, "relevance": SIGNED_CMAP,
            "magnitude": MAGNITUDE_CMAP}[panel.kind]
    vmin, vmax = relevance_range(m) if panel.kind == "relevance" else heat_range(m, panel.kind == "signed")
    ax.imshow(m, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="bilinear", extent=_extent(shape),
              alpha=panel.alpha if panel.image is not None else 1.0)
    ax.set_xlim(0, shape[1])
    ax.set_ylim(shape[0], 0)
    if cax is not None:
        bar = fig.colorbar(ScalarMappable(Normalize(vmin, vmax), colormaps[cmap]), cax=cax, orientation="horizontal",
                           extend="both" if panel.kind == "relevance" else "neither")
        bar.ax.tick_params(labelsize=fontsize - 1, length=2, pad=1)
        e = bar_exponent(vmin, vmax)                 # the power of ten goes into the label, not beside the ticks
        label = panel.label + (f" (x 1e{e})" if e else "")
        if label:
            bar.set_label(label, fontsize=fontsize - 2, labelpad=1)
        bar.locator = matplotlib.ticker.MaxNLocator(4 if cax.get_position().width * fig.get_figwidth() > 1.8 else 3)
        bar.formatter = matplotlib.ticker.FuncFormatter(lambda v, _pos: f"{round(v / 10.0 ** e, 6):g}")
        bar.update_ticks()


def draw_remark(ax, remark: str, fontsize: float = 10) -> None:
    """Write ``remark`` on the panel ``ax``: bottom left, inside, on a white box, wrapped to the panel's width."""
    if not remark:
        return
    import textwrap
    width = ax.get_position().width * ax.figure.get_figwidth()                   # inches
    chars = max(12, int(width * 72 / (0.55 * (fontsize - 2))))
    ax.text(0.02, 0.02, "\n".join(textwrap.wrap(remark, chars)), transform=ax.transAxes, ha="left", va="bottom",
            fontsize=fontsize - 2, zorder=5, bbox={"boxstyle": "round,pad=0.2", "facecolor": "white",
                                                   "alpha": 0.85, "linewidth": 0})


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
    from dataclasses import replace
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
    import textwrap
    notes = dict.fromkeys(line for row in rows for p in row for line in p.notes if line)
    chars = int(width * 72 / (0.55 * fontsize))                      # about 0.55 em per character
    return [wrapped for line in notes for wrapped in textwrap.wrap(line, chars, subsequent_indent="  ")]


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


def upsample_for(m: np.ndarray, image: np.ndarray) -> np.ndarray:
    """A map (h, w) resized bilinearly (half-pixel centres) to the image's (H, W)."""
    return resize_bilinear(np.asarray(m, dtype=np.float64), image.shape[:2])


# ---------------------------------------------------------------- explanations as panels

def _method(result):
    """The registry row of a result's method; a one-line error for a method with no row."""
    from ..explain.registry import METHODS
    m = METHODS.get(result.method)
    if m is None:
        raise InputError(f"no panel for method {result.method!r}")
    return m


def describe(result, i: int = 0, model_name: str | None = None, *, layer: bool = True, settings: str = "") -> str:
    """A title of two or three lines: method and class; p, y, model and layer; the options given, if any.

    The class is named by its first synonym ("tabby" for "tabby, tabby cat"); p = softmax(y)^c is
    the class's probability and y^c its score before the softmax. ``settings`` (e.g.
    "baseline=blur, steps=256", from ``registry.settings_text``) is the third line.
    """
    from ..explain.registry import METHODS
    from ..explain.target import short_name
    from ..layers import softmax
    name = METHODS[result.method].title if result.method in METHODS else result.method
    p = float(softmax(np.asarray(result.logits[i:i + 1], dtype=np.float64))[0, int(result.targets[i])])
    line1 = f"{name}: {short_name(result.target_names[i])!r}"
    line2 = [f"p={probability_text(p)}, y={float(result.scores[i]):.2f}", model_name, result.layer if layer else None]
    return "\n".join([line1, " · ".join(s for s in line2 if s)] + ([settings] if settings else []))


def probability_text(p: float) -> str:
    """A probability in a title: two decimals, or two significant digits below 0.01 ("3.2e-05")."""
    return f"{p:.2f}" if p >= 0.01 or p == 0 else f"{p:.1e}"


def method_panel(result, image: np.ndarray, i: int = 0, *, model_name: str | None = None,
                 title: str | None = None) -> Panel:
    """The panel showing image ``i`` of an explanation over ``image`` (H, W, 3), the picture shown.

    Maps at any resolution (layer or input) are resized bilinearly to the
    picture's size; saliency is shown as max_ch |dy/dx|.
    """
    from ..explain.saliency import channel_max_abs
    method = _method(result)
    kind = method.display
    title = describe(result, i, model_name) if title is None else title
    notes = (Y_AND_P, method.caption or DISPLAY_CAPTIONS.get(kind, ""), *panel_notes(result, i))
    remark = panel_remark(result, i)
    m = result.map[i]
    if kind == "gradient":
        return Panel("gradient", m, title, image=image, notes=notes, remark=remark)
    if m.ndim == 3:                                   # (C, H, W) shown as one number per pixel
        m = channel_max_abs(m) if kind == "magnitude" else m.sum(axis=0)
    return Panel(kind, upsample_for(m, image), title, image=image, label=method.value, notes=notes, remark=remark)


#: A map whose total |value| is below this fraction of |y^c| is "tiny" (methods whose maps share out y^c).
TINY_FRACTION = 1e-2
#: Methods whose maps share out the score y^c over the input (LRP, Integrated Gradients, Input x Gradient):
#: for them a map's scale is compared with y^c.
SHARES_OF_Y = ("lrp-", "integrated-gradients", "input-x-gradient")
#: Methods whose map values are in the units of y^c (in a network that ends GAP -> linear, the mean of
#: sum_k alpha_k A^k is y^c - b; occlusion's are score drops): for them the largest |value| is compared with y^c.
UNITS_OF_Y = ("gradcam", "counterfactual", "hirescam", "cam", "occlusion")
#: The line under LRP's budget lines, once per figure.
LRP_BUDGET = ("LRP: each unit's bias keeps its share of the relevance on the way down, so the input gets "
              "y^c minus what the stages took (a negative share: the stage added relevance)")
#: Captions for patterns that come from a method, not from the image.
KNOWN_ARTEFACTS = {
    "deconvnet": "DeconvNet: its backward pass runs each strided convolution in reverse, where the kernels overlap "
                 "unevenly, and keeps only positive signals; the grid this leaves at the network's stride (stripes "
                 "on MobileNetV2, a checkerboard on ResNet-20) is the method's artefact, not evidence in the image",
}


def panel_remark(result, i: int = 0) -> str:
    """What to write on image i's panel so that the map cannot mislead, or "" (nothing to say).

    - an all-zero map: "all zero: no evidence for (against, for the counterfactual) 'c' at <layer>"
      (the picture is then shown uncoloured, without a colour bar);
    - a map that shares out y^c (LRP, IG, Input x Gradient) with sum |m| < TINY_FRACTION |y^c|:
      "tiny scale: relevance at the input = <sum m / y^c> of y^c" (the colour bar's numbers are then tiny);
    - a map in the units of y^c (UNITS_OF_Y) with max |m| < TINY_FRACTION |y^c|:
      "tiny scale: largest value = <max |m| / y^c> of y^c (almost no evidence for 'c' at <layer>)".
    """
    m = np.asarray(result.map[i], dtype=np.float64)
    name = result.target_names[i]
    if not np.any(m):
        side = "against" if result.method == "counterfactual" else "for"
        return f"all zero: no evidence {side} {name!r} at {result.layer or 'the input'}"
    y = float(result.scores[i])
    if result.method.startswith(SHARES_OF_Y) and y != 0 and float(np.abs(m).sum()) < TINY_FRACTION * abs(y):
        what = "relevance" if result.method.startswith("lrp-") else "attribution"
        return f"tiny scale: {what} at the input = {float(m.sum()) / y:.2g} of y^c"
    if result.method in UNITS_OF_Y and y != 0 and float(np.abs(m).max()) < TINY_FRACTION * abs(y):
        side = "against" if result.method == "counterfactual" else "for"
        return (f"tiny scale: largest value = {float(np.abs(m).max()) / abs(y):.2g} of y^c (almost no evidence "
                f"{side} {name!r} at {result.layer or 'the input'})")
    return ""


def panel_notes(result, i: int = 0) -> tuple[str, ...]:
    """Caption lines about this result: where an LRP pass's relevance went, the method's known artefacts."""
    lines = []
    budget = getattr(result, "budget", None)
    if budget is not None:
        title = _method(result).title
        lines.append(f"{title}, {result.target_names[i]!r}: {budget.summary(i)}")
        lines.append(LRP_BUDGET)
    if result.method in KNOWN_ARTEFACTS:
        lines.append(KNOWN_ARTEFACTS[result.method])
    return tuple(lines)

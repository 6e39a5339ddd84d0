"""Panels: one square of a figure each, and the panel that shows an explanation.

A :class:`Panel` is what one square shows (a picture, a heat map over it, a
gradient picture, or a title alone); :func:`draw_panel` draws it with its
colour bar in raw units, in the colours of ``colours.py``;
:func:`method_panel` makes the panel of one image of an explanation, from
its method's registry row:

- maps at any resolution are resized bilinearly to the picture, and small
  images (CIFAR-10, 32x32) are drawn with bilinear interpolation at the
  figure's resolution, so they are pictures, not dots;
- a caption under the panels says what y and p are and what the colours
  mean where a colour bar cannot (occlusion's red and blue, gradient
  pictures): each panel's ``notes``, from the method's registry row;
- what a map alone would hide is said on its panel (``Panel.remark``,
  :func:`panel_remark`: "all zero: ...", "tiny scale: ...") and in the
  caption (:func:`panel_notes`: where an LRP pass's relevance went, a
  method's known artefacts such as DeconvNet's stride pattern).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import matplotlib.ticker
import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from ..errors import InputError
from ..explain.registry import METHODS
from ..explain.saliency import channel_max_abs
from ..explain.target import short_name
from ..layers import softmax
from .colours import (
    HEAT_CMAP,
    MAGNITUDE_CMAP,
    SIGNED_CMAP,
    bar_exponent,
    gradient_to_rgb,
    heat_range,
    relevance_range,
    to_display,
    upsample_for,
)

#: What a panel can show (``Panel.kind``).
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
    width = ax.get_position().width * ax.figure.get_figwidth()                   # inches
    chars = max(12, int(width * 72 / (0.55 * (fontsize - 2))))
    ax.text(0.02, 0.02, "\n".join(textwrap.wrap(remark, chars)), transform=ax.transAxes, ha="left", va="bottom",
            fontsize=fontsize - 2, zorder=5, bbox={"boxstyle": "round,pad=0.2", "facecolor": "white",
                                                   "alpha": 0.85, "linewidth": 0})


# ---------------------------------------------------------------- explanations as panels

def _method(result):
    """The registry row of a result's method; a one-line error for a method with no row."""
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

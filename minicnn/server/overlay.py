"""Maps as PNG pictures for the page: the same colours and ranges as ``minicnn.figures``, without a figure.

A map reaches the browser twice: raw (its numbers, unnormalised) and as a
small PNG to lay over the network's input. The PNG follows the figures'
rules exactly (``figures.method_panel`` chooses what is shown and resizes it
to the picture, ``figures.heat_range`` the colour limits,
``figures.gradient_to_rgb`` the gradient pictures); only the last step
differs: instead of matplotlib drawing a figure, each value indexes a
256-entry table of the same colour map, read from matplotlib once, and
Pillow writes the PNG. So a request never draws with matplotlib.

The page scales the PNG to the screen with smoothing and blends it over the
input picture with the opacity the learner chooses.
"""

from __future__ import annotations

import base64
import io
from functools import cache

import numpy as np
from matplotlib import colormaps
from PIL import Image

from .. import figures

#: The colour map of each kind of heat panel (the figures'), and one for raw feature maps A^k.
COLORMAPS = {"heat": figures.HEAT_CMAP, "signed": figures.SIGNED_CMAP, "magnitude": figures.MAGNITUDE_CMAP,
             "feature": "viridis", "relevance": figures.SIGNED_CMAP}


def _table(name: str) -> np.ndarray:
    """(256, 3) uint8: the colour map sampled at 256 evenly spaced values, as matplotlib defines it."""
    return np.round(colormaps[name](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)


TABLES = {kind: _table(name) for kind, name in COLORMAPS.items()}


@cache
def colour_stops(kind: str, n: int = 17) -> tuple[str, ...]:
    """``n`` colours of a kind's map from its low end to its high end, as "#rrggbb" (for the colour bar)."""
    table = TABLES[kind]
    idx = np.round(np.linspace(0, 255, n)).astype(int)
    return tuple("#{:02x}{:02x}{:02x}".format(*(int(v) for v in table[i])) for i in idx)


def colourise(m: np.ndarray, kind: str, limits: tuple[float, float]) -> np.ndarray:
    """An (h, w) map as (h, w, 3) uint8 RGB: ``limits`` (lo, hi) spread over the kind's 256 colours."""
    lo, hi = limits
    t = (np.asarray(m, dtype=np.float64) - lo) / (hi - lo)
    idx = np.round(np.clip(np.nan_to_num(t, nan=0.0), 0.0, 1.0) * 255).astype(np.intp)
    return TABLES[kind][idx]


def png_data_url(rgb: np.ndarray) -> str:
    """An (H, W, 3) uint8 picture as a ``data:image/png;base64,...`` address."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb), "RGB").save(buf, format="PNG", compress_level=3)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def picture_png(picture: np.ndarray) -> str:
    """The network's input as the page shows it: (H, W, 3) floats in [0, 1] (``deprocess``) -> PNG."""
    return png_data_url(np.round(figures.to_display(picture) * 255).astype(np.uint8))


def display(result, picture: np.ndarray) -> dict:
    """How the page shows one method's result over ``picture``: the figures' panel, as a PNG and its scale.

    Returns {"display", "png", "note"} and, for heat panels, "range" (the raw values
    at the two ends of the colour bar), "label" (what one value is),
    "colormap" and "colors" (the colour bar's stops, low to high). "note" is
    the line the page writes under the map ("" for none): for LRP, where the
    relevance went (``RelevanceBudget.summary``), otherwise the figures' panel
    remark ("all zero: ...", "tiny scale: ..."). LRP results add "budget"
    (``RelevanceBudget.as_dict``: y^c, what reached the input, every stage's share).
    """
    panel = figures.method_panel(result, picture, 0)
    budget = getattr(result, "budget", None)
    said = {"note": budget.summary(0) if budget is not None else panel.remark}
    if budget is not None:
        said["budget"] = budget.as_dict(0)
    if panel.kind == "gradient":
        return {"display": "gradient", "png": png_data_url(np.round(figures.gradient_to_rgb(panel.data) * 255)
                                                             .astype(np.uint8)), **said}
    return {**heat(panel.data, panel.kind, panel.label), **said}


def heat(m: np.ndarray, kind: str, label: str = "", *, limits: tuple[float, float] | None = None) -> dict:
    """An (h, w) map coloured for its kind ("heat", "signed", "relevance", "magnitude", "feature").

    ``limits`` (lo, hi) default to the figures' for that kind (``figures.heat_range``;
    ``figures.relevance_range`` for relevance maps).
    """
    m = np.asarray(m, dtype=np.float64)
    if limits is None:
        limits = figures.relevance_range(m) if kind == "relevance" else figures.heat_range(m, kind == "signed")
    lo, hi = limits
    return {"display": kind, "png": png_data_url(colourise(m, kind, (lo, hi))), "range": [lo, hi],
            "label": label, "colormap": COLORMAPS[kind], "colors": list(colour_stops(kind))}

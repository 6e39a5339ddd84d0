"""Figures of explanations: overlays with colour bars, gradient images, panel grids.

The only layer below the front ends that imports matplotlib. The methods
return raw maps; here they are resized for display, normalised and coloured:

- ``colours.py``: the colour maps and each kind of map's colour limits;
- ``panels.py``  : :class:`Panel`, :func:`draw_panel`, and :func:`method_panel`, an explanation's panel
  with its title (:func:`describe`), remark and caption lines;
- ``grid.py``    : :func:`grid_figure`, rows of panels with colour bars and a caption;
- ``save.py``    : :func:`save_figure` and :func:`save_png`, written atomically;
- ``gallery.py``, ``metrics.py``, ``demo.py``: every method on a few images, the metrics' figures,
  the paper's Figure 1.

Figures are ``matplotlib.figure.Figure`` objects built without pyplot (no
global state, no window)::

    from minicnn.figures import grid_figure, method_panel, save_png
    save_png(grid_figure([[method_panel(result, picture)]]), "gradcam.png")
"""

import os
import sys

import matplotlib

if (sys.platform.startswith("linux") and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY")
        and not os.environ.get("MPLBACKEND")):
    matplotlib.use("Agg")                 # no display: draw to files (before anything below touches a backend)

from .colours import (  # noqa: E402
    HEAT_CMAP,
    MAGNITUDE_CMAP,
    RELEVANCE_PERCENTILE,
    SIGNED_CMAP,
    bar_exponent,
    gradient_to_rgb,
    heat_range,
    normalize,
    relevance_range,
    to_display,
    upsample_for,
)
from .grid import ROW_LABEL_CHARS, TITLE_CHARS, caption_lines, grid_figure, wrap_text  # noqa: E402
from .panels import (  # noqa: E402
    DISPLAY_CAPTIONS,
    KINDS,
    KNOWN_ARTEFACTS,
    LRP_BUDGET,
    SHARES_OF_Y,
    TINY_FRACTION,
    UNITS_OF_Y,
    Y_AND_P,
    Panel,
    describe,
    draw_panel,
    draw_remark,
    method_panel,
    panel_notes,
    panel_remark,
    probability_text,
)
from .save import FIGURE_FORMATS, figure_format, save_figure, save_png  # noqa: E402

__all__ = [
    # colours.py
    "HEAT_CMAP", "SIGNED_CMAP", "MAGNITUDE_CMAP", "RELEVANCE_PERCENTILE", "normalize", "gradient_to_rgb",
    "to_display", "relevance_range", "heat_range", "bar_exponent", "upsample_for",
    # panels.py
    "KINDS", "Y_AND_P", "DISPLAY_CAPTIONS", "Panel", "draw_panel", "draw_remark", "describe", "probability_text",
    "method_panel", "panel_remark", "panel_notes", "TINY_FRACTION", "SHARES_OF_Y", "UNITS_OF_Y", "LRP_BUDGET",
    "KNOWN_ARTEFACTS",
    # grid.py
    "TITLE_CHARS", "ROW_LABEL_CHARS", "wrap_text", "grid_figure", "caption_lines",
    # save.py
    "FIGURE_FORMATS", "figure_format", "save_figure", "save_png",
]

"""Colours for maps: the colour maps, the colour limits and the arrays a figure shows.

Everything the explanation methods return is raw; this is where maps are
resized for display, normalised and given their colour limits:

- heat maps (Grad-CAM, counterfactual, CAM, occlusion, saliency magnitude)
  are coloured between their own minimum and maximum (0 .. max for maps
  that cannot be negative, -m .. m with a diverging map for signed ones
  such as occlusion drops), and the colour bar is labelled in the map's
  raw units (:func:`bar_exponent` puts its power of ten in the label);
- relevance and attribution maps (LRP, Integrated Gradients, Input x
  Gradient) are signed too, but a few pixels carry extreme values: they are
  coloured between -a and a with a the 98th percentile of |m| (captum's
  ``visualize_image_attr`` default, outlier_perc=2), beyond it saturated;
- gradient images (Guided Backprop, Guided Grad-CAM, saliency) are
  (C, H, W) arrays shown as RGB after :func:`gradient_to_rgb`.

The server's overlays (``minicnn.server.overlay``) use the same maps and limits.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..explain.resize import resize_bilinear

#: Colour maps: the paper's jet for class maps, a diverging map for signed drops.
HEAT_CMAP, SIGNED_CMAP, MAGNITUDE_CMAP = "jet", "RdBu_r", "inferno"
#: Relevance maps are coloured up to this percentile of |m| (captum's outlier_perc=2).
RELEVANCE_PERCENTILE = 98.0


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


def upsample_for(m: np.ndarray, image: np.ndarray) -> np.ndarray:
    """A map (h, w) resized bilinearly (half-pixel centres) to the image's (H, W)."""
    return resize_bilinear(np.asarray(m, dtype=np.float64), image.shape[:2])


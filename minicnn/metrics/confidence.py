"""Average Drop and Increase in Confidence (Chattopadhyay et al., *Grad-CAM++*, WACV 2018), as torch-cam.

Keep only what the map shows: multiply the image by the map scaled to [0, 1]
and ask the network again. With p = softmax(f(x))_c, the class's probability
on the image x (N, C, H, W), and

    E = (m - min m) / (max (m - min m) + 1e-8)      the map m (N, h, w) min-max scaled, at its own resolution
    E^ = bilinear(E, (H, W))                         upsampled (half-pixel centres), E^ in [0, 1]
    p~ = softmax(f(E^ * x))_c                        (E^ multiplies every colour channel)

torch-cam's ``ClassificationMetric`` reports, per image,

    drop     = max(0, p - p~) / (p + 1e-7)            Average Drop: its mean, lower is better
    increase = 1 if p < p~ else 0                     Increase in Confidence: its mean, higher is better

(the paper reports both in percent; torch-cam, and minicnn, as fractions).
A map over the input's channels (N, C, H, W) is first one number per pixel
(sum_c |m_c|, :mod:`minicnn.metrics.maps`); a map at the input's size is
not resized. Scaling by the map's own minimum and maximum makes the metric
blind to the map's units but not to its shape: a map that is 1 on the
object and 0 elsewhere keeps the object; a flat map (E = 0) keeps nothing.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..explain.resize import resize_bilinear

#: torch-cam's guards: added to the scaled map's maximum, and to p in the drop's denominator.
SCALE_EPS, DROP_EPS = 1e-8, 1e-7


def explanation_mask(maps, size) -> np.ndarray:
    """(N, H, W) E^: each map (N, h, w) min-max scaled at its own resolution, then bilinearly resized to size."""
    m = np.asarray(maps, dtype=np.float64)
    if m.ndim != 3 or len(m) == 0:
        raise InputError(f"maps must have shape (N, h, w); got {m.shape}")
    m = np.nan_to_num(m)                                           # torch-cam sets NaN to 0
    m = m - m.min(axis=(1, 2), keepdims=True)
    m = m / (m.max(axis=(1, 2), keepdims=True) + SCALE_EPS)
    return m if m.shape[1:] == tuple(size) else resize_bilinear(m, size)


def masked_inputs(x, mask) -> np.ndarray:
    """E^ * x (N, C, H, W): the mask (N, H, W) multiplying every channel of x, in x's dtype."""
    x = np.asarray(x)
    return (np.asarray(mask)[:, None] * x).astype(x.dtype)


def average_drop(p, p_masked) -> np.ndarray:
    """(N,) max(0, p - p~) / (p + 1e-7) for the class probabilities p (N,) and p~ (N,) on the masked images."""
    p, p_masked = np.asarray(p, dtype=np.float64), np.asarray(p_masked, dtype=np.float64)
    return np.maximum(p - p_masked, 0.0) / (p + DROP_EPS)


def increase_in_confidence(p, p_masked) -> np.ndarray:
    """(N,) 1.0 where p < p~ (the masked image is more confident), else 0.0."""
    return (np.asarray(p, dtype=np.float64) < np.asarray(p_masked, dtype=np.float64)).astype(np.float64)

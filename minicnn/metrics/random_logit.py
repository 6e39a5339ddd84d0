"""The random-logit test (Sixt et al., ICML 2020), as Quantus 0.6.0's ``RandomLogit``.

A map that explains *this* class should change when asked about another. For
an image with target class c, draw another class c' uniformly from the K - 1
others and compare the two maps:

    RL = SSIM( a_c / max|a_c| , a_c' / max|a_c'| )        lower is better

Quantus's defaults, followed here: each map divided by its largest magnitude
(``normalise_by_max``, per map; signs kept), and its ``ssim``: scikit-image's
``structural_similarity`` of the two maps *flattened to one row of P values*
(a uniform window of 7 values along the row, sample covariance, constants
C1 = (0.01 L)^2, C2 = (0.03 L)^2 with L = max - min over both maps), averaged
over the windows that fit:

    mu, s^2, s_ab: means, variances (x 7/6) and covariance over each window of 7
    SSIM = mean_i (2 mu_a mu_b + C1)(2 s_ab + C2) / ((mu_a^2 + mu_b^2 + C1)(s_a^2 + s_b^2 + C2))

A map that ignores the class (an edge detector, every baseline) scores 1. The
other classes are an argument (``others``; ``other_classes`` draws them from
a seed), so a test can give Quantus's draws.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import InputError
from ..util.checks import check_seed

#: scikit-image's default window, along the flattened map.
WINDOW = 7


def other_classes(targets, classes: int, seed: int = 0) -> np.ndarray:
    """(N,) for each target c, a class drawn uniformly from the ``classes`` - 1 others."""
    targets = np.asarray(targets)
    if classes < 2:
        raise InputError(f"the random-logit test needs at least 2 classes; got {classes}")
    pick = np.random.default_rng(check_seed(seed)).integers(0, classes - 1, len(targets))
    return pick + (pick >= targets)                      # skip the target: 0..c-1, then c+1..K-1


def scale_by_max(maps) -> np.ndarray:
    """(N, P) float64: each map (N, ...) flattened and divided by its largest |value| (all-zero maps kept)."""
    a = np.asarray(maps, dtype=np.float64)
    a = a.reshape(len(a), -1)
    top = np.abs(a).max(axis=1, keepdims=True)
    return np.divide(a, top, out=a.copy(), where=top > 0)


def ssim_rows(a, b) -> np.ndarray:
    """(N,) SSIM of each row of a (N, P) and b (N, P) with a uniform window of 7 along the row (docstring)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] < WINDOW:
        raise InputError(f"rows to compare must share a shape (N, P), P >= {WINDOW}; got {a.shape} and {b.shape}")
    L = np.maximum(a.max(axis=1), b.max(axis=1)) - np.minimum(a.min(axis=1), b.min(axis=1))
    c1, c2 = ((0.01 * L) ** 2)[:, None], ((0.03 * L) ** 2)[:, None]

    def mean(v):                                        # (N, P - 6): the mean of each window of 7
        return sliding_window_view(v, WINDOW, axis=1).mean(axis=-1)

    norm = WINDOW / (WINDOW - 1)
    mu_a, mu_b = mean(a), mean(b)
    var_a, var_b = norm * (mean(a * a) - mu_a ** 2), norm * (mean(b * b) - mu_b ** 2)
    cov = norm * (mean(a * b) - mu_a * mu_b)
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return s.mean(axis=1)


def random_logit(maps, other_maps) -> np.ndarray:
    """(N,) SSIM of each image's map for its class (N, ...) and for another class (N, ...), scaled by their max."""
    return ssim_rows(scale_by_max(maps), scale_by_max(other_maps))

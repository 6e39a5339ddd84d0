"""How alike two maps are: Spearman's rank correlation and structural similarity (SSIM).

The sanity checks of Adebayo et al. (NeurIPS 2018) compare a method's map on
the trained network with its map on a randomised network by three numbers:

    spearman(a, b)      = pearson(rank(a), rank(b))      tied values share their average rank
    spearman_abs(a, b)  = spearman(|a|, |b|)
    ssim(a, b)          = mean over windows of  (2 mu_a mu_b + C1) (2 s_ab + C2)
                                              / ((mu_a^2 + mu_b^2 + C1) (s_a^2 + s_b^2 + C2))

SSIM is Wang et al. (IEEE TIP 2004): mu, s^2 and s_ab are the Gaussian-
weighted means, variances and covariance in an 11x11 window (sigma 1.5, the
weights summing to 1), C1 = (0.01 L)^2, C2 = (0.03 L)^2 for maps of range L,
averaged over the windows that fit inside the map ("valid" positions, as
Wang's MATLAB code and scikit-image's ``structural_similarity(...,
gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``, which
crops the same border). Adebayo et al. compare maps scaled to [0, 1]
(:func:`scale01`), so L = 1.

Every function compares the last two axes, (..., H, W), and returns one
value per leading index. A constant map has no ranking: its rank
correlation with anything is taken as 0 (Pearson's formula would divide by
zero).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.stats import rankdata

from ..errors import InputError


def _pairs(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim < 2:
        raise InputError(f"maps to compare must share one shape (..., H, W); got {a.shape} and {b.shape}")
    return a, b


def pearson(a, b) -> np.ndarray:
    """sum (a - mean a)(b - mean b) / sqrt(sum (a - mean a)^2 sum (b - mean b)^2) over (H, W); 0 if constant."""
    a, b = _pairs(a, b)
    a = a.reshape(*a.shape[:-2], -1)
    b = b.reshape(*b.shape[:-2], -1)
    da = a - a.mean(axis=-1, keepdims=True)
    db = b - b.mean(axis=-1, keepdims=True)
    norm = np.sqrt((da * da).sum(axis=-1) * (db * db).sum(axis=-1))
    dot = (da * db).sum(axis=-1)
    return np.where(norm > 0, dot / np.where(norm > 0, norm, 1.0), 0.0)


def rank(a) -> np.ndarray:
    """Ranks 1..H*W of the values of each map (..., H, W), ties given their average rank."""
    a = np.asarray(a, dtype=np.float64)
    return rankdata(a.reshape(*a.shape[:-2], -1), axis=-1).reshape(a.shape)


def spearman(a, b) -> np.ndarray:
    """Spearman's rank correlation of the signed values: pearson(rank(a), rank(b))."""
    a, b = _pairs(a, b)
    return pearson(rank(a), rank(b))


def spearman_abs(a, b) -> np.ndarray:
    """Spearman's rank correlation of the absolute values: spearman(|a|, |b|)."""
    a, b = _pairs(a, b)
    return spearman(np.abs(a), np.abs(b))


def scale01(m) -> np.ndarray:
    """(m - min) / (max - min) of each map (..., H, W), into [0, 1]; a constant map becomes zeros."""
    m = np.asarray(m, dtype=np.float64)
    lo = m.min(axis=(-2, -1), keepdims=True)
    span = m.max(axis=(-2, -1), keepdims=True) - lo
    return np.where(span > 0, (m - lo) / np.where(span > 0, span, 1.0), 0.0)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """The 1-D weights g (size,), g_i proportional to exp(-(i - c)^2 / (2 sigma^2)), summing to 1.

    The 2-D window is outer(g, g): a Gaussian is separable.
    """
    i = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-i ** 2 / (2 * sigma ** 2))
    return g / g.sum()


def window_mean(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """sum_{u,v} g_u g_v x[..., i+u, j+v] at every window that fits: (..., H, W) -> (..., H-k+1, W-k+1)."""
    k = len(g)
    rows = sliding_window_view(x, k, axis=-2) @ g          # along H: (..., H-k+1, W)
    return sliding_window_view(rows, k, axis=-1) @ g       # then along W


def ssim(a, b, *, data_range: float = 1.0, window: str = "gaussian", size: int | None = None,
         sigma: float = 1.5, sample_covariance: bool = False, k1: float = 0.01, k2: float = 0.03) -> np.ndarray:
    """Mean structural similarity of each pair of maps (..., H, W) (Wang et al. 2004).

    window : "gaussian" (Wang's 11x11, sigma 1.5: the default) or "uniform"
             (equal weights in a size x size window, 7 by default: scikit-image's
             default, which Quantus 0.6.0 uses)
    sample_covariance : multiply the window's variances and covariance by n / (n - 1)
             (n pixels in the window), as scikit-image does by default; Wang's
             definition (False) does not
    """
    a, b = _pairs(a, b)
    if window == "gaussian":
        g = gaussian_window(11 if size is None else size, sigma)
    elif window == "uniform":
        k = 7 if size is None else size
        g = np.full(k, 1.0 / k)
    else:
        raise InputError(f"SSIM window must be 'gaussian' or 'uniform'; got {window!r}")
    if min(a.shape[-2:]) < len(g):
        raise InputError(f"SSIM needs maps of at least {len(g)}x{len(g)} pixels; got {a.shape[-2:]}")
    n = len(g) ** 2
    norm = n / (n - 1) if sample_covariance else 1.0
    mu_a, mu_b = window_mean(a, g), window_mean(b, g)
    var_a = norm * (window_mean(a * a, g) - mu_a ** 2)
    var_b = norm * (window_mean(b * b, g) - mu_b ** 2)
    cov = norm * (window_mean(a * b, g) - mu_a * mu_b)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return s.mean(axis=(-2, -1))

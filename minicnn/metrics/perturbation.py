"""Does the map predict what perturbing the input does to the score? Faithfulness correlation and infidelity.

Both compare, over R random perturbations of an image x (N, C, H, W), the map's
prediction of the change with the change of the class score f_c (the logit,
as the references use by default). The map a is over the input, (N, C, H, W),
or one number per pixel, (N, H, W), then the same for every channel (Quantus
broadcasts it so).

Faithfulness correlation (Bhatt et al., IJCAI 2020; Quantus 0.6.0's
``FaithfulnessCorrelation``). Run r sets a random subset S_r of |S| of the
C*H*W input values (channels apart) to a baseline b, "black": the image's
smallest value:

    d_r = f_c(x) - f_c(x with x_S_r = b)              the drop of the score
    s_r = sum_{i in S_r} a_i                          what the map says those values carry
    FC  = pearson(s, d) over r = 1..R                 in [-1, 1], higher is better

(NaN where s or d is constant: Pearson's correlation is undefined there.)

Infidelity (Yeh et al., NeurIPS 2019; captum 0.9.0's ``infidelity``). Run r
draws a perturbation I_r (N, C, H, W), by default I ~ N(0, sigma^2) per value,
and perturbs the input to x - I_r:

    s_r = sum_i I_r,i a_i                             the map's first-order prediction of the change
    d_r = f_c(x) - f_c(x - I_r)
    INFD = (1/R) sum_r (s_r - d_r)^2                  lower is better
    normalised (captum's ``normalize=True``): beta = sum_r s_r d_r / sum_r s_r^2  (0 when every s_r = 0),
    INFD = (1/R) sum_r (beta s_r - d_r)^2             the error after the best scaling of the map

The normalised form is blind to the map's units (a CAM is not in logits) and
is what the scorecard reports.

The random draws are arguments (``subsets``, ``perturbations``), so a test
can give the same draws as the reference; ``random_subsets`` and
``gaussian_perturbations`` draw them from a seed. The score is
``score(copies, rows)`` as in :mod:`minicnn.metrics.deletion`: the score of each
copy for the class of image rows[i].
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..util.checks import check_seed


def _attributions(x: np.ndarray, a) -> np.ndarray:
    """(N, C*H*W) float64: the map over the input, an (N, H, W) map repeated on every channel."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4 or len(a) != len(x) or a.shape[2:] != x.shape[2:] or a.shape[1] not in (1, x.shape[1]):
        raise InputError(f"a map for inputs {x.shape} must be (N, H, W) or (N, C, H, W); got {np.shape(a)}")
    return np.broadcast_to(a, x.shape).reshape(len(x), -1)


def random_subsets(n: int, runs: int, features: int, size: int, seed: int = 0) -> np.ndarray:
    """(n, runs, size) int: for each image and run, ``size`` of ``features`` indices without replacement."""
    if not 1 <= size <= features:
        raise InputError(f"the subset size must be between 1 and {features} (the input's values); got {size}")
    rng = np.random.default_rng(check_seed(seed))
    return np.stack([[rng.choice(features, size, replace=False) for _ in range(runs)] for _ in range(n)])


def gaussian_perturbations(shape, runs: int, sigma: float, seed: int = 0) -> np.ndarray:
    """(N, runs, C, H, W) float32 draws of N(0, sigma^2) for inputs of ``shape`` (N, C, H, W)."""
    rng = np.random.default_rng(check_seed(seed))
    n, *rest = shape
    return (sigma * rng.standard_normal((n, runs, *rest))).astype(np.float32)


def pearson_rows(s: np.ndarray, d: np.ndarray) -> np.ndarray:
    """(N,) Pearson's correlation of each row of s (N, R) with the row of d (N, R); NaN where one is constant.

    "Constant" means every value equal to the row's first, as SciPy tests it (its mean, rounded, may differ).
    """
    ds = s - s.mean(axis=1, keepdims=True)
    dd = d - d.mean(axis=1, keepdims=True)
    norm = np.sqrt((ds * ds).sum(axis=1) * (dd * dd).sum(axis=1))
    constant = (s == s[:, :1]).all(axis=1) | (d == d[:, :1]).all(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(constant | (norm == 0), np.nan, (ds * dd).sum(axis=1) / np.where(norm == 0, 1.0, norm))


def faithfulness_correlation(score, x, a, subsets, *, baseline="black", score_x=None) -> np.ndarray:
    """(N,) Pearson's correlation between the map's sums over random subsets and the score's drops.

    x        : (N, C, H, W) images;  a : (N, C, H, W) or (N, H, W) their maps
    subsets  : (N, R, |S|) int, indices into each image's C*H*W values (``random_subsets``)
    baseline : "black" (each image's smallest value, Quantus's default) or a number
    score_x  : (N,) f_c(x) if already known (it is computed otherwise)
    """
    x = np.asarray(x)
    n = len(x)
    flat_a = _attributions(x, a)
    subsets = np.asarray(subsets)
    if subsets.ndim != 3 or len(subsets) != n:
        raise InputError(f"subsets must have shape (N, R, |S|) with N = {n}; got {subsets.shape}")
    runs = subsets.shape[1]
    flat_x = x.reshape(n, -1)
    fill = flat_x.min(axis=1) if baseline == "black" else np.full(n, float(baseline))
    copies = np.repeat(flat_x[:, None], runs, axis=1)                       # (N, R, C*H*W)
    rows_n, rows_r = np.arange(n)[:, None, None], np.arange(runs)[None, :, None]
    copies[rows_n, rows_r, subsets] = fill[:, None, None].astype(x.dtype)
    rows = np.repeat(np.arange(n), runs)
    f_x = score(x, np.arange(n)) if score_x is None else np.asarray(score_x, dtype=np.float64)
    drops = f_x[:, None] - score(copies.reshape(n * runs, *x.shape[1:]), rows).reshape(n, runs)
    sums = flat_a[np.arange(n)[:, None, None], subsets].sum(axis=2)         # (N, R)
    return pearson_rows(sums, drops)


def infidelity(score, x, a, perturbations, *, normalize: bool = False, score_x=None) -> np.ndarray:
    """(N,) the mean squared error of the map's prediction of the score's change (module docstring).

    x : (N, C, H, W);  a : (N, C, H, W) or (N, H, W);  perturbations : (N, R, C, H, W), inputs x - I_r
    """
    x = np.asarray(x)
    n = len(x)
    flat_a = _attributions(x, a)
    I = np.asarray(perturbations)
    if I.ndim != 5 or len(I) != n or I.shape[2:] != x.shape[1:]:
        raise InputError(f"perturbations must have shape (N, R, C, H, W) for inputs {x.shape}; got {I.shape}")
    runs = I.shape[1]
    copies = (x[:, None] - I).astype(x.dtype).reshape(n * runs, *x.shape[1:])
    f_x = score(x, np.arange(n)) if score_x is None else np.asarray(score_x, dtype=np.float64)
    d = f_x[:, None] - score(copies, np.repeat(np.arange(n), runs)).reshape(n, runs)   # (N, R)
    s = np.einsum("nrp,np->nr", I.reshape(n, runs, -1).astype(np.float64), flat_a)      # (N, R)
    if normalize:
        ss = (s * s).sum(axis=1)
        beta = (s * d).sum(axis=1) / np.where(ss == 0, 1.0, ss)              # captum's safe_div
        s = beta[:, None] * s
    return ((s - d) ** 2).mean(axis=1)

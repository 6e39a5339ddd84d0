"""Deletion and insertion (Petsiuk et al., *RISE*, BMVC 2018): does removing what the map ranks first hurt?

Rank the P = H * W pixels by the map, most relevant first. With S steps,
step k (k = 0 .. S) treats the first round(k P / S) pixels of that order:

    deletion    x_k = x with those pixels (all channels) replaced by the baseline,
                zeros in the model's input space (after normalisation: the mean colour)
    insertion   x_k = blur(x) with those pixels put back from x

and the curve is the class probability p^c(x_k) = softmax(f(x_k))_c against
the fraction k / S. Its area under the curve, by the trapezoid rule on
[0, 1],

    AUC = (1/S) * ( p_0 / 2 + p_1 + ... + p_{S-1} + p_S / 2 )

is low for deletion and high for insertion when the map puts first what
the network relies on. ``blur`` is the authors' Gaussian blur (an 11x11
kernel, sigma 5, zero padding) of each channel.

Tied relevance (a Grad-CAM map is 0 wherever its ReLU cut it) is broken by
a seeded random order, the same for every method, so a flat region is
removed in no particular order rather than top row first.

The curves take ``score(batch, rows)``: the score of each copy in ``batch``,
where ``rows[i]`` says which image copy i came from (for the class of that
image); the scorecard passes the class probability, the tests a linear model.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import convolve1d

from ..errors import InputError
from ..util.checks import check_seed
from .seeds import uniform_rows
from .similarity import gaussian_window


def pixel_ranks(relevance: np.ndarray, seed: int = 0, ids=None) -> np.ndarray:
    """(N, H, W) int: each pixel's place in its map's order, 0 = most relevant; ties in a seeded random order.

    The order of image ``ids[i]`` (default i) is its own rows of the seeded stream, whatever the batch
    (:func:`minicnn.metrics.seeds.uniform_rows`).
    """
    n = len(relevance)
    flat = np.asarray(relevance, dtype=np.float64).reshape(n, -1)
    tiebreak = uniform_rows(check_seed(seed), np.arange(n) if ids is None else np.asarray(ids), flat.shape[1:])
    order = np.lexsort((tiebreak, -flat), axis=-1)              # by -relevance, then by the random key
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(flat.shape[1])[None, :].repeat(n, 0), axis=-1)
    return ranks.reshape(relevance.shape)


def counts(pixels: int, steps: int) -> np.ndarray:
    """Pixels treated at steps 0..S: round(k * P / S)."""
    return np.round(np.arange(steps + 1) * pixels / steps).astype(int)


def blur(x: np.ndarray, size: int = 11, sigma: float = 5.0) -> np.ndarray:
    """Gaussian blur of each channel of x (N, C, H, W): a size x size kernel, zero padding (RISE's code)."""
    g = gaussian_window(size, sigma).astype(x.dtype)
    return convolve1d(convolve1d(x, g, axis=2, mode="constant"), g, axis=3, mode="constant")


def auc(curve: np.ndarray) -> np.ndarray:
    """Trapezoid area of curves (..., S + 1) sampled at 0, 1/S, ..., 1."""
    curve = np.asarray(curve, dtype=np.float64)
    s = curve.shape[-1] - 1
    return (curve.sum(axis=-1) - (curve[..., 0] + curve[..., -1]) / 2) / s


def replaced(x: np.ndarray, fill: np.ndarray, ranks: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Copies (N, len(k), C, H, W): x with its first k[j] ranked pixels taken from ``fill``."""
    take = ranks[:, None, None] < k[None, :, None, None, None]   # (N, K, 1, H, W)
    return np.where(take, fill[:, None], x[:, None])


def _curve(score, x, start, end, ranks, steps, ends):
    """p at steps 0..S of x_k = ``start`` with its first k pixels from ``end``."""
    n = len(x)
    k = counts(ranks[0].size, steps)
    inner = k[1:-1]
    copies = replaced(start, end, ranks, inner).reshape(-1, *x.shape[1:])
    rows = np.repeat(np.arange(n), len(inner))
    middle = np.asarray(score(copies, rows), dtype=np.float64).reshape(n, len(inner))
    if ends is None:
        first = np.asarray(score(start, np.arange(n)), dtype=np.float64)
        last = np.asarray(score(end, np.arange(n)), dtype=np.float64)
    else:
        first, last = (np.asarray(e, dtype=np.float64) for e in ends)
    return np.concatenate([first[:, None], middle, last[:, None]], axis=1)


def _check(x, relevance):
    if x.ndim != 4 or relevance.shape != (x.shape[0], *x.shape[2:]):
        raise InputError(f"relevance must be (N, H, W) for inputs (N, C, H, W); got {relevance.shape} "
                         f"for {x.shape}")


def deletion_curve(score, x: np.ndarray, relevance: np.ndarray, *, steps: int = 10, baseline: float = 0.0,
                   seed: int = 0, ends=None, ids=None) -> np.ndarray:
    """(N, S + 1) scores as the most relevant pixels are replaced by ``baseline``, a fraction 1/S at a time.

    ``ends`` = (score of x, score of the all-baseline input), (N,) each, if already known; ``ids``: the
    images' numbers, which seed their tie-breaking (default 0..N-1).
    """
    _check(x, relevance)
    ranks = pixel_ranks(relevance, seed, ids)
    empty = np.full_like(x, baseline)
    return _curve(score, x, x, empty, ranks, steps, ends)


def insertion_curve(score, x: np.ndarray, relevance: np.ndarray, *, steps: int = 10, start: np.ndarray | None = None,
                    seed: int = 0, ends=None, ids=None) -> np.ndarray:
    """(N, S + 1) scores as the most relevant pixels are put back into ``start`` (default blur(x)).

    ``ends`` = (score of start, score of x), (N,) each, if already known; ``ids`` as for deletion.
    """
    _check(x, relevance)
    ranks = pixel_ranks(relevance, seed, ids)
    start = blur(x) if start is None else start
    return _curve(score, x, start, x, ranks, steps, ends)

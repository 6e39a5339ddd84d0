"""ROAD: RemOve And Debias (Rong et al., *A Consistent and Efficient Evaluation Strategy for Attribution
Methods*, ICML 2022).

Deletion fills removed pixels with a constant, and the network may react to
the *shape* of the hole rather than to what was in it. ROAD fills them by
**noisy linear imputation**: each removed pixel takes the weighted mean of
its 8 neighbours,

    v_p = sum_q w_pq v_q / sum_q w_pq,    w = 1/6 for the 4 direct neighbours, 1/12 for the 4 diagonal ones

(the sums over the neighbours inside the image; a neighbour that was kept
enters with its value, one that was removed as another unknown), solved
for all removed pixels of a channel at once, then Gaussian noise of
standard deviation 0.01 (in the model's input units) is added to the
imputed values. The removal order is the map's, at the percentiles
10, 20, ..., 90:

    MoRF   most relevant first: the class probability should fall fast (lower is better)
    LeRF   least relevant first: it should stay high (higher is better)

and each is summarised by the mean class probability over the nine
percentiles (this module returns the (N, 9) curves).

The linear system. Multiplying the equation of pixel p by D_p = sum_q w_pq
gives, over the removed pixels u,

    D_p v_p - sum_{q removed} w_pq v_q = sum_{q kept} w_pq x_q

a symmetric, diagonally dominant, positive definite matrix (w_pq = w_qp)
whenever some pixel is kept. Two tiers solve it: :func:`impute_reference`
builds it as a sparse matrix and calls ``scipy.sparse.linalg.spsolve``, one
image at a time (as the authors' and Quantus's code do); :func:`impute`
orders the unknowns row by row, where the matrix is banded (a neighbour is
at most W + 1 places away), and solves all images at once with LAPACK's
banded Cholesky solver (``scipy.linalg.solveh_banded``). The tests prove
they agree.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solveh_banded
from scipy.sparse import lil_matrix
from scipy.sparse.linalg import spsolve

from ..errors import InputError
from ..util.checks import check_seed
from .deletion import pixel_ranks
from .seeds import image_rng

#: (row offset, column offset): weight of that neighbour.
NEIGHBOURS = {(-1, -1): 1 / 12, (-1, 0): 1 / 6, (-1, 1): 1 / 12, (0, -1): 1 / 6,
              (0, 1): 1 / 6, (1, -1): 1 / 12, (1, 0): 1 / 6, (1, 1): 1 / 12}
PERCENTILES = (10, 20, 30, 40, 50, 60, 70, 80, 90)
NOISE = 0.01


def _check(x, removed):
    if x.ndim != 4 or removed.shape != (x.shape[0], *x.shape[2:]) or removed.dtype != bool:
        raise InputError(f"removed must be a bool mask (N, H, W) for inputs (N, C, H, W); got {removed.shape} "
                         f"{removed.dtype} for {x.shape}")
    if removed.reshape(len(x), -1).all(axis=1).any():
        raise InputError("linear imputation needs at least one kept pixel in every image")


def impute_reference(x: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """x with its removed pixels replaced by the linear imputation (no noise): the equations written
    pixel by pixel into a sparse matrix, one ``spsolve`` per image. Slow; for tests and for reading."""
    _check(x, removed)
    out = x.astype(np.float64)
    _, n_ch, h, w = x.shape
    for n in range(len(x)):
        unknowns = [(int(r), int(c)) for r, c in zip(*np.nonzero(removed[n]))]
        if not unknowns:
            continue
        number = {p: k for k, p in enumerate(unknowns)}
        A = lil_matrix((len(unknowns), len(unknowns)))
        b = np.zeros((len(unknowns), n_ch))
        for k, (r, c) in enumerate(unknowns):
            for (dr, dc), weight in NEIGHBOURS.items():
                q = (r + dr, c + dc)
                if not (0 <= q[0] < h and 0 <= q[1] < w):
                    continue
                A[k, k] += weight                                  # D_p
                if q in number:
                    A[k, number[q]] -= weight                      # another unknown
                else:
                    b[k] += weight * x[n, :, q[0], q[1]]           # a kept pixel
        v = spsolve(A.tocsc(), b).reshape(len(unknowns), n_ch)
        for k, (r, c) in enumerate(unknowns):
            out[n, :, r, c] = v[k]
    return out.astype(x.dtype)


def _shifted(a: np.ndarray, dr: int, dc: int, fill=0) -> np.ndarray:
    """a[..., r + dr, c + dc] at every (r, c), ``fill`` where that falls outside the image."""
    h, w = a.shape[-2:]
    padded = np.pad(a, [(0, 0)] * (a.ndim - 2) + [(1, 1), (1, 1)], constant_values=fill)
    return padded[..., 1 + dr:1 + dr + h, 1 + dc:1 + dc + w]


def impute(x: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """The same as :func:`impute_reference`, for the whole batch at once: the equations built on the
    pixel grid, the unknowns numbered image by image and row by row, one banded Cholesky solve."""
    _check(x, removed)
    if not removed.any():
        return x.copy()
    h, w = x.shape[2:]
    number = (np.cumsum(removed.ravel()) - 1).reshape(removed.shape)        # unknown k of each removed pixel
    inside = np.ones((h, w))
    diag_grid = sum(weight * _shifted(inside, dr, dc) for (dr, dc), weight in NEIGHBOURS.items())  # D_p
    diag = np.broadcast_to(diag_grid, removed.shape)[removed]
    kept_x = np.where(removed[:, None], 0, x).astype(np.float64)
    rhs_grid = sum(weight * _shifted(kept_x, dr, dc) for (dr, dc), weight in NEIGHBOURS.items())
    rhs = np.moveaxis(rhs_grid, 1, -1)[removed]                              # (K, C)
    pairs = []                                                               # couplings i < j: the
    for (dr, dc), weight in NEIGHBOURS.items():                              # neighbours after p
        if (dr, dc) > (0, 0):
            n, r, c = np.nonzero(removed & _shifted(removed, dr, dc, fill=False))
            pairs.append((number[n, r, c], number[n, r + dr, c + dc], weight))
    band = max([int((j - i).max()) for i, j, _ in pairs if len(i)], default=0)
    ab = np.zeros((band + 1, len(diag)))                                     # LAPACK's upper band storage:
    ab[band] = diag                                                          #   ab[band + i - j, j] = A[i, j]
    for i, j, weight in pairs:
        ab[band + i - j, j] = -weight
    out = x.copy()
    np.moveaxis(out, 1, -1)[removed] = solveh_banded(ab, rhs, check_finite=False)
    return out


def noisy_linear_imputation(x: np.ndarray, removed: np.ndarray, rng, noise: float = NOISE) -> np.ndarray:
    """x with its removed pixels imputed linearly, plus N(0, noise^2) on each imputed value.

    ``rng``: one generator for the batch, or a list of one generator per image (each draws its image's noise).
    """
    filled = impute(x, removed)
    mask = np.broadcast_to(removed[:, None], x.shape)
    if isinstance(rng, np.random.Generator):
        e = rng.standard_normal(x.shape)
    else:
        e = np.stack([g.standard_normal(x.shape[1:]) for g in rng])
    return np.where(mask, filled + (noise * e).astype(x.dtype), x)


def road_curves(score, x: np.ndarray, relevance: np.ndarray, *, percentiles=PERCENTILES, noise: float = NOISE,
                seed: int = 0, ids=None) -> dict[str, np.ndarray]:
    """{"morf": (N, len(percentiles)), "lerf": ...}: scores after removing p% of the pixels by imputation.

    ``score(batch, rows)`` as in :mod:`minicnn.metrics.deletion`; ties in the
    map are broken in a seeded random order; the noise is seeded too, per image:
    image ``ids[i]`` (default i) draws from its own generator ``default_rng([seed, ids[i]])``
    (:mod:`minicnn.metrics.seeds`), so its curve does not depend on the batch it is in.
    """
    n = len(x)
    ids = np.arange(n) if ids is None else np.asarray(ids)
    ranks = pixel_ranks(relevance, seed, ids)                 # 0 = most relevant
    pixels = ranks[0].size
    rng = [image_rng(check_seed(seed), i) for i in ids]
    curves = {}
    for order, removing in (("morf", lambda k: ranks < k), ("lerf", lambda k: ranks >= pixels - k)):
        copies = np.stack([noisy_linear_imputation(x, removing(int(round(p * pixels / 100))), rng, noise)
                           for p in percentiles], axis=1)       # (N, P, C, H, W)
        rows = np.repeat(np.arange(n), len(percentiles))
        curves[order] = np.asarray(score(copies.reshape(-1, *x.shape[1:]), rows),
                                   dtype=np.float64).reshape(n, len(percentiles))
    return curves

"""RISE: Randomized Input Sampling for Explanation (Petsiuk, Das and Saenko, BMVC 2018).

Show the network the image through N random masks and average the masks,
each weighted by the class probability it left:

    G_k   in {0, 1}^(s x s),  G_k[a, b] ~ Bernoulli(p)                       k = 1..N, the mask grid
    cell  = (ceil(H / s), ceil(W / s))
    M_k   = upsample(G_k, ((s + 1) cell_h, (s + 1) cell_w))[dy_k : dy_k + H, dx_k : dx_k + W]
            dy_k ~ U{0..cell_h - 1}, dx_k ~ U{0..cell_w - 1}                 a random shift, (H, W)
    S^c   = sum_k f_c(x * M_k) M_k / (N p)                                   (H, W)

f_c = softmax(y)_c, the class probability (the authors' code wraps the network in a
softmax). ``upsample`` is the authors' ``skimage.transform.resize(G, size, order=1,
mode="reflect", anti_aliasing=False)``: bilinear with half-pixel centres, output pixel o
of n reading the grid at  t = (o + 1/2) s / n - 1/2,  and beyond the grid's edge cells the
grid mirrored about them (G[-1] = G[1], G[s] = G[s - 2]). It is separable:
M_k = A_h[dy:dy+H] G_k A_w[dx:dx+W]^T with A (n, s) the 1-D interpolation weights.

Dividing by N p makes S an estimate of E[f_c(x * M) | pixel (i, j) kept]: a pixel's mean
mask value over the draws is about p. The masks are drawn from
``np.random.default_rng(seed)``: the grids (N, s, s) first, then the shifts (N, 2); or
passed in (``grids`` and ``shifts``), which is how the tests give minicnn the draws of the
authors' formulation. The same masks serve every image of the batch; masks are made a
batch at a time (never all N at H x W).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..layers import softmax
from ..model import check_input
from ..util.checks import check_count, check_real, check_seed
from ..util.progress import Progress
from .target import Explanation, choose_targets, scores_of

#: Masks per image when ``samples`` is not given (the paper uses 4000 to 8000 on ImageNet; the server caps 512).
DEFAULT_SAMPLES = 500
#: Cells per side of the mask grid, and the probability that a cell is kept (the paper's s = 7, p = 0.5).
DEFAULT_GRID, DEFAULT_P = 7, 0.5
#: Input elements (copies x C x H x W) per forward pass when batch_size is not given.
BATCH_ELEMENTS = 2 ** 18


@dataclass(frozen=True, kw_only=True, eq=False)
class RISE(Explanation):
    """``map`` (N, H, W): S^c; ``grids`` (samples, s, s) and ``shifts`` (samples, 2): the masks' draws; ``p``."""

    grids: np.ndarray
    shifts: np.ndarray
    p: float


def interpolation_weights(s: int, n: int) -> np.ndarray:
    """A (n, s): row o holds the weights of grid cells 0..s-1 in output pixel o (linear, half-pixel, mirrored)."""
    a = np.zeros((n, s))
    t = (np.arange(n) + 0.5) * s / n - 0.5                          # where output pixel o reads the grid
    left = np.floor(t).astype(np.intp)
    frac = t - left
    for index, weight in ((left, 1.0 - frac), (left + 1, frac)):
        mirrored = np.abs(index)                                    # G[-1] = G[1]
        mirrored = np.where(mirrored > s - 1, 2 * (s - 1) - mirrored, mirrored)   # G[s] = G[s - 2]
        np.add.at(a, (np.arange(n), np.clip(mirrored, 0, s - 1)), weight)
    return a


def masks_of(grids: np.ndarray, shifts: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """M_k (B, H, W) from grids G (B, s, s) and shifts (B, 2) = (dy, dx): upsampled, shifted, cropped."""
    s = grids.shape[1]
    h, w = hw
    cell_h, cell_w = -(-h // s), -(-w // s)                         # ceil(H / s), ceil(W / s)
    a_h = interpolation_weights(s, (s + 1) * cell_h)                # ((s+1) cell_h, s)
    a_w = interpolation_weights(s, (s + 1) * cell_w)
    rows = a_h[shifts[:, 0, None] + np.arange(h)]                   # (B, H, s): A_h[dy : dy + H]
    cols = a_w[shifts[:, 1, None] + np.arange(w)]                   # (B, W, s)
    return np.einsum("bia,bac,bjc->bij", rows, grids.astype(np.float64), cols)


def draw_masks(rng: np.random.Generator, samples: int, grid: int, p: float, hw: tuple[int, int]):
    """(grids (samples, s, s) bool, shifts (samples, 2) int): G ~ Bernoulli(p), dy, dx ~ U{0..cell - 1}."""
    grids = rng.random((samples, grid, grid)) < p
    cell = (-(-hw[0] // grid), -(-hw[1] // grid))
    shifts = np.stack([rng.integers(0, cell[0], samples), rng.integers(0, cell[1], samples)], axis=1)
    return grids, shifts


def rise(model, x, target=None, *, samples: int | None = None, grid: int | None = None, p: float | None = None,
         seed: int = 0, grids=None, shifts=None, batch_size: int | None = None,
         progress: bool | None = None) -> RISE:
    """RISE saliency of class ``target`` for the batch x (N, C, H, W): (N, H, W), see the module docstring.

    samples : N, the random masks (default 500)
    grid    : s, cells per side of a mask's grid (default 7)
    p       : the probability that a cell is kept (default 0.5)
    seed    : of the mask draws (default 0)
    grids, shifts : the draws themselves, (N, s, s) of 0/1 and (N, 2) (then samples, grid and seed are
              not used; p still divides)
    batch_size : masked copies per forward pass (default: about 2^18 input elements per pass)
    progress   : True / False; None shows a bar on stderr once it has taken 2 s
    """
    x = check_input(x)
    n, c, h, w = x.shape
    p = check_real(DEFAULT_P if p is None else p, "p", low=0.0, high=1.0, low_open=True)
    if grids is not None or shifts is not None:
        grids, shifts = _given_masks(grids, shifts, (h, w))
    else:
        samples = check_count(DEFAULT_SAMPLES if samples is None else samples, "samples")
        grid = check_count(DEFAULT_GRID if grid is None else grid, "grid", high=min(h, w))
        grids, shifts = draw_masks(np.random.default_rng(check_seed(seed)), samples, grid, p, (h, w))
    batch_size = check_count(max(1, BATCH_ELEMENTS // x[0].size) if batch_size is None else batch_size,
                             "batch_size")
    logits = model.forward(x)
    targets = choose_targets(model, logits, target)
    total = len(grids)
    saliency = np.zeros((n, h, w))
    with Progress(n * total, "rise", unit="masks", enabled=progress is not False,
                  after=0.0 if progress else 2.0) as bar:
        for start in range(0, total, batch_size):
            masks = masks_of(grids[start:start + batch_size], shifts[start:start + batch_size], (h, w))  # (B, H, W)
            for i in range(n):
                copies = (x[i] * masks[:, None]).astype(x.dtype)                                    # x * M_k
                f = softmax(model.forward(copies, keep=False).astype(np.float64))[:, targets[i]]     # f_c, (B,)
                saliency[i] += np.tensordot(f, masks, axes=1)
                bar.update(len(masks))
    saliency /= total * p
    return RISE(method="rise", map=saliency.astype(x.dtype), grids=grids, shifts=shifts, p=p, targets=targets,
                scores=scores_of(logits, targets), logits=logits, layer=None, classes=model.classes)


def _given_masks(grids, shifts, hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The draws passed in, checked: grids (N, s, s) of 0/1, shifts (N, 2) within a cell."""
    if grids is None or shifts is None:
        raise InputError("pass both grids and shifts (or neither)")
    grids, shifts = np.asarray(grids), np.asarray(shifts)
    if grids.ndim != 3 or grids.shape[1] != grids.shape[2] or len(grids) < 1 or not np.isin(grids, (0, 1)).all():
        raise InputError(f"grids must be (samples, s, s) of 0 and 1; got shape {grids.shape}")
    s = grids.shape[1]
    cell = np.array([-(-hw[0] // s), -(-hw[1] // s)])
    if shifts.shape != (len(grids), 2) or not np.issubdtype(shifts.dtype, np.integer) \
            or (shifts < 0).any() or (shifts >= cell).any():
        raise InputError(f"shifts must be ({len(grids)}, 2) integers in 0..cell - 1 = {(cell - 1).tolist()}")
    return grids.astype(bool), shifts.astype(np.intp)

"""Localisation with known ground truth: 2x2 mosaics and the pointing games.

A photograph's "true" evidence is unknown, but a mosaic of four images of
four different classes, each classified correctly alone, has an answer:
explaining the class of one tile, the map should point into that tile.

    mosaic   [[a, b],
              [c, d]]      four (C, h, w) inputs -> (C, 2h, 2w); tiles numbered 0 1 / 2 3
    mask     (2h, 2w) bool, True on the target's tile

Two scores per map m (H, W):

- **pointing game** (Zhang et al., *Top-down Neural Attention by Excitation
  Backprop*, IJCV 2018): a hit (1) when the map's maximum lies in the tile,
  else 0. Tie rule: when several pixels share the maximum, each counts
  equally: the score is the fraction of the maximal pixels inside the tile,
  so a constant map scores the tile's share of the image (1/4, chance).
  (Quantus 0.6.0 counts a hit if *any* maximal pixel is inside, so a
  constant map would score 1 there; on maps without ties the two agree.)
- **energy-based pointing game** (Wang et al., *Score-CAM*, CVPR-W 2020):
  the share of the map's positive mass inside the tile,
  sum_{tile} max(m, 0) / sum_{all} max(m, 0); a map with no positive value
  scores the tile's share of the image. On a non-negative map this is
  Quantus's relevance mass accuracy.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..util.checks import check_seed


def mosaic(tiles) -> np.ndarray:
    """Four (C, h, w) arrays as one (C, 2h, 2w): tiles 0 1 on top, 2 3 below."""
    a, b, c, d = tiles
    return np.concatenate([np.concatenate([a, b], axis=-1), np.concatenate([c, d], axis=-1)], axis=-2)


def tile_mask(size, tile: int) -> np.ndarray:
    """(H, W) bool: True on quarter ``tile`` (0 top left, 1 top right, 2 bottom left, 3 bottom right)."""
    h, w = size
    mask = np.zeros((h, w), dtype=bool)
    r, c = divmod(int(tile), 2)
    mask[r * h // 2:(r + 1) * h // 2, c * w // 2:(c + 1) * w // 2] = True
    return mask


def _check(m, mask):
    m, mask = np.asarray(m, dtype=np.float64), np.asarray(mask, dtype=bool)
    if m.shape[-2:] != mask.shape[-2:]:
        raise InputError(f"map {m.shape} and mask {mask.shape} must have the same (H, W)")
    return m, np.broadcast_to(mask, m.shape)


def pointing_game(m, mask) -> np.ndarray:
    """Per map (..., H, W): the fraction of its maximal pixels that lie inside ``mask`` (1 or 0 without ties)."""
    m, mask = _check(m, mask)
    top = m == m.max(axis=(-2, -1), keepdims=True)
    return np.asarray((top & mask).sum(axis=(-2, -1)) / top.sum(axis=(-2, -1)))


def energy_pointing_game(m, mask) -> np.ndarray:
    """Per map (..., H, W): sum of max(m, 0) inside ``mask`` / sum of max(m, 0) (the mask's share if none)."""
    m, mask = _check(m, mask)
    positive = np.maximum(m, 0)
    total = positive.sum(axis=(-2, -1))
    inside = (positive * mask).sum(axis=(-2, -1))
    share = mask.mean(axis=(-2, -1))
    return np.where(total > 0, inside / np.where(total > 0, total, 1.0), share)


def choose_mosaics(labels, predictions, count: int, seed: int = 0) -> list[tuple[tuple[int, ...], int]]:
    """Up to ``count`` mosaics as ([four image indices], target tile), from images classified correctly.

    The correctly classified images are shuffled (seeded) and taken greedily
    into groups of four different classes; mosaic i targets tile i mod 4, so
    every position is asked about equally often.
    """
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    pool = list(np.random.default_rng(check_seed(seed)).permutation(np.nonzero(labels == predictions)[0]))
    out = []
    while len(out) < count:
        group, classes = [], set()
        for i in list(pool):
            if labels[i] not in classes:
                group.append(int(i))
                classes.add(labels[i])
                pool.remove(i)
                if len(group) == 4:
                    break
        if len(group) < 4:
            break
        out.append((tuple(group), len(out) % 4))
    return out

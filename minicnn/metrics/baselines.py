"""Maps that know nothing about the network, to read every score against.

A metric's number means little alone: a map that says "the middle of the
image matters" scores well on CIFAR-10, whose objects sit in the middle.
Every table therefore has three baselines, (N, H, W) like a pixel map:

    random  u_ij ~ Uniform[0, 1), independent, from a seeded generator
    centre  exp(-((i - ci)^2 + (j - cj)^2) / (2 s^2)),  (ci, cj) = ((H-1)/2, (W-1)/2),  s = min(H, W) / 4
    edges   sqrt(Sx^2 + Sy^2) of the image's grey level (the mean of its channels),
            Sx, Sy its 3x3 Sobel derivatives (edges mirrored at the border)

The edge map is the one Adebayo et al. show beside the saliency methods: it
looks like an explanation and depends on the image alone.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import sobel

from ..util.checks import check_seed
from .seeds import uniform_rows

BASELINES = ("random", "centre", "edges")


def random_map(n: int, size, seed: int = 0, ids=None) -> np.ndarray:
    """(n, H, W) independent Uniform[0, 1) values from ``np.random.default_rng(seed)``.

    Image ``ids[i]`` (default i) gets its own rows of that stream, whatever the batch it is in
    (:func:`minicnn.metrics.seeds.uniform_rows`).
    """
    ids = np.arange(n) if ids is None else np.asarray(ids)
    return uniform_rows(check_seed(seed), ids, size)


def centre_map(n: int, size) -> np.ndarray:
    """(n, H, W) the Gaussian bump exp(-r^2 / (2 s^2)) about the image's centre, s = min(H, W) / 4."""
    h, w = size
    i = np.arange(h)[:, None] - (h - 1) / 2
    j = np.arange(w)[None, :] - (w - 1) / 2
    s = min(h, w) / 4
    return np.broadcast_to(np.exp(-(i ** 2 + j ** 2) / (2 * s ** 2)), (n, h, w)).copy()


def edge_map(x: np.ndarray) -> np.ndarray:
    """(N, H, W) Sobel gradient magnitude of the grey level of the batch x (N, C, H, W)."""
    grey = np.asarray(x, dtype=np.float64).mean(axis=1)
    # one image at a time: scipy's sobel smooths with (1, 2, 1) along every other axis, the batch's included
    return np.stack([np.hypot(sobel(g, axis=0, mode="mirror"), sobel(g, axis=1, mode="mirror")) for g in grey])


def baseline_maps(x: np.ndarray, seed: int = 0, ids=None) -> dict[str, np.ndarray]:
    """{"random", "centre", "edges"}: the three baselines for the batch x (N, C, H, W) of images ``ids``."""
    n, size = len(x), x.shape[2:]
    return {"random": random_map(n, size, seed, ids), "centre": centre_map(n, size), "edges": edge_map(x)}

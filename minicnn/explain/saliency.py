"""Gradient saliency (Simonyan et al. 2014): the plain gradient of the class score.

    S^c = dy^c / dx                                   (N, C, H, W)

one backward pass seeded with e_c, with the true ReLU derivative. For
display the usual picture is one number per pixel, the largest magnitude
over the colour channels,

    s^c_ij = max_ch | dy^c / dx_{ch,i,j} |            (N, H, W)

a separate step (:func:`channel_max_abs`), so the raw gradient stays available.
"""

from __future__ import annotations

import numpy as np

from .target import Explanation, choose_targets, onehot, scores_of


def saliency(model, x, target=None) -> Explanation:
    """dy^c/dx for the batch x (N, C, H, W); ``map`` is (N, C, H, W), raw (signed)."""
    logits = model.forward(x)
    targets = choose_targets(model, logits, target)
    grad = model.backward(onehot(targets, logits.shape[1], logits.dtype))
    return Explanation(method="saliency", map=grad, targets=targets, scores=scores_of(logits, targets),
                       logits=logits, layer=None, classes=model.classes)


def channel_max_abs(grad: np.ndarray) -> np.ndarray:
    """max over channels of |grad|: (N, C, H, W) -> (N, H, W), or (C, H, W) -> (H, W)."""
    return np.abs(grad).max(axis=-3)

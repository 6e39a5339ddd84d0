"""Gradient saliency (Simonyan et al. 2014): the plain gradient of the class score.

    S^c = dy^c / dx                                   (N, C, H, W)

one backward pass seeded with e_c, with the true ReLU derivative. For
display the usual picture is one number per pixel, the largest magnitude
over the colour channels,

    s^c_ij = max_ch | dy^c / dx_{ch,i,j} |            (N, H, W)

a separate step (:func:`channel_max_abs`), so the raw gradient stays available.

Input x Gradient (Shrikumar et al. 2016) weighs each input's gradient by the
input itself, its first-order contribution to the score:

    (x * dy^c/dx)_i                                    (N, C, H, W)

For a network of ReLUs, max pooling and linear layers without biases, y^c
is positively homogeneous, y^c(t x) = t y^c(x), and the contributions add up
to the score exactly (Euler): sum_i x_i dy^c/dx_i = y^c.
"""

from __future__ import annotations

import numpy as np

from ..model import check_input
from .target import Explanation, choose_targets, onehot, scores_of


def saliency(model, x, target=None) -> Explanation:
    """dy^c/dx for the batch x (N, C, H, W); ``map`` is (N, C, H, W), raw (signed)."""
    logits = model.forward(x)
    targets = choose_targets(model, logits, target)
    grad = model.backward(onehot(targets, logits.shape[1], logits.dtype))
    return Explanation(method="saliency", map=grad, targets=targets, scores=scores_of(logits, targets),
                       logits=logits, layer=None, classes=model.classes)


def input_x_gradient(model, x, target=None) -> Explanation:
    """x * dy^c/dx for the batch x (N, C, H, W); ``map`` is (N, C, H, W), raw (signed)."""
    x = check_input(x)
    logits = model.forward(x)
    targets = choose_targets(model, logits, target)
    grad = model.backward(onehot(targets, logits.shape[1], logits.dtype))
    return Explanation(method="input-x-gradient", map=x * grad, targets=targets,
                       scores=scores_of(logits, targets), logits=logits, layer=None, classes=model.classes)


def channel_max_abs(grad: np.ndarray) -> np.ndarray:
    """max over channels of |grad|: (N, C, H, W) -> (N, H, W), or (C, H, W) -> (H, W)."""
    return np.abs(grad).max(axis=-3)

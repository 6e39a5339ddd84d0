"""FullGrad (Srinivas and Fleuret, NeurIPS 2019): the input gradient plus every bias gradient.

**The full-gradient decomposition.** Take a network built of convolutions,
dense layers and BatchNorm at inference (each an affine map z = W h + b),
ReLUs and max / average pooling. With every bias b_l frozen at its value,
scaling the input and all the biases together by t scales every layer's
output by t (ReLU and max pooling are positively homogeneous, the rest is
linear), so y^c(t x, t b) = t y^c(x, b), and Euler's theorem for
homogeneous functions (differentiate at t = 1) gives, exactly,

    y^c(x) = sum( dy^c/dx * x ) + sum_l sum( dy^c/db_l * b_l )             (completeness)

over every layer l with a bias: a convolution's or dense layer's ``bias``,
and BatchNorm's shift beta - mu gamma / sqrt(var + eps) (its ``out =
x * scale + shift``). For a convolution, dy^c/db_l,k = sum_ij g_l[k, i, j]
with g_l = dy^c/d(output of l), so the bias term of layer l is the map

    g_l * b_l          (K, h, w): g_l[k, i, j] b_l[k], summing to dy^c/db_l . b_l

All of it is one backward pass seeded with e_c (``model.gradients`` holds
every g_l). The tests check completeness to 1e-9 in float64.

**The saliency map.** Each term is made positive, resized and scaled, and
the terms that are maps over positions are added up:

    psi(m)  = bilinear upsampling to (H, W) of (|m| - min |m|) / (max |m| - min |m|),
              per channel map (0 for a constant map)
    S       = sum_ch psi(dy^c/dx * x)_ch + sum_{l with a 4-D output} sum_k psi(g_l * b_l)_k
    map     = (S - min S) / (max S - min S)                     (N, H, W) in [0, 1]

As both the authors' code and pytorch-grad-cam do, each map is scaled first
and resized second (half-pixel centres here; the authors resize with
aligned corners, pytorch-grad-cam with OpenCV, whose bilinear upsampling
also uses half-pixel centres). The authors scale each layer's term over all
its channels at once; pytorch-grad-cam and this module scale each channel
map on its own. pytorch-grad-cam adds 1e-7 to every max - min; ``eps=1e-7``
reproduces that. Dense layers' bias terms enter completeness but not the
map (they have no positions).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..layers import BatchNorm2d, Conv2d, Linear
from ..model import check_input
from .gradient_cams import divide
from .resize import resize_bilinear
from .target import Explanation, choose_targets, onehot, scores_of


@dataclass(frozen=True, kw_only=True, eq=False)
class FullGrad(Explanation):
    """A FullGrad result: ``map`` (N, H, W) in [0, 1], and the raw terms of the decomposition.

    input_term : (N, C, H, W) dy^c/dx * x
    bias_terms : {layer name: g_l * b_l}, (N, K, h, w) for convolutions and BatchNorm,
                 (N, M) for dense layers, in forward order
    """

    input_term: np.ndarray
    bias_terms: dict = field(default_factory=dict)
    eps: float = 0.0

    def sum_of_terms(self) -> np.ndarray:
        """(N,) sum of the input term and every bias term: y^c itself (completeness)."""
        total = self.input_term.reshape(len(self.input_term), -1).sum(axis=1)
        for term in self.bias_terms.values():
            total = total + term.reshape(len(term), -1).sum(axis=1)
        return total


def layer_bias(layer, dtype) -> np.ndarray | None:
    """The bias b (K,) a layer adds to each of its output channels, or None for a layer without one.

    Conv2d and Linear: their ``bias``. BatchNorm2d at inference,
    out = (x - mu) gamma / sqrt(var + eps) + beta: the shift beta - mu gamma / sqrt(var + eps).
    """
    if isinstance(layer, (Conv2d, Linear)):
        return layer.param("bias", dtype)
    if isinstance(layer, BatchNorm2d):
        gamma, beta, mu, var = (layer.param(k, dtype) for k in ("weight", "bias", "running_mean", "running_var"))
        return beta - mu * gamma / np.sqrt(var + layer.eps)
    return None


def psi(m: np.ndarray, size, eps: float = 0.0) -> np.ndarray:
    """|m| scaled to [0, 1] per map over the last two axes, then upsampled bilinearly to ``size``: (..., H, W)."""
    m = np.abs(m)
    lo, hi = m.min(axis=(-2, -1), keepdims=True), m.max(axis=(-2, -1), keepdims=True)
    return resize_bilinear(divide(m - lo, hi - lo + eps), size)


def fullgrad(model, x, target=None, *, eps: float = 0.0) -> FullGrad:
    """FullGrad saliency of class ``target`` for the batch x (N, C, H, W): ``map`` (N, H, W) in [0, 1].

    One forward pass and one backward pass to the input (every layer's
    output gradient kept); see the module docstring for the decomposition and
    the map. ``eps=1e-7`` reproduces pytorch-grad-cam's scaling.
    """
    x = check_input(x)
    logits = model.forward(x)
    targets = choose_targets(model, logits, target)
    dx = model.backward(onehot(targets, logits.shape[1], logits.dtype))
    input_term = dx * x                                                    # (N, C, H, W)
    bias_terms = {}
    for name, layer in model.layers():
        b = layer_bias(layer, logits.dtype)
        if b is not None and name in model.gradients:
            g = model.gradients[name]                                      # dy^c/d(output of the layer)
            bias_terms[name] = g * b.reshape((1, -1) + (1,) * (g.ndim - 2))
    size = x.shape[2:]
    total = psi(input_term, size, eps).sum(axis=1)
    for term in bias_terms.values():
        if term.ndim == 4:
            total = total + psi(term, size, eps).sum(axis=1)
    lo, hi = total.min(axis=(1, 2), keepdims=True), total.max(axis=(1, 2), keepdims=True)
    return FullGrad(method="fullgrad", map=divide(total - lo, hi - lo + eps), input_term=input_term,
                    bias_terms=bias_terms, eps=eps, targets=targets, scores=scores_of(logits, targets),
                    logits=logits, layer=None, classes=model.classes)

"""Grad-CAM and its counterfactual (Selvaraju et al., IJCV 2019, equations 1-2 and section 6).

For an image, a class c with pre-softmax score y^c, and a layer whose output
A has K feature maps A^k of size h x w (Z = h * w pixels):

    alpha_k^c = (1/Z) sum_{i,j} dy^c / dA^k_ij          (N, K)    "neuron importance"
    L^c       = ReLU( sum_k alpha_k^c A^k )               (N, h, w) the Grad-CAM map

dy^c/dA is one backward pass seeded with the one-hot e_c and stopped at the
layer (``model.backward(e_c, stop_at=layer)``): no parameter gradients and no
gradients below the layer are computed.

The **counterfactual** map uses the negated gradient,

    alpha_k^c = (1/Z) sum_{i,j} -dy^c / dA^k_ij,          L = ReLU( sum_k alpha_k^c A^k )

and shows the regions whose removal would make the network *more* sure of c.

The map is returned raw, at the layer's resolution, not normalised.
Upsampling it to the input's size is a separate step,
:meth:`GradCAM.upsampled` (bilinear, half-pixel centres, as PyTorch's
``F.interpolate(..., mode="bilinear", align_corners=False)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .target import LayerMap, choose_targets, feature_map, onehot, scores_of


@dataclass(frozen=True, kw_only=True, eq=False)
class GradCAM(LayerMap):
    """A Grad-CAM (or counterfactual) result; ``map`` is L^c, (N, h, w), raw.

    alpha : (N, K) the weights alpha_k^c (negated for the counterfactual)
    relu  : whether the ReLU was applied to sum_k alpha_k^c A^k
    """

    alpha: np.ndarray
    relu: bool = True


def weighted_sum(alpha: np.ndarray, A: np.ndarray) -> np.ndarray:
    """sum_k alpha[n, k] * A[n, k, i, j]: (N, K) and (N, K, h, w) -> (N, h, w)."""
    return np.einsum("nk,nkij->nij", alpha, A)


def gradcam(model, x, target=None, layer: str | None = None, *, relu: bool = True,
            counterfactual: bool = False) -> GradCAM:
    """Grad-CAM of class ``target`` at ``layer`` for the batch x (N, C, H, W).

    target : None (top-1), a class index or name, or one per image
    layer  : a layer name (default: the last convolutional feature map after its ReLU)
    relu   : False returns sum_k alpha_k^c A^k without the final ReLU
    counterfactual : use -dy^c/dA (see the module docstring)
    """
    logits = model.forward(x)
    targets = choose_targets(model, logits, target)
    layer, A = feature_map(model, layer, "Grad-CAM")
    model.backward(onehot(targets, logits.shape[1], logits.dtype), stop_at=layer)
    dA = model.gradients[layer]                              # dy^c/dA, (N, K, h, w)
    alpha = dA.mean(axis=(2, 3))                             # (1/Z) sum_ij dy^c/dA^k_ij
    if counterfactual:
        alpha = -alpha
    cam = weighted_sum(alpha, A)
    if relu:
        cam = np.maximum(cam, 0)
    return GradCAM(method="counterfactual" if counterfactual else "gradcam", map=cam, alpha=alpha, relu=relu,
                   targets=targets, scores=scores_of(logits, targets), logits=logits, layer=layer,
                   classes=model.classes)


def counterfactual(model, x, target=None, layer: str | None = None, *, relu: bool = True) -> GradCAM:
    """The counterfactual explanation: Grad-CAM with -dy^c/dA (paper, section 6)."""
    return gradcam(model, x, target, layer, relu=relu, counterfactual=True)

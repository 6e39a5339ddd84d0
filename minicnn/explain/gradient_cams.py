"""Gradient-weighted CAMs beyond Grad-CAM: Grad-CAM++, XGrad-CAM, HiResCAM, LayerCAM.

All four start where Grad-CAM starts. For an image, a class c with
pre-softmax score y^c, and a layer whose output A has K maps A^k of size
h x w, one forward and one backward pass (stopped at the layer) give

    A  (N, K, h, w)        the layer's output
    g  (N, K, h, w)        g^k_ij = dy^c / dA^k_ij

and each method is one way of turning (A, g) into a map L (N, h, w), with
S_k = sum_ab A^k_ab the sum of map k over its positions:

    Grad-CAM     w_k = (1/Z) sum_ij g^k_ij                       L = ReLU(sum_k w_k A^k)
    Grad-CAM++   w_k = sum_ij a^k_ij ReLU(g^k_ij),
                 a^k_ij = g^2 / (2 g^2 + S_k g^3)   (g = g^k_ij)  L = ReLU(sum_k w_k A^k)
    XGrad-CAM    w_k = sum_ij (A^k_ij / S_k) g^k_ij              L = ReLU(sum_k w_k A^k)
    HiResCAM                                                     L = ReLU(sum_k g^k * A^k)
    LayerCAM                                                     L = ReLU(sum_k ReLU(g^k) * A^k)

(* is the element-wise product: HiResCAM and LayerCAM weight every
position, the others one weight per map.) Maps are raw, at the layer's
resolution; ``relu=False`` returns the sum before the final ReLU.

**Identities on a network ending GAP -> one dense layer** (ResNet-20 at
``layer3``; proven in tests/explain/test_explain_cam_family.py). There
y^c = sum_k W[c, k] F_k + b_c with F_k = S_k / Z, so the gradient is the
same at every position of a map: g^k_ij = G_k = W[c, k] / Z. Then

- HiResCAM = Grad-CAM: sum_k g^k * A^k = sum_k G_k A^k, and Grad-CAM's
  w_k = (1/Z) sum_ij G_k = G_k.
- XGrad-CAM = Grad-CAM: w_k = G_k sum_ij A^k_ij / S_k = G_k whenever
  S_k != 0; when S_k = 0 after a ReLU (A >= 0) the map A^k is all zero and
  adds nothing whatever its weight.
- LayerCAM = Grad-CAM with ReLU(w_k): sum_k ReLU(G_k) A^k, the maps that
  speak against c dropped before the sum instead of after it.
- Grad-CAM++: a^k_ij = G_k^2 / (2 G_k^2 + S_k G_k^3) = 1 / (2 + S_k G_k)
  at every position (for G_k != 0), so
      w_k = Z ReLU(G_k) / (2 + S_k G_k) = ReLU(W[c, k]) / (2 + W[c, k] F_k):
  Grad-CAM's weight ReLU(G_k) times Z / (2 + W[c, k] F_k), which shrinks
  maps that are already strongly active for c.

pytorch-grad-cam 1.5.7 adds stabilisers that the papers do not have; each
function takes an ``eps`` (default 0, the paper) that reproduces the
library exactly when set to the library's constant (tests/fixtures/
cam_family_*.npz record its numbers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .gradcam import GradCAM, weighted_sum
from .target import LayerMap, choose_targets, feature_map, onehot, scores_of

#: The constants pytorch-grad-cam 1.5.7 adds to denominators (pass them as ``eps`` to reproduce it).
PYTORCH_GRAD_CAM_EPS = {"gradcam-plus-plus": 1e-6, "xgradcam": 1e-7}


def layer_gradient(model, x, target, layer: str | None, method: str):
    """One forward pass and one backward pass stopped at the layer.

    Returns (logits (N, classes), targets (N,), layer name, A (N, K, h, w), g = dy^c/dA (N, K, h, w)).
    """
    logits = model.forward(x)
    targets = choose_targets(model, logits, target)
    layer, A = feature_map(model, layer, method)
    model.backward(onehot(targets, logits.shape[1], logits.dtype), stop_at=layer)
    return logits, targets, layer, A, model.gradients[layer]


def divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b, with 0 where b == 0 (a 0/0 or x/0 the formulas leave undefined)."""
    a, b = np.broadcast_arrays(a, b)
    return np.divide(a, b, out=np.zeros(a.shape, np.result_type(a, b)), where=b != 0)


def _relu(m: np.ndarray, relu: bool) -> np.ndarray:
    return np.maximum(m, 0) if relu else m


# ---------------------------------------------------------------- Grad-CAM++

@dataclass(frozen=True, kw_only=True, eq=False)
class GradCAMPlusPlus(GradCAM):
    """A Grad-CAM++ result: ``alpha`` (N, K) the weights w_k, ``a`` (N, K, h, w) the coefficients a^k_ij."""

    a: np.ndarray
    eps: float = 0.0


def plus_plus_coefficients(A: np.ndarray, g: np.ndarray, eps: float = 0.0) -> np.ndarray:
    """a^k_ij = g^2 / (2 g^2 + S_k g^3 + eps), 0 where g = 0: (N, K, h, w) from A and g of that shape.

    S_k = sum_ab A^k_ab. With eps = 0 this is eq. 19 of the paper (0 also
    where the denominator vanishes, which happens only at g = -2 / S_k < 0,
    where ReLU(g) = 0 discards a^k_ij anyway).
    """
    S = A.sum(axis=(2, 3), keepdims=True)
    g2 = g * g
    a = divide(g2, 2 * g2 + S * g2 * g + eps)
    return np.where(g != 0, a, 0)


def gradcam_plus_plus(model, x, target=None, layer: str | None = None, *, relu: bool = True,
                      eps: float = 0.0) -> GradCAMPlusPlus:
    """Grad-CAM++ (Chattopadhay et al., WACV 2018), eq. 19: the exponential form, computed literally.

        a^k_ij = g_ij^2 / (2 g_ij^2 + sum_ab A^k_ab g_ij^3)      (g = g^k = dy^c/dA^k)
        w_k    = sum_ij a^k_ij ReLU(g^k_ij)                        (N, K)
        L      = ReLU(sum_k w_k A^k)                               (N, h, w)

    Where eq. 19 comes from: the paper writes the class score as
    Y^c = sum_k w_k sum_ij A^k_ij with w_k = sum_ij a^k_ij ReLU(dY^c/dA^k_ij)
    and solves for the a^k_ij that make this exact, which needs the second and
    third derivatives of Y^c (eq. 10):

        a^k_ij = d2Y/dA_ij^2 / (2 d2Y/dA_ij^2 + sum_ab A_ab d3Y/dA_ij^3).

    Choosing Y^c = exp(y^c) makes them cheap: dY/dA = exp(y) g, and where
    the layers above A are piecewise linear (ReLU, max pooling, convolution,
    dense, BatchNorm at inference) and A is away from their kinks, y is
    locally linear in A, its Hessian is 0, and

        d2Y/dA dA^T = exp(y) (g g^T + d2y/dA dA^T) = exp(y) g g^T,   d3Y/dA_ij^3 = exp(y) g_ij^3,

    so exp(y) cancels and a^k_ij depends on g alone: eq. 19. (The tests check
    the Hessian of exp(y^c) by finite differences of the gradient.) The
    weights use ReLU(g), not ReLU(dY/dA) = exp(y) ReLU(g): the map is that of
    the paper divided by the positive constant exp(y^c), as in its released
    code.

    pytorch-grad-cam departs from eq. 19 by adding 1e-6 to the denominator.
    At the last layers of the shipped models many entries of g are 1e-3 or
    smaller, so g^2 is no larger than that constant: on the cat|dog image it
    moves a^k_ij at ResNet-20's layer3 by up to 35% of the largest a
    (lesson 10). ``eps=1e-6`` reproduces the library.
    """
    logits, targets, layer, A, g = layer_gradient(model, x, target, layer, "Grad-CAM++")
    a = plus_plus_coefficients(A, g, eps)
    w = (a * np.maximum(g, 0)).sum(axis=(2, 3))
    return GradCAMPlusPlus(method="gradcam-plus-plus", map=_relu(weighted_sum(w, A), relu), alpha=w, a=a,
                           eps=eps, relu=relu, targets=targets, scores=scores_of(logits, targets), logits=logits,
                           layer=layer, classes=model.classes)


# ---------------------------------------------------------------- XGrad-CAM

def xgradcam(model, x, target=None, layer: str | None = None, *, relu: bool = True, eps: float = 0.0) -> GradCAM:
    """XGrad-CAM (Fu et al., BMVC 2020): the gradient averaged with the map's own values as weights.

        w_k = sum_ij (A^k_ij / sum_ab A^k_ab) g^k_ij     (0 for an all-zero map)     (N, K)
        L   = ReLU(sum_k w_k A^k)                                                    (N, h, w)

    The paper derives w_k from two axioms (sensitivity and conservation) for
    ReLU networks. pytorch-grad-cam adds 1e-7 to sum_ab A^k_ab; ``eps=1e-7``
    reproduces it.
    """
    logits, targets, layer, A, g = layer_gradient(model, x, target, layer, "XGrad-CAM")
    S = A.sum(axis=(2, 3))
    w = divide((A * g).sum(axis=(2, 3)), S + eps)
    return GradCAM(method="xgradcam", map=_relu(weighted_sum(w, A), relu), alpha=w, relu=relu, targets=targets,
                   scores=scores_of(logits, targets), logits=logits, layer=layer, classes=model.classes)


# ---------------------------------------------------------------- element-wise: HiResCAM, LayerCAM

@dataclass(frozen=True, kw_only=True, eq=False)
class ElementwiseCAM(LayerMap):
    """HiResCAM or LayerCAM: ``map`` = ReLU(sum_k weights^k * A^k) (N, h, w); ``weights`` (N, K, h, w)."""

    weights: np.ndarray
    relu: bool = True


def hirescam(model, x, target=None, layer: str | None = None, *, relu: bool = True) -> ElementwiseCAM:
    """HiResCAM (Draelos and Carin 2020): each position weighted by its own gradient, no averaging.

        L = ReLU(sum_k g^k * A^k)          (N, h, w), * element-wise

    sum_ij of it (before the ReLU) is sum_kij A g, the first-order estimate
    of how y^c changes when A is scaled to 0; Grad-CAM replaces g^k by its
    mean and so can light up positions whose own gradient is negative.
    """
    logits, targets, layer, A, g = layer_gradient(model, x, target, layer, "HiResCAM")
    return ElementwiseCAM(method="hirescam", map=_relu((g * A).sum(axis=1), relu), weights=g, relu=relu,
                          targets=targets, scores=scores_of(logits, targets), logits=logits, layer=layer,
                          classes=model.classes)


def layercam(model, x, target=None, layer: str | None = None, *, relu: bool = True) -> ElementwiseCAM:
    """LayerCAM (Jiang et al., IEEE TIP 2021): positive gradients only, position by position.

        L = ReLU(sum_k ReLU(g^k) * A^k)    (N, h, w), * element-wise

    After a ReLU (A >= 0) every term is >= 0 and the final ReLU changes
    nothing; it matters at layers whose output can be negative.
    """
    logits, targets, layer, A, g = layer_gradient(model, x, target, layer, "LayerCAM")
    weights = np.maximum(g, 0)
    return ElementwiseCAM(method="layercam", map=_relu((weights * A).sum(axis=1), relu), weights=weights,
                          relu=relu, targets=targets, scores=scores_of(logits, targets), logits=logits,
                          layer=layer, classes=model.classes)

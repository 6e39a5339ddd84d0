"""Eigen-CAM and Eigen-Grad-CAM: the first principal component of a layer's maps.

Eigen-CAM (Muhammad and Yeasin, IJCNN 2020) reads the layer's output A
(K maps of h x w) as a matrix with one row per position and one column per
map, centres each column over the positions, and projects the rows on the
first right singular vector v_1:

    M   = A reshaped to (h*w, K),  M_pk = A^k_p - mean_q A^k_q      (each map centred)
    M   = U S V^T                                                   (singular value decomposition)
    L   = M v_1 = s_1 u_1, reshaped to (h, w)                       the first principal component
    L   = -L if |min L| > |max L|                                   (the sign SVD leaves open)
    L   = ReLU(L)

v_1 is the direction in map space along which the positions vary most, and
L says how far along it each position lies. The map depends on A alone:
**Eigen-CAM is not class-discriminative**, it is the same picture whatever
class is asked for (``target`` only picks the score reported with it).

An SVD fixes u_1 and v_1 only up to a common sign; the paper keeps the sign
that makes the largest magnitude positive (flip when |min| > |max|).
pytorch-grad-cam 1.5.7's EigenCAM takes the sign as the SVD routine returns
it (its ``get_2d_projection``), so its map can come out negated and, after
the ReLU, show the complement; the library's
``get_2d_projection_with_sign_correction`` is this definition.

**Eigen-Grad-CAM** (pytorch-grad-cam) does the same on g * A, the maps
weighted position by position by their gradient g = dy^c/dA, which makes it
depend on the class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .gradient_cams import layer_gradient
from .target import LayerMap, choose_targets, feature_map, scores_of


@dataclass(frozen=True, kw_only=True, eq=False)
class EigenCAM(LayerMap):
    """``map`` (N, h, w) = ReLU of the first component; ``direction`` (N, K) = v_1; ``singular_values`` (N, r)."""

    direction: np.ndarray
    singular_values: np.ndarray
    relu: bool = True

    @property
    def explained(self) -> np.ndarray:
        """(N,) the share of the centred maps' variance along v_1: s_1^2 / sum_i s_i^2 (0 for constant maps)."""
        s2 = self.singular_values ** 2
        total = s2.sum(axis=1)
        return np.divide(s2[:, 0], total, out=np.zeros_like(total), where=total > 0)


def first_component(A: np.ndarray):
    """(L, v_1, s): the signed first principal component (N, h, w), v_1 (N, K) and the singular values (N, r).

    A (N, K, h, w). The sign of (L, v_1) is chosen so that |max L| >= |min L|.
    """
    n, k, h, w = A.shape
    M = A.reshape(n, k, h * w).transpose(0, 2, 1)                 # (N, positions, maps)
    M = M - M.mean(axis=1, keepdims=True)                         # centre each map over the positions
    _, s, Vt = np.linalg.svd(M, full_matrices=False)             # Vt (N, r, K)
    v = Vt[:, 0, :]                                               # (N, K)
    L = np.einsum("npk,nk->np", M, v)                             # (N, positions) = s_1 u_1
    flip = np.abs(L.min(axis=1)) > np.abs(L.max(axis=1))
    sign = np.where(flip, -1, 1).astype(L.dtype)[:, None]
    return (L * sign).reshape(n, h, w), v * sign, s


def eigencam(model, x, target=None, layer: str | None = None, *, relu: bool = True) -> EigenCAM:
    """Eigen-CAM: the first principal component of A over its positions (see the module docstring).

    One forward pass, no gradient; ``map`` (N, h, w), raw (not normalised).
    """
    logits = model.forward(x)
    targets = choose_targets(model, logits, target)
    layer, A = feature_map(model, layer, "Eigen-CAM")
    L, v, s = first_component(A)
    return EigenCAM(method="eigencam", map=np.maximum(L, 0) if relu else L, direction=v, singular_values=s,
                    relu=relu, targets=targets, scores=scores_of(logits, targets), logits=logits, layer=layer,
                    classes=model.classes)


def eigengradcam(model, x, target=None, layer: str | None = None, *, relu: bool = True) -> EigenCAM:
    """Eigen-Grad-CAM: the first principal component of g * A, g = dy^c/dA (class-dependent)."""
    logits, targets, layer, A, g = layer_gradient(model, x, target, layer, "Eigen-Grad-CAM")
    L, v, s = first_component(g * A)
    return EigenCAM(method="eigengradcam", map=np.maximum(L, 0) if relu else L, direction=v, singular_values=s,
                    relu=relu, targets=targets, scores=scores_of(logits, targets), logits=logits, layer=layer,
                    classes=model.classes)

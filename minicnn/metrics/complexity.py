"""How concentrated a map is: sparseness (the Gini index) and complexity (the entropy), as Quantus 0.6.0.

A map a (N, ...) is read as one vector of P = prod(...) values per image.
Both metrics look at its magnitudes, divided by the largest (Quantus's
``abs=True`` and ``normalise_by_max``, per map):

    v_i = |a_i| / max_j |a_j|                      (v = |a| when a is all zeros)

Sparseness (Chalasani et al., ICML 2020): the Gini index of v, with Quantus's
1e-7 added to every value so that an all-zero map is defined. With
w = sort(v + 1e-7) ascending, w_(1) <= ... <= w_(P),

    G = sum_{k=1..P} (2k - P - 1) w_(k) / (P sum_k w_(k))             in [0, 1)

0 for a constant map, (P - 1) / P (up to the 1e-7) for a one-hot map: higher is
sparser. Complexity (Bhatt et al., IJCAI 2020): the entropy of v as a
distribution over the P values,

    p_i = v_i / sum_j v_j,        C = -sum_i p_i log(p_i + 1e-12)     in [0, log P]

log P for a uniform map, 0 for a one-hot map: lower is simpler. (Quantus takes
the largest value over the whole batch; per map is what a batch of one gives
and what the scorecard needs, since one image's score must not depend on
the others. Both metrics are unchanged by scaling a map but for the 1e-7.)
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

#: Quantus's constants: added to every value before the Gini index; inside the logarithm.
GINI_EPS, LOG_EPS = 1e-7, 1e-12


def magnitudes(maps) -> np.ndarray:
    """(N, P) float64: |a| / max |a| of each map (N, ...) flattened; an all-zero map stays zeros."""
    a = np.abs(np.asarray(maps, dtype=np.float64))
    if a.ndim < 2 or a.shape[0] == 0 or a[0].size == 0:
        raise InputError(f"maps must have shape (N, ...) with N >= 1 and values per map; got {a.shape}")
    a = a.reshape(len(a), -1)
    top = a.max(axis=1, keepdims=True)
    return np.divide(a, top, out=a.copy(), where=top > 0)


def sparseness(maps) -> np.ndarray:
    """(N,) the Gini index of each map's magnitudes (module docstring); 0 = flat, near 1 = one value."""
    w = np.sort(magnitudes(maps) + GINI_EPS, axis=1)          # (N, P) ascending
    P = w.shape[1]
    k = np.arange(1, P + 1)
    return ((2 * k - P - 1) * w).sum(axis=1) / (P * w.sum(axis=1))


def complexity(maps) -> np.ndarray:
    """(N,) the entropy of each map's magnitudes as a distribution (module docstring); log P = flat."""
    v = magnitudes(maps)
    total = v.sum(axis=1, keepdims=True)
    p = np.divide(v, total, out=np.zeros_like(v), where=total > 0)
    return -(p * np.log(p + LOG_EPS)).sum(axis=1)

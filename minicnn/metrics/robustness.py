"""Max-sensitivity (Yeh et al., NeurIPS 2019): how much can a little noise change the map?

For an image x (N, C, H, W), its map e(x) (N, ...) for class c, and R inputs
x + delta_r with every value of delta_r drawn from Uniform[-r, r] (a ball of
radius r in the max norm), as captum 0.9.0's ``sensitivity_max`` with its
default Frobenius norm (and Quantus 0.6.0's ``MaxSensitivity`` with its
default norms, ``difference`` and ``fro_norm``):

    SENS_max = max_r || e(x) - e(x + delta_r) ||_F / || e(x) ||_F      lower is better

(captum divides by 1 where || e(x) ||_F = 0; so does minicnn). The ratio is
blind to the map's units. Every sample re-runs the method on the noisy
copies, for the same class c: R more maps per image, the metric's whole
cost. The noise is an argument (``noise``, drawn by ``uniform_noise`` from
a seed), so a test can give the reference's draws.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..util.checks import check_seed


def uniform_noise(shape, samples: int, radius: float, seed: int = 0) -> np.ndarray:
    """(N, samples, C, H, W) float32 draws of Uniform[-radius, radius) for inputs of ``shape`` (N, C, H, W)."""
    rng = np.random.default_rng(check_seed(seed))
    n, *rest = shape
    return rng.uniform(-radius, radius, (n, samples, *rest)).astype(np.float32)


def max_sensitivity(explain, x, noise, *, maps=None) -> np.ndarray:
    """(N,) the largest relative Frobenius change of the map over the noisy copies x + noise[:, r].

    explain : explain(x_batch (M, C, H, W), rows (M,)) -> maps (M, ...), rows[i] the image copy i came from
    noise   : (N, R, C, H, W);  maps : (N, ...) e(x) if already known (explain(x) otherwise)
    """
    x = np.asarray(x)
    noise = np.asarray(noise)
    n = len(x)
    if noise.ndim != 5 or len(noise) != n or noise.shape[2:] != x.shape[1:]:
        raise InputError(f"noise must have shape (N, R, C, H, W) for inputs {x.shape}; got {noise.shape}")
    e = np.asarray(explain(x, np.arange(n)) if maps is None else maps, dtype=np.float64).reshape(n, -1)
    norm = np.linalg.norm(e, axis=1)
    norm = np.where(norm == 0, 1.0, norm)
    worst = np.zeros(n)
    for r in range(noise.shape[1]):                        # one noisy copy of every image per call
        e_r = np.asarray(explain((x + noise[:, r]).astype(x.dtype), np.arange(n)), dtype=np.float64).reshape(n, -1)
        worst = np.maximum(worst, np.linalg.norm(e - e_r, axis=1) / norm)
    return worst

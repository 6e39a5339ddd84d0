"""LIME (Ribeiro et al. 2016) and Kernel SHAP (Lundberg and Lee 2017): a weighted linear model of coalitions.

The image is cut into M interpretable features (superpixels, ``features.py``).
A coalition z in {0, 1}^M switches features on (kept) and off (set to the
baseline b); the network's score of the perturbed image is fitted by a linear
model in z, each sample weighted by pi(z); its coefficients are the map.

    x_z      = on_z * x + (1 - on_z) * b,   on_z[c, i, j] = z[mask[i, j]]         (C, H, W)
    y_k      = y^c(x_{z_k})                                                        pre-softmax score, k = 1..S
    (phi, phi_0) = argmin  sum_k pi_k (y_k - phi_0 - z_k . phi)^2 / (2 sum_k pi_k) + alpha ||phi||_1
    map[i, j] = phi[mask[i, j]]                                                   (H, W)

The two methods differ in how they draw z and weigh it, as captum 0.9.0's
``Lime`` and ``KernelShap`` do by default:

LIME     z_km ~ Bernoulli(1/2), independently;
         pi(z) = exp(-d^2 / (2 sigma^2)),  d = 1 - cos(x, x_z)  (cosine distance of the flattened
         inputs), sigma = kernel_width = 1;
         alpha = 0.01 (captum's default ``SkLearnLasso(alpha=0.01)``).
Kernel SHAP  the Shapley kernel  pi(z) = (M - 1) / (C(M, |z|) |z| (M - |z|))  is sampled, not weighed:
         z_1 = 1 (every feature on), z_2 = 0 (every feature off); then each z_k draws its size
         |z| = k with p(k) proportional to (M - 1) / (k (M - k)), k = 1..M-1, and a subset of that
         size uniformly (so P(z) is proportional to pi(z)); every sample has weight 1 except the empty
         and the full coalition, whose infinite Shapley weight is 10^6;
         alpha = 0 (captum's ``SkLearnLinearRegression``: weighted least squares, the least-norm
         solution when the system is under-determined).

Efficiency: the full and empty coalitions' weights hold phi_0 + sum phi = y(x) and phi_0 = y(b), so
sum_m phi_m = y(x) - y(b) up to about 10^-6 of the fit's residuals (``gap`` reports the difference).

The weighted fit, written out (captum hands it to scikit-learn; the same problem is solved here):
centre with the weighted means (z-bar = sum pi z / sum pi, y-bar likewise: the intercept is not
penalised), then with v = pi / sum pi

    alpha = 0 : phi = least-norm solution of  sqrt(v) (Z - z-bar) phi = sqrt(v) (y - y-bar)
    alpha > 0 : coordinate descent, phi_m = S(sum_k v_k Zc_km r_km, alpha) / sum_k v_k Zc_km^2,
                r_km = the residual without feature m, S(a, t) = sign(a) max(|a| - t, 0)

    phi_0 = y-bar - z-bar . phi

Draws come from ``np.random.default_rng(seed)`` (image after image, coalitions (S, M) each), or are
passed in as ``coalitions`` (S, M) (or (N, S, M)): that is how the tests give minicnn the very draws
captum made.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..model import check_input
from ..util.checks import check_count, check_real, check_seed
from ..util.progress import Progress
from .features import feature_mask
from .target import Explanation, choose_targets, scores_of

#: Coalitions per image when ``samples`` is not given.
DEFAULT_SAMPLES = 256
#: Input elements (copies x C x H x W) per forward pass when batch_size is not given.
BATCH_ELEMENTS = 2 ** 18
#: Kernel SHAP's weight of the empty and the full coalition (captum's ``inf_weight``).
INFINITE_WEIGHT = 1e6
#: Coordinate descent: sweeps at most, and the largest change of phi (relative to its largest value) to stop at.
LASSO_SWEEPS, LASSO_TOLERANCE = 10_000, 1e-12


@dataclass(frozen=True, kw_only=True, eq=False)
class Surrogate(Explanation):
    """``map`` (N, H, W): each pixel's feature coefficient phi; ``features`` (N, H, W): the labels.

    coefficients : phi of each image, a tuple of (M_n,) arrays; intercepts (N,): phi_0
    coalitions   : the samples z of each image, a tuple of (S, M_n) arrays; weights: their pi, (S,) each
    outputs      : y^c of each perturbed image, a tuple of (S,) arrays
    baseline_scores : y^c(b), (N,); gap (N,): sum phi - (y^c(x) - y^c(b)) (Kernel SHAP's efficiency)
    """

    features: np.ndarray
    coefficients: tuple
    intercepts: np.ndarray
    coalitions: tuple
    weights: tuple
    outputs: tuple
    baseline_scores: np.ndarray
    gap: np.ndarray


# ---------------------------------------------------------------- sampling

def lime_coalitions(rng: np.random.Generator, samples: int, m: int) -> np.ndarray:
    """(samples, m) int8: every feature on with probability 1/2, independently (captum's default_perturb_func)."""
    return (rng.random((samples, m)) < 0.5).astype(np.int8)


def shapley_size_probabilities(m: int) -> np.ndarray:
    """p(k) for k = 0..m-1: proportional to (m - 1) / (k (m - k)), p(0) = 0 (captum's num_select_distribution)."""
    k = np.arange(m, dtype=np.float64)
    with np.errstate(divide="ignore"):
        p = (m - 1) / (k * (m - k))
    p[0] = 0.0
    return p / p.sum()


def shapley_kernel(m: int, size: int) -> float:
    """pi(z) = (m - 1) / (C(m, |z|) |z| (m - |z|)) of a coalition of ``size`` features on; inf at 0 and m."""
    if size in (0, m):
        return math.inf
    return (m - 1) / (math.comb(m, size) * size * (m - size))


def shap_coalitions(rng: np.random.Generator, samples: int, m: int) -> np.ndarray:
    """(samples, m) int8: all on, all off, then coalitions drawn with P(z) proportional to the Shapley kernel."""
    z = np.zeros((samples, m), np.int8)
    z[0] = 1
    if m < 2:
        return z
    p = shapley_size_probabilities(m)
    for k in range(2, samples):
        size = rng.choice(m, p=p)                                   # |z| in 1..m-1
        z[k, rng.choice(m, size=size, replace=False)] = 1
    return z


# ---------------------------------------------------------------- mapping, weights, fit

def perturbed(x: np.ndarray, baseline: np.ndarray, labels: np.ndarray, z: np.ndarray) -> np.ndarray:
    """x_z = on * x + (1 - on) * b for each coalition: (B, C, H, W) from x, b (C, H, W), labels (H, W), z (B, M)."""
    on = z[:, labels][:, None].astype(x.dtype)                      # (B, 1, H, W): z[mask[i, j]]
    return on * x + (1 - on) * baseline


def cosine_kernel(x: np.ndarray, copies: np.ndarray, kernel_width: float = 1.0) -> np.ndarray:
    """pi = exp(-d^2 / (2 sigma^2)), d = 1 - cos(x, x_z) over the flattened input: (B,) (LIME's weights)."""
    a = x.reshape(-1).astype(np.float64)
    b = copies.reshape(len(copies), -1).astype(np.float64)
    norms = np.linalg.norm(a) * np.linalg.norm(b, axis=1)
    cos = np.divide(b @ a, norms, out=np.zeros(len(b)), where=norms > 0)
    return np.exp(-((1.0 - cos) ** 2) / (2.0 * kernel_width ** 2))


def shap_weights(z: np.ndarray) -> np.ndarray:
    """Kernel SHAP's sample weights: 1, and INFINITE_WEIGHT for the empty and the full coalition: (S,)."""
    size = z.sum(axis=1)
    return np.where((size == 0) | (size == z.shape[1]), INFINITE_WEIGHT, 1.0)


def weighted_fit(z: np.ndarray, y: np.ndarray, weights: np.ndarray, alpha: float = 0.0) -> tuple[np.ndarray, float]:
    """(phi (M,), phi_0): the weighted least squares (alpha = 0) or Lasso of the module docstring."""
    z = z.astype(np.float64)
    y = y.astype(np.float64)
    v = weights / weights.sum()                                     # (S,) weights summing to 1
    z_bar, y_bar = v @ z, v @ y                                     # weighted means: the intercept is free
    zc, yc = z - z_bar, y - y_bar
    if alpha == 0:
        root = np.sqrt(v)[:, None]
        phi = np.linalg.lstsq(root * zc, root[:, 0] * yc, rcond=None)[0]
    else:
        phi = lasso(zc, yc, v, alpha)
    return phi, float(y_bar - z_bar @ phi)


def lasso(zc: np.ndarray, yc: np.ndarray, v: np.ndarray, alpha: float) -> np.ndarray:
    """argmin_phi 1/2 sum_k v_k (yc_k - zc_k . phi)^2 + alpha ||phi||_1 by cyclic coordinate descent: (M,)."""
    m = zc.shape[1]
    phi = np.zeros(m)
    residual = yc.copy()                                            # yc - zc phi
    curvature = v @ (zc * zc)                                       # sum_k v_k zc_km^2, (M,)
    for _ in range(LASSO_SWEEPS):
        largest_step = 0.0
        for j in range(m):
            if curvature[j] == 0:
                continue                                            # a feature that never changes: phi_j = 0
            rho = v @ (zc[:, j] * residual) + curvature[j] * phi[j]
            new = np.sign(rho) * max(abs(rho) - alpha, 0.0) / curvature[j]
            if new != phi[j]:
                residual -= zc[:, j] * (new - phi[j])
                largest_step = max(largest_step, abs(new - phi[j]))
                phi[j] = new
        if largest_step <= LASSO_TOLERANCE * max(np.abs(phi).max(), 1e-300):
            break
    return phi


# ---------------------------------------------------------------- the methods

def surrogate(model, x, target=None, *, method: str, samples: int | None = None, features="grid",
              grid: int | None = None, baseline=0.0, seed: int = 0, coalitions=None, alpha: float | None = None,
              kernel_width: float = 1.0, batch_size: int | None = None, progress: bool | None = None) -> Surrogate:
    """LIME (``method`` "lime") or Kernel SHAP ("kernel-shap") for the batch x (N, C, H, W); see the module docstring.

    samples     : coalitions S per image, the empty and the full one included for Kernel SHAP (default 256)
    features    : "grid" (default), "slic" or an integer array of labels (H, W) / (N, H, W) (``features.py``)
    grid        : cells per side of the grid (default 8; about grid^2 superpixels for "slic")
    baseline    : the value of a feature switched off, in the network's input space: a number (default 0,
                  the colour the normalisation subtracts) or an array broadcastable to x
    seed        : of the coalition draws (default 0)
    coalitions  : the draws themselves, (S, M) or (N, S, M) of 0/1, or a list of one (S, M_n) per image
                  (a result's ``coalitions``; then samples and seed are not used)
    alpha       : the L1 penalty (default 0.01 for LIME, 0 for Kernel SHAP)
    kernel_width: LIME's sigma (default 1)
    batch_size  : perturbed copies per forward pass (default: about 2^18 input elements per pass)
    progress    : True / False; None shows a bar on stderr once it has taken 2 s
    """
    if method not in ("lime", "kernel-shap"):
        raise InputError(f"unknown surrogate {method!r}; choose lime or kernel-shap")
    x = check_input(x)
    n, c, h, w = x.shape
    shap = method == "kernel-shap"
    alpha = check_real(0.0 if shap else 0.01 if alpha is None else alpha, "alpha")
    kernel_width = check_real(kernel_width, "kernel_width", low_open=True)
    try:
        baselines = np.broadcast_to(np.asarray(baseline, dtype=x.dtype), x.shape)
    except (TypeError, ValueError):
        raise InputError(f"{method} baseline must be a number or an array broadcastable to {x.shape}") from None
    if not np.isfinite(baselines).all():
        raise InputError(f"{method} baseline must be finite: it becomes network input")
    labels, counts = feature_mask(x, features, grid)
    draws = _given_coalitions(coalitions, n, counts) if coalitions is not None else None
    if draws is None:
        samples = check_count(DEFAULT_SAMPLES if samples is None else samples, "samples", low=2 if shap else 1)
        rng = np.random.default_rng(check_seed(seed))
    batch_size = check_count(max(1, BATCH_ELEMENTS // x[0].size) if batch_size is None else batch_size,
                             "batch_size")

    logits = model.forward(x)
    targets = choose_targets(model, logits, target)
    total = sum(len(d) for d in draws) if draws is not None else n * samples
    coefficients, intercepts, used, weights, outputs = [], np.empty(n), [], [], []
    baseline_scores = np.empty(n)
    with Progress(total, method, unit="copies", enabled=progress is not False,
                  after=0.0 if progress else 2.0) as bar:
        for i in range(n):
            m = int(counts[i])
            if draws is not None:
                z = draws[i]
            else:
                z = shap_coalitions(rng, samples, m) if shap else lime_coalitions(rng, samples, m)
            y = np.empty(len(z))
            pi = np.empty(len(z))
            for start in range(0, len(z), batch_size):
                chunk = z[start:start + batch_size]
                copies = perturbed(x[i], baselines[i], labels[i], chunk)
                y[start:start + len(chunk)] = model.forward(copies, keep=False)[:, targets[i]]
                pi[start:start + len(chunk)] = shap_weights(chunk) if shap else \
                    cosine_kernel(x[i], copies, kernel_width)
                bar.update(len(chunk))
            phi, phi_0 = weighted_fit(z, y, pi, alpha)
            coefficients.append(phi)
            intercepts[i] = phi_0
            used.append(z)
            weights.append(pi)
            outputs.append(y)
            baseline_scores[i] = model.forward(baselines[i:i + 1], keep=False)[0, targets[i]]
    scores = scores_of(logits, targets)
    maps = np.stack([phi[labels[i]] for i, phi in enumerate(coefficients)]).astype(x.dtype)
    gap = np.array([phi.sum() for phi in coefficients]) - (scores - baseline_scores)
    return Surrogate(method=method, map=maps, features=labels, coefficients=tuple(coefficients),
                     intercepts=intercepts, coalitions=tuple(used), weights=tuple(weights), outputs=tuple(outputs),
                     baseline_scores=baseline_scores, gap=gap, targets=targets, scores=scores, logits=logits,
                     layer=None, classes=model.classes)


def _given_coalitions(coalitions, n: int, counts: np.ndarray) -> list[np.ndarray]:
    """The coalitions passed in, (S, M) or (N, S, M) of 0/1 or one (S, M_n) per image, as one int8 array per image."""
    if isinstance(coalitions, (list, tuple)) and len(coalitions) == n and all(np.ndim(z) == 2 for z in coalitions):
        return [_given_coalitions(z, 1, counts[i:i + 1])[0] for i, z in enumerate(coalitions)]
    z = np.asarray(coalitions)
    if z.ndim == 2:
        z = np.broadcast_to(z, (n, *z.shape))
    if z.ndim != 3 or z.shape[0] != n or z.shape[1] < 1:
        raise InputError(f"coalitions must be shaped (samples, M) or (N, samples, M); got {np.shape(coalitions)}")
    if not np.isin(z, (0, 1)).all():
        raise InputError("coalitions hold 0 (feature off) and 1 (feature on) only")
    if (counts != z.shape[2]).any():
        raise InputError(f"coalitions have {z.shape[2]} features; the feature mask has {sorted(set(counts.tolist()))}")
    return [z[i].astype(np.int8) for i in range(n)]


def lime(model, x, target=None, *, samples: int | None = None, features="grid", grid: int | None = None,
         baseline=0.0, seed: int = 0, coalitions=None, alpha: float | None = None, kernel_width: float = 1.0,
         batch_size: int | None = None, progress: bool | None = None) -> Surrogate:
    """LIME: a Lasso (alpha 0.01) of y^c on Bernoulli(1/2) coalitions, cosine-kernel weights (see :func:`surrogate`)."""
    return surrogate(model, x, target, method="lime", samples=samples, features=features, grid=grid,
                     baseline=baseline, seed=seed, coalitions=coalitions, alpha=alpha, kernel_width=kernel_width,
                     batch_size=batch_size, progress=progress)


def kernel_shap(model, x, target=None, *, samples: int | None = None, features="grid", grid: int | None = None,
                baseline=0.0, seed: int = 0, coalitions=None, batch_size: int | None = None,
                progress: bool | None = None) -> Surrogate:
    """Kernel SHAP: least squares on Shapley-kernel coalitions; sum phi = y(x) - y(b) (see :func:`surrogate`)."""
    return surrogate(model, x, target, method="kernel-shap", samples=samples, features=features, grid=grid,
                     baseline=baseline, seed=seed, coalitions=coalitions, batch_size=batch_size, progress=progress)

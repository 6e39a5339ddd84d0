"""Integrated Gradients (Sundararajan, Taly and Yan, ICML 2017).

The attribution of input i is its difference from a baseline x' times the
average gradient along the straight path from x' to x:

    IG_i(x) = (x_i - x'_i) * integral_0^1 dy^c/dx_i (x' + a (x - x')) da          (N, C, H, W)

By the fundamental theorem of calculus for path integrals the attributions
add up to the change of the score (*completeness*):

    sum_i IG_i(x) = y^c(x) - y^c(x')

The integral is a quadrature, sum_k w_k * gradient at a_k, with the rules
named as captum names them (``steps`` = n points):

    riemann_left       a_k = k / n,            w_k = 1 / n        k = 0 .. n-1
    riemann_right      a_k = (k + 1) / n,      w_k = 1 / n
    riemann_middle     a_k = (k + 1/2) / n,    w_k = 1 / n
    riemann_trapezoid  a_k = k / (n - 1),      w_k = 1 / (n - 1), halved at both ends
    gausslegendre      a_k = (1 + t_k) / 2,    w_k = v_k / 2      (t_k, v_k: Gauss-Legendre on [-1, 1])

(captum 0.9.0 weights its trapezoid points by 1/n instead of 1/(n - 1), so
its trapezoid result is (n - 1)/n times this one.) The quadrature's error is
what is left of completeness; it is returned with the map as the *gap*

    gap = y^c(x) - y^c(x') - sum_i IG_i(x)                                          (N,)

which shrinks as ``steps`` grows. A network of ReLUs and max pooling is
piecewise linear, so along the path the gradient is piecewise constant and
jumps where a unit switches: there the gap falls only about as 1/steps.

Baselines, in the model's input space (after preprocessing):

    "zeros"    x' = 0 (the default, captum's): for the shipped models, the mean colour
    "black"    the black image, (0 - mean) / std per channel
    "blur"     x blurred by a Gaussian of ``blur_sigma`` pixels (default: a tenth of the
               longer side), scipy.ndimage.gaussian_filter, reflecting at the border
    "uniform"  uniform noise over the pixel range [0, 1] through the preprocessing
               (or x's own range when the model records none), drawn with ``seed``
    an array   broadcastable to x

The interpolated inputs go through the network in batches of ``batch_size``
points, every image and step together.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..model import check_input
from ..util.checks import check_seed
from ..util.progress import Progress
from .target import Explanation, choose_targets, onehot, scores_of

QUADRATURES = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre")
BASELINES = ("zeros", "black", "blur", "uniform")
#: Input elements (points x C x H x W) per forward pass when batch_size is not given.
BATCH_ELEMENTS = 2 ** 20


@dataclass(frozen=True, kw_only=True, eq=False)
class IntegratedGradients(Explanation):
    """``map`` (N, C, H, W): IG; ``gap`` (N,): y^c(x) - y^c(x') - sum(map); the baseline x' and its scores."""

    gap: np.ndarray
    baseline: np.ndarray
    baseline_scores: np.ndarray
    quadrature: str
    steps: int


def quadrature_rule(name: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(a_k, w_k), float64: the points on [0, 1] and their weights (summing to 1) of a rule in QUADRATURES."""
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise InputError(f"integrated gradients steps must be a positive integer; got {steps!r}")
    n = int(steps)
    k = np.arange(n, dtype=np.float64)
    if name == "gausslegendre":
        t, v = np.polynomial.legendre.leggauss(n)
        return (1 + t) / 2, v / 2
    if name == "riemann_trapezoid":
        if n < 2:
            raise InputError("the trapezoid rule needs at least 2 steps")
        w = np.full(n, 1 / (n - 1))
        w[[0, -1]] /= 2
        return k / (n - 1), w
    starts = {"riemann_left": 0.0, "riemann_middle": 0.5, "riemann_right": 1.0}
    if name not in starts:
        raise InputError(f"unknown quadrature {name!r}; choose one of: {', '.join(QUADRATURES)}")
    return (k + starts[name]) / n, np.full(n, 1 / n)


#: The largest blur_sigma accepted (pixels): wider than any image, and finite.
MAX_BLUR_SIGMA = 1e4


def make_baseline(model, x: np.ndarray, baseline="zeros", *, seed=0, blur_sigma=None) -> np.ndarray:
    """x' (N, C, H, W) in x's dtype, from a name in BASELINES or an array (see the module docstring)."""
    if isinstance(baseline, str):
        prep = model.meta.get("preprocessing") or {}
        if baseline == "zeros":
            return np.zeros_like(x)
        if baseline in ("black", "uniform") and ("mean" in prep and "std" in prep):
            mean = np.asarray(prep["mean"], np.float64)[None, :, None, None]
            std = np.asarray(prep["std"], np.float64)[None, :, None, None]
            low, high = -mean / std, (1 - mean) / std
        elif baseline == "black":
            raise InputError(f"the 'black' baseline needs the model's preprocessing (mean, std); {model.name} "
                             f"records none: pass the baseline as an array")
        else:
            low, high = x.min(), x.max()
        if baseline == "black":
            return np.broadcast_to(low, x.shape).astype(x.dtype)
        if baseline == "uniform":
            return np.random.default_rng(check_seed(seed)).uniform(low, high, x.shape).astype(x.dtype)
        if baseline == "blur":
            from scipy.ndimage import gaussian_filter  # lazy: SciPy slows `import minicnn.explain`
            sigma = max(x.shape[2:]) / 10 if blur_sigma is None else blur_sigma
            if (isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) or not 0 < sigma <= MAX_BLUR_SIGMA):
                raise InputError(f"blur_sigma must be a positive number of pixels, at most {MAX_BLUR_SIGMA:g}; "
                                 f"got {blur_sigma!r}")
            return gaussian_filter(x, sigma=(0, 0, float(sigma), float(sigma)), mode="reflect")
        raise InputError(f"unknown baseline {baseline!r}; choose one of: {', '.join(BASELINES)}, or pass an array")
    try:
        return np.broadcast_to(np.asarray(baseline, dtype=x.dtype), x.shape).copy()
    except (ValueError, TypeError):
        raise InputError(f"the baseline must broadcast to the input's shape {x.shape}; "
                         f"got shape {np.shape(baseline)}") from None


def integrated_gradients(model, x, target=None, *, baseline="zeros", steps: int = 50,
                         quadrature: str = "gausslegendre", seed: int = 0, blur_sigma=None,
                         batch_size: int | None = None, progress: bool | None = None) -> IntegratedGradients:
    """IG of class ``target`` for the batch x (N, C, H, W): ``map`` (N, C, H, W) raw, ``gap`` (N,).

    baseline   : "zeros" (default), "black", "blur", "uniform" or an array (see the module docstring)
    steps      : points of the quadrature (default 50)
    quadrature : one of QUADRATURES (default "gausslegendre")
    seed       : for the "uniform" baseline
    blur_sigma : the "blur" baseline's Gaussian, in pixels (default: a tenth of the longer side)
    batch_size : interpolated inputs per pass (default: about 2^20 input elements per pass)
    progress   : True / False; None shows a bar on stderr once it has taken 2 s
    """
    x = check_input(x)
    n = x.shape[0]
    alphas, weights = quadrature_rule(quadrature, steps)
    x0 = make_baseline(model, x, baseline, seed=seed, blur_sigma=blur_sigma)
    if batch_size is None:
        batch_size = max(1, BATCH_ELEMENTS // x[0].size)
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer; got {batch_size!r}")

    logits = model.forward(x)
    targets = choose_targets(model, logits, target)
    scores = scores_of(logits, targets)
    baseline_scores = scores_of(model.forward(x0), targets)

    # Point p = k * N + i is image i at step k: x' + a_k (x - x').
    delta = x - x0
    total = np.zeros_like(x)                   # sum_k w_k dy^c/dx (x' + a_k delta)
    points = len(alphas) * n
    with Progress(points, "integrated gradients", unit="points", enabled=progress is not False,
                  after=0.0 if progress else 2.0) as bar:
        for start in range(0, points, batch_size):
            p = np.arange(start, min(points, start + batch_size))
            k, i = p // n, p % n
            a = alphas[k].astype(x.dtype)[:, None, None, None]
            logits_p = model.forward(x0[i] + a * delta[i])
            grads = model.backward(onehot(targets[i], logits_p.shape[1], logits_p.dtype))
            w = weights[k].astype(x.dtype)
            for image in np.unique(i):
                mine = i == image
                total[image] += np.tensordot(w[mine], grads[mine], axes=1)
            bar.update(len(p))
    ig = delta * total
    gap = scores - baseline_scores - ig.reshape(n, -1).sum(axis=1)
    return IntegratedGradients(method="integrated-gradients", map=ig, gap=gap, baseline=x0,
                               baseline_scores=baseline_scores, quadrature=quadrature, steps=int(steps),
                               targets=targets, scores=scores, logits=logits, layer=None, classes=model.classes)

"""DeepLIFT with the rescale rule (Shrikumar et al. 2017), DeepLIFT-SHAP and GradientSHAP (Lundberg and Lee 2017).

DeepLIFT explains the *difference* of the score from its value at a
baseline (a reference input) x0: every unit's difference from its own value
in the baseline's pass, dx = x - x0, dy = y - y0, is carried back to the input
by *multipliers* m = d(dy^c)/d(dx) that follow a chain rule of their own.
Each layer maps the multiplier at its output, dout, to the one at its input:

    linear layers (convolution, dense layer, average pooling, BatchNorm in eval
    mode, the residual addition, flatten, padding, dropout)
                       dx = the layer's own backward of dout      (its multiplier is its derivative)
    ReLU, ReLU6        dx = dout * (y - y0) / (x - x0)                    the rescale rule
                       dx = dout * f'(x)           where |x - x0| < eps   (captum's fallback)
    max pooling        captum's rule, below

so DeepLIFT is a backward pass with local rules (``Model.backward(seed,
rules=...)``, see ``minicnn/layers/base.py``) after two forward passes, one
of x0 (whose layer inputs the rules keep) and one of x. The attribution is

    DeepLIFT_i(x) = (x_i - x0_i) * m_i                                           (N, C, H, W)

and it adds up to the change of the score exactly (*summation to delta*):

    sum_i DeepLIFT_i(x) = y^c(x) - y^c(x0)

because every rule conserves sum(dout * dy) = sum(dx * (x - x0)) layer by
layer. ``gap`` = y^c(x) - y^c(x0) - sum(map) is returned; it is rounding
only (asserted in the tests on random networks and on the shipped models).
eps = 1e-10 is captum's threshold: below it the rescale multiplier is 0/0
and the derivative stands in (a unit whose input did not change passes
dout * f'(x) * (x - x0), at most 1e-10 * |dout| of the sum).

Max pooling, as captum 0.9.0's DeepLift: with the window's outputs y (of x)
and y0 (of x0) and t = max(y, y0),

    u  = route_x(dout * (t - y0)) + route_x0(dout * (y - t))
    dx = u / (x - x0)                 where |x - x0| >= eps, else route_x(dout)

where route_x sends a value to the window's maximum in x (the layer's
gradient) and route_x0 to its maximum in x0. The two parts add up to
dout * (y - y0) per window, so summation to delta holds. (Where windows
overlap, the routed values are added; captum's max_unpool writes one over
the other there. The shipped models pool 2x2 windows with stride 2. captum's
fallback also reads image 0's gradient for every image, where each image's
own is used here; the maps cannot tell: in the VGG every max pooling follows
a ReLU, and a ReLU output that did not move gets the multiplier 0 / (x - x0).)
ReLU6 gets the rescale rule here; captum has no rule for ``nn.ReLU6`` and
passes its gradient, which breaks summation to delta on MobileNetV2.

DeepLIFT-SHAP (captum's ``DeepLiftShap``) averages DeepLIFT over a set of
baselines x0_1 .. x0_B, the same set for every image:

    DeepLIFT-SHAP(x) = (1/B) sum_b DeepLIFT(x; x0_b),   sum = y^c(x) - (1/B) sum_b y^c(x0_b)

GradientSHAP (captum's ``GradientShap``) is expected gradients: for each
image i and sample k, a baseline x0_(b_ik) drawn from the set, Gaussian noise
e_ik ~ N(0, stdevs^2) added to x, and a point a_ik ~ U(0, 1) on the line:

    x~ = x_i + e_ik,   z = a_ik x~ + (1 - a_ik) x0_(b_ik)
    GradientSHAP_i = (1/S) sum_k (x~ - x0_(b_ik)) * dy^c/dx (z)                  (N, C, H, W)

(an estimate: it adds up to y^c(x) - E y^c(x0) only in expectation). The
draws (b, e, a) come from ``np.random.default_rng(seed)``, or are passed in
as ``draws`` (how the tests give captum's own draws to minicnn).

Baseline sets, in the model's input space:

    "uniform"  ``samples`` images of uniform noise over the pixel range [0, 1] through the
               preprocessing (x's own range when the model records none), drawn with ``seed``
    "normal"   ``samples`` images of standard normal noise N(0, 1), drawn with ``seed``
    an array   (B, C, H, W), the set itself

The image-baseline pairs go through the network in batches of ``batch_size``
pairs; DeepLIFT's rules read the baseline's pass image by image, so a batch is
never more than one of the model's chunks (``model.batch_chunks``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import parallel
from ..errors import InputError
from ..layers import (
    AdaptiveAvgPool2d,
    Add,
    AvgPool2d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    Identity,
    Linear,
    MaxPool2d,
    OptionAShortcut,
    ReLU,
    ReLU6,
    ZeroPad2d,
)
from ..model import batch_chunks, check_input
from ..util.checks import check_count, check_real, check_seed
from ..util.progress import Progress
from .integrated_gradients import make_baseline
from .target import Explanation, choose_targets, onehot, scores_of

#: captum's threshold: where |x - x0| < EPS the rescale multiplier is replaced by the derivative.
EPS = 1e-10
#: Layers whose multiplier is their derivative: linear (or affine) in their input.
LINEAR_LAYERS = (Conv2d, Linear, AvgPool2d, AdaptiveAvgPool2d, BatchNorm2d, Add, Flatten, Dropout, Identity,
                 OptionAShortcut, ZeroPad2d)
BASELINE_SETS = ("uniform", "normal")
#: Image-baseline pairs per pass when batch_size is not given: about 2^20 input elements.
BATCH_ELEMENTS = 2 ** 20
#: The largest baseline set (B x C x H x W values): 128 MiB of float32; 222 images of 3x224x224.
MAX_SET_VALUES = 2 ** 25
#: The largest GradientSHAP noise standard deviation: 100 times a standardised input's scale.
MAX_STDEVS = 100.0


# ---------------------------------------------------------------- the rules

def _aligned(reference: np.ndarray, x: np.ndarray) -> np.ndarray:
    """x0, the layer's input in the baseline's pass, checked to pair with x image by image."""
    if reference.shape != x.shape:
        raise RuntimeError(f"DeepLIFT's baseline pass does not pair with this pass ({reference.shape} vs "
                           f"{x.shape}): the batch was cut into chunks")
    return reference.astype(x.dtype, copy=False)


@dataclass(frozen=True, eq=False)
class Rescale:
    """The rescale rule of an elementwise nonlinearity y = f(x) (ReLU, ReLU6), x0 its input in the baseline's pass:

        dx = dout * (f(x) - f(x0)) / (x - x0)    where |x - x0| >= eps
        dx = dout * f'(x)                        elsewhere (the layer's own backward)
    """

    reference: np.ndarray
    eps: float = EPS

    def __call__(self, layer, x, dout):
        x0 = _aligned(self.reference, x)
        (y, cache), (y0, _) = layer.forward(x), layer.forward(x0)
        delta_in = x - x0
        far = np.abs(delta_in) >= self.eps
        multiplier = np.divide(y - y0, delta_in, out=np.zeros_like(delta_in), where=far)
        return np.where(far, dout * multiplier, layer.backward(dout, cache)[0])


@dataclass(frozen=True, eq=False)
class RescaleMaxPool:
    """captum's DeepLift rule for max pooling (see the module docstring), x0 the input in the baseline's pass:

        u  = route_x(dout * (t - y0)) + route_x0(dout * (y - t)),   t = max(y, y0)
        dx = u / (x - x0) where |x - x0| >= eps, else route_x(dout)
    """

    reference: np.ndarray
    eps: float = EPS

    def __call__(self, layer, x, dout):
        x0 = _aligned(self.reference, x)
        (y, cache), (y0, cache0) = layer.forward(x), layer.forward(x0)
        top = np.maximum(y, y0)
        u = layer.backward(dout * (top - y0), cache)[0] + layer.backward(dout * (y - top), cache0)[0]
        delta_in = x - x0
        far = np.abs(delta_in) >= self.eps
        return np.where(far, np.divide(u, delta_in, out=np.zeros_like(u), where=far),
                        layer.backward(dout, cache)[0])


def deeplift_rules(model, eps: float = EPS) -> dict:
    """{layer name: rule} for the nonlinear layers, from the inputs of the last forward pass (the baseline's).

    Linear layers are not named: they keep their derivative. A layer of
    another kind is refused (its DeepLIFT rule is not known).
    """
    rules = {}
    for name, layer in model.layers():
        if isinstance(layer, (ReLU, ReLU6)):
            rules[name] = Rescale(model.inputs[name], eps)
        elif isinstance(layer, MaxPool2d):
            rules[name] = RescaleMaxPool(model.inputs[name], eps)
        elif not isinstance(layer, LINEAR_LAYERS):
            raise InputError(f"DeepLIFT has no rule for layer {name!r} ({type(layer).__name__}); it knows ReLU, "
                             f"ReLU6, max pooling and linear layers")
    return rules


def multipliers(model, x: np.ndarray, x0: np.ndarray, targets: np.ndarray, eps: float = EPS):
    """(m, y^c(x), y^c(x0)): DeepLIFT's multipliers d(dy^c)/d(dx) (n, C, H, W) for the pairs (x_i, x0_i).

    One forward of x0 (the rules keep its layer inputs), one of x, one backward with the rules.
    The pairs must make one chunk of the model (see :func:`pairs_per_pass`).
    """
    baseline_scores = scores_of(model.forward(x0), targets)
    rules = deeplift_rules(model, eps)
    logits = model.forward(x)
    m = model.backward(onehot(targets, logits.shape[1], logits.dtype), rules=rules)
    return m, scores_of(logits, targets), baseline_scores


def pairs_per_pass(x: np.ndarray, batch_size) -> int:
    """Pairs per pass: ``batch_size`` (default about BATCH_ELEMENTS input elements), at most one model chunk."""
    if batch_size is None:
        batch_size = max(1, BATCH_ELEMENTS // x[0].size)
    batch_size = check_count(batch_size, "batch_size")
    low, high, workers = 1, batch_size, parallel.threads()      # the most pairs that stay one chunk: bisection
    while low < high:
        middle = (low + high + 1) // 2
        if len(batch_chunks(middle, x[0].size, workers)) == 1:
            low = middle
        else:
            high = middle - 1
    return low


# ---------------------------------------------------------------- results

@dataclass(frozen=True, kw_only=True, eq=False)
class DeepLift(Explanation):
    """``map`` (N, C, H, W); ``gap`` (N,): y^c(x) - mean_b y^c(x0_b) - sum(map), rounding only;
    ``baseline`` (N, C, H, W) for DeepLIFT, the set (B, C, H, W) for DeepLIFT-SHAP;
    ``baseline_scores`` (N,) resp. (N, B): y^c at the baselines."""

    gap: np.ndarray
    baseline: np.ndarray
    baseline_scores: np.ndarray


@dataclass(frozen=True, kw_only=True, eq=False)
class GradientShap(Explanation):
    """``map`` (N, C, H, W); ``baseline`` (B, C, H, W): the set; ``draws``: {"index" (N, S), "alpha" (N, S)}:
    the baselines picked and the points on the line (the noise is not kept: it is N x S images);
    ``gap`` (N,): y^c(x) - mean_b y^c(x0_b) - sum(map), an estimate's error, not rounding."""

    gap: np.ndarray
    baseline: np.ndarray
    draws: dict


# ---------------------------------------------------------------- the methods

def deeplift(model, x, target=None, *, baseline="zeros", seed: int = 0, blur_sigma=None, eps: float = EPS,
             batch_size: int | None = None, progress: bool | None = None) -> DeepLift:
    """DeepLIFT (rescale rule) of class ``target`` for the batch x (N, C, H, W) against one baseline per image.

    baseline   : "zeros" (default), "black", "blur", "uniform" or an array broadcastable to x
                 (Integrated Gradients' baselines, ``minicnn.explain.integrated_gradients``)
    seed       : for the "uniform" baseline
    eps        : below this |x - x0| the rescale multiplier falls back to the derivative (captum's 1e-10)
    batch_size : images per pass (default: about 2^20 input elements; at most one chunk of the model)
    progress   : True / False; None shows a bar on stderr once it has taken 2 s
    """
    x = check_input(x)
    eps = check_real(eps, "eps", high=1.0, low_open=True)
    x0 = make_baseline(model, x, baseline, seed=seed, blur_sigma=blur_sigma)
    per_pass = pairs_per_pass(x, batch_size)
    logits = model.forward(x)
    targets = choose_targets(model, logits, target)
    n = len(x)
    m = np.zeros_like(x)
    scores, baseline_scores = np.zeros(n, x.dtype), np.zeros(n, x.dtype)
    with Progress(n, "deeplift", unit="images", enabled=progress is not False, after=0.0 if progress else 2.0) as bar:
        for start in range(0, n, per_pass):
            s = slice(start, min(n, start + per_pass))
            m[s], scores[s], baseline_scores[s] = multipliers(model, x[s], x0[s], targets[s], eps)
            bar.update(s.stop - s.start)
    attribution = (x - x0) * m
    gap = scores - baseline_scores - attribution.reshape(n, -1).sum(axis=1)
    return DeepLift(method="deeplift", map=attribution, gap=gap, baseline=x0, baseline_scores=baseline_scores,
                    targets=targets, scores=scores_of(logits, targets), logits=logits, layer=None,
                    classes=model.classes)


def baseline_set(model, x: np.ndarray, baselines="uniform", samples: int = 10, seed: int = 0,
                 *, least: int = 1) -> np.ndarray:
    """The baselines (B, C, H, W) in x's dtype: ``samples`` draws from a set in BASELINE_SETS, or the array given."""
    shape = x.shape[1:]
    if isinstance(baselines, str):
        samples = check_count(samples, "samples", low=least)
        if baselines not in BASELINE_SETS:
            raise InputError(f"unknown baseline set {baselines!r}; choose one of: {', '.join(BASELINE_SETS)}, "
                             f"or pass an array (B, C, H, W)")
        if samples * x[0].size > MAX_SET_VALUES:
            raise InputError(f"{samples} baselines of {'x'.join(map(str, shape))} are over the cap of "
                             f"{MAX_SET_VALUES} values; use samples <= {MAX_SET_VALUES // x[0].size}")
        rng = np.random.default_rng(check_seed(seed))
        if baselines == "normal":
            return rng.standard_normal((samples, *shape)).astype(x.dtype)
        prep = model.meta.get("preprocessing") or {}
        if "mean" in prep and "std" in prep:
            mean = np.asarray(prep["mean"], np.float64)[None, :, None, None]
            std = np.asarray(prep["std"], np.float64)[None, :, None, None]
            low, high = -mean / std, (1 - mean) / std
        else:
            low, high = x.min(), x.max()
        return rng.uniform(low, high, (samples, *shape)).astype(x.dtype)
    try:
        base = np.asarray(baselines, dtype=x.dtype)
    except (ValueError, TypeError):
        raise InputError(f"baselines must be a set name ({', '.join(BASELINE_SETS)}) or an array (B, C, H, W); "
                         f"got {type(baselines).__name__}") from None
    if base.ndim != 4 or base.shape[1:] != shape or len(base) < least:
        raise InputError(f"the baselines must be an array (B, {', '.join(map(str, shape))}) with B >= {least}; "
                         f"got shape {base.shape}")
    if not np.isfinite(base).all():
        raise InputError("the baselines contain NaN or infinity")
    return base


def deeplift_shap(model, x, target=None, *, baselines="uniform", samples: int = 10, seed: int = 0,
                  eps: float = EPS, batch_size: int | None = None, progress: bool | None = None) -> DeepLift:
    """DeepLIFT-SHAP: the mean of DeepLIFT over a set of B >= 2 baselines, the same set for every image.

    baselines  : "uniform" (default), "normal" (``samples`` draws with ``seed``), or an array (B, C, H, W)
    samples    : B, the baselines drawn (default 10; not used with an array)
    seed       : of the draws
    eps        : the rescale rule's threshold (captum's 1e-10)
    batch_size : image-baseline pairs per pass (default: about 2^20 input elements; at most one model chunk)
    progress   : True / False; None shows a bar on stderr once it has taken 2 s
    """
    x = check_input(x)
    eps = check_real(eps, "eps", high=1.0, low_open=True)
    base = baseline_set(model, x, baselines, samples, seed, least=2)
    per_pass = pairs_per_pass(x, batch_size)
    logits = model.forward(x)
    targets = choose_targets(model, logits, target)
    n, b = len(x), len(base)
    total = np.zeros(x.shape, np.float64)                    # sum_b DeepLIFT(x; x0_b)
    baseline_scores = np.zeros((n, b), x.dtype)
    pairs = n * b                                            # pair p = i * B + j: image i, baseline j (captum's)
    with Progress(pairs, "deeplift-shap", unit="pairs", enabled=progress is not False,
                  after=0.0 if progress else 2.0) as bar:
        for start in range(0, pairs, per_pass):
            p = np.arange(start, min(pairs, start + per_pass))
            i, j = p // b, p % b
            m, _, baseline_scores[i, j] = multipliers(model, x[i], base[j], targets[i], eps)
            np.add.at(total, i, (x[i] - base[j]) * m)
            bar.update(len(p))
    attribution = (total / b).astype(x.dtype)
    scores = scores_of(logits, targets)
    gap = scores - baseline_scores.mean(axis=1) - attribution.reshape(n, -1).sum(axis=1)
    return DeepLift(method="deeplift-shap", map=attribution, gap=gap, baseline=base, baseline_scores=baseline_scores,
                    targets=targets, scores=scores, logits=logits, layer=None, classes=model.classes)


def _checked_draws(draws, n: int, b: int, shape: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(index (N, S), noise (N, S, C, H, W), alpha (N, S)) from a dict of them, or a one-line InputError."""
    if not isinstance(draws, dict) or set(draws) != {"index", "noise", "alpha"}:
        raise InputError("draws must be a dict with the keys 'index' (N, S), 'noise' (N, S, C, H, W), 'alpha' (N, S)")
    index, noise, alpha = (np.asarray(draws[k]) for k in ("index", "noise", "alpha"))
    if index.ndim != 2 or index.shape[0] != n or index.shape[1] < 1 or index.dtype.kind not in "iu":
        raise InputError(f"draws['index'] must be integers (N, S) = ({n}, S); got {index.dtype} {index.shape}")
    if index.min() < 0 or index.max() >= b:
        raise InputError(f"draws['index'] must pick baselines 0..{b - 1}")
    if alpha.shape != index.shape or noise.shape != (*index.shape, *shape):
        raise InputError(f"draws['alpha'] must be {index.shape} and draws['noise'] {(*index.shape, *shape)}; got "
                         f"{alpha.shape} and {noise.shape}")
    if not (np.isfinite(noise).all() and np.isfinite(alpha).all()):
        raise InputError("draws contain NaN or infinity")
    return index, noise, alpha


def gradient_shap(model, x, target=None, *, baselines="uniform", samples: int = 20, stdevs: float = 0.0,
                  seed: int = 0, draws: dict | None = None, batch_size: int | None = None,
                  progress: bool | None = None) -> GradientShap:
    """GradientSHAP: expected gradients times (x + noise - baseline) over ``samples`` draws per image.

    baselines  : "uniform" (default), "normal" (``samples`` draws with ``seed``), or an array (B, C, H, W)
    samples    : S, the draws per image (default 20); also the size of a drawn baseline set
    stdevs     : standard deviation of the Gaussian noise added to x (default 0, captum's)
    seed       : of the baseline set and the draws
    draws      : the draws themselves, {"index": (N, S) baselines picked, "noise": (N, S, C, H, W),
                 "alpha": (N, S) points on the line} (then samples, stdevs and the seed of the draws are not used)
    batch_size : samples per pass (default: about 2^20 input elements)
    progress   : True / False; None shows a bar on stderr once it has taken 2 s
    """
    x = check_input(x)
    n = len(x)
    if draws is None:
        samples = check_count(samples, "samples")
        stdevs = check_real(stdevs, "stdevs", high=MAX_STDEVS)
    base = baseline_set(model, x, baselines, samples, seed)
    if draws is not None:
        index, noise, alpha = _checked_draws(draws, n, len(base), x.shape[1:])
    else:
        rng = np.random.default_rng([check_seed(seed), 1])   # a stream of its own, apart from the set's
        index = rng.integers(0, len(base), (n, samples))
        alpha = rng.uniform(0.0, 1.0, (n, samples))
        noise = None
    s = index.shape[1]
    if batch_size is None:
        batch_size = max(1, BATCH_ELEMENTS // x[0].size)
    batch_size = check_count(batch_size, "batch_size")
    logits = model.forward(x)
    targets = choose_targets(model, logits, target)
    total = np.zeros(x.shape, np.float64)                    # sum_k (x~ - x0) * gradient at z
    points = n * s                                           # point p = i * S + k (captum's order)
    with Progress(points, "gradient-shap", unit="samples", enabled=progress is not False,
                  after=0.0 if progress else 2.0) as bar:
        for start in range(0, points, batch_size):
            p = np.arange(start, min(points, start + batch_size))
            i, k = p // s, p % s
            if noise is None:
                e = (rng.standard_normal((len(p), *x.shape[1:])) * stdevs).astype(x.dtype)
            else:
                e = noise[i, k].astype(x.dtype)
            noisy, x0 = x[i] + e, base[index[i, k]]
            a = alpha[i, k].astype(x.dtype)[:, None, None, None]
            logits_p = model.forward(a * noisy + (1 - a) * x0)
            gradient = model.backward(onehot(targets[i], logits_p.shape[1], logits_p.dtype))
            np.add.at(total, i, (noisy - x0) * gradient)
            bar.update(len(p))
    attribution = (total / s).astype(x.dtype)
    scores = scores_of(logits, targets)
    base_logits = np.concatenate([model.forward(base[j:j + batch_size], keep=False)
                                  for j in range(0, len(base), batch_size)])
    baseline_scores = base_logits[:, targets].T                # (N, B): y^c_i at every baseline
    gap = scores - baseline_scores.mean(axis=1) - attribution.reshape(n, -1).sum(axis=1)
    return GradientShap(method="gradient-shap", map=attribution, gap=gap, baseline=base,
                        draws={"index": index, "alpha": alpha}, targets=targets, scores=scores,
                        logits=logits, layer=None, classes=model.classes)

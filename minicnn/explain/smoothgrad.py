"""SmoothGrad (Smilkov et al. 2017), SmoothGrad-squared and VarGrad (Adebayo et al. 2018).

A gradient map is noisy: it changes sharply between neighbouring inputs.
Averaging a base method M over n noisy copies of the image smooths it:

    x_k = x + e_k,   e_k ~ N(0, sigma^2),   sigma = noise_level * (max(x) - min(x))   (per image)

    SmoothGrad          (1/n) sum_k M(x_k)                                          (N, C, H, W)
    SmoothGrad-squared  (1/n) sum_k M(x_k)^2
    VarGrad             (1/n) sum_k M(x_k)^2 - ((1/n) sum_k M(x_k))^2               (the variance)

``noise_level`` is the paper's sigma / (x_max - x_min) (10-20% recommended;
0.15 here), taken over each image's values in the model's input space. The
base M is any method of the registry whose map is over the input (N, C, H, W):
"saliency" (the gradient, the default), "input-x-gradient",
"integrated-gradients", "guided-backprop", "deconvnet", ... The noise comes
from ``np.random.default_rng(seed)``, drawn as one array (samples, N, C, H, W)
in order; or it is passed in as ``noise`` (that array), which is how the tests
feed the very same noise to captum and to minicnn.
"""

from __future__ import annotations

import difflib
import inspect
import numbers
from dataclasses import dataclass

import numpy as np

from ..errors import InputError, unknown_name
from ..model import check_input
from ..util.checks import check_real, check_seed
from ..util.progress import Progress
from .deeplift import deeplift, deeplift_shap, gradient_shap
from .guided import deconvnet, guided_backprop, guided_gradcam
from .integrated_gradients import integrated_gradients
from .lrp import lrp_epsilon, lrp_epsilon_gamma_box, lrp_epsilon_plus
from .saliency import input_x_gradient, saliency
from .target import Explanation, choose_targets

#: The methods SmoothGrad can smooth: those of the registry whose map is over the input (N, C, H, W), the
#: smoothings excepted (a test keeps this table equal to the registry's). Each is called as
#: ``function(model, x, targets, **base_options)``.
BASES = {"saliency": saliency, "input-x-gradient": input_x_gradient, "guided-backprop": guided_backprop,
         "deconvnet": deconvnet, "guided-gradcam": guided_gradcam, "integrated-gradients": integrated_gradients,
         "lrp-epsilon": lrp_epsilon, "lrp-epsilon-plus": lrp_epsilon_plus,
         "lrp-epsilon-gamma-box": lrp_epsilon_gamma_box,
         "deeplift": deeplift, "deeplift-shap": deeplift_shap, "gradient-shap": gradient_shap}

KINDS = {"smoothgrad": "mean", "smoothgrad-squared": "mean of squares", "vargrad": "variance"}
#: Input elements (copies x C x H x W) per call of the base method when batch_size is not given.
BATCH_ELEMENTS = 2 ** 20
#: The largest noise_level accepted: noise 10 times the image's range already drowns it (and 1e308 overflows).
MAX_NOISE_LEVEL = 10.0


@dataclass(frozen=True, kw_only=True, eq=False)
class SmoothGrad(Explanation):
    """``map`` (N, C, H, W); ``base``: the method smoothed; ``samples``, ``sigma`` (N,): the noise used."""

    base: str
    samples: int
    sigma: np.ndarray


def noise_sigma(x: np.ndarray, noise_level: float) -> np.ndarray:
    """sigma per image, (N,): noise_level * (max - min) of that image's values."""
    noise_level = check_real(noise_level, "noise_level", high=MAX_NOISE_LEVEL)   # a fraction of max - min
    flat = x.reshape(x.shape[0], -1)
    return noise_level * (flat.max(axis=1) - flat.min(axis=1))


def _base_method(base: str, options: dict):
    """The function of the base method called ``base``, after checking ``options`` are keyword arguments it takes."""
    if not isinstance(base, str) or base not in BASES:
        if not difflib.get_close_matches(str(base), list(BASES), n=1, cutoff=0.8):
            raise InputError(f"SmoothGrad needs a base method with a map over the input (N, C, H, W); {base!r} is "
                             f"not one; choose one of: {', '.join(BASES)}")
        raise unknown_name("base method", base, list(BASES))
    function = BASES[base]
    takes = [p.name for p in inspect.signature(function).parameters.values() if p.kind is p.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(takes))
    if unknown:
        raise InputError(f"{base} takes no option {unknown[0]!r}; it takes: {', '.join(takes) or 'none'}")
    return function


def smooth(model, x, target=None, *, kind: str = "smoothgrad", base: str = "saliency", samples: int = 50,
           noise_level: float = 0.15, seed: int = 0, noise=None, base_options: dict | None = None,
           batch_size: int | None = None, progress: bool | None = None) -> SmoothGrad:
    """The mean (``kind`` "smoothgrad"), mean of squares or variance of ``base``'s map over noisy copies of x.

    samples     : n, the noisy copies per image (default 50)
    noise_level : sigma as a fraction of each image's max - min (default 0.15)
    seed        : of the noise generator (default 0)
    noise       : the noise itself, an array broadcastable to (samples, N, C, H, W) (then samples,
                  noise_level and seed are not used)
    base_options: keyword arguments for the base method (e.g. {"steps": 16} for integrated-gradients)
    batch_size  : noisy copies per call of the base (default: about 2^20 input elements per call)
    progress    : True / False; None shows a bar on stderr once it has taken 2 s
    """
    if kind not in KINDS:
        raise InputError(f"unknown smoothing {kind!r}; choose one of: {', '.join(KINDS)}")
    x = check_input(x)
    n = x.shape[0]
    base_options = dict(base_options or {})
    function = _base_method(base, base_options)
    logits = model.forward(x)
    targets = choose_targets(model, logits, target)
    if noise is not None:
        noise = np.asarray(noise)
        if noise.ndim != 5 or noise.shape[0] < 1:
            raise InputError(f"noise must be shaped (samples, N, C, H, W); got shape {noise.shape}")
        try:
            noise = np.broadcast_to(noise, (noise.shape[0], *x.shape))
        except ValueError:
            raise InputError(f"noise of shape {noise.shape} does not broadcast to "
                             f"(samples, {', '.join(map(str, x.shape))})") from None
        samples, sigma = noise.shape[0], noise.reshape(noise.shape[0], n, -1).std(axis=(0, 2))
    else:
        if isinstance(samples, bool) or not isinstance(samples, numbers.Integral) or samples < 1:
            raise InputError(f"samples must be a positive integer; got {samples!r}")
        sigma = noise_sigma(x, noise_level)
        rng = np.random.default_rng(check_seed(seed))
    if batch_size is None:
        batch_size = max(1, BATCH_ELEMENTS // x.size)
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer; got {batch_size!r}")

    total = np.zeros(x.shape, np.float64)            # sum_k M(x_k)
    squares = np.zeros(x.shape, np.float64)          # sum_k M(x_k)^2
    with Progress(samples * n, kind, unit="copies", enabled=progress is not False,
                  after=0.0 if progress else 2.0) as bar:
        for start in range(0, samples, batch_size):
            count = min(batch_size, samples - start)
            if noise is not None:
                e = noise[start:start + count]
            else:
                e = rng.standard_normal((count, *x.shape)) * sigma[None, :, None, None, None]
            copies = (x[None] + e.astype(x.dtype)).reshape(count * n, *x.shape[1:])
            maps = function(model, copies, np.tile(targets, count), **base_options).map
            maps = maps.reshape(count, *x.shape).astype(np.float64)
            total += maps.sum(axis=0)
            squares += (maps * maps).sum(axis=0)
            bar.update(count * n)
    mean, mean_sq = total / samples, squares / samples
    out = {"smoothgrad": mean, "smoothgrad-squared": mean_sq, "vargrad": mean_sq - mean * mean}[kind]
    return SmoothGrad(method=kind, map=out.astype(x.dtype), base=base, samples=int(samples), sigma=sigma,
                      targets=targets, scores=logits[np.arange(n), targets], logits=logits, layer=None,
                      classes=model.classes)


def smoothgrad(model, x, target=None, *, base: str = "saliency", samples: int = 50, noise_level: float = 0.15,
               seed: int = 0, noise=None, base_options: dict | None = None, batch_size: int | None = None,
               progress: bool | None = None) -> SmoothGrad:
    """SmoothGrad: the mean of ``base``'s map over noisy copies of x (see :func:`smooth`)."""
    return smooth(model, x, target, kind="smoothgrad", base=base, samples=samples, noise_level=noise_level, seed=seed,
                  noise=noise, base_options=base_options, batch_size=batch_size, progress=progress)


def smoothgrad_squared(model, x, target=None, *, base: str = "saliency", samples: int = 50,
                       noise_level: float = 0.15, seed: int = 0, noise=None, base_options: dict | None = None,
                       batch_size: int | None = None, progress: bool | None = None) -> SmoothGrad:
    """SmoothGrad-squared: the mean of the squared map over noisy copies of x (see :func:`smooth`)."""
    return smooth(model, x, target, kind="smoothgrad-squared", base=base, samples=samples, noise_level=noise_level,
                  seed=seed, noise=noise, base_options=base_options, batch_size=batch_size, progress=progress)


def vargrad(model, x, target=None, *, base: str = "saliency", samples: int = 50, noise_level: float = 0.15,
            seed: int = 0, noise=None, base_options: dict | None = None, batch_size: int | None = None,
            progress: bool | None = None) -> SmoothGrad:
    """VarGrad: the variance of ``base``'s map over noisy copies of x (see :func:`smooth`)."""
    return smooth(model, x, target, kind="vargrad", base=base, samples=samples, noise_level=noise_level, seed=seed,
                  noise=noise, base_options=base_options, batch_size=batch_size, progress=progress)

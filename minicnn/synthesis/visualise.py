"""Class model and feature visualisation: gradient ascent on the input for an objective.

    image* = argmax_image  J(normalise(T(image))) - lambda ||image - 0.5||^2

J is an objective of ``minicnn.synthesis.objectives`` (a class score, Simonyan et al. 2014,
"Deep Inside Convolutional Networks"; a channel or a unit, Olah et al. 2017), T a random small
jitter, scale and rotation drawn anew at every step (``transforms``), normalise the model's
(pixel - mean) / std. Two routes, by parameterisation:

- ``pixel`` (Simonyan et al. 2014 with the regularisers of Yosinski et al. 2015, "Understanding
  Neural Networks Through Deep Visualization"): a step of size ``lr`` along the gradient
  (divided by its root mean square, so ``lr`` is in pixel units), L2 decay towards grey
  (image <- 0.5 + (1 - decay)(image - 0.5)), a Gaussian blur every ``blur_every`` steps, and
  clipping to the input domain [0, 1];
- ``fourier`` (Olah et al. 2017): Adam steps on the decorrelated Fourier spectrum of
  ``parameterise.FourierImage``, whose sigmoid keeps the image in (0, 1).

Every draw comes from ``numpy.random.default_rng(seed)``: the same call gives the same image.
The work is bounded before it starts: at most MAX_STEPS steps, at most MAX_PIXELS input pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter

from ..errors import InputError
from ..model import Model
from .parameterise import PARAMETERISATIONS
from .transforms import RandomTransform

#: The most gradient steps one visualisation may take.
MAX_STEPS = 2048
#: The most pixels (H x W) of the image a visualisation may optimise (512 x 512).
MAX_PIXELS = 512 * 512


@dataclass(frozen=True)
class Visualisation:
    """image (H, W, 3) in [0, 1]; values (steps,) the objective at each step (under that step's T)."""

    image: np.ndarray
    values: np.ndarray
    final_value: float
    objective: str
    param: str
    seed: int
    settings: dict = field(default_factory=dict)


def normalisation(model: Model) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std), each (1, 3, 1, 1), of the model's preprocessing, or a one-line InputError."""
    prep = model.meta.get("preprocessing") or {}
    if "mean" not in prep or "std" not in prep:
        raise InputError(f"{model.name} records no preprocessing mean and std; cannot map pixels to its input")
    mean = np.asarray(prep["mean"], np.float64).reshape(1, -1, 1, 1)
    std = np.asarray(prep["std"], np.float64).reshape(1, -1, 1, 1)
    return mean, std


def image_shape(model: Model, size=None) -> tuple[int, int, int]:
    """(C, H, W) of the image to optimise: ``size`` (H, W) or the model's input size; checked against MAX_PIXELS."""
    if size is None:
        if model.input_size is None:
            raise InputError(f"{model.name} records no input size; pass size=(H, W)")
        c, h, w = model.input_size
    else:
        c = model.input_size[0] if model.input_size else 3
        h, w = (int(v) for v in size)
    if h < 1 or w < 1 or h * w > MAX_PIXELS:
        raise InputError(f"image size {h}x{w} is outside 1..{MAX_PIXELS} pixels; choose a smaller size")
    return int(c), int(h), int(w)


def check_steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= MAX_STEPS:
        raise InputError(f"steps must be an integer in 1..{MAX_STEPS}; got {steps!r}")
    return int(steps)


def visualise(model: Model, objective, *, param: str = "fourier", steps: int = 256, seed: int = 0,
              lr: float | None = None, size=None, jitter: int | None = None, scales=(1.0, 0.975, 1.025, 0.95, 1.05),
              degrees=(-5.0, -2.5, 0.0, 2.5, 5.0), decay: float = 0.01, blur_every: int = 4, blur_sigma: float = 0.5,
              progress=None) -> Visualisation:
    """Gradient ascent on the image for ``objective``; returns a :class:`Visualisation`.

    ``param`` is "pixel" or "fourier"; ``lr`` defaults to 0.05 for either (pixel units per
    step for "pixel", Adam's step for "fourier"); ``jitter`` (pixels each way) defaults to
    H / 16. ``decay``, ``blur_every`` and ``blur_sigma`` are the pixel route's
    regularisers. ``progress`` (anything with ``update(n)``) counts the steps.
    """
    if param not in PARAMETERISATIONS:
        raise InputError(f"param must be one of {', '.join(PARAMETERISATIONS)}; got {param!r}")
    steps = check_steps(steps)
    objective.check(model)
    shape = image_shape(model, size)
    if not (isinstance(blur_every, int) and blur_every >= 0) or not 0 <= decay < 1 or not blur_sigma >= 0:
        raise InputError("blur_every must be an integer >= 0, decay in [0, 1), blur_sigma >= 0")
    lr = 0.05 if lr is None else float(lr)
    jitter = max(1, shape[1] // 16) if jitter is None else int(jitter)
    rng = np.random.default_rng(seed)
    mean, std = normalisation(model)
    image = PARAMETERISATIONS[param](shape, rng)
    adam_m, adam_v = np.zeros_like(image.theta), np.zeros_like(image.theta)
    values = np.empty(steps)
    for step in range(steps):
        pixels = image.image()                                           # (1, 3, H, W) in [0, 1]
        T = RandomTransform(rng, shape[1:], jitter=jitter, scales=scales, degrees=degrees)
        J, dx = objective.value_and_grad(model, ((T.forward(pixels) - mean) / std).astype(np.float32))
        values[step] = J[0]
        g = image.backward(T.backward(dx.astype(np.float64) / std))      # dJ/dtheta
        if param == "pixel":
            image.theta += lr * g / (np.sqrt(np.mean(g ** 2)) + 1e-12)
            image.theta = 0.5 + (1 - decay) * (image.theta - 0.5)
            if blur_every and (step + 1) % blur_every == 0 and blur_sigma > 0:
                image.theta = gaussian_filter(image.theta, sigma=(0, 0, blur_sigma, blur_sigma), mode="nearest")
        else:                                                            # Adam, ascending
            adam_m = 0.9 * adam_m + 0.1 * g
            adam_v = 0.999 * adam_v + 0.001 * g ** 2
            m_hat, v_hat = adam_m / (1 - 0.9 ** (step + 1)), adam_v / (1 - 0.999 ** (step + 1))
            image.theta += lr * m_hat / (np.sqrt(v_hat) + 1e-8)
        image.project()
        if progress is not None:
            progress.update(1)
    final = image.image()
    J, _ = objective.value_and_grad(model, ((final - mean) / std).astype(np.float32))
    settings = dict(lr=lr, jitter=jitter, scales=list(scales), degrees=list(degrees), decay=decay,
                    blur_every=blur_every, blur_sigma=blur_sigma, steps=steps)
    return Visualisation(final[0].transpose(1, 2, 0), values, float(J[0]), objective.describe(model), param,
                         int(seed), settings)

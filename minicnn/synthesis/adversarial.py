"""Adversarial examples: the smallest change, in the L-infinity norm, that changes the answer.

Pixels p are in [0, 1] (N, 3, H, W); the network sees x = (p - mean) / std. With the
cross-entropy L(p, y) = -log softmax(f(x))_y, its gradient at the pixels is

    dL/dlogits = softmax(f(x)) - e_y,      dL/dp = (dL/dx) / std         (chain rule through normalise)

The linear view (Goodfellow et al. 2015): near p, L(p + d) ~ L(p) + g . d with g = dL/dp, and
over the ball ||d||_inf <= eps that is largest at d = eps sign(g), raising L by eps ||g||_1,
which grows with the number of pixels. Hence

    FGSM        p' = clip(p + eps sign(dL(p, y)/dp), 0, 1)              untargeted: away from the label y
                p' = clip(p - eps sign(dL(p, t)/dp), 0, 1)              targeted: towards the class t
    PGD         p_0 = clip(p + U(-eps, eps), 0, 1)                      random start (Madry et al. 2018)
                p_{k+1} = clip(Pi_eps(p_k +- alpha sign(dL(p_k)/dp)), 0, 1)
                Pi_eps(q) = min(max(q, p - eps), p + eps)               projection onto the ball, per pixel

so every p_k stays within eps of p and inside [0, 1] (a property test checks it).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..errors import InputError
from ..layers.loss import softmax
from ..model import Model
from .visualise import normalisation

METHODS = ("fgsm", "pgd")
#: The most PGD steps one attack may take.
MAX_STEPS = 1000


def parse_epsilon(text) -> float:
    """eps in [0, 1] pixel units from "0.03", "8/255" or a number; a one-line InputError otherwise."""
    if isinstance(text, bool):
        raise InputError(f"epsilon must be a number in [0, 1] (e.g. 8/255); got {text!r}")
    try:
        value = float(Fraction(str(text).strip())) if isinstance(text, str) else float(text)
    except (ValueError, ZeroDivisionError, OverflowError):
        raise InputError(f"epsilon must be a number in [0, 1], e.g. 0.03 or 8/255; got {text!r}") from None
    if not np.isfinite(value) or not 0 <= value <= 1:
        raise InputError(f"epsilon must lie in [0, 1] (pixel units, 8/255 ~ 0.031); got {text!r}")
    return value


@dataclass(frozen=True)
class Attack:
    """pixels and adversarial (N, 3, H, W) in [0, 1]; labels (N,) attacked away from, or targets (N,) towards."""

    method: str
    epsilon: float
    pixels: np.ndarray
    adversarial: np.ndarray
    labels: np.ndarray
    targets: np.ndarray | None
    logits_before: np.ndarray
    logits_after: np.ndarray
    steps: int
    step_size: float

    @property
    def success(self) -> np.ndarray:
        """(N,) bool: the top-1 class left the label (untargeted) or became the target (targeted)."""
        top = self.logits_after.argmax(axis=1)
        return top == self.targets if self.targets is not None else top != self.labels


def loss_gradient(model: Model, pixels: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(logits (N, K), dL/dp (N, 3, H, W)) for L = sum_n -log softmax(f(x_n))[classes_n], x = (p - mean) / std."""
    mean, std = normalisation(model)
    x = ((pixels - mean) / std).astype(pixels.dtype)
    logits = model.forward(x)
    dlogits = softmax(logits.astype(np.float64))
    dlogits[np.arange(len(x)), classes] -= 1
    dx = model.backward(dlogits.astype(logits.dtype))
    return logits, dx / std.astype(dx.dtype)


def _check(model: Model, pixels, epsilon, labels, target):
    pixels = np.asarray(pixels)
    if pixels.ndim != 4 or pixels.dtype.kind != "f" or not np.isfinite(pixels).all() \
            or pixels.size == 0 or pixels.min() < 0 or pixels.max() > 1:
        raise InputError(f"pixels must be a float batch (N, 3, H, W) with values in [0, 1]; got shape "
                         f"{pixels.shape}, dtype {pixels.dtype}")
    epsilon = parse_epsilon(epsilon)
    k = len(model.classes) if model.classes else None
    n = len(pixels)

    def classes(value, what):
        if value is None:
            return None
        c = np.broadcast_to(np.asarray(value), (n,))
        if c.dtype.kind not in "iu" or c.min() < 0 or (k is not None and c.max() >= k):
            raise InputError(f"{what} must be class indices in 0..{(k or 1) - 1}; got {value!r}")
        return c.astype(np.int64)

    return pixels, epsilon, classes(labels, "labels"), classes(target, "target")


def _finish(model, method, epsilon, pixels, adversarial, labels, targets, before, steps, step_size) -> Attack:
    mean, std = normalisation(model)
    after = model.forward(((adversarial - mean) / std).astype(pixels.dtype))
    return Attack(method, epsilon, pixels, adversarial, labels, targets, before, after, steps, step_size)


def fgsm(model: Model, pixels, epsilon, *, labels=None, target=None) -> Attack:
    """The fast gradient sign method: one step of eps sign(g) (see the module's equations).

    ``labels`` (N,) default to the model's top-1 class; ``target`` (a class, or one per
    image) makes it targeted.
    """
    pixels, epsilon, labels, targets = _check(model, pixels, epsilon, labels, target)
    if labels is None:
        mean, std = normalisation(model)
        labels = model.forward(((pixels - mean) / std).astype(pixels.dtype)).argmax(axis=1)
    before, g = loss_gradient(model, pixels, labels if targets is None else targets)   # logits at p: before
    direction = np.sign(g) if targets is None else -np.sign(g)
    adversarial = np.clip(pixels + epsilon * direction, 0, 1).astype(pixels.dtype)
    return _finish(model, "fgsm", epsilon, pixels, adversarial, labels, targets, before, 1, epsilon)


def pgd(model: Model, pixels, epsilon, *, steps: int = 10, step_size: float | None = None, random_start: bool = True,
        seed: int = 0, labels=None, target=None, progress=None) -> Attack:
    """Projected gradient descent in the L-infinity ball (Madry et al. 2018); ``step_size`` alpha: 2.5 eps / steps."""
    pixels, epsilon, labels, targets = _check(model, pixels, epsilon, labels, target)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= MAX_STEPS:
        raise InputError(f"steps must be an integer in 1..{MAX_STEPS}; got {steps!r}")
    alpha = 2.5 * epsilon / steps if step_size is None else float(step_size)
    if not (np.isfinite(alpha) and alpha >= 0):
        raise InputError(f"step_size must be a non-negative number; got {step_size!r}")
    mean, std = normalisation(model)
    before = model.forward(((pixels - mean) / std).astype(pixels.dtype))
    labels = before.argmax(axis=1) if labels is None else labels
    lower, upper = np.maximum(pixels - epsilon, 0), np.minimum(pixels + epsilon, 1)
    p = pixels.copy()
    if random_start:
        p = p + np.random.default_rng(seed).uniform(-epsilon, epsilon, size=p.shape).astype(p.dtype)
    p = np.clip(p, lower, upper)
    for _ in range(int(steps)):
        _, g = loss_gradient(model, p, labels if targets is None else targets)
        p = p + alpha * (np.sign(g) if targets is None else -np.sign(g))
        p = np.clip(p, lower, upper).astype(pixels.dtype)                # Pi_eps, then [0, 1]: one clip
        if progress is not None:
            progress.update(1)
    return _finish(model, "pgd", epsilon, pixels, p, labels, targets, before, int(steps), alpha)

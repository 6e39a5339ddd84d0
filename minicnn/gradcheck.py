"""Gradients are proven, not trusted: central differences in float64.

For a function f and an upstream gradient G of f's output shape, the scalar
L(x) = sum(f(x) * G) has the gradient dL/dx that a backward pass computes
from dout = G. Central differences estimate it one coordinate at a time:

    dL/dx_i  ~  (L(x + h e_i) - L(x - h e_i)) / (2h)        error O(h^2)

G is random (a constant G would hide errors that cancel out), everything
runs in float64, and the comparison is a relative error with a floor:

    err = max_i |a_i - b_i| / max(1e-8, max_i (|a_i| + |b_i|))

so it does not blow up where the gradient is near zero. In float64 with
h = 1e-6 a correct backward gives err ~ 1e-9; a wrong one gives err ~ 1.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np

from .errors import GradientCheckError
from .layers import Layer

DEFAULT_TOL = 1e-7
DEFAULT_H = 1e-6


def relative_error(a: np.ndarray, b: np.ndarray, floor: float = 1e-8) -> float:
    """max |a - b| / max(floor, max(|a| + |b|)), a number in [0, 1]."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(floor, float(np.max(np.abs(a) + np.abs(b)))))


def numerical_gradient(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, dout=None,
                       h: float = DEFAULT_H, indices=None) -> np.ndarray:
    """dL/dx by central differences, L = sum(f(x) * dout) (or f(x) itself when dout is None).

    x is perturbed in place and restored. With ``indices`` (flat indices) only
    those coordinates are estimated; the others are left NaN.
    """
    if x.dtype != np.float64:
        raise GradientCheckError(f"finite differences need float64, got {x.dtype}")

    def L():
        out = f(x)
        return float(np.sum(out * dout)) if dout is not None else float(out)

    grad = np.full(x.shape, np.nan)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    if not np.shares_memory(flat, x):
        raise GradientCheckError("x must be contiguous to be perturbed in place")
    for i in (range(x.size) if indices is None else indices):
        old = flat[i]
        flat[i] = old + h
        plus = L()
        flat[i] = old - h
        minus = L()
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * h)
    return grad


def compare(name: str, analytic, numeric, tol: float = DEFAULT_TOL) -> float:
    """The relative error of analytic against numeric; GradientCheckError naming the worst index if > tol."""
    analytic = np.asarray(analytic, np.float64)
    numeric = np.asarray(numeric, np.float64)
    if analytic.shape != numeric.shape:
        raise GradientCheckError(f"{name}: analytic gradient has shape {analytic.shape}, expected {numeric.shape}")
    checked = ~np.isnan(numeric)
    err = relative_error(analytic[checked], numeric[checked])
    if not err <= tol:
        diff = np.where(checked, np.abs(analytic - numeric), -1)
        worst = np.unravel_index(int(np.argmax(diff)), diff.shape)
        raise GradientCheckError(
            f"{name}: relative error {err:.3g} > {tol:g}; worst at index {tuple(map(int, worst))}: "
            f"analytic {analytic[worst]:.10g}, finite differences {numeric[worst]:.10g}")
    return err


def _sample(size: int, max_checks: int | None, rng) -> np.ndarray | None:
    if max_checks is None or size <= max_checks:
        return None
    return rng.choice(size, max_checks, replace=False)


def check_function(f, x, grad, *, dout=None, name="f", tol=DEFAULT_TOL, h=DEFAULT_H,
                   max_checks=None, indices=None, seed=0) -> float:
    """Check an analytic ``grad`` = dL/dx for L = sum(f(x) * dout) (any function of any array).

    This is the form for a function of an intermediate activation, e.g. dy^c/dA:
    ``check_function(lambda A: model.forward(x, replace={"layer3": A})[0, c], A, dA)``.
    Coordinates checked: ``indices`` (flat indices, e.g. ``np.flatnonzero(A > 0)``
    to stay off ReLU kinks), else ``max_checks`` random ones, else all.
    """
    x = np.array(x, dtype=np.float64)
    if indices is None:
        indices = _sample(x.size, max_checks, np.random.default_rng(seed))
    return compare(name, grad, numerical_gradient(f, x, dout, h, indices), tol)


def _float64_copy(layer: Layer) -> Layer:
    twin = copy.deepcopy(layer)
    for store in (twin.params, twin.buffers):
        for k in store:
            store[k] = store[k].astype(np.float64)
    return twin


def check_layer(layer: Layer, x: np.ndarray, *, params: bool = True, relu: str = "plain",
                tol: float = DEFAULT_TOL, h: float = DEFAULT_H, seed: int = 0, name: str | None = None,
                max_checks: int | None = None) -> dict[str, float]:
    """Prove one layer's backward: dx and (if ``params``) every parameter gradient.

    Returns {"x": err, "weight": err, ...}; raises GradientCheckError on the first failure.
    """
    name = name or type(layer).__name__
    rng = np.random.default_rng(seed)
    layer = _float64_copy(layer)
    x = np.array(x, dtype=np.float64)
    out, cache = layer.forward(x)
    dout = rng.standard_normal(out.shape)
    dx, grads = layer.backward(dout, cache, param_grads=params, relu=relu)
    errors = {"x": compare(f"{name} dx", dx, numerical_gradient(
        lambda v: layer.forward(v)[0], x, dout, h, _sample(x.size, max_checks, rng)), tol)}
    if params:
        for key, p in layer.params.items():
            errors[key] = compare(f"{name} d{key}", grads[key], numerical_gradient(
                lambda _: layer.forward(x)[0], p, dout, h, _sample(p.size, max_checks, rng)), tol)
    return errors


def check_model(model, x: np.ndarray, *, params: bool = True, wrt: str | None = None,
                tol: float = DEFAULT_TOL, h: float = DEFAULT_H, seed: int = 0,
                max_checks: int | None = 200) -> dict[str, float]:
    """Prove a whole model's backward in float64 with a random upstream gradient on the logits.

    Checks dL/dx, every parameter gradient (when ``params``), and, with
    ``wrt=name``, dL/dA at that layer's output. At most ``max_checks``
    randomly chosen coordinates per array (None: all of them).
    """
    rng = np.random.default_rng(seed)
    model = model.astype(np.float64)
    x = np.array(x, dtype=np.float64)
    dout = rng.standard_normal(model.forward(x).shape)
    dx = model.backward(dout, param_grads=params)
    analytic = dict(model.param_grads)
    if wrt is not None:
        A, dA = model.activations[wrt].copy(), model.gradients[wrt]
    errors = {"x": compare(f"{model.name} dx", dx, numerical_gradient(
        model.forward, x, dout, h, _sample(x.size, max_checks, rng)), tol)}
    if wrt is not None:
        errors[wrt] = compare(f"{model.name} d/d{wrt}", dA, numerical_gradient(
            lambda a: model.forward(x, replace={wrt: a}), A, dout, h, _sample(A.size, max_checks, rng)), tol)
    if params:
        for key, p in model.parameters().items():
            errors[key] = compare(f"{key}", analytic[key], numerical_gradient(
                lambda _: model.forward(x), p, dout, h, _sample(p.size, max_checks, rng)), tol)
    return errors


def gradcheck(obj, x, **options) -> dict[str, float]:
    """Check a Layer (``check_layer``) or a Model (``check_model``) against finite differences.

    Returns the relative error of each checked array; raises GradientCheckError,
    naming the layer, the worst index and both values, on the first failure.
    """
    if isinstance(obj, Layer):
        return check_layer(obj, x, **options)
    return check_model(obj, x, **options)


# ``minicnn.gradcheck`` is the function above (the package exports it under the
# module's name); give it the module's other checkers too, so that
# ``minicnn.gradcheck.check_function`` works as well as the import form.
for _helper in (check_function, check_layer, check_model, compare, numerical_gradient, relative_error):
    setattr(gradcheck, _helper.__name__, _helper)
del _helper

"""The local rules of Layer-wise Relevance Propagation (Bach et al. 2015; Montavon et al. 2019).

LRP is a backward pass with other rules. The signal going down is the
relevance R, which starts as y^c at the target logit; each layer shares the
relevance of its outputs j among its inputs i in proportion to what each
input contributed to each output:

    R_i = sum_j (x_i w_ij / z_j) R_j,        z_j = sum_i x_i w_ij + b_j              (LRP-0)

For a layer that is linear in its input (convolution, dense layer, average
pooling, the residual addition) the sum over j is the layer's own backward
pass applied to s = R / z, so every rule here is a few lines over the
layer's forward and backward, whatever the layer (the "gradient times
input" form of LRP):

    z, cache = layer.forward(x)                 z_j, the contributions summed
    s = R / stabilize(z)                        (N, out): relevance per unit of z
    R_in = x * layer.backward(s, cache)         (N, in):  x_i * sum_j w_ij s_j

The rules differ in which weights, inputs and denominators they use
(x+ = max(x, 0), x- = min(x, 0), W+ = max(W, 0), W- = min(W, 0)):

    Epsilon(eps)  R_in = x * W^T (R / (z + eps sign z)); eps = 0 is LRP-0
    ZPlus         R_in = x+ * W+^T s + x- * W-^T s,   s = R / (W+ x+ + W- x- + b+)
    AlphaBeta     alpha * (the same) - beta * (x+ * W-^T s' + x- * W+^T s'),
                  s' = R / (W- x+ + W+ x- + b-)
    Gamma(g)      ZPlus's sharing with W + g W+ for positive outputs, and with
                  W + g W- (and the signs swapped) for negative ones
    Flat          R_in = 1^T (R / (1^T 1)): every input of a unit gets an equal share
    ZBox(l, h)    R_in = x * W^T s - l * W+^T s - h * W-^T s,
                  s = R / (W x - W+ l - W- h): inputs bounded by l <= x <= h
    Pass          R_in = R (ReLU: relevance is not changed by the activation)
    Norm          Epsilon on a layer without weights (average pooling, the
                  residual addition): R shared in proportion to the inputs

Every denominator d is stabilised as d + eps * sign(d) with sign(0) = +1, as
zennit does (eps = 1e-6 by default; only LRP-0 takes eps = 0, and then a
unit with d = 0, which received no contribution, passes nothing on).
Relevance is conserved up to what the biases and the stabiliser absorb:

    sum_i R_in_i = sum_j R_j - sum_j s_j (b_j + eps sign z_j)        (Epsilon)

A rule is called as ``rule(layer, x, R)`` with the layer, its input in the
forward pass and the relevance at its output; ``Model.backward(seed,
rules={name: rule})`` runs them (see ``minicnn/layers/base.py``), and layers
without a rule (max pooling, flatten, dropout, the shortcut's subsampling)
keep their gradient, which for max pooling sends R to the window's winner.
Weights are modified on a copy of the layer, never in place.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from ..errors import InputError

# ---------------------------------------------------------------- helpers

def stabilize(d: np.ndarray, eps: float) -> np.ndarray:
    """d + eps * sign(d) with sign(0) = +1 (zennit's stabiliser): never 0 when eps > 0."""
    return d + np.where(d >= 0, eps, -eps).astype(d.dtype)


def share(R: np.ndarray, d: np.ndarray) -> np.ndarray:
    """s = R / d, with s = 0 where d == 0 (only possible with eps = 0: a unit that got no contribution)."""
    return np.divide(R, d, out=np.zeros(np.broadcast_shapes(R.shape, d.shape), np.result_type(R, d)),
                     where=d != 0)


def times(x, g):
    """x * g, pairwise for a layer with two inputs (the residual addition's (a, b))."""
    if isinstance(x, tuple):
        return tuple(a * b for a, b in zip(x, g))
    return x * g


def positive(a: np.ndarray) -> np.ndarray:
    return np.maximum(a, 0)


def negative(a: np.ndarray) -> np.ndarray:
    return np.minimum(a, 0)


def modified(layer, weight, bias=None):
    """A copy of ``layer`` with weight -> weight(W) and bias -> bias(b) (no bias when ``bias`` is None).

    The copy shares everything else (hyper-parameters, forward, backward);
    the layer itself is not touched.
    """
    if "weight" not in layer.params:
        raise InputError(f"this LRP rule needs a layer with weights; {type(layer).__name__} has none")
    twin = copy.copy(layer)
    twin.params = {"weight": weight(layer.params["weight"])}
    if bias is not None and "bias" in layer.params:
        twin.params["bias"] = bias(layer.params["bias"])
    return twin


def split(up, down, xp, xn, R, eps):
    """Share R over two contributions: x+ * up^T s + x- * down^T s, s = R / stabilize(up(x+) + down(x-)).

    ``up`` and ``down`` are modified copies of a layer (e.g. with W+ and W-);
    this is the step ZPlus, AlphaBeta and Gamma are built from.
    """
    zp, cp = up.forward(xp)
    zn, cn = down.forward(xn)
    s = share(R, stabilize(zp + zn, eps))
    return xp * up.backward(s, cp)[0] + xn * down.backward(s, cn)[0]


# ---------------------------------------------------------------- rules

@dataclass(frozen=True)
class Epsilon:
    """R_in = x * W^T (R / (z + eps sign z)), z = W x + b; eps = 0 is LRP-0. Any layer linear in x."""

    epsilon: float = 1e-6

    def __call__(self, layer, x, R):
        z, cache = layer.forward(x)
        return times(x, layer.backward(share(R, stabilize(z, self.epsilon)), cache)[0])


@dataclass(frozen=True)
class Norm(Epsilon):
    """Epsilon for a layer without weights (average pooling, residual addition): R in proportion to the inputs.

    Average pooling, z_j = mean_i x_i:   R_i = x_i / k * R_j / z_j   (k inputs in the window)
    Addition, z = a + b:                 R_a = a R / z,  R_b = b R / z
    """

    epsilon: float = 1e-6


@dataclass(frozen=True)
class ZPlus:
    """R_in = x+ * W+^T s + x- * W-^T s, s = R / (W+ x+ + W- x- + b+): positive contributions only.

    alpha = 1, beta = 0; as zennit, negative inputs through negative weights
    count as positive contributions, so R_in >= 0 wherever R >= 0.
    """

    stabilizer: float = 1e-6

    def __call__(self, layer, x, R):
        up, down = modified(layer, positive, positive), modified(layer, negative)
        return split(up, down, positive(x), negative(x), R, self.stabilizer)


@dataclass(frozen=True)
class AlphaBeta:
    """alpha * (share of the positive contributions) - beta * (share of the negative ones); alpha - beta = 1.

        positive: x+ * W+^T s + x- * W-^T s,   s  = R / (W+ x+ + W- x- + b+)
        negative: x+ * W-^T s' + x- * W+^T s', s' = R / (W- x+ + W+ x- + b-)
    """

    alpha: float = 2.0
    beta: float = 1.0
    stabilizer: float = 1e-6

    def __post_init__(self):
        if self.alpha < 0 or self.beta < 0 or abs(self.alpha - self.beta - 1) > 1e-12:
            raise InputError(f"alpha-beta needs alpha, beta >= 0 and alpha - beta = 1; got {self.alpha}, {self.beta}")

    def __call__(self, layer, x, R):
        xp, xn = positive(x), negative(x)
        pos = split(modified(layer, positive, positive), modified(layer, negative), xp, xn, R, self.stabilizer)
        neg = split(modified(layer, negative, negative), modified(layer, positive), xp, xn, R, self.stabilizer)
        return self.alpha * pos - self.beta * neg


@dataclass(frozen=True)
class Gamma:
    """Positive contributions amplified by gamma (zennit's generalised rule, any input sign).

    With W^(+g) = W + gamma W+ and W^(-g) = W + gamma W-, and z = W x + b:

        where z > 0:  x+ * W^(+g)^T s + x- * W^(-g)^T s,  s = R / (W^(+g) x+ + W^(-g) x- + b + gamma b+)
        where z < 0:  x+ * W^(-g)^T s + x- * W^(+g)^T s,  s = R / (W^(-g) x+ + W^(+g) x- + b + gamma b-)

    gamma = 0 is LRP-0 (up to the stabiliser); large gamma tends to z+.
    """

    gamma: float = 0.25
    stabilizer: float = 1e-6

    def __call__(self, layer, x, R):
        g = self.gamma
        w_up, w_down = (lambda w: w + g * positive(w)), (lambda w: w + g * negative(w))
        z, _ = layer.forward(x)
        xp, xn = positive(x), negative(x)
        rising = split(modified(layer, w_up, w_up), modified(layer, w_down), xp, xn, R * (z > 0), self.stabilizer)
        falling = split(modified(layer, w_down, w_down), modified(layer, w_up), xp, xn, R * (z < 0), self.stabilizer)
        return rising + falling


@dataclass(frozen=True)
class Flat:
    """R_in = 1^T (R / (1^T 1)): weights and inputs taken as ones, so each input of a unit gets an equal share."""

    stabilizer: float = 1e-6

    def __call__(self, layer, x, R):
        flat = modified(layer, np.ones_like)
        ones = np.ones_like(x)
        z, cache = flat.forward(ones)
        return flat.backward(share(R, stabilize(z, self.stabilizer)), cache)[0]


@dataclass(frozen=True)
class ZBox:
    """z^B for inputs bounded by low <= x <= high (the first layer, on pixels):

        R_in = x * W^T s - l * W+^T s - h * W-^T s,    s = R / (W x - W+ l - W- h)

    ``low`` and ``high`` broadcast to x, e.g. (1, C, 1, 1) per channel. The
    biases cancel in the denominator (b - b+ - b- = 0).
    """

    low: np.ndarray
    high: np.ndarray
    stabilizer: float = 1e-6

    def __call__(self, layer, x, R):
        low = np.ascontiguousarray(np.broadcast_to(np.asarray(self.low, x.dtype), x.shape))
        high = np.ascontiguousarray(np.broadcast_to(np.asarray(self.high, x.dtype), x.shape))
        up, down = modified(layer, positive, positive), modified(layer, negative, negative)
        (z, c), (zl, cl), (zh, ch) = layer.forward(x), up.forward(low), down.forward(high)
        s = share(R, stabilize(z - zl - zh, self.stabilizer))
        return x * layer.backward(s, c)[0] - low * up.backward(s, cl)[0] - high * down.backward(s, ch)[0]

    def __repr__(self):
        return "ZBox(low, high)"


@dataclass(frozen=True)
class Pass:
    """R_in = R: the relevance crosses the layer unchanged (ReLU; a BatchNorm merged into its convolution)."""

    def __call__(self, layer, x, R):
        return R


@dataclass(frozen=True)
class OnLayer:
    """``rule`` applied to ``layer`` instead of the one the pass names (a convolution with its BatchNorm merged in)."""

    rule: object
    layer: object
    note: str = ""

    def __call__(self, _layer, x, R):
        return self.rule(self.layer, x, R)

    def __repr__(self):
        return f"{self.rule!r} {self.note}".strip()

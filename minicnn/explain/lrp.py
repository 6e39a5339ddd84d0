"""Layer-wise Relevance Propagation: a rule per kind of layer, run as one backward pass.

    r = explain.lrp(model, x, target="cat", composite="epsilon-plus")
    r.map                       # (N, C, H, W): relevance R_i of every input, raw
    model.gradients["layer3"]   # the relevance at that layer's output, from the same pass
    r.rules                     # {layer name: the rule it used}

The relevance starts as y^c at the target logit (the seed y^c e_c of the
backward pass) and flows to the input by the local rules of
``lrp_rules.py``. A *composite* chooses the rule of each layer by its kind;
those here are zennit's (0.5.1), with its defaults (epsilon and
stabiliser 1e-6, gamma 0.25):

| composite              | first convolution | other convolutions | dense layers |
|------------------------|-------------------|--------------------|--------------|
| ``epsilon``            | Epsilon           | Epsilon            | Epsilon      |
| ``epsilon-plus``       | ZPlus             | ZPlus              | Epsilon      |
| ``epsilon-gamma-box``  | ZBox(low, high)   | Gamma(0.25)        | Epsilon      |
| ``epsilon-alpha2-beta1`` | AlphaBeta(2, 1) | AlphaBeta(2, 1)    | Epsilon      |
| ``epsilon-plus-flat``  | Flat (the first convolution or dense layer) | ZPlus | Epsilon |

All share a base: ReLU and ReLU6 -> Pass; average pooling (also global) and the
residual addition -> Norm (in proportion to the inputs, resp. the two
summands); a BatchNorm that follows a convolution is merged into it for the
pass (the convolution's rule sees w' = w * scale, b' = (b - mean) * scale +
beta, the BatchNorm passes relevance unchanged), an unmerged one -> Pass.
Max pooling (relevance to the first maximum of each window, PyTorch's
tie rule), Flatten, Dropout, the residual shortcut, zero padding (its
gradient crops the padding away: the padded zeros contributed nothing) and
any layer no rule names keep their gradient. Grouped and depthwise
convolutions are convolutions: their rules share relevance within each group.

The composites were made for (and are checked against zennit on) VGG- and
ResNet-style networks, and on ``mobilenet_v2`` too (tests/explain/test_lrp_mobilenet_v2.py),
where zennit agrees that almost nothing reaches the input: the biases of its
BatchNorm-folded convolutions take their share at every unit (z+ keeps b+ in
its denominator), and on ``pets.jpg`` (224x224, 'Italian greyhound', y^c = 16.49)
epsilon-plus leaves 1.8e-5 of y^c at the input, after ``features.17`` took 75%,
``features.14`` 12% and ``features.16`` 7%. Every result says where its
relevance went: ``r.budget`` (:class:`RelevanceBudget`), shown under figures
and in the explorer.

Any other choice is a ``Composite`` of your own, e.g. LRP-0 everywhere:
``Composite("zero", base_map(0.0) + ((Conv2d, Epsilon(0)), (Linear, Epsilon(0))))``.

``low`` and ``high`` of z^B are the bounds of the input domain: by default
the pixel range [0, 1] through the model's preprocessing, (0 - mean) / std
and (1 - mean) / std per channel.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError, unknown_name
from ..layers import AdaptiveAvgPool2d, Add, AvgPool2d, BatchNorm2d, Conv2d, Linear, ReLU, ReLU6, Sequential
from ..layers.norm import fold_into_conv
from ..util.checks import check_real
from .lrp_rules import AlphaBeta, Epsilon, Flat, Gamma, Norm, OnLayer, Pass, ZBox, ZPlus
from .target import Explanation, choose_targets, onehot, scores_of


@dataclass(frozen=True)
class Composite:
    """A rule per kind of layer: ``layer_map`` ((kinds, rule), ...), the first match wins.

    ``first_map`` is tried, with the same format, on layers until one matches:
    the rule of the first such layer (z^B on the first convolution).
    """

    name: str
    layer_map: tuple
    first_map: tuple = ()

    def rules(self, model) -> dict:
        """{layer name: rule} for ``model`` after a forward pass; layers not named keep their gradient."""
        merged = batchnorm_merges(model)
        merged_into = {bn: conv for conv, (bn, _) in merged.items()}
        rules, first_done = {}, not self.first_map
        for name, layer in model.layers():
            if name in merged_into:
                rules[name] = OnLayer(Pass(), layer, f"(merged into {merged_into[name]})")
                continue
            rule = None if first_done else match(self.first_map, layer)
            first_done = first_done or rule is not None
            rule = rule or match(self.layer_map, layer)
            if rule is None:
                continue
            if name in merged:
                bn, conv = merged[name]
                rule = OnLayer(rule, conv, f"on {name} + {bn}")
            rules[name] = rule
        return rules


def match(layer_map, layer):
    """The rule of the first (kinds, rule) pair whose kinds include the layer's class (or a parent class)."""
    return next((rule for kinds, rule in layer_map if isinstance(layer, kinds)), None)


def base_map(stabilizer: float = 1e-6) -> tuple:
    """The rules every composite shares (zennit's layer_map_base)."""
    return (((ReLU, ReLU6), Pass()), (Add, Norm(stabilizer)), ((AvgPool2d, AdaptiveAvgPool2d), Norm(stabilizer)),
            (BatchNorm2d, Pass()))


def composite_epsilon(epsilon: float = 1e-6, stabilizer: float = 1e-6) -> Composite:
    """Epsilon on every convolution and dense layer."""
    return Composite("epsilon", base_map(stabilizer) + ((Conv2d, Epsilon(epsilon)), (Linear, Epsilon(epsilon))))


def composite_epsilon_plus(epsilon: float = 1e-6, stabilizer: float = 1e-6) -> Composite:
    """z+ on convolutions, epsilon on dense layers (zennit's EpsilonPlus)."""
    return Composite("epsilon-plus", base_map(stabilizer) + ((Conv2d, ZPlus(stabilizer)), (Linear, Epsilon(epsilon))))


def composite_epsilon_gamma_box(low, high, epsilon: float = 1e-6, gamma: float = 0.25,
                                stabilizer: float = 1e-6) -> Composite:
    """z^B on the first convolution, gamma on the others, epsilon on dense layers (zennit's EpsilonGammaBox)."""
    return Composite("epsilon-gamma-box",
                     base_map(stabilizer) + ((Conv2d, Gamma(gamma, stabilizer)), (Linear, Epsilon(epsilon))),
                     first_map=((Conv2d, ZBox(low, high, stabilizer)),))


def composite_epsilon_alpha2_beta1(epsilon: float = 1e-6, stabilizer: float = 1e-6) -> Composite:
    """alpha = 2, beta = 1 on convolutions, epsilon on dense layers (zennit's EpsilonAlpha2Beta1)."""
    return Composite("epsilon-alpha2-beta1", base_map(stabilizer) + ((Conv2d, AlphaBeta(2.0, 1.0, stabilizer)),
                                                                    (Linear, Epsilon(epsilon))))


def composite_epsilon_plus_flat(epsilon: float = 1e-6, stabilizer: float = 1e-6) -> Composite:
    """Flat on the first convolution or dense layer, z+ on convolutions, epsilon on dense layers (EpsilonPlusFlat)."""
    return Composite("epsilon-plus-flat", base_map(stabilizer) + ((Conv2d, ZPlus(stabilizer)),
                                                                 (Linear, Epsilon(epsilon))),
                     first_map=(((Conv2d, Linear), Flat(stabilizer)),))


#: The largest epsilon, gamma or stabilizer accepted (inf would silently zero every relevance).
MAX_LRP_PARAMETER = 1e6

COMPOSITES = ("epsilon", "epsilon-plus", "epsilon-gamma-box", "epsilon-alpha2-beta1", "epsilon-plus-flat")


def batchnorm_merges(model) -> dict:
    """{conv name: (bn name, the convolution with the BatchNorm merged in)} for each BatchNorm fed by a convolution.

    Read from the last forward pass: a BatchNorm2d merges into the Conv2d
    whose output is its input. The merged copy is made in float64:
    w' = w * scale[f], b' = (b - mean) * scale + beta, scale = gamma / sqrt(var + eps).
    """
    if not model.activations:
        raise InputError("call model.forward(x) before choosing LRP rules")
    layers = model.layers()
    merges = {}
    for (conv_name, conv), (bn_name, bn) in zip(layers, layers[1:]):
        if not (isinstance(conv, Conv2d) and isinstance(bn, BatchNorm2d)):
            continue
        if model.inputs.get(bn_name) is not model.activations.get(conv_name):
            continue
        stats = {k: np.asarray(v, np.float64) for k, v in bn.arrays().items()}
        bias = conv.params.get("bias")
        w, b = fold_into_conv(conv.params["weight"].astype(np.float64),
                              None if bias is None else bias.astype(np.float64),
                              stats["weight"], stats["bias"], stats["running_mean"], stats["running_var"], bn.eps)
        merged = copy.copy(conv)
        merged.params = {"weight": w, "bias": b}
        merges[conv_name] = (bn_name, merged)
    return merges


def input_bounds(model) -> tuple[np.ndarray, np.ndarray]:
    """(low, high), each (1, C, 1, 1): the pixel range [0, 1] through the model's preprocessing."""
    prep = model.meta.get("preprocessing") or {}
    if "mean" not in prep or "std" not in prep:
        raise InputError(f"z^B needs the bounds of the input; {model.name} records no preprocessing (mean, std): "
                         f"pass low= and high= (arrays broadcastable to the input)")
    mean = np.asarray(prep["mean"], np.float64)[None, :, None, None]
    std = np.asarray(prep["std"], np.float64)[None, :, None, None]
    return (0 - mean) / std, (1 - mean) / std


def composite_named(model, name: str, *, epsilon: float = 1e-6, gamma: float = 0.25, stabilizer: float = 1e-6,
                    low=None, high=None) -> Composite:
    """One of COMPOSITES with these parameters (z^B bounds from the model's preprocessing unless given)."""
    epsilon, gamma, stabilizer = (check_real(v, f"LRP {what}", high=MAX_LRP_PARAMETER)
                                  for what, v in (("epsilon", epsilon), ("gamma", gamma), ("stabilizer", stabilizer)))
    if name == "epsilon":
        return composite_epsilon(epsilon, stabilizer)
    if name == "epsilon-plus":
        return composite_epsilon_plus(epsilon, stabilizer)
    if name == "epsilon-alpha2-beta1":
        return composite_epsilon_alpha2_beta1(epsilon, stabilizer)
    if name == "epsilon-plus-flat":
        return composite_epsilon_plus_flat(epsilon, stabilizer)
    if name == "epsilon-gamma-box":
        if low is None or high is None:
            low, high = input_bounds(model)
        for what, bound in (("low", low), ("high", high)):
            try:
                finite = bool(np.isfinite(np.asarray(bound, dtype=np.float64)).all())
            except (TypeError, ValueError):
                raise InputError(f"LRP z^B bound {what} must be a number or an array of numbers; "
                                 f"got {bound!r}") from None
            if not finite:
                raise InputError(f"LRP z^B bound {what} must be finite (no NaN or infinity)")
        return composite_epsilon_gamma_box(low, high, epsilon, gamma, stabilizer)
    raise unknown_name("LRP composite", name, list(COMPOSITES))


@dataclass(frozen=True, eq=False)
class RelevanceBudget:
    """Where the relevance y^c went on its way to the input: what each stage absorbed, what reached x.

    The stages are the network's parts in forward order (its nested
    Sequentials opened down to blocks and layers: ``features.3``, an inverted
    residual block, is one stage). With R_k the total relevance at the
    output of stage k (R_S = y^c, the seed) and R_0 the total at the input:

        absorbed[k] = R_k - R_{k-1}          (the share of its biases and stabilisers)
        at_input + sum_k absorbed[k] = y^c   (the sum telescopes)

    stages   : (S,) stage names
    absorbed : (N, S) relevance absorbed by each stage, raw
    at_input : (N,) sum_i R_i over the input
    start    : (N,) y^c, the relevance the pass started with
    """

    stages: tuple
    absorbed: np.ndarray
    at_input: np.ndarray
    start: np.ndarray

    @property
    def fraction_at_input(self) -> np.ndarray:
        """(N,) at_input / y^c (nan where y^c = 0)."""
        return _fraction(self.at_input, self.start)

    @property
    def shares(self) -> np.ndarray:
        """(N, S) absorbed / y^c: with fraction_at_input they add up to 1."""
        return _fraction(self.absorbed, self.start[:, None])

    def largest(self, i: int = 0, k: int = 3) -> list[tuple[str, float]]:
        """Image i's ``k`` stages with the largest |share|, as (name, share), largest first."""
        shares = self.shares[i]
        order = np.argsort(-np.abs(np.nan_to_num(shares)), kind="stable")[:k]
        return [(self.stages[j], float(shares[j])) for j in order]

    def summary(self, i: int = 0, k: int = 3) -> str:
        """One line: "relevance at the input = 1.8e-05 of y^c = 16.49; the biases took: features.17 75%, ..."."""
        parts = ", ".join(f"{name} {share:.0%}" for name, share in self.largest(i, k) if abs(share) >= 0.005)
        return (f"relevance at the input = {float(self.fraction_at_input[i]):.2g} of y^c = "
                f"{float(self.start[i]):.4g}" + (f"; the biases took: {parts}" if parts else ""))

    def as_dict(self, i: int = 0) -> dict:
        """Image i's budget as plain numbers (for JSON): y^c, at_input, fraction, and every stage's share."""
        def num(v):                                   # JSON has no nan: a share of y^c = 0 is None
            return float(v) if np.isfinite(v) else None
        return {"start": num(self.start[i]), "at_input": num(self.at_input[i]),
                "fraction_at_input": num(self.fraction_at_input[i]),
                "stages": [{"name": n, "absorbed": num(a), "share": num(s)}
                           for n, a, s in zip(self.stages, self.absorbed[i], self.shares[i])],
                "summary": self.summary(i)}


def _fraction(a, b) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.divide(a, b, out=np.full(np.broadcast_shapes(a.shape, b.shape), np.nan), where=b != 0)


def relevance_budget(stages, totals_out: np.ndarray, at_input: np.ndarray) -> RelevanceBudget:
    """The budget from the total relevance at each stage's output (N, S), forward order, and at the input (N,).

    absorbed[:, k] = totals_out[:, k] - totals_out[:, k - 1], with totals_out[:, -1] = at_input;
    start = totals_out[:, S - 1] (y^c when the pass started there).
    """
    totals_out = np.asarray(totals_out, np.float64)
    at_input = np.asarray(at_input, np.float64)
    if totals_out.ndim != 2 or totals_out.shape[1] != len(stages) or at_input.shape != totals_out.shape[:1]:
        raise InputError(f"a relevance budget needs (N, {len(stages)}) totals and (N,) at the input; got "
                         f"{totals_out.shape} and {at_input.shape}")
    before = np.concatenate([at_input[:, None], totals_out[:, :-1]], axis=1)
    return RelevanceBudget(tuple(stages), totals_out - before, at_input, totals_out[:, -1].copy())


def stages_of(module, path: str = "") -> list[str]:
    """The names of a network's stages: its Sequentials opened, anything else (a block, a layer) kept whole."""
    if isinstance(module, Sequential):
        return [s for name, child in module.children() for s in stages_of(child, f"{path}.{name}" if path else name)]
    return [path]


def budget_of_pass(model, relevance: np.ndarray, seed: np.ndarray) -> RelevanceBudget:
    """The budget of the LRP pass just run: totals from ``model.gradients`` (the relevance at each output)."""
    stages = [s for s in stages_of(model.root) if s]
    n = relevance.shape[0]
    totals = [np.asarray(model.gradients[s], np.float64).reshape(n, -1).sum(axis=1) if s in model.gradients
              else None for s in stages]
    if not stages or any(t is None for t in totals):
        stages, totals = ["network"], [None]
    totals[-1] = np.asarray(seed, np.float64).reshape(n, -1).sum(axis=1)    # y^c: the seed itself
    return relevance_budget(stages, np.stack(totals, axis=1),
                            np.asarray(relevance, np.float64).reshape(n, -1).sum(axis=1))


@dataclass(frozen=True, kw_only=True, eq=False)
class LRP(Explanation):
    """``map`` (N, C, H, W): the relevance of every input; ``rules``: {layer name: rule used};
    ``budget``: where the relevance y^c went (:class:`RelevanceBudget`)."""

    composite: str
    rules: dict = field(default_factory=dict)
    budget: RelevanceBudget | None = None


def lrp(model, x, target=None, composite="epsilon-plus", *, epsilon: float = 1e-6, gamma: float = 0.25,
        stabilizer: float = 1e-6, low=None, high=None) -> LRP:
    """Relevance of every input of x (N, C, H, W) for class ``target``: R starts as y^c, rules per ``composite``.

    composite : a name of COMPOSITES ("epsilon-plus" by default) or a Composite
    epsilon   : the epsilon rule's epsilon (dense layers; every layer for "epsilon")
    gamma     : the gamma rule's gamma ("epsilon-gamma-box")
    stabilizer: added to every other rule's denominator, with the sign of the denominator
    low, high : z^B's input bounds, broadcastable to x (default: from the model's preprocessing)

    After the call ``model.gradients[name]`` holds the relevance at each layer's output, and the
    result's ``budget`` says how much of y^c reached the input and what each stage absorbed.
    """
    logits = model.forward(x)
    targets = choose_targets(model, logits, target)
    if not isinstance(composite, Composite):
        composite = composite_named(model, composite, epsilon=epsilon, gamma=gamma, stabilizer=stabilizer,
                                    low=low, high=high)
    rules = composite.rules(model)
    seed = onehot(targets, logits.shape[1], logits.dtype) * logits           # R = y^c at the target logit
    relevance = model.backward(seed, rules=rules)
    return LRP(method=f"lrp-{composite.name}", map=relevance, composite=composite.name,
               rules={name: repr(rule) for name, rule in rules.items()},
               budget=budget_of_pass(model, relevance, seed), targets=targets,
               scores=scores_of(logits, targets), logits=logits, layer=None, classes=model.classes)


def lrp_epsilon(model, x, target=None, *, epsilon: float = 1e-6) -> LRP:
    """LRP with the epsilon rule on every convolution and dense layer."""
    return lrp(model, x, target, "epsilon", epsilon=epsilon)


def lrp_epsilon_plus(model, x, target=None, *, epsilon: float = 1e-6) -> LRP:
    """LRP with z+ on convolutions and epsilon on dense layers."""
    return lrp(model, x, target, "epsilon-plus", epsilon=epsilon)


def lrp_epsilon_gamma_box(model, x, target=None, *, epsilon: float = 1e-6, gamma: float = 0.25) -> LRP:
    """LRP with z^B on the first convolution, gamma on the others and epsilon on dense layers."""
    return lrp(model, x, target, "epsilon-gamma-box", epsilon=epsilon, gamma=gamma)

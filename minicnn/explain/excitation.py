"""Excitation Backprop and contrastive MWP (Zhang et al., "Top-down neural attention by excitation backprop",
ECCV 2016 / IJCV 2018), as TorchRay 1.0 implements them.

A top-down pass shares a *marginal winning probability* P: it starts as
P = e_c at the logits (probability 1 on the target class) and each layer
hands the P of its outputs j to its inputs i in proportion to the positive
part of what each input excited:

    P(a_i) = sum_j  a_i w_ij^+ / (sum_i' a_i' w_i'j^+)  P(a_j),      w^+ = max(w, 0)

(the paper's excitation rule; biases take no part). For a layer
linear in its input this is the layer's own backward pass on the
normalised signal, as every LRP rule is (``lrp_rules.py``):

    z+, cache = layer_with_W+_and_no_bias.forward(a)        z+_j = sum_i a_i w_ij^+
    P_in = a * layer_with_W+.backward(P / z+, cache)        (N, in)

It *is* LRP's z+ rule (``ZPlus``) for non-negative inputs with the bias
left out of the denominator and no stabiliser: here it is ``Epsilon(0)``
applied to the layer with W -> W+ and no bias (``lrp_rules.modified``),
so the share-and-backward step is LRP's, not a copy of it.

Rules per layer, TorchRay's (``ExcitationBackpropContext``) unless said:

| layer                              | rule                                             |
|------------------------------------|--------------------------------------------------|
| Conv2d (also grouped), Linear      | the excitation rule above (``Excitation``)       |
| AvgPool2d, AdaptiveAvgPool2d       | P shared in proportion to the inputs (``Norm(0)``)|
| Add (residual addition a + b)      | P_a = a / (a + b) P, P_b = b / (a + b) P          |
| BatchNorm2d                        | P passes unchanged (not merged into its conv)    |
| ReLU                               | its gradient: P where the input was > 0          |
| ReLU6                              | P passes unchanged (a choice: see below)         |
| MaxPool2d, Flatten, Dropout, zero  | their gradient: max pooling sends P to the       |
| padding, option-A shortcut         | window's winner, the others move or select it    |

TorchRay feeds every layer its forward input as it is, also where it has
negative values: the first convolution (normalised pixels), the main branch
of a ResNet block before the addition (``bn2``'s output, signed), and the
linear bottlenecks of MobileNetV2 (the projection's output, with its
residual addition). The rule is used there as written, so P still sums to
the same total but is no longer a probability: single values can be
negative or larger than 1. The choices minicnn makes where its
architectures leave TorchRay:

- **ResNet-20's option-A shortcut** (subsample and zero-pad the channels,
  no weights; TorchRay knows only torchvision's ResNets with a 1x1
  convolution there): its gradient, which hands P to the kept pixels; the
  zero channels received nothing from the addition (b = 0 there).
- **Residual additions** share P in proportion to the summands as TorchRay's
  ``eltwise_sum``, but a unit with a + b = 0 passes nothing (TorchRay: 0/0).
- **ReLU6** (MobileNetV2) passes P unchanged: its gradient (what TorchRay's
  untouched ``relu6`` would do) would drop the P of every unit saturated at
  6, while the paper moves P between units, not through activation
  functions. For ReLU the two agree: a unit with output 0 receives no P.
- **Division by zero**: a unit with z+_j = 0 (no positive excitation)
  passes nothing on; TorchRay divides by z+ + 1e-20, the same up to 1e-20.
- **MobileNetV2** is run as TorchRay would run it, signed inputs and all,
  and it shows: its linear bottlenecks and their additions (a + b can be
  near 0) make P grow and change sign below the last blocks. On ``pets.jpg``
  ('Italian greyhound') the total is 1 down to ``features.17``, then 0.52 at
  ``features.14``, -0.21 at ``features.13``, about 2e3 at ``features.2``
  and 1e4 at the input. The default layer (``features``, 7 x 7) is above all
  that; a map much lower in this network is not a probability.

Conservation: each rule hands on exactly what it receives, so with the seed
e_c the total P at every layer's output is 1, except for the P of units
with z+_j = 0 and of additions with a + b = 0, which has nowhere to go:

    sum_i P_in_i = sum_{j: z+_j != 0} P_j

A unit followed by a ReLU gets P only where it is on, so z+_j = 0 loses P
only where something else switched it on: its bias (which the rule ignores),
a BatchNorm shift or a negative BatchNorm scale. A unit with no ReLU after
it loses P wherever it is negative without excitation: ResNet's main branch
before the addition, MobileNetV2's linear projections. The target logit
itself passes nothing on when all its positive weights meet zero inputs.

The **contrastive** MWP subtracts the MWP of the *dual* class,
that of the top classifier with its weights negated (W -> -W, so its W^+ is
-W^-): P_c - P_dual at the chosen layer, whose sum is 1 - 1 = 0, and the map
is its positive part. TorchRay runs two passes and subtracts the dual's P
at a ``contrast_layer`` before going on to the saliency layer; every rule
is linear in P, so that gives P_c - P_dual at the saliency layer whatever
the contrast layer between the two. minicnn makes one pass whose rule at
the classifier is the difference of the two:

    P_in = Excitation(W)(a, P) - Excitation(-W)(a, P)         (the classifier)

The maps, raw, at the layer's resolution (N, h, w):

    excitation_backprop             sum_k P(A^k_ij)
    contrastive_excitation_backprop max(sum_k (P_c - P_dual)(A^k_ij), 0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..layers import AdaptiveAvgPool2d, Add, AvgPool2d, BatchNorm2d, Conv2d, Linear, ReLU6
from .lrp import match
from .lrp_rules import Epsilon, Norm, Pass, modified, positive
from .target import LayerMap, choose_targets, feature_map, onehot, scores_of


@dataclass(frozen=True)
class Excitation:
    """P_in = a * W+^T (P / (W+ a)): the excitation rule; LRP's z+ without the bias and the stabiliser.

    a (N, in) is the layer's forward input, P (N, out) the MWP at its output;
    a unit with W+ a = 0 passes nothing. Any layer with a weight (Conv2d, Linear).
    """

    @staticmethod
    def positive_part(layer):
        """A copy of the layer with W -> W+ and no bias: z+ = positive_part(layer).forward(a)[0]."""
        return modified(layer, positive)

    def __call__(self, layer, a, P):
        return Epsilon(0.0)(self.positive_part(layer), a, P)


@dataclass(frozen=True)
class Contrastive:
    """The classifier's rule of the contrastive pass: Excitation(W) minus Excitation(-W) (the dual).

    P_in = a * W+^T (P / (W+ a)) - a * (-W)+^T (P / ((-W)+ a)); its total is 0 when P sums to 1.
    """

    def __call__(self, layer, a, P):
        dual = modified(layer, np.negative)
        return Excitation()(layer, a, P) - Excitation()(dual, a, P)


#: The rule of each kind of layer; kinds not named keep their gradient (see the module docstring).
EXCITATION_MAP = (((Conv2d, Linear), Excitation()),
                  ((AvgPool2d, AdaptiveAvgPool2d, Add), Norm(0.0)),
                  ((BatchNorm2d, ReLU6), Pass()))


def classifier_layer(model) -> str:
    """The name of the last Conv2d or Linear layer (TorchRay's ``_get_classifier_layer``)."""
    return [name for name, layer in model.layers() if isinstance(layer, (Conv2d, Linear))][-1]


def excitation_rules(model, contrastive: bool = False) -> dict:
    """{layer name: rule} of the excitation pass (``contrastive``: the classifier's rule is ``Contrastive``)."""
    rules = {name: rule for name, layer in model.layers() if (rule := match(EXCITATION_MAP, layer)) is not None}
    if contrastive:
        rules[classifier_layer(model)] = Contrastive()
    return rules


@dataclass(frozen=True, kw_only=True, eq=False)
class ExcitationMap(LayerMap):
    """``map`` (N, h, w): the MWP at the layer summed over its channels (contrastive: its positive part).

    mwp  : (N, K, h, w) P at the layer's output (contrastive: P_c - P_dual, before the sum and the max)
    mass : (N,) sum of ``mwp`` over the layer: 1 where no P was lost on the way (contrastive: 0)
    """

    mwp: np.ndarray
    mass: np.ndarray


def _excitation(model, x, target, layer, contrastive: bool) -> ExcitationMap:
    logits = model.forward(x)
    targets = choose_targets(model, logits, target)
    name = "contrastive excitation backprop" if contrastive else "excitation backprop"
    layer, _ = feature_map(model, layer, name)
    model.backward(onehot(targets, logits.shape[1], logits.dtype), rules=excitation_rules(model, contrastive),
                   stop_at=layer)
    P = np.asarray(model.gradients[layer])                       # (N, K, h, w)
    summed = P.sum(axis=1)
    return ExcitationMap(method=("contrastive-" if contrastive else "") + "excitation-backprop",
                         map=np.maximum(summed, 0) if contrastive else summed, mwp=P,
                         mass=P.reshape(len(P), -1).sum(axis=1), targets=targets, scores=scores_of(logits, targets),
                         logits=logits, layer=layer, classes=model.classes)


def excitation_backprop(model, x, target=None, layer: str | None = None) -> ExcitationMap:
    """Excitation Backprop: sum_k P(A^k) at ``layer`` (default: the last feature map after its ReLU), P from e_c.

    x (N, C, H, W); target: None (top-1), a class, or one per image. The map (N, h, w) is raw.
    """
    return _excitation(model, x, target, layer, contrastive=False)


def contrastive_excitation_backprop(model, x, target=None, layer: str | None = None) -> ExcitationMap:
    """Contrastive MWP: max(sum_k (P_c - P_dual)(A^k), 0) at ``layer``; the dual negates the classifier's weights."""
    return _excitation(model, x, target, layer, contrastive=True)

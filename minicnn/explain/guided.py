"""Guided Backpropagation (Springenberg et al. 2015) and Guided Grad-CAM (Selvaraju et al. 2019).

Guided Backprop is the backward pass of y^c down to the input with every
ReLU's backward replaced by the guided rule

    dx = dout * (x > 0) * (dout > 0)

(the true derivative keeps only ``x > 0``; see ``minicnn/layers/activation.py``).
It is ``model.backward(e_c, relu="guided")``: the same pass as a gradient,
one argument changed. Only positive signals that reach positive activations
survive, which gives sharp, fine-grained but barely class-discriminative
pictures of the input, (N, C, H, W).

Guided Grad-CAM multiplies it, element by element, by the Grad-CAM map
upsampled to the input size (bilinear, half-pixel centres):

    G^c = GuidedBackprop^c (N, C, H, W)  *  upsample(L^c) (N, 1, H, W)

L^c is the raw map (after its ReLU, not normalised), as in the paper's
original code. The product is fine-grained *and* class-discriminative.

The DeconvNet (Zeiler and Fergus, ECCV 2014) is the same pass with the third
ReLU rule, dx = dout * (dout > 0): it ignores the forward pass at every ReLU
(``model.backward(e_c, relu="deconvnet")``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .gradcam import GradCAM, gradcam
from .target import Explanation, choose_targets, onehot, scores_of


def guided_backprop(model, x, target=None) -> Explanation:
    """d^guided y^c / dx for the batch x (N, C, H, W): ``map`` is (N, C, H, W), raw."""
    logits = model.forward(x)
    targets = choose_targets(model, logits, target)
    grad = model.backward(onehot(targets, logits.shape[1], logits.dtype), relu="guided")
    return Explanation(method="guided-backprop", map=grad, targets=targets, scores=scores_of(logits, targets),
                       logits=logits, layer=None, classes=model.classes)


def deconvnet(model, x, target=None) -> Explanation:
    """The deconvnet's signal at the input for the batch x (N, C, H, W): ``map`` is (N, C, H, W), raw."""
    logits = model.forward(x)
    targets = choose_targets(model, logits, target)
    signal = model.backward(onehot(targets, logits.shape[1], logits.dtype), relu="deconvnet")
    return Explanation(method="deconvnet", map=signal, targets=targets, scores=scores_of(logits, targets),
                       logits=logits, layer=None, classes=model.classes)


@dataclass(frozen=True, kw_only=True, eq=False)
class GuidedGradCAM(Explanation):
    """``map`` = guided.map * gradcam.upsampled(H, W)[:, None], (N, C, H, W); both factors kept."""

    guided: Explanation
    gradcam: GradCAM

    def parts(self) -> dict:
        """The two factors, by method name: {"gradcam": ..., "guided-backprop": ...}."""
        return {"gradcam": self.gradcam, "guided-backprop": self.guided}


def guided_gradcam(model, x, target=None, layer: str | None = None, *, align_corners: bool = False) -> GuidedGradCAM:
    """Guided Backprop times the upsampled raw Grad-CAM map of the same class and image."""
    cam = gradcam(model, x, target, layer)
    guided = guided_backprop(model, x, cam.targets)
    heat = cam.upsampled(guided.map.shape[2:], align_corners=align_corners)   # (N, H, W)
    return GuidedGradCAM(method="guided-gradcam", map=guided.map * heat[:, None], guided=guided, gradcam=cam,
                         targets=cam.targets, scores=cam.scores, logits=cam.logits, layer=cam.layer,
                         classes=model.classes)

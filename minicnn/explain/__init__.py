"""Explanations of a CNN's prediction, each a short function over the model's public API.

    from minicnn import explain
    r = explain.gradcam(model, x, target="cat")        # r.map (N, h, w), r.alpha (N, K), r.layer
    r.upsampled(x.shape[2:])                            # (N, H, W), bilinear, half-pixel centres

| function              | equation                                              | map shape     |
|-----------------------|-------------------------------------------------------|---------------|
| ``gradcam``           | ReLU(sum_k alpha_k^c A^k), alpha = mean_ij dy^c/dA     | (N, h, w)     |
| ``counterfactual``    | the same with -dy^c/dA                                | (N, h, w)     |
| ``guided_backprop``   | dy^c/dx with the guided ReLU backward                 | (N, C, H, W)  |
| ``guided_gradcam``    | guided_backprop * upsample(gradcam)                   | (N, C, H, W)  |
| ``cam``               | sum_k W[c, k] A^k (GAP -> one Linear networks only)   | (N, h, w)     |
| ``occlusion``         | y^c(x) - y^c(x with a patch covered)                  | (N, H, W)     |
| ``saliency``          | dy^c/dx (``channel_max_abs`` for display)             | (N, C, H, W)  |
| ``input_x_gradient``  | x * dy^c/dx                                           | (N, C, H, W)  |
| ``deconvnet``         | dy^c/dx with the deconvnet ReLU backward              | (N, C, H, W)  |
| ``integrated_gradients`` | (x - x') * mean of dy^c/dx on the path x' -> x     | (N, C, H, W)  |
| ``smoothgrad`` (``smoothgrad_squared``, ``vargrad``) | mean (of squares, variance) of a map over noisy x | (N, C, H, W) |
| ``lrp`` (``lrp_epsilon``, ``lrp_epsilon_plus``, ``lrp_epsilon_gamma_box``) | relevance R_i, from R = y^c by local rules | (N, C, H, W) |

``minicnn.explain.registry.METHODS`` lists every method with its name on the
command line, its save key, the kind of map it returns and how figures show it.

Every function takes a batch x (N, C, H, W), an optional ``target`` (default
top-1; an index, a class name, or one per image) and, where a layer is
involved, an optional ``layer`` name (default: the last convolutional feature
map after its ReLU). Maps are raw: not normalised, not coloured
(see ``minicnn.figures``).
"""

from . import registry
from .cam import cam, cam_head
from .catdog import CAT_DOG, cat_dog_image
from .gradcam import GradCAM, counterfactual, gradcam
from .guided import GuidedGradCAM, deconvnet, guided_backprop, guided_gradcam
from .integrated_gradients import IntegratedGradients, integrated_gradients
from .lrp import LRP, lrp, lrp_epsilon, lrp_epsilon_gamma_box, lrp_epsilon_plus
from .occlusion import Occlusion, occlusion
from .resize import resize_bilinear
from .saliency import channel_max_abs, input_x_gradient, saliency
from .smoothgrad import SmoothGrad, smoothgrad, smoothgrad_squared, vargrad
from .target import Explanation, choose_targets, class_index, default_layer, onehot

__all__ = [
    "CAT_DOG", "Explanation", "GradCAM", "GuidedGradCAM", "Occlusion", "cam", "cam_head", "cat_dog_image",
    "channel_max_abs", "choose_targets", "class_index", "counterfactual", "default_layer", "gradcam",
    "guided_backprop", "guided_gradcam", "occlusion", "onehot", "registry", "resize_bilinear", "saliency",
    # attribution by modified backward passes
    "IntegratedGradients", "LRP", "SmoothGrad", "deconvnet", "input_x_gradient", "integrated_gradients", "lrp",
    "lrp_epsilon", "lrp_epsilon_gamma_box", "lrp_epsilon_plus", "smoothgrad", "smoothgrad_squared", "vargrad",
]

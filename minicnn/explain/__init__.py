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
| ``gradcam_plus_plus`` | w_k = sum_ij a_ij ReLU(g), a = g^2/(2g^2 + S_k g^3)   | (N, h, w)     |
| ``xgradcam``          | w_k = sum_ij (A^k_ij / sum_ab A^k_ab) g^k_ij          | (N, h, w)     |
| ``hirescam``          | ReLU(sum_k g^k * A^k), element-wise                   | (N, h, w)     |
| ``layercam``          | ReLU(sum_k ReLU(g^k) * A^k), element-wise             | (N, h, w)     |
| ``scorecam``          | w_k = softmax(f(x * mask from A^k))_c                 | (N, h, w)     |
| ``ablationcam``       | w_k = (y^c - y^c with A^k = 0) / y^c                  | (N, h, w)     |
| ``eigencam``          | first principal component of A over its positions     | (N, h, w)     |
| ``eigengradcam``      | the same for g * A                                    | (N, h, w)     |
| ``fullgrad``          | psi(dy^c/dx * x) + sum over biases psi(g_l * b_l)     | (N, H, W)     |
| ``input_x_gradient``  | x * dy^c/dx                                           | (N, C, H, W)  |
| ``deconvnet``         | dy^c/dx with the deconvnet ReLU backward              | (N, C, H, W)  |
| ``integrated_gradients`` | (x - x') * mean of dy^c/dx on the path x' -> x     | (N, C, H, W)  |
| ``smoothgrad``        | mean of a map over noisy copies of x (also             | (N, C, H, W)  |
|                       | ``smoothgrad_squared``, ``vargrad``)                  |               |
| ``lrp``               | relevance R_i, from R = y^c by local rules (also      | (N, C, H, W)  |
|                       | ``lrp_epsilon``, ``lrp_epsilon_plus``,                |               |
|                       | ``lrp_epsilon_gamma_box``)                            |               |
| ``deeplift``          | (x - x0) * multipliers of the rescale rule; also      | (N, C, H, W)  |
|                       | ``deeplift_shap`` (its mean over baselines) and       |               |
|                       | ``gradient_shap`` (expected gradients)                |               |
| ``excitation_backprop`` | sum_k P(A^k): the winning probability from e_c,     | (N, h, w)     |
|                       | P_i = sum_j a_i w_ij^+ / (sum_i' a_i' w_i'j^+) P_j    |               |
|                       | (also ``contrastive_excitation_backprop``)            |               |
| ``lime``              | Lasso of y^c on random coalitions of superpixels,     | (N, H, W)     |
|                       | cosine-kernel weights                                 |               |
| ``kernel_shap``       | least squares on Shapley-kernel coalitions: Shapley   | (N, H, W)     |
|                       | values of superpixels, sum = y^c(x) - y^c(baseline)   |               |
| ``rise``              | sum_k p_c(x * M_k) M_k / (N p), random shifted masks  | (N, H, W)     |

(g = dy^c/dA, S_k = sum_ij A^k_ij; a method with weights w_k returns
ReLU(sum_k w_k A^k).)

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
from .catdog import CAT_DOG, cat_dog_image, imagenet_cat_dog_image
from .deeplift import DeepLift, GradientShap, deeplift, deeplift_shap, gradient_shap
from .eigen_cams import EigenCAM, eigencam, eigengradcam
from .excitation import ExcitationMap, contrastive_excitation_backprop, excitation_backprop
from .features import feature_mask, grid_mask, load_feature_mask
from .fullgrad import FullGrad, fullgrad
from .gradcam import GradCAM, counterfactual, gradcam
from .gradient_cams import ElementwiseCAM, GradCAMPlusPlus, gradcam_plus_plus, hirescam, layercam, xgradcam
from .guided import GuidedGradCAM, deconvnet, guided_backprop, guided_gradcam
from .integrated_gradients import IntegratedGradients, integrated_gradients
from .lime import Surrogate, kernel_shap, lime
from .lrp import LRP, RelevanceBudget, lrp, lrp_epsilon, lrp_epsilon_gamma_box, lrp_epsilon_plus
from .occlusion import Occlusion, occlusion
from .perturbation_cams import AblationCAM, ScoreCAM, ablationcam, scorecam
from .resize import resize_bilinear
from .rise import RISE, rise
from .saliency import channel_max_abs, input_x_gradient, saliency
from .smoothgrad import SmoothGrad, smoothgrad, smoothgrad_squared, vargrad
from .target import Explanation, LayerMap, choose_targets, class_index, default_layer, onehot

__all__ = [
    "CAT_DOG", "Explanation", "LayerMap", "GradCAM", "GuidedGradCAM", "Occlusion", "cam", "cam_head", "cat_dog_image",
    "channel_max_abs", "choose_targets", "class_index", "counterfactual", "default_layer", "gradcam",
    "guided_backprop", "guided_gradcam", "occlusion", "onehot", "registry", "resize_bilinear", "saliency",
    "imagenet_cat_dog_image",
    # the CAM family
    "AblationCAM", "EigenCAM", "ElementwiseCAM", "FullGrad", "GradCAMPlusPlus", "ScoreCAM", "ablationcam",
    "eigencam", "eigengradcam", "fullgrad", "gradcam_plus_plus", "hirescam", "layercam", "scorecam", "xgradcam",
    # attribution by modified backward passes
    "IntegratedGradients", "LRP", "SmoothGrad", "deconvnet", "input_x_gradient", "integrated_gradients", "lrp",
    "lrp_epsilon", "lrp_epsilon_gamma_box", "lrp_epsilon_plus", "smoothgrad", "smoothgrad_squared", "vargrad",
    "RelevanceBudget",
    # DeepLIFT and the SHAP estimates
    "DeepLift", "GradientShap", "deeplift", "deeplift_shap", "gradient_shap",
    # Excitation Backprop
    "ExcitationMap", "contrastive_excitation_backprop", "excitation_backprop",
    # sampling: surrogates over superpixels, random masks
    "RISE", "Surrogate", "feature_mask", "grid_mask", "kernel_shap", "lime", "load_feature_mask", "rise",
]

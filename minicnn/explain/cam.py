"""Class Activation Mapping (Zhou et al., CVPR 2016).

CAM applies to networks that end in global average pooling, then one dense
layer (a Linear layer after flattening, or a 1x1 convolution before it, as in
MobileNetV2: the same weights W[c, k, 0, 0]): with A (N, K, h, w) the feature
map entering the pooling and W (C, K) the dense weights,

    F_k  = (1/Z) sum_{i,j} A^k_ij                       the pooled features, Z = h*w
    y^c  = sum_k W[c, k] F_k + b_c
    M_c  = sum_k W[c, k] A^k                            (N, h, w), the class activation map

Grad-CAM generalises it (paper, section 3.1): here dy^c/dA^k_ij = W[c, k] / Z
at every pixel, so alpha_k^c = W[c, k] / Z and, without the final ReLU,
Grad-CAM = M_c / Z. The tests prove this on ResNet-20.

The map is returned raw (no ReLU, no normalisation); the bias b_c adds the
same constant everywhere and is left out, as in the paper.
"""

from __future__ import annotations

from ..errors import InputError
from ..layers import AdaptiveAvgPool2d, AvgPool2d, Conv2d, Dropout, Flatten, Identity, Linear
from .gradcam import GradCAM, weighted_sum
from .target import choose_targets, outermost_alias, scores_of

_PASS_THROUGH = (Dropout, Identity)


def _is_global_average(layer, A_in) -> bool:
    if isinstance(layer, AdaptiveAvgPool2d):
        return tuple(layer.output_size) == (1, 1)
    if isinstance(layer, AvgPool2d):
        return tuple(layer.padding) == (0, 0) and tuple(layer.kernel_size) == tuple(A_in.shape[2:])
    return False


def _is_pointwise_dense(layer) -> bool:
    """A 1x1 convolution without padding, stride or groups: a Linear layer applied at every pixel."""
    return (isinstance(layer, Conv2d) and tuple(layer.kernel_size) == (1, 1) and tuple(layer.padding) == (0, 0)
            and tuple(layer.stride) == (1, 1) and getattr(layer, "groups", 1) == 1)


def cam_head(model) -> tuple[str, str]:
    """(feature map name, dense layer name) when the network ends GAP -> Flatten -> Linear
    (or GAP -> 1x1 conv -> Flatten).

    Reads the last forward pass. Otherwise a one-line InputError saying how
    the network does end (e.g. a dense head of several Linear layers).
    """
    leaves = [(n, layer) for n, layer in model.layers() if not isinstance(layer, _PASS_THROUGH)]
    tail = leaves[-4:]
    kinds = [type(layer).__name__ for _, layer in tail]
    if len(tail) == 4 and _is_pointwise_dense(tail[2][1]) and isinstance(tail[3][1], Flatten):
        # GAP -> 1x1 conv -> flatten: the same sum as GAP -> flatten -> Linear
        tail = [tail[0], tail[1], tail[3], tail[2]]
    ok = (len(tail) == 4 and (isinstance(tail[3][1], Linear) or _is_pointwise_dense(tail[3][1]))
          and isinstance(tail[2][1], Flatten) and tail[0][0] in model.activations
          and _is_global_average(tail[1][1], model.activations[tail[0][0]]))
    if not ok:
        ending = " -> ".join(f"{n} ({k})" for (n, _), k in zip(tail[1:], kinds[1:]))
        raise InputError(f"CAM needs a network that ends in global average pooling -> flatten -> one Linear layer; "
                         f"{model.name} ends {ending}; use Grad-CAM, which needs no such ending")
    return outermost_alias(model, tail[0][0]), tail[3][0]


def cam(model, x, target=None, layer: str | None = None) -> GradCAM:
    """M_c = sum_k W[c, k] A^k for the batch x (N, C, H, W); ``map`` (N, h, w), ``alpha`` = W[c] (N, K).

    ``layer`` may be given, but must be the feature map entering the global
    average pooling (the only one CAM is defined for).
    """
    logits = model.forward(x)
    targets = choose_targets(model, logits, target)
    name, dense = cam_head(model)
    if layer is not None and model.activations.get(layer) is not model.activations[name]:
        raise InputError(f"CAM is defined only at the feature map entering the global average pooling, "
                         f"{name!r}; got layer {layer!r} (use Grad-CAM for other layers)")
    A = model.activations[name]                              # (N, K, h, w)
    W = model[dense].params["weight"].astype(A.dtype)        # (classes, K), or (classes, K, 1, 1) for a 1x1 conv
    W = W.reshape(W.shape[0], -1)
    weights = W[targets]                                     # W[c_n, k], (N, K)
    return GradCAM(method="cam", map=weighted_sum(weights, A), alpha=weights, relu=False, targets=targets,
                   scores=scores_of(logits, targets), logits=logits, layer=name, classes=model.classes)

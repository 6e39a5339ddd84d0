"""Architectures, named exactly like their PyTorch counterparts.

- ``vgg11`` .. ``vgg19`` (and ``_bn``): torchvision's VGG (features.N,
  avgpool to 7x7, classifier 25088-4096-4096-1000 with dropout), the network
  of the Grad-CAM paper's experiments;
- ``vgg_cifar``: a small VGG-style CIFAR-10 network (conv 32-32-pool-64-64-
  pool-128-128-pool, dense 2048-256-10), only conv, ReLU, max pooling and
  dense layers once its BatchNorm is folded;
- ``resnet20``: the CIFAR ResNet-20 of He et al. (2015) with option A
  shortcuts, names as in its public checkpoints (conv1, layer1.0.conv1, ...);
- ``mobilenet_v2``: MobileNetV2 (Sandler et al. 2018) with its BatchNorm
  folded, torchvision's names (features.0 .. features.18), TensorFlow's SAME
  padding and a 1x1 convolution as classifier, as in the TensorFlow Lite
  model it is converted from (``minicnn/models/convert/tflite.py``). Not in
  ``ARCHITECTURES``: it is made by the TFLite converter, not from PyTorch checkpoints.

Builders return a Model with random weights (He initialisation, seeded).
Folding BatchNorm (``fold_bn=True``) drops the BN layers but keeps the
indices of the layers around them, so "features.2" still names the ReLU
that PyTorch calls features.2.
"""

from __future__ import annotations

import numpy as np

from ..errors import unknown_name
from ..layers import (
    AdaptiveAvgPool2d,
    BasicBlock,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    InvertedResidual,
    Linear,
    MaxPool2d,
    ReLU,
    Sequential,
)
from ..layers.inverted_residual import conv_relu6
from ..model import Model

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

VGG_CONFIGS = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],
}
VGG_CIFAR_CONFIG = [32, 32, "M", 64, 64, "M", 128, 128, "M"]


def vgg_features(cfg, batch_norm=False, fold_bn=False, in_channels=3) -> Sequential:
    """torchvision's make_layers: conv3x3(pad 1) [-> BN] -> ReLU per number, MaxPool2d(2) per "M"."""
    layers, index, c = [], 0, in_channels
    for v in cfg:
        if v == "M":
            layers.append((str(index), MaxPool2d(2, 2)))
            index += 1
            continue
        layers.append((str(index), Conv2d(c, v, 3, padding=1)))
        index += 1
        if batch_norm:
            if not fold_bn:
                layers.append((str(index), BatchNorm2d(v)))
            index += 1
        layers.append((str(index), ReLU()))
        index += 1
        c = v
    return Sequential(layers)


def vgg(cfg, *, batch_norm=False, fold_bn=False, num_classes=1000, hidden=(4096, 4096),
        pool_size=(7, 7), dropout=0.5, name="vgg", seed=0) -> Model:
    """A torchvision-layout VGG: features, avgpool, flatten, classifier.0 .. classifier.6."""
    channels = [v for v in cfg if v != "M"][-1]
    widths = [channels * pool_size[0] * pool_size[1], *hidden]
    classifier = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        classifier += [(str(3 * i), Linear(a, b)), (str(3 * i + 1), ReLU()), (str(3 * i + 2), Dropout(dropout))]
    classifier.append((str(3 * len(hidden)), Linear(widths[-1], num_classes)))
    root = Sequential([
        ("features", vgg_features(cfg, batch_norm, fold_bn)),
        ("avgpool", AdaptiveAvgPool2d(pool_size)),
        ("flatten", Flatten()),
        ("classifier", Sequential(classifier)),
    ])
    meta = {"name": name, "arch": name, "input_size": [3, 224, 224],
            "classes": [str(i) for i in range(num_classes)],
            "preprocessing": {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "resize": "shorter_then_center_crop",
                              "resize_shorter": 256, "size": [224, 224]}}
    return init_weights(Model(root, meta), seed)


def vgg_cifar(*, batch_norm=True, fold_bn=False, num_classes=10, seed=0) -> Model:
    """The shipped VGG-style CIFAR-10 network: features (3 stages), flatten, classifier 2048-256-10."""
    root = Sequential([
        ("features", vgg_features(VGG_CIFAR_CONFIG, batch_norm, fold_bn)),
        ("flatten", Flatten()),
        ("classifier", Sequential([("0", Linear(128 * 4 * 4, 256)), ("1", ReLU()), ("2", Dropout(0.5)),
                                   ("3", Linear(256, num_classes))])),
    ])
    meta = {"name": "vgg_cifar", "arch": "vgg_cifar", "input_size": [3, 32, 32], "classes": list(CIFAR10_CLASSES),
            "preprocessing": {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "resize": "exact", "size": [32, 32]}}
    return init_weights(Model(root, meta), seed)


def resnet20(*, num_classes=10, seed=0) -> Model:
    """CIFAR ResNet-20: conv1-bn1-relu, three stages of three BasicBlocks (16, 32, 64), GAP, linear."""
    stages, in_planes = [], 16
    for i, (planes, stride) in enumerate([(16, 1), (32, 2), (64, 2)]):
        blocks = []
        for j in range(3):
            blocks.append((str(j), BasicBlock(in_planes, planes, stride if j == 0 else 1)))
            in_planes = planes
        stages.append((f"layer{i + 1}", Sequential(blocks)))
    root = Sequential([
        ("conv1", Conv2d(3, 16, 3, padding=1, bias=False)), ("bn1", BatchNorm2d(16)), ("relu", ReLU()),
        *stages,
        ("avgpool", AdaptiveAvgPool2d(1)), ("flatten", Flatten()), ("linear", Linear(64, num_classes)),
    ])
    meta = {"name": "resnet20", "arch": "resnet20", "input_size": [3, 32, 32], "classes": list(CIFAR10_CLASSES),
            "preprocessing": {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "resize": "shorter", "resize_shorter": 32,
                              "size": [32, 32]}}
    return init_weights(Model(root, meta), seed)


#: MobileNetV2's bottleneck stages (t expansion, c channels, n blocks, s first stride), Table 2 of the paper.
MOBILENET_V2_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                         (6, 160, 3, 2), (6, 320, 1, 1))
#: Its input: RGB pixels p in 0..255 as (p - 128) / 128, i.e. (p/255 - mean) / std with mean = std = 128/255,
#: resized (bicubic, as the figures quoted for this model were made) to exactly 224x224.
MOBILENET_V2_PREPROCESSING = {"mean": [128 / 255] * 3, "std": [128 / 255] * 3, "resize": "exact",
                              "size": [224, 224], "interpolation": "bicubic", "formula": "(pixel - 128) / 128"}


def mobilenet_v2(*, num_classes=1001, settings=MOBILENET_V2_SETTINGS, first_channels=32, last_channels=1280,
                 padding="tf_same", seed=0) -> Model:
    """MobileNetV2, BatchNorm folded: features.0 .. features.N, avgpool, classifier (1x1 conv), flatten.

    features.0 is the 3x3 stride-2 stem (conv, ReLU6), then one InvertedResidual
    per block of ``settings`` (features.1 .. features.17 for the paper's), then
    the 1x1 convolution to ``last_channels`` with its ReLU6 (features.18): the
    feature map Grad-CAM and CAM explain, 1280x7x7 at 224x224. Global average
    pooling and a 1x1 convolution give the logits (as the TensorFlow model;
    torchvision uses flatten and a Linear layer instead). Smaller ``settings``
    make the tiny networks of the tests.
    """
    features = [("0", conv_relu6(3, first_channels, 3, 2, padding=padding))]
    c = first_channels
    for t, out, n, s in settings:
        for i in range(n):
            features.append((str(len(features)), InvertedResidual(c, out, s if i == 0 else 1, t, padding)))
            c = out
    features.append((str(len(features)), conv_relu6(c, last_channels, 1)))
    root = Sequential([
        ("features", Sequential(features)),
        ("avgpool", AdaptiveAvgPool2d(1)), ("classifier", Conv2d(last_channels, num_classes, 1)),
        ("flatten", Flatten()),
    ])
    meta = {"name": "mobilenet_v2", "arch": "mobilenet_v2", "input_size": [3, 224, 224],
            "classes": [str(i) for i in range(num_classes)], "preprocessing": dict(MOBILENET_V2_PREPROCESSING)}
    return init_weights(Model(root, meta), seed)


def init_weights(model: Model, seed=0) -> Model:
    """He-normal convolutions (fan-out, as torchvision), N(0, 0.01) dense weights, zero biases."""
    rng = np.random.default_rng(seed)
    for _, layer in model.layers():
        if isinstance(layer, Conv2d):
            w = layer.params["weight"]
            fan_out = w.shape[0] * w.shape[2] * w.shape[3]
            layer.params["weight"] = rng.standard_normal(w.shape, np.float32) * np.float32(np.sqrt(2.0 / fan_out))
        elif isinstance(layer, Linear):
            w = layer.params["weight"]
            layer.params["weight"] = rng.standard_normal(w.shape, np.float32) * np.float32(0.01)
    return model


def _vgg_builder(arch):
    cfg_name, bn = arch.removesuffix("_bn"), arch.endswith("_bn")
    return lambda **kw: vgg(VGG_CONFIGS[cfg_name], batch_norm=bn, name=arch, **kw)


#: Architecture name -> builder(**options) -> Model.
ARCHITECTURES = {
    **{arch: _vgg_builder(arch) for base in VGG_CONFIGS for arch in (base, f"{base}_bn")},
    "vgg_cifar": vgg_cifar,
    "resnet20": resnet20,
}


def build_architecture(arch: str, **options) -> Model:
    """A Model of the named architecture with random weights."""
    if arch not in ARCHITECTURES:
        raise unknown_name("architecture", arch, sorted(ARCHITECTURES))
    return ARCHITECTURES[arch](**options)

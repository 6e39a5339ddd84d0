"""Layers with hand-written forward and backward passes, one file per family."""

from .activation import RELU_RULES, ReLU, relu_rule
from .base import Identity, Layer, Module, Pass, Sequential, StopBackward
from .conv import Conv2d
from .inverted_residual import InvertedResidual
from .linear import Dropout, Flatten, Linear
from .loss import softmax, softmax_cross_entropy
from .norm import BatchNorm2d
from .pad import ZeroPad2d
from .pool import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from .relu6 import ReLU6
from .residual import Add, BasicBlock, OptionAShortcut

#: Every module type a weights file may name, by its "type" entry.
MODULE_TYPES = {cls.__name__: cls for cls in (
    Conv2d, ReLU, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, Flatten, Linear, Dropout,
    BatchNorm2d, Identity, Add, OptionAShortcut, BasicBlock, Sequential,
    ReLU6, ZeroPad2d, InvertedResidual,
)}

__all__ = [
    "AdaptiveAvgPool2d", "Add", "AvgPool2d", "BasicBlock", "BatchNorm2d", "Conv2d", "Dropout",
    "Flatten", "Identity", "Layer", "Linear", "MaxPool2d", "Module", "MODULE_TYPES",
    "OptionAShortcut", "Pass", "ReLU", "RELU_RULES", "Sequential", "StopBackward",
    "relu_rule", "softmax", "softmax_cross_entropy",
    "InvertedResidual", "ReLU6", "ZeroPad2d",
]

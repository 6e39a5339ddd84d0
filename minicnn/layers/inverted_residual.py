"""MobileNetV2's inverted-residual block (Sandler et al., CVPR 2018), BatchNorm folded.

With hidden = in_channels * t (the expansion ratio t):

    h   = relu6(conv_1x1(x))                 expand: in -> hidden channels   (skipped when t = 1)
    h   = relu6(depthwise_3x3(h, stride))    one 3x3 filter per channel
    h   = conv_1x1(h)                        project: hidden -> out channels, *linear* (no activation)
    out = h + x                              only when stride = 1 and in = out ("add"), no activation after

Backward: the addition sends dout unchanged to both branches (da = db = dout)
and they meet again at x, dx = dx_conv + dout; the block has no activation
after the addition, so nothing masks dout on the shortcut.

Names follow torchvision's ``InvertedResidual`` with the BatchNorm layers folded
into the convolutions (their indices are kept, as VGG's are when folded):

    conv.0.0, conv.0.2   expand conv, ReLU6                 (t != 1)
    conv.1.0, conv.1.2   depthwise conv, ReLU6              (conv.0.0, conv.0.2 when t = 1)
    conv.2               project conv                       (conv.1 when t = 1)
    add                  the residual addition              (when there is one)

The block's own name ("features.3") addresses its output; "features.3.conv"
the output of the projection before the addition.

``padding`` says how the depthwise convolution pads: "symmetric" (torchvision:
1 on every side), or "tf_same" (TensorFlow's SAME for inputs of even size: a
stride-2 block pads one row at the bottom and one column at the right, a
``ZeroPad2d((0, 1, 0, 1))`` named ``conv.1.pad``; stride 1 is padded by 1 on
every side either way).
"""

from __future__ import annotations

from .base import Module, Pass, Sequential, join
from .conv import Conv2d
from .pad import ZeroPad2d
from .relu6 import ReLU6
from .residual import Add

PADDINGS = ("symmetric", "tf_same")


def conv_relu6(in_channels, out_channels, kernel_size=3, stride=1, groups=1, padding="symmetric") -> Sequential:
    """torchvision's Conv2dNormActivation with the BatchNorm folded: "0" the convolution, "2" its ReLU6.

    A 3x3 convolution pads 1 on every side, except with ``padding="tf_same"`` and
    stride 2, where a ZeroPad2d((0, 1, 0, 1)) named "pad" comes first.
    """
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {', '.join(PADDINGS)}; got {padding!r}")
    children = []
    p = (kernel_size - 1) // 2
    if padding == "tf_same" and stride == 2 and kernel_size == 3:
        children.append(("pad", ZeroPad2d((0, 1, 0, 1))))
        p = 0
    children += [("0", Conv2d(in_channels, out_channels, kernel_size, stride, p, groups=groups)),
                 ("2", ReLU6())]
    return Sequential(children)


class InvertedResidual(Module):
    """Expand (1x1, ReLU6), depthwise (3x3, ReLU6), project (1x1, linear), plus x when shapes allow."""

    def __init__(self, in_channels, out_channels, stride=1, expand_ratio=6, padding="symmetric"):
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.stride, self.expand_ratio, self.padding = int(stride), int(expand_ratio), str(padding)
        if self.stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2; got {stride!r}")
        hidden = self.in_channels * self.expand_ratio
        layers = []
        if self.expand_ratio != 1:
            layers.append(conv_relu6(self.in_channels, hidden, 1))
        layers.append(conv_relu6(hidden, hidden, 3, self.stride, groups=hidden, padding=self.padding))
        layers.append(Conv2d(hidden, self.out_channels, 1))
        self.conv = Sequential([(str(i), layer) for i, layer in enumerate(layers)])
        self.use_residual = self.stride == 1 and self.in_channels == self.out_channels
        self.add = Add() if self.use_residual else None

    def spec(self):
        return {"type": "InvertedResidual", "in_channels": self.in_channels, "out_channels": self.out_channels,
                "stride": self.stride, "expand_ratio": self.expand_ratio, "padding": self.padding}

    def children(self):
        return [("conv", self.conv)] + ([("add", self.add)] if self.use_residual else [])

    def run_forward(self, x, run: Pass, path: str):
        h = self.conv.run_forward(x, run, join(path, "conv"))
        if self.use_residual:
            h = self.add.run_forward((h, x), run, join(path, "add"))
        return run.record_output(path, h)

    def run_backward(self, dout, run: Pass, path: str):
        run.record_gradient(path, dout)
        if not self.use_residual:
            return self.conv.run_backward(dout, run, join(path, "conv"))
        dh, dx_shortcut = self.add.run_backward(dout, run, join(path, "add"))
        dx = self.conv.run_backward(dh, run, join(path, "conv"))     # a new array of the first layer's: no copy
        dx += dx_shortcut
        return dx

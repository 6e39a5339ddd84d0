"""Residual connections: the addition, the CIFAR "option A" shortcut, the BasicBlock.

Addition: out = a + b, so d(out)/da = d(out)/db = I and the gradient fans out
unchanged to both branches: da = db = dout. Where the branches met at the
block's input, their gradients add back: dx = dx_main + dx_shortcut.

Option A shortcut (He et al. 2015, CIFAR ResNets): keep every second pixel and
pad the channels with zeros, p = planes // 4 on each side:

    out = zero_pad_channels(x[:, :, ::2, ::2], p)       (N, C + 2p, H/2, W/2)
    dx[:, :, ::2, ::2] = dout[:, p:p + C];  dx = 0 elsewhere

BasicBlock (as in the CIFAR ResNet checkpoints, names as their module paths):

    out = relu(bn2(conv2(relu1(bn1(conv1(x))))) + shortcut(x))
"""

from __future__ import annotations

import numpy as np

from .activation import ReLU
from .base import Identity, Layer, Module, Pass, join, run_chain
from .conv import Conv2d
from .norm import BatchNorm2d


class Add(Layer):
    """out = a + b for the pair x = (a, b); backward: (da, db) = (dout, dout)."""

    def forward(self, x):
        a, b = x
        return a + b, None

    def backward(self, dout, cache, param_grads=False, relu="plain"):
        return (dout, dout), {}


def option_a_forward(x, pad_channels, stride=2):
    """x (N, C, H, W) -> (N, C + 2p, ceil(H/s), ceil(W/s)): subsample, then zero channels both sides."""
    sub = x[:, :, ::stride, ::stride]
    n, c, h, w = sub.shape
    out = np.zeros((n, c + 2 * pad_channels, h, w), dtype=x.dtype)
    out[:, pad_channels:pad_channels + c] = sub
    return out


def option_a_backward(dout, x_shape, pad_channels, stride=2):
    """dx = 0 except dx[:, :, ::s, ::s] = dout[:, p:p + C] (the padded channels had no input)."""
    c = x_shape[1]
    dx = np.zeros(x_shape, dtype=dout.dtype)
    dx[:, :, ::stride, ::stride] = dout[:, pad_channels:pad_channels + c]
    return dx


class OptionAShortcut(Layer):
    """The parameter-free CIFAR ResNet shortcut: x[:, :, ::2, ::2] then channel zero-padding."""

    def __init__(self, pad_channels, stride=2):
        super().__init__()
        self.pad_channels, self.stride = int(pad_channels), int(stride)

    def config(self):
        return {"pad_channels": self.pad_channels, "stride": self.stride}

    def forward(self, x):
        return option_a_forward(x, self.pad_channels, self.stride), x.shape

    def backward(self, dout, cache, param_grads=False, relu="plain"):
        return option_a_backward(dout, cache, self.pad_channels, self.stride), {}


class BasicBlock(Module):
    """Two 3x3 conv-BN pairs with a ReLU between, plus a shortcut, then a ReLU.

    Children (addressable names): conv1, bn1, relu1, conv2, bn2, shortcut, add, relu.
    The block's own name ("layer3.2") addresses its output, that of ``relu``.
    """

    main = ("conv1", "bn1", "relu1", "conv2", "bn2")

    def __init__(self, in_planes, planes, stride=1, shortcut="A"):
        self.in_planes, self.planes, self.stride = int(in_planes), int(planes), int(stride)
        self.shortcut_kind = shortcut
        self.conv1 = Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = BatchNorm2d(planes)
        self.relu1 = ReLU()
        self.conv2 = Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = BatchNorm2d(planes)
        if stride != 1 or in_planes != planes:
            if shortcut != "A":
                raise ValueError(f"only the option A shortcut is implemented, got {shortcut!r}")
            self.shortcut = OptionAShortcut(planes // 4, stride)
        else:
            self.shortcut = Identity()
        self.add = Add()
        self.relu = ReLU()

    def spec(self):
        return {"type": "BasicBlock", "in_planes": self.in_planes, "planes": self.planes,
                "stride": self.stride, "shortcut": self.shortcut_kind}

    def children(self):
        return [(name, getattr(self, name)) for name in (*self.main, "shortcut", "add", "relu")]

    def run_forward(self, x, run: Pass, path: str):
        h = run_chain([(name, getattr(self, name)) for name in self.main], x, run, path)
        s = self.shortcut.run_forward(x, run, join(path, "shortcut"))
        if run.keep or run.replace:
            out = self.add.run_forward((h, s), run, join(path, "add"))
            out = self.relu.run_forward(out, run, join(path, "relu"))
        else:                                          # nothing kept: h is bn2's own output, free to overwrite
            out = np.maximum(np.add(h, s, out=h), 0, out=h)
        return run.record_output(path, out)

    def run_backward(self, dout, run: Pass, path: str):
        run.record_gradient(path, dout)
        d = self.relu.run_backward(dout, run, join(path, "relu"))
        dh, ds = self.add.run_backward(d, run, join(path, "add"))
        for name in reversed(self.main):
            dh = getattr(self, name).run_backward(dh, run, join(path, name))
        return dh + self.shortcut.run_backward(ds, run, join(path, "shortcut"))

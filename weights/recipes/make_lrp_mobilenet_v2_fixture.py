"""Record zennit's LRP on a PyTorch twin of ``mobilenet_v2`` (torch and zennit needed here only).

The twin is built from minicnn's own architecture (``model.spec()``) and
shipped weights (``weights/mobilenet_v2.npz``: the BatchNorms are already
folded into the convolutions, so there is nothing to merge), in float64:
``nn.ZeroPad2d`` for TensorFlow's SAME padding, ``nn.ReLU6`` (zennit's
``Activation`` type, so its Pass rule), each inverted-residual block's
addition as zennit's ``Sum`` over the two summands stacked (what its
canonizers install in torchvision's residual blocks), ``nn.AdaptiveAvgPool2d``
(Norm) and the 1x1 classifier convolution (a convolution: z+ under
EpsilonPlus, as in minicnn). The relevance starts as y^c at the target logit.

One photo, ``pets.jpg``, resized to 64x64 (the network is fully convolutional
and SAME padding is exact for sides that are multiples of 32), keeps the
fixture small. Written, ``tests/fixtures/lrp_mobilenet_v2.npz`` (float32):

    x               (1, 3, 64, 64)  the network input (minicnn's preprocessing at size 64x64)
    logits, target  (1, 1001), (1,) target = the top-1 class
    lrp.<composite> (1, 3, 64, 64)  zennit's relevance at the input: epsilon, epsilon_plus,
                                    epsilon_gamma_box, epsilon_alpha2_beta1, epsilon_plus_flat
    sums.<composite> (B,)           the total relevance at the output of each layer of ``blocks``
                                    (the gradient zennit's modified pass leaves there), then at the input
    blocks          str (B - 1,)    those layers: features.0 ... features.18, avgpool, classifier
    info            uint8           UTF-8 JSON: versions, source, parameters

It also prints, for the full 224x224 photo, the relevance at the input / y^c
per composite (the numbers quoted in ``minicnn/explain/lrp.py``).

Usage (from the repository root)::

    PYTHONPATH=. /path/to/python weights/recipes/make_lrp_mobilenet_v2_fixture.py
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import OrderedDict
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

def torchvision_stand_in() -> None:
    """zennit imports two classes of torchvision's ResNet at import time; when torchvision is absent,
    a stand-in module with two empty nn.Module classes is put in sys.modules (zennit's ResNet canonizers,
    the only users, are not used here)."""
    import importlib.util
    import types
    if importlib.util.find_spec("torchvision") is not None:
        return
    resnet = types.ModuleType("torchvision.models.resnet")
    resnet.Bottleneck = type("Bottleneck", (nn.Module,), {})
    resnet.BasicBlock = type("BasicBlock", (nn.Module,), {})
    models = types.ModuleType("torchvision.models")
    models.resnet = resnet
    tv = types.ModuleType("torchvision")
    tv.models = models
    sys.modules.update({"torchvision": tv, "torchvision.models": models, "torchvision.models.resnet": resnet})


torchvision_stand_in()

from zennit.composites import (  # noqa: E402
    EpsilonAlpha2Beta1,
    EpsilonGammaBox,
    EpsilonPlus,
    EpsilonPlusFlat,
    LayerMapComposite,
    layer_map_base,
)
from zennit.layer import Sum  # noqa: E402
from zennit.rules import Epsilon  # noqa: E402
from zennit.types import Convolution  # noqa: E402

import minicnn  # noqa: E402
from minicnn.inputs.images import load_image  # noqa: E402
from minicnn.inputs.preprocess import preprocess  # noqa: E402
from minicnn.inputs.samples import data_path  # noqa: E402

PHOTO, SIZE = "pets.jpg", 64


def conv_relu6(cin, cout, k=3, stride=1, groups=1, padding="tf_same") -> nn.Sequential:
    """minicnn's conv_relu6: "pad" (tf_same, stride 2), "0" the convolution, "2" its ReLU6."""
    children, p = [], (k - 1) // 2
    if padding == "tf_same" and stride == 2 and k == 3:
        children.append(("pad", nn.ZeroPad2d((0, 1, 0, 1))))
        p = 0
    children += [("0", nn.Conv2d(cin, cout, k, stride, p, groups=groups)), ("2", nn.ReLU6())]
    return nn.Sequential(OrderedDict(children))


class InvertedResidual(nn.Module):
    """minicnn's block (names included), the addition as zennit's Sum; its output's gradient is kept."""

    def __init__(self, in_channels, out_channels, stride, expand_ratio, padding):
        super().__init__()
        hidden = in_channels * expand_ratio
        layers = [conv_relu6(in_channels, hidden, 1)] if expand_ratio != 1 else []
        layers.append(conv_relu6(hidden, hidden, 3, stride, groups=hidden, padding=padding))
        layers.append(nn.Conv2d(hidden, out_channels, 1))
        self.conv = nn.Sequential(OrderedDict((str(i), m) for i, m in enumerate(layers)))
        self.use_residual = stride == 1 and in_channels == out_channels
        if self.use_residual:
            self.add = Sum()

    def forward(self, x):
        h = self.conv(x)
        return self.add(torch.stack([h, x], dim=-1)) if self.use_residual else h


def build(spec):
    kind, kw = spec["type"], {k: v for k, v in spec.items() if k != "type"}
    if kind == "Sequential":
        return nn.Sequential(OrderedDict((name, build(child)) for name, child in kw["children"]))
    if kind == "Conv2d":
        return nn.Conv2d(**{k: tuple(v) if isinstance(v, list) else v for k, v in kw.items()})
    if kind == "ZeroPad2d":
        return nn.ZeroPad2d(tuple(kw["padding"]))
    if kind == "AdaptiveAvgPool2d":
        return nn.AdaptiveAvgPool2d(tuple(kw["output_size"]))
    return {"ReLU6": nn.ReLU6, "Flatten": nn.Flatten, "InvertedResidual": InvertedResidual}[kind](**kw)


def twin_of(model) -> nn.Module:
    net = build(model.spec()).eval()
    state = {k: torch.from_numpy(np.array(v)) for k, v in model.state_dict().items()}
    net.load_state_dict(state, strict=True)
    return net.double()


def blocks_of(net) -> list[tuple[str, nn.Module]]:
    return [(f"features.{i}", m) for i, m in enumerate(net.features)] + [("avgpool", net.avgpool),
                                                                         ("classifier", net.classifier)]


def lrp(net, x, target, composite):
    """(relevance at the input, [total relevance at each block's output]) from zennit's modified pass."""
    kept, handles = {}, []

    def keep(name):
        def hook(module, inputs, output):
            output.register_hook(lambda g: kept.__setitem__(name, float(g.sum())))
        return hook

    names = [name for name, _ in blocks_of(net)]
    with composite.context(net) as modified:
        for name, m in blocks_of(net):
            handles.append(m.register_forward_hook(keep(name)))
        try:
            xg = x.clone().requires_grad_(True)
            out = modified(xg)
            seed = torch.zeros_like(out)
            seed[0, target] = out[0, target].detach()          # R = y^c at the target logit
            relevance, = torch.autograd.grad(out, xg, seed)
        finally:
            for h in handles:
                h.remove()
    return relevance, np.array([kept[n] for n in names] + [float(relevance.sum())])


def composites(prep):
    mean = np.asarray(prep["mean"], np.float64)[None, :, None, None]
    std = np.asarray(prep["std"], np.float64)[None, :, None, None]
    low, high = torch.from_numpy(-mean / std), torch.from_numpy((1 - mean) / std)
    return {"epsilon": LayerMapComposite(layer_map=layer_map_base() + [(Convolution, Epsilon()),
                                                                       (nn.Linear, Epsilon())]),
            "epsilon_plus": EpsilonPlus(),
            "epsilon_gamma_box": EpsilonGammaBox(low=low, high=high),
            "epsilon_alpha2_beta1": EpsilonAlpha2Beta1(),
            "epsilon_plus_flat": EpsilonPlusFlat()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(ROOT / "tests" / "fixtures" / "lrp_mobilenet_v2.npz"))
    args = p.parse_args(argv)
    torch.set_grad_enabled(True)
    model = minicnn.load("mobilenet_v2")
    prep = model.meta["preprocessing"]
    net = twin_of(model)
    image = load_image(data_path("images", PHOTO))
    x32 = preprocess(image, {**prep, "size": [SIZE, SIZE]})
    x = torch.from_numpy(x32.astype(np.float64))
    with torch.no_grad():
        logits = net(x)
    assert np.allclose(logits.numpy(), model.astype(np.float64).forward(x.numpy()), rtol=1e-9, atol=1e-9)
    target = int(logits.argmax())
    out = {"x": x32, "logits": logits.numpy().astype(np.float32), "target": np.array([target], np.int64),
           "blocks": np.array([name for name, _ in blocks_of(net)])}
    for key, composite in composites(prep).items():
        relevance, sums = lrp(net, x, target, composite)
        out[f"lrp.{key}"] = relevance.numpy().astype(np.float32)
        out[f"sums.{key}"] = sums.astype(np.float32)
        print(f"{SIZE}x{SIZE} {key}: y^c = {float(logits[0, target]):.4f}, input / y^c = "
              f"{sums[-1] / float(logits[0, target]):.3g}")

    x224 = torch.from_numpy(preprocess(image, prep).astype(np.float64))
    with torch.no_grad():
        y224 = net(x224)
    t224 = int(y224.argmax())
    measured = {}
    for key, composite in composites(prep).items():
        _, sums = lrp(net, x224, t224, composite)
        measured[key] = (sums / float(y224[0, t224])).tolist()
        print(f"224x224 {key}: {model.classes[t224]!r} y^c = {float(y224[0, t224]):.4f}, per block / y^c: "
              + " ".join(f"{s:.3g}" for s in measured[key]))

    info = {"model": "mobilenet_v2", "weights": "weights/mobilenet_v2.npz", "torch": torch.__version__,
            "zennit": version("zennit"), "numpy": np.__version__, "dtype": "float64 (stored as float32)",
            "image": f"minicnn/data/images/{PHOTO}, minicnn's preprocessing at size {SIZE}x{SIZE}",
            "target": "top-1 class; LRP relevance starts as y^c at that logit",
            "composites": "zennit defaults: epsilon = stabilizer = 1e-6, gamma = 0.25; epsilon_gamma_box "
                          "bounds (0 - mean)/std, (1 - mean)/std",
            "twin": "from model.spec() and the shipped weights; ReLU6 (Pass), residual additions as "
                    "zennit.layer.Sum; no BatchNorm (folded in the shipped weights)",
            "measured_224": measured}
    out["info"] = np.frombuffer(json.dumps(info).encode(), np.uint8)
    np.savez_compressed(args.out, **out)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

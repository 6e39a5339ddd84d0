"""Record captum's and zennit's attributions for minicnn's tests (torch, captum and zennit needed here only).

For each shipped model given, this script builds a PyTorch twin from the
model's own architecture (``model.spec()``) and weights, in float64, and
writes ``tests/fixtures/attribution_<model>.npz`` (float32 arrays):

    x                          (2, 3, 32, 32)  the network input: shipped test images cat/0000, ship/0000
    logits, target             (2, 10), (2,)   target = the top-1 class of each image
    ig.<quadrature>            (1, 3, 32, 32)  captum IntegratedGradients on image 0, zero baseline,
                                               8 steps, for each of captum's five methods
    ig.<quadrature>.delta      (1,)            captum's convergence delta, sum(IG) - (y(x) - y(x'))
    ig.baseline.<b>            (1, 3, 32, 32)  8 steps of gausslegendre from the baselines
                                               "black", "blur" and "uniform" (minicnn's names)
    baseline.uniform           (1, 3, 32, 32)  the uniform-noise baseline used
    input_x_gradient           (2, 3, 32, 32)  captum InputXGradient
    deconvnet                  (2, 3, 32, 32)  captum Deconvolution
    noise                      (5, 1, 3, 32, 32)  the noise added to image 0 (samples, N, C, H, W)
    smoothgrad, smoothgrad_squared, vargrad    captum NoiseTunnel over Saliency(abs=False) with that noise
    smoothgrad.input_x_gradient                NoiseTunnel smoothgrad over InputXGradient, the same noise
    lrp.<composite>            (2, 3, 32, 32)  zennit: epsilon, epsilon_plus, epsilon_gamma_box,
                                               epsilon_alpha2_beta1, epsilon_plus_flat
    info                       uint8           UTF-8 JSON: versions, sources, parameters

The noise tunnel draws its noise inside captum; here that one function
(``NoiseTunnel._add_noise_to_input``) is replaced by one that adds the
recorded noise, so minicnn can be given the very same noise.

zennit's rules need the network in a canonical form. The twin's ReLUs are
``torch.nn.ReLU`` modules (so zennit's Pass rule and captum's deconvnet
hooks find them), the residual addition of each BasicBlock is zennit's
``Sum`` module over the two summands stacked (what zennit's
ResNetBasicBlockCanonizer installs in torchvision's blocks), and
``SequentialMergeBatchNorm`` merges every BatchNorm into the convolution
before it during the pass. One correction: zennit 0.5.1 turns the merged
BatchNorm into (x - 0) / sqrt(1 + eps) * 1 + 0, not quite the identity, so
with eps = 1e-5 every merged BatchNorm scales its output by 1 - 5e-6 and the
canonized ResNet-20 is not the network explained (its LRP-epsilon map moves
by 1.1e-2 of its largest value). ``ExactMergeBatchNorm`` below also sets
running_var = eps = 0.5, making it the identity, as later zennit releases do
(zennit pull request 240); everything else is zennit's. The LRP relevance
starts as y^c at the target logit (the output gradient is y^c e_c).
Composites, with zennit's defaults (epsilon = stabilizer = 1e-6, gamma = 0.25):

    epsilon            LayerMapComposite(layer_map_base() + [(Convolution, Epsilon()), (Linear, Epsilon())])
    epsilon_plus       EpsilonPlus()
    epsilon_gamma_box  EpsilonGammaBox(low, high), low/high = (0 - mean)/std, (1 - mean)/std per channel
    epsilon_alpha2_beta1, epsilon_plus_flat    EpsilonAlpha2Beta1(), EpsilonPlusFlat()

Usage (from the repository root)::

    PYTHONPATH=. /path/to/python weights/recipes/make_attribution_fixtures.py vgg_cifar10 resnet20_cifar10
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from importlib.metadata import version  # noqa: E402

import captum  # noqa: E402
import scipy  # noqa: E402
from captum.attr import Deconvolution, InputXGradient, IntegratedGradients, NoiseTunnel, Saliency  # noqa: E402
from captum.attr._core import noise_tunnel  # noqa: E402
from scipy.ndimage import gaussian_filter  # noqa: E402
from zennit.canonizers import SequentialMergeBatchNorm  # noqa: E402
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

SAMPLES = ["cat/0000.jpg", "ship/0000.jpg"]
QUADRATURES = ["riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre"]
STEPS = 8                             # enough to tell the quadratures apart, quick to test
NOISE_SAMPLES, NOISE_LEVEL, NOISE_SEED = 5, 0.15, 2026
UNIFORM_SEED = 7
BLUR_SIGMA = 3.2                      # minicnn's default for 32x32: a tenth of the longer side


# --------------------------------------------------------------------------- the twin

class OptionA(nn.Module):
    def __init__(self, pad_channels, stride):
        super().__init__()
        self.p, self.s = pad_channels, stride

    def forward(self, x):
        return F.pad(x[:, :, ::self.s, ::self.s], (0, 0, 0, 0, self.p, self.p))


class BasicBlock(nn.Module):
    """minicnn's BasicBlock; children registered in forward order, the addition as zennit's Sum."""

    def __init__(self, in_planes, planes, stride=1, shortcut="A"):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = OptionA(planes // 4, stride) if stride != 1 or in_planes != planes else nn.Identity()
        self.add = Sum()
        self.relu = nn.ReLU()

    def forward(self, x):
        h = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu(self.add(torch.stack([h, self.shortcut(x)], dim=-1)))


def build(spec):
    kind, kw = spec["type"], {k: v for k, v in spec.items() if k != "type"}
    if kind == "Sequential":
        return nn.Sequential(OrderedDict((name, build(child)) for name, child in kw["children"]))
    simple = {"Conv2d": nn.Conv2d, "MaxPool2d": nn.MaxPool2d, "AvgPool2d": nn.AvgPool2d,
              "AdaptiveAvgPool2d": nn.AdaptiveAvgPool2d, "Linear": nn.Linear, "Dropout": nn.Dropout,
              "BatchNorm2d": nn.BatchNorm2d, "Identity": nn.Identity}
    if kind in simple:
        return simple[kind](**{k: tuple(v) if isinstance(v, list) else v for k, v in kw.items()})
    others = {"ReLU": nn.ReLU, "Flatten": nn.Flatten, "BasicBlock": BasicBlock, "OptionAShortcut": OptionA}
    return others[kind](**kw)


def twin_of(model) -> nn.Module:
    net = build(model.spec()).eval()
    state = {k: torch.from_numpy(np.array(v)) for k, v in model.state_dict().items()}
    missing, unexpected = net.load_state_dict(state, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
    return net.double()


class ExactMergeBatchNorm(SequentialMergeBatchNorm):
    """zennit's merge, with the emptied BatchNorm made exactly the identity (var + eps = 0.5 + 0.5 = 1)."""

    def register(self, linears, batch_norm):
        self.eps = batch_norm.eps
        super().register(linears, batch_norm)
        batch_norm.running_var.data = torch.full_like(batch_norm.running_var.data, 0.5)
        batch_norm.eps = 0.5

    def remove(self):
        super().remove()
        self.batch_norm.eps = self.eps


# --------------------------------------------------------------------------- recording

def as64(a: np.ndarray) -> torch.Tensor:
    """float32 values as a float64 tensor: the stored float32 input is exactly what was run."""
    return torch.from_numpy(np.asarray(a, np.float32).astype(np.float64))


def numpy32(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy().astype(np.float32)


def with_noise(noise: torch.Tensor):
    """NoiseTunnel._add_noise_to_input replaced: add ``noise`` ((N * samples, ...), captum's order) instead."""
    def add(input, stdev, nt_samples_partition):
        assert noise.shape[0] == input.shape[0] * nt_samples_partition
        return input.repeat_interleave(nt_samples_partition, dim=0) + noise
    return staticmethod(add)


def lrp(net, x, target, composite) -> torch.Tensor:
    with composite.context(net) as modified:
        xg = x.clone().requires_grad_(True)
        out = modified(xg)
        seed = torch.zeros_like(out)
        rows = torch.arange(len(target))
        seed[rows, target] = out[rows, target].detach()          # R = y^c at the target logit
        relevance, = torch.autograd.grad(out, xg, seed)
    return relevance


def record(name: str) -> dict[str, np.ndarray]:
    model = minicnn.load(name)
    prep = model.meta["preprocessing"]
    net = twin_of(model)
    images = [load_image(ROOT / "minicnn" / "data" / "cifar10" / "test" / s) for s in SAMPLES]
    x32 = preprocess(images, prep)                                   # float32, as minicnn feeds the model
    x = as64(x32)
    with torch.no_grad():
        logits = net(x)
    target = logits.argmax(1)
    out = {"x": x32, "logits": numpy32(logits), "target": target.numpy().astype(np.int64)}
    x0, t0 = x[:1], target[:1]

    ig = IntegratedGradients(net)
    for q in QUADRATURES:
        attr, delta = ig.attribute(x0, baselines=torch.zeros_like(x0), target=t0, n_steps=STEPS, method=q,
                                   return_convergence_delta=True)
        out[f"ig.{q}"], out[f"ig.{q}.delta"] = numpy32(attr), numpy32(delta)
    mean = np.asarray(prep["mean"], np.float64)[None, :, None, None]
    std = np.asarray(prep["std"], np.float64)[None, :, None, None]
    low, high = -mean / std, (1 - mean) / std
    uniform = np.random.default_rng(UNIFORM_SEED).uniform(low, high, x0.shape).astype(np.float32)
    out["baseline.uniform"] = uniform
    baselines = {"black": torch.from_numpy(np.broadcast_to(low, x0.shape).copy()),
                 "blur": torch.from_numpy(gaussian_filter(x0.numpy(), sigma=(0, 0, BLUR_SIGMA, BLUR_SIGMA),
                                                          mode="reflect")),
                 "uniform": as64(uniform)}
    for b, x_prime in baselines.items():
        out[f"ig.baseline.{b}"] = numpy32(ig.attribute(x0, baselines=x_prime, target=t0, n_steps=STEPS,
                                                       method="gausslegendre"))

    out["input_x_gradient"] = numpy32(InputXGradient(net).attribute(x.clone(), target=target))
    out["deconvnet"] = numpy32(Deconvolution(net).attribute(x.clone(), target=target))

    sigma = NOISE_LEVEL * float(x0.max() - x0.min())
    noise = (np.random.default_rng(NOISE_SEED).standard_normal((NOISE_SAMPLES, *x0.shape)) * sigma).astype(np.float32)
    out["noise"] = noise
    captum_order = as64(noise.transpose(1, 0, 2, 3, 4).reshape(-1, *x0.shape[1:]))   # row n * samples + k
    saved = noise_tunnel.NoiseTunnel._add_noise_to_input
    noise_tunnel.NoiseTunnel._add_noise_to_input = with_noise(captum_order)
    try:
        tunnel = NoiseTunnel(Saliency(net))
        for key, nt_type in (("smoothgrad", "smoothgrad"), ("smoothgrad_squared", "smoothgrad_sq"),
                             ("vargrad", "vargrad")):
            out[key] = numpy32(tunnel.attribute(x0, nt_type=nt_type, nt_samples=NOISE_SAMPLES, stdevs=sigma,
                                                target=t0, abs=False))
        out["smoothgrad.input_x_gradient"] = numpy32(NoiseTunnel(InputXGradient(net)).attribute(
            x0, nt_type="smoothgrad", nt_samples=NOISE_SAMPLES, stdevs=sigma, target=t0))
    finally:
        noise_tunnel.NoiseTunnel._add_noise_to_input = saved

    canonizers = [ExactMergeBatchNorm()]
    composites = {
        "epsilon": LayerMapComposite(layer_map=layer_map_base() + [(Convolution, Epsilon()), (nn.Linear, Epsilon())],
                                     canonizers=canonizers),
        "epsilon_plus": EpsilonPlus(canonizers=canonizers),
        "epsilon_gamma_box": EpsilonGammaBox(low=torch.from_numpy(low), high=torch.from_numpy(high),
                                             canonizers=canonizers),
        "epsilon_alpha2_beta1": EpsilonAlpha2Beta1(canonizers=canonizers),
        "epsilon_plus_flat": EpsilonPlusFlat(canonizers=canonizers),
    }
    for key, composite in composites.items():
        out[f"lrp.{key}"] = numpy32(lrp(net, x, target, composite))
    with torch.no_grad(), composites["epsilon"].context(net) as merged:
        assert torch.allclose(merged(x), logits, rtol=1e-12, atol=0), "the merged network is not the network"

    info = {"model": name, "torch": torch.__version__, "captum": captum.__version__, "zennit": version("zennit"),
            "numpy": np.__version__, "scipy": scipy.__version__, "dtype": "float64 (stored as float32)",
            "images": [f"minicnn/data/cifar10/test/{s}" for s in SAMPLES], "steps": STEPS,
            "noise": {"samples": NOISE_SAMPLES, "noise_level": NOISE_LEVEL, "sigma": sigma, "seed": NOISE_SEED},
            "uniform_seed": UNIFORM_SEED, "blur_sigma": BLUR_SIGMA,
            "target": "top-1 class of each image; LRP relevance starts as y^c at that logit",
            "canonizers": "SequentialMergeBatchNorm made exact (ExactMergeBatchNorm); "
                          "residual sums as zennit.layer.Sum"}
    out["info"] = np.frombuffer(json.dumps(info).encode(), np.uint8)
    return {k: (v.astype(np.float32) if v.dtype == np.float64 else v) for k, v in out.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", help="shipped model names (vgg_cifar10, resnet20_cifar10)")
    p.add_argument("--out-dir", default=str(ROOT / "tests" / "fixtures"))
    args = p.parse_args(argv)
    torch.set_grad_enabled(True)
    for name in args.models:
        path = Path(args.out_dir) / f"attribution_{name}.npz"
        np.savez_compressed(path, **record(name))
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

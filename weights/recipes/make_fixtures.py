"""Record PyTorch's answers for minicnn's tests (PyTorch needed here, not in the tests).

For each model given, this script rebuilds the network in PyTorch by hand,
loads the original checkpoint, runs a few inputs and writes, into
``tests/fixtures/<name>_torch.npz``:

    <case>.x                 float32 (N, 3, H, W)   the network input (absent for the 224x224 photo)
    <case>.images            uint8 (N, H, W, 3)     the source images of the real inputs, if any
    <case>.logits            float32 (N, K)
    <case>.target            int64 (N,)             the class whose score is differentiated (top-1)
    <case>.input_grad        float32 (N, 3, H, W)   d(sum_n y[n, target[n]]) / dx
    <case>.act:<layer>       float32                the output of module <layer> (PyTorch path)
    <case>.grad:<layer>      float32                d(sum_n y[n, target[n]]) / d(that output)
    <case>.guided_input_grad float32 (N, 3, H, W)   the same backward pass with every ReLU's guided rule
                                                    dx = dout * (x > 0) * (dout > 0) (Guided Backprop)
    <case>.gradcam:<layer>   float32 (N, h, w)      Grad-CAM at the recorded gradient layer: ReLU(sum_k alpha_k A^k),
                                                    alpha_k = mean_ij dy^c/dA^k_ij (raw, not normalised)
    <case>.guided_gradcam:<layer> float32 (N, 3, H, W)  guided_input_grad * that map upsampled bilinearly to
                                                    (H, W) (F.interpolate, align_corners=False)
    info                     uint8                  UTF-8 JSON: sources, torch version, cases

Cases: "batch" (one random N(0, 1) input and shipped CIFAR-10 test images
for CIFAR models), "catdog" (a 32x64 cat|dog image, resnet20 only: it is
fully convolutional), and for the ImageNet-layout VGG "random64" (one
random 64x64 input) and "chelsea" (the shipped photo, resized as
torchvision's Resize(256) + CenterCrop(224)).

``--small-vgg`` also (re)makes the test checkpoints: a torchvision-layout
VGG-11 at reduced width (cfg [8, M, 16, M, 16, 16, M, 16, 16, M, 16, 16, M],
classifier 784-32-32-10), random weights, without and with BatchNorm:

    tests/fixtures/vgg11_small.pth         zip format, bare state_dict
    tests/fixtures/vgg11_bn_small.pth      legacy format, {"state_dict": ...}, "module." keys
    tests/fixtures/vgg11_small.npz         converted by minicnn
    tests/fixtures/vgg11_bn_small_folded.npz   converted by minicnn with --fold-bn

Usage (from the repository root)::

    python weights/recipes/make_fixtures.py --small-vgg \\
        --model resnet20_cifar10 resnet20 ../shared/checkpoints/resnet20-12fca82f.th \\
        --model vgg_cifar10 vgg_cifar vgg_cifar10.pth

The networks are written out here (torchvision is not needed): torchvision's
VGG layout (features.N, avgpool 7x7, classifier.0/3/6) and the CIFAR ResNet of
akamaster/pytorch_resnet_cifar10 (option A shortcuts). Two deliberate
differences from that repository's code, neither changing any number for a
32x32 input: ReLUs are not in-place and the residual sum is not in-place
(so recorded activations are not overwritten), and the final pooling is
global average pooling, where akamaster's ``F.avg_pool2d(out, out.size()[3])``
uses a square kernel as wide as the map, the same thing for square maps but
undefined for the 32x64 input. ReLUs are modules of the class ``ReLU`` below, which
switches to the guided backward rule while Guided Backprop is recorded.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "minicnn" / "data"
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SMALL_VGG_CFG = [8, "M", 16, "M", 16, 16, "M", 16, 16, "M", 16, 16, "M"]
SMALL_VGG_HIDDEN = 32
VGG_CONFIGS = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],
}
VGG_CIFAR_CFG = [32, 32, "M", 64, 64, "M", 128, 128, "M"]


# --------------------------------------------------------------------------- networks

class GuidedReLUFunction(torch.autograd.Function):
    """max(x, 0) whose backward is Guided Backprop's rule: dx = dout * (x > 0) * (dout > 0)."""

    @staticmethod
    def forward(ctx, x):
        out = x.clamp(min=0)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, dout):
        (out,) = ctx.saved_tensors
        return dout * (out > 0) * (dout > 0)


class ReLU(nn.ReLU):
    """nn.ReLU (not in place); with ``guided = True`` its backward follows the guided rule."""

    guided = False

    def forward(self, x):
        return GuidedReLUFunction.apply(x) if self.guided else F.relu(x)


class OptionA(nn.Module):
    """x[:, :, ::2, ::2], then planes // 4 zero channels on each side."""

    def __init__(self, planes: int):
        super().__init__()
        self.pad = planes // 4

    def forward(self, x):
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = OptionA(planes) if stride != 1 or in_planes != planes else nn.Sequential()
        self.relu1, self.relu = ReLU(), ReLU()

    def forward(self, x):
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNetCifar(nn.Module):
    """ResNet-20 (three stages of three blocks: 16, 32, 64 channels)."""

    def __init__(self, num_blocks=(3, 3, 3), num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = ReLU()
        in_planes = 16
        for i, (planes, stride) in enumerate([(16, 1), (32, 2), (64, 2)]):
            blocks = []
            for j in range(num_blocks[i]):
                blocks.append(BasicBlock(in_planes, planes, stride if j == 0 else 1))
                in_planes = planes
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.linear = nn.Linear(64, num_classes)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def make_features(cfg, batch_norm: bool) -> nn.Sequential:
    layers, c = [], 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers.append(nn.Conv2d(c, v, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(v))
            layers.append(ReLU())
            c = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """torchvision's VGG layout: features, avgpool (7x7), flatten, classifier.0 .. classifier.6."""

    def __init__(self, cfg, batch_norm: bool, hidden=(4096, 4096), num_classes: int = 1000):
        super().__init__()
        self.features = make_features(cfg, batch_norm)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        c = [v for v in cfg if v != "M"][-1]
        self.classifier = nn.Sequential(
            nn.Linear(c * 49, hidden[0]), ReLU(), nn.Dropout(0.5),
            nn.Linear(hidden[0], hidden[1]), ReLU(), nn.Dropout(0.5),
            nn.Linear(hidden[1], num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class VGGCifar(nn.Module):
    """The shipped CIFAR VGG (weights/recipes/train_vgg_cifar10.py): features, flatten, classifier 2048-256-10."""

    def __init__(self, batch_norm: bool = True, num_classes: int = 10):
        super().__init__()
        self.features = make_features(VGG_CIFAR_CFG, batch_norm)
        self.classifier = nn.Sequential(nn.Linear(128 * 16, 256), ReLU(), nn.Dropout(0.5),
                                        nn.Linear(256, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


def build(arch: str, state: dict) -> nn.Module:
    """The PyTorch network for ``arch`` with widths read off ``state``."""
    has_bn = any(k.endswith("running_mean") for k in state)
    if arch == "resnet20":
        return ResNetCifar(num_classes=state["linear.weight"].shape[0])
    if arch == "vgg_cifar":
        return VGGCifar(has_bn, state["classifier.3.weight"].shape[0])
    base = arch.removesuffix("_bn")
    cfg, i = [], 0
    for v in VGG_CONFIGS[base]:
        if v == "M":
            cfg.append("M")
            i += 1
        else:
            cfg.append(state[f"features.{i}.weight"].shape[0])
            i += 3 if has_bn else 2
    hidden = (state["classifier.0.weight"].shape[0], state["classifier.3.weight"].shape[0])
    return VGG(cfg, has_bn, hidden, state["classifier.6.weight"].shape[0])


def load_checkpoint(path) -> dict:
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_into(net: nn.Module, state: dict) -> nn.Module:
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        sys.exit(f"checkpoint does not fit: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return net.eval()


# --------------------------------------------------------------------------- inputs

def read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def normalise(images: np.ndarray) -> torch.Tensor:
    """ToTensor + Normalize: (N, H, W, 3) uint8 -> (N, 3, H, W) float32 (x / 255 - mean) / std."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255)
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def resize_crop(img: np.ndarray, shorter: int = 256, crop: int = 224) -> np.ndarray:
    """torchvision Resize(256) + CenterCrop(224) on a PIL image (bilinear)."""
    h, w = img.shape[:2]
    new_h, new_w = (int(shorter * h / w), shorter) if w <= h else (shorter, int(shorter * w / h))
    img = np.asarray(Image.fromarray(img).resize((new_w, new_h), Image.Resampling.BILINEAR))
    top, left = int(round((new_h - crop) / 2.0)), int(round((new_w - crop) / 2.0))
    return np.ascontiguousarray(img[top:top + crop, left:left + crop])


CIFAR_SAMPLES = ["cat/0000.jpg", "ship/0000.jpg"]


def cifar_cases(arch: str) -> list[dict]:
    rng = np.random.default_rng(0)
    images = np.stack([read_rgb(DATA / "cifar10" / "test" / s) for s in CIFAR_SAMPLES])
    x = torch.cat([torch.from_numpy(rng.standard_normal((1, 3, 32, 32)).astype(np.float32)), normalise(images)])
    cases = [{"case": "batch", "x": x, "images": images,
              "sources": ["N(0, 1) random, numpy default_rng(0)"]
                         + [f"minicnn/data/cifar10/test/{s}" for s in CIFAR_SAMPLES]}]
    if arch == "resnet20":
        cat, dog = read_rgb(DATA / "cifar10/test/cat/0000.jpg"), read_rgb(DATA / "cifar10/test/dog/0000.jpg")
        catdog = np.concatenate([cat, dog], axis=1)[None]
        cases.append({"case": "catdog", "x": normalise(catdog), "images": catdog, "skip": ["layer1.0.conv1"],
                      "sources": ["cat/0000.jpg | dog/0000.jpg side by side (32x64)"]})
    return cases


def imagenet_cases() -> list[dict]:
    rng = np.random.default_rng(0)
    photo = resize_crop(read_rgb(DATA / "images" / "chelsea.png"))[None]
    return [
        {"case": "random64", "x": torch.from_numpy(rng.standard_normal((1, 3, 64, 64)).astype(np.float32)),
         "sources": ["N(0, 1) random 64x64, numpy default_rng(0)"]},
        {"case": "chelsea", "x": normalise(photo), "store_x": False, "input_grad": False, "skip": ["first pool"],
         "crop_channel_sums": photo.reshape(-1, 3).sum(0).astype(np.int64),
         "sources": ["minicnn/data/images/chelsea.png, Resize(256) + CenterCrop(224)"]},
    ]


# --------------------------------------------------------------------------- recording

def layers_to_record(arch: str, net: nn.Module) -> tuple[list[str], list[str]]:
    """(activation names, gradient names) for an architecture."""
    if arch == "resnet20":
        return ["layer1.0.conv1", "layer2.0", "layer3"], ["layer3"]
    names = [n for n, m in net.features.named_children()]
    relus = [f"features.{n}" for n in names if isinstance(net.features[int(n)], ReLU)]
    pools = [f"features.{n}" for n in names if isinstance(net.features[int(n)], nn.MaxPool2d)]
    if arch == "vgg_cifar":
        return [pools[1], relus[-1], "features", "classifier.1"], [relus[-1]]
    return [pools[0], relus[-1], "features", "avgpool", "classifier.1"], [relus[-1]]


def skipped(case: dict, acts: list[str]) -> list[str]:
    """The case's "skip" list with "first pool" resolved to a layer name."""
    return [acts[0] if s == "first pool" else s for s in case.get("skip", [])]


def guided_input_grad(net: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """d^guided(sum_n y[n, target[n]]) / dx: the backward pass with every ReLU's guided rule."""
    relus = [m for m in net.modules() if isinstance(m, ReLU)]
    for m in relus:
        m.guided = True
    try:
        x = x.clone().requires_grad_(True)
        net(x).gather(1, target[:, None]).sum().backward()
    finally:
        for m in relus:
            m.guided = False
    return x.grad


def gradcam_map(A: torch.Tensor, dA: torch.Tensor) -> torch.Tensor:
    """ReLU(sum_k alpha_k A^k) with alpha_k = mean_ij dA^k_ij: (N, K, h, w) twice -> (N, h, w)."""
    alpha = dA.mean(dim=(2, 3))
    return F.relu((alpha[:, :, None, None] * A).sum(dim=1))


def record(net: nn.Module, case: dict, acts: list[str], grads: list[str]) -> dict[str, np.ndarray]:
    modules = dict(net.named_modules())
    seen: dict[str, torch.Tensor] = {}
    hooks = [modules[n].register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, o)) for n in acts + grads]
    x = case["x"].clone().requires_grad_(True)
    logits = net(x)
    for h in hooks:
        h.remove()
    for n in grads:
        seen[n].retain_grad()
    target = logits.argmax(1)
    logits.gather(1, target[:, None]).sum().backward()
    c = case["case"]
    out = {f"{c}.logits": logits.detach().numpy(), f"{c}.target": target.numpy().astype(np.int64)}
    if case.get("store_x", True):
        out[f"{c}.x"] = case["x"].numpy()
    if case.get("input_grad", True):
        out[f"{c}.input_grad"] = x.grad.numpy()
        layer = grads[0]
        cam = gradcam_map(seen[layer].detach(), seen[layer].grad)
        guided = guided_input_grad(net, case["x"], target)
        heat = F.interpolate(cam[:, None], size=tuple(x.shape[2:]), mode="bilinear", align_corners=False)[:, 0]
        out[f"{c}.guided_input_grad"] = guided.numpy()
        out[f"{c}.gradcam:{layer}"] = cam.numpy()
        out[f"{c}.guided_gradcam:{layer}"] = (guided * heat[:, None]).numpy()
    if "images" in case:
        out[f"{c}.images"] = case["images"]
    if "crop_channel_sums" in case:
        out[f"{c}.crop_channel_sums"] = case["crop_channel_sums"]
    for n in acts:
        if n not in case.get("skip", []):  # big maps are kept for one case only (fixtures stay small)
            out[f"{c}.act:{n}"] = seen[n].detach().numpy()
    for n in grads:
        out[f"{c}.grad:{n}"] = seen[n].grad.numpy()
    return out


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_fixture(name: str, arch: str, checkpoint: Path, out_dir: Path) -> Path:
    state = load_checkpoint(checkpoint)
    net = load_into(build(arch, state), state)
    cases = cifar_cases(arch) if arch in ("resnet20", "vgg_cifar") else imagenet_cases()
    acts, grads = layers_to_record(arch, net)
    arrays = {}
    for case in cases:
        case["skip"] = skipped(case, acts)
        arrays.update(record(net, case, acts, grads))
    info = {"model": name, "arch": arch, "checkpoint": checkpoint.name, "checkpoint_sha256": sha256(checkpoint),
            "torch": torch.__version__, "cases": {c["case"]: c["sources"] for c in cases},
            "activations": acts, "gradients": grads,
            "guided": "guided_input_grad: every ReLU's backward dx = dout * (x > 0) * (dout > 0); "
                      f"gradcam and guided_gradcam at {grads[0]}, bilinear upsampling, align_corners=False",
            "target": "top-1 class of each input; gradients are of sum_n logits[n, target[n]]"}
    arrays["info"] = np.frombuffer(json.dumps(info).encode(), np.uint8)
    path = out_dir / f"{name}_torch.npz"
    np.savez_compressed(path, **arrays)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    return path


# --------------------------------------------------------------------------- the small test VGG

def randomise_batchnorm(net: nn.Module, gen: torch.Generator) -> None:
    """Non-trivial BN statistics, so that folding and keeping BN are really tested."""
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.normal_(0, 0.1, generator=gen)
                m.running_mean.normal_(0, 0.1, generator=gen)
                m.running_var.uniform_(0.5, 1.5, generator=gen)


def make_small_vgg(out_dir: Path) -> list[tuple[str, str, Path]]:
    sys.path.insert(0, str(ROOT))
    from minicnn.models.convert.pytorch import convert_checkpoint
    from minicnn.models.weights import save
    made = []
    for bn in (False, True):
        torch.manual_seed(11 if bn else 10)
        gen = torch.Generator().manual_seed(12)
        net = VGG(SMALL_VGG_CFG, bn, (SMALL_VGG_HIDDEN, SMALL_VGG_HIDDEN), 10).eval()
        randomise_batchnorm(net, gen)
        name = "vgg11_bn_small" if bn else "vgg11_small"
        path = out_dir / f"{name}.pth"
        if bn:  # the legacy format, wrapped, with DataParallel's prefix: what old training scripts wrote
            state = {f"module.{k}": v for k, v in net.state_dict().items()}
            torch.save({"state_dict": state, "epoch": 0}, path, _use_new_zipfile_serialization=False)
        else:
            torch.save(net.state_dict(), path)
        arch = "vgg11_bn" if bn else "vgg11"
        meta = {"name": name, "classes": [f"class{i}" for i in range(10)],
                "provenance": {"recipe": "weights/recipes/make_fixtures.py --small-vgg", "weights": "random"},
                "licence": "MIT (generated test data)"}
        model = convert_checkpoint(path, arch, fold_bn=bn, meta=meta)
        npz = out_dir / (f"{name}_folded.npz" if bn else f"{name}.npz")
        save(model, npz, force=True)
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB), {npz} ({npz.stat().st_size / 1024:.0f} KiB)")
        made.append((name, arch, path))
    return made


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", nargs=3, action="append", default=[], metavar=("NAME", "ARCH", "CHECKPOINT"),
                   help="a shipped model: its name, architecture (resnet20, vgg_cifar, vgg16, ...) and checkpoint")
    p.add_argument("--small-vgg", action="store_true", help="(re)make the small VGG test checkpoints")
    p.add_argument("--out-dir", default=str(ROOT / "tests" / "fixtures"))
    args = p.parse_args(argv)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_grad_enabled(True)
    jobs = [(n, a, Path(c)) for n, a, c in args.model]
    if args.small_vgg:
        jobs += make_small_vgg(out_dir)
    if not jobs:
        p.error("nothing to do: give --model NAME ARCH CHECKPOINT and/or --small-vgg")
    for name, arch, ckpt in jobs:
        write_fixture(name, arch, ckpt, out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())

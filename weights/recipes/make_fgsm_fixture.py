"""Record PyTorch's FGSM on the shipped CIFAR-10 models for minicnn's tests (torch needed here only).

For each model, a PyTorch twin is built from the model's own architecture and weights
(``minicnn.bench.twins.torch_twin``), and FGSM is computed the way a PyTorch user writes it:

    p.requires_grad_(); L = cross_entropy(twin((p - mean) / std), y, reduction="sum"); L.backward()
    untargeted  p' = (p + eps * p.grad.sign()).clamp(0, 1)         y = the twin's top-1 class
    targeted    p' = (p - eps * p.grad.sign()).clamp(0, 1)         y = the target class

Written to ``tests/fixtures/fgsm_cifar10.npz`` (per model M in vgg_cifar10, resnet20_cifar10):

    pixels                 (2, 3, 32, 32) float32   shipped test images / 255: cat/0000, ship/0000
    M.labels, M.targets    (2,) int64               the twin's top-1 classes; the targets (label + 3) mod 10
    M.grad64               (2, 3, 32, 32) float32   dL/dp for the labels, the twin in float64 (stored rounded)
    M.grad64_targeted      (2, 3, 32, 32) float32   dL/dp for the targets, the twin in float64 (stored rounded)
    M.adv, M.adv_targeted  (2, 3, 32, 32) float32   the float32 twin's FGSM images, untargeted and targeted
    info                   uint8                    UTF-8 JSON: versions, epsilon, images

Usage (from the repository root)::

    PYTHONPATH=. /path/to/python weights/recipes/make_fgsm_fixture.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import minicnn  # noqa: E402
from minicnn.bench.twins import torch_twin  # noqa: E402
from minicnn.inputs.images import load_image  # noqa: E402

SAMPLES = ["cat/0000.jpg", "ship/0000.jpg"]
EPSILON = 8 / 255
MODELS = ["vgg_cifar10", "resnet20_cifar10"]


def fgsm(twin, pixels, classes, mean, std, sign):
    p = pixels.clone().requires_grad_(True)
    loss = F.cross_entropy(twin((p - mean) / std), classes, reduction="sum")
    (grad,) = torch.autograd.grad(loss, p)
    return grad, (pixels + sign * EPSILON * grad.sign()).clamp(0, 1)


def main() -> None:
    images = [load_image(ROOT / "minicnn" / "data" / "cifar10" / "test" / s) for s in SAMPLES]
    pixels = np.stack(images).transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255)
    out = {"pixels": pixels}
    for name in MODELS:
        model = minicnn.load(name)
        prep = model.meta["preprocessing"]
        twin = torch_twin(model, torch)
        results = {}
        for dtype in (torch.float32, torch.float64):
            net = twin.to(dtype)
            mean = torch.tensor(prep["mean"], dtype=dtype).reshape(1, 3, 1, 1)
            std = torch.tensor(prep["std"], dtype=dtype).reshape(1, 3, 1, 1)
            p = torch.from_numpy(pixels).to(dtype)
            with torch.no_grad():
                labels = net((p - mean) / std).argmax(1)
            targets = (labels + 3) % 10
            results[dtype] = (labels, targets, fgsm(net, p, labels, mean, std, +1),
                              fgsm(net, p, targets, mean, std, -1))
        labels, targets, (_, adv), (_, adv_t) = results[torch.float32]
        labels64, _, (g64, _), (g64_t, _) = results[torch.float64]
        assert torch.equal(labels, labels64)
        out.update({f"{name}.labels": labels.numpy(), f"{name}.targets": targets.numpy(),
                    f"{name}.grad64": g64.numpy().astype(np.float32),
                    f"{name}.grad64_targeted": g64_t.numpy().astype(np.float32),
                    f"{name}.adv": adv.numpy(), f"{name}.adv_targeted": adv_t.numpy()})
    info = {"torch": torch.__version__, "epsilon": "8/255", "images": SAMPLES, "models": MODELS,
            "loss": "cross_entropy, reduction=sum", "recipe": "weights/recipes/make_fgsm_fixture.py"}
    out["info"] = np.frombuffer(json.dumps(info).encode(), np.uint8)
    path = ROOT / "tests" / "fixtures" / "fgsm_cifar10.npz"
    np.savez_compressed(path, **out)
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()

"""Record TorchRay's Excitation Backprop and contrastive MWP (PyTorch needed here, not in the tests).

For each shipped CIFAR-10 model this script builds its PyTorch twin (same
architecture, names and weights: ``minicnn.bench.torch_twin``), runs three
shipped test images through TorchRay 1.0.0.2's ``excitation_backprop`` and
``contrastive_excitation_backprop`` and writes
``tests/fixtures/excitation_<model>.npz``:

    x                              float32 (N, 3, 32, 32)  the network input (minicnn's preprocessing)
    targets                        int64 (N,)              the class explained in each image
    logits                         float32 (N, 10)         PyTorch's scores
    <layer>:excitation             float32 (N, h, w)       TorchRay's map: sum over channels of the MWP
                                                           at the layer's output (no resizing)
    <layer>:contrastive            float32 (N, h, w)       TorchRay's contrastive map, contrast layer = layer
    <layer>:contrastive@<above>    float32 (N, h, w)       the same with TorchRay's contrast layer further up
                                                           (equal in exact arithmetic: every rule is linear in P)
    info                           uint8                   UTF-8 JSON: versions, images, layers, notes

Images: cat 18, dog 1 and ship 0 of the shipped test images; targets 'cat',
'cat' (the dog explained for a runner-up class) and 'ship'.

TorchRay patches ``torch.nn.functional`` (conv, linear, average pooling,
batch norm) and its own ``eltwise_sum`` for residual additions, which it
wires into torchvision's ResNet blocks only; the twin's CIFAR BasicBlock is
given the same addition here (``out = relu(eltwise_sum(h, shortcut(x)))``).
TorchRay imports ``torchvision.models.resnet`` for those classes; when
torchvision is not installed the script puts a stand-in first on
``sys.path`` whose classes nothing here instantiates.

TorchRay is pure Python (licence CC BY-NC 4.0: used to record numbers, not
shipped). Usage, from the repository root, in an environment with torch
2.13 and TorchRay importable (``pip install --no-deps torchray==1.0.0.2``,
or its unpacked sdist on ``PYTHONPATH``)::

    python weights/recipes/make_excitation_fixtures.py [--out-dir tests/fixtures]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import minicnn  # noqa: E402
from minicnn.bench.twins import torch_twin  # noqa: E402
from minicnn.inputs.preprocess import preprocess  # noqa: E402
from minicnn.inputs.samples import load_sample  # noqa: E402

#: {model: ((saliency layer, a contrast layer above it), ...)}
MODELS = {"resnet20_cifar10": (("layer3", "layer3"), ("layer2", "layer3")),
          "vgg_cifar10": (("features.19", "features.19"), ("features.12", "features.19"))}
IMAGES = (("cat", 18), ("dog", 1), ("ship", 0))
TARGETS = ("cat", "cat", "ship")

STAND_IN = {
    "torchvision/__init__.py": "from . import models\n",
    "torchvision/models/__init__.py": "from . import resnet\n",
    "torchvision/models/resnet.py": "class ResNet:\n    pass\n\n\nclass Bottleneck:\n    pass\n\n\n"
                                    "class BasicBlock:\n    pass\n",
}


def import_torchray(workdir: Path):
    """torchray.attribution.excitation_backprop, with a stand-in torchvision when the real one is absent."""
    if importlib.util.find_spec("torchvision") is None:
        for rel, text in STAND_IN.items():
            path = workdir / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        sys.path.insert(0, str(workdir))
    from torchray.attribution import excitation_backprop
    return excitation_backprop


def with_eltwise_sum(net, ebp):
    """The twin's BasicBlocks add through TorchRay's ``eltwise_sum`` (looked up at call time: it is patched)."""
    def block_forward(self, x):
        h = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu(ebp.eltwise_sum(h, self.shortcut(x)))
    for module in net.modules():
        if type(module).__name__ == "BasicBlock":
            module.forward = block_forward.__get__(module)
    return net


def write_fixture(ebp, model_name: str, out_dir: Path) -> Path:
    model = minicnn.load(model_name)
    net = with_eltwise_sum(torch_twin(model, torch), ebp)
    x = preprocess([load_sample(c, i) for c, i in IMAGES], model.meta["preprocessing"])
    targets = np.array([model.classes.index(t) for t in TARGETS], dtype=np.int64)
    xt = torch.from_numpy(x)
    with torch.no_grad():
        logits = net(xt).numpy()
    arrays = {"x": x, "targets": targets, "logits": logits}
    for layer, above in MODELS[model_name]:
        arrays[f"{layer}:excitation"] = ebp.excitation_backprop(
            net, xt.clone(), targets.tolist(), saliency_layer=layer).detach().numpy()[:, 0]
        for contrast in dict.fromkeys((layer, above)):
            key = f"{layer}:contrastive" + ("" if contrast == layer else f"@{contrast}")
            arrays[key] = ebp.contrastive_excitation_backprop(
                net, xt.clone(), targets.tolist(), saliency_layer=layer, contrast_layer=contrast).detach().numpy()[:, 0]
    info = {"model": model_name, "torch": torch.__version__, "torchray": _dist_version("torchray") or "1.0.0.2",
            "images": [f"minicnn/data/cifar10/test/{c}/{i:04d}.jpg" for c, i in IMAGES], "targets": list(TARGETS),
            "layers": [list(pair) for pair in MODELS[model_name]],
            "maps": "TorchRay's saliency at the layer's output, not resized: excitation = sum over channels of the "
                    "MWP; contrastive = max(sum over channels of P_c - P_dual, 0), classifier found by TorchRay"}
    arrays["info"] = np.frombuffer(json.dumps(info).encode(), np.uint8)
    path = out_dir / f"excitation_{model_name}.npz"
    np.savez_compressed(path, **arrays)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    return path


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out-dir", default=str(ROOT / "tests" / "fixtures"))
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    args = p.parse_args(argv)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_grad_enabled(True)
    with tempfile.TemporaryDirectory() as workdir:
        ebp = import_torchray(Path(workdir))
        for name in args.models:
            write_fixture(ebp, name, out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())

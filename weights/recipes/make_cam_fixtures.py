"""Record pytorch-grad-cam's numbers for the CAM family (PyTorch needed here, not in the tests).

For each shipped CIFAR-10 model this script builds its PyTorch twin (the
same architecture, names and weights: ``minicnn.bench.torch_twin``), runs
three shipped test images through it and writes
``tests/fixtures/cam_family_<model>.npz``:

    x                         float32 (N, 3, 32, 32)  the network input (minicnn's preprocessing)
    targets                   int64 (N,)              the class explained in each image
    logits                    float32 (N, 10)         PyTorch's scores
    <layer>:<method>.weights  float32 (N, K)          channel weights w_k, where the method has them
    <layer>:<method>.map      float32 (N, h, w)       the raw map sum_k w_k A^k (or its element-wise
                                                      form), before the final ReLU and before any
                                                      normalisation or resizing
    fullgrad.map              float32 (N, 32, 32)     pytorch-grad-cam's FullGrad output
    info                      uint8                   UTF-8 JSON: versions, images, layers, notes

Where the library computes its raw map inside a call that also applies
ReLU, normalises and resizes (every BaseCAM), the script records A and
g = dy^c/dA itself (forward hook, ``retain_grad``) and feeds them to the
library's own weight function (``get_cam_weights``) or map function
(``get_cam_image``), so the fixture holds the library's raw numbers:

    gradcam_plus_plus         GradCAMPlusPlus.get_cam_weights (its eps 1e-6 included)
    xgradcam                  XGradCAM.get_cam_weights (its eps 1e-7 included)
    hirescam, layercam        HiResCAM / LayerCAM.get_cam_image
    eigencam, eigengradcam    get_2d_projection_with_sign_correction(A) and of g * A
                              (.map); .map_unsigned is get_2d_projection, what the
                              library's EigenCAM / EigenGradCAM classes use (sign as the SVD gives it)
    scorecam_pytorch_grad_cam ScoreCAM.get_cam_weights (runs the masked forwards itself)
    ablationcam               AblationCAM.get_cam_weights (runs the ablated forwards itself)
    scorecam                  the authors' definition, transcribed below from their released
                              code (haofanwang/Score-CAM, cam/scorecam.py): .weights and
                              .map_upsampled (N, 32, 32), sum_k alpha_k upsample(A^k) before
                              its ReLU and min-max scaling

Images: cat 18, dog 1 and ship 0 of the shipped test images; targets 'cat',
'cat' (the dog explained for the cat: a runner-up class, so weights of both
signs appear) and 'ship'.

pytorch-grad-cam imports a few names from torchvision at import time
(``torchvision.transforms`` in its image utilities). When torchvision is
not installed, the script puts a stand-in package first on ``sys.path``
that provides those names and raises if any of them is called; none is
used here.

Usage (from the repository root, with torch 2.13 and grad-cam 1.5.7)::

    python weights/recipes/make_cam_fixtures.py [--out-dir tests/fixtures]
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
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import minicnn  # noqa: E402
from minicnn.bench import torch_twin  # noqa: E402
from minicnn.inputs.preprocess import preprocess  # noqa: E402
from minicnn.inputs.samples import load_sample  # noqa: E402

MODELS = {"resnet20_cifar10": ("layer3", "layer2"), "vgg_cifar10": ("features.19", "features.12")}
IMAGES = (("cat", 18), ("dog", 1), ("ship", 0))
TARGETS = ("cat", "cat", "ship")

STAND_IN = {
    "torchvision/__init__.py": "from . import transforms\n",
    "torchvision/transforms/__init__.py": (
        "def _absent(*args, **kwargs):\n"
        "    raise RuntimeError('torchvision stand-in: the fixture recording does not use this')\n"
        "Compose = Normalize = ToTensor = Resize = _absent\n"),
    "torchvision/transforms/functional.py": "from . import _absent as resize\n",
}


def import_pytorch_grad_cam(workdir: Path):
    """pytorch_grad_cam, with a stand-in torchvision first on sys.path when the real one is absent."""
    if importlib.util.find_spec("torchvision") is None:
        for rel, text in STAND_IN.items():
            path = workdir / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        sys.path.insert(0, str(workdir))
    import pytorch_grad_cam
    return pytorch_grad_cam


# ---------------------------------------------------------------- Score-CAM, as the authors' code computes it

def authors_scorecam(net, module, x, c):
    """One image x (1, C, H, W), class c: (alpha (K,), sum_k alpha_k upsample(A^k) (H, W) before the ReLU).

    For each map k: upsample bilinearly (align_corners=False) to the input
    size; skip a constant map; scale to [0, 1]; alpha_k = softmax(net(x * mask))[c];
    add alpha_k times the upsampled (unscaled) map.
    """
    kept = {}
    hook = module.register_forward_hook(lambda m, i, out: kept.__setitem__("A", out.detach()))
    with torch.no_grad():
        net(x)
    hook.remove()
    A = kept["A"]
    k, (h, w) = A.shape[1], x.shape[2:]
    alpha, total = torch.zeros(k), torch.zeros((h, w))
    with torch.no_grad():
        for i in range(k):
            up = F.interpolate(A[:, i:i + 1], size=(h, w), mode="bilinear", align_corners=False)
            if up.max() == up.min():
                continue
            mask = (up - up.min()) / (up.max() - up.min())
            alpha[i] = F.softmax(net(x * mask), dim=1)[0, c]
            total += alpha[i] * up[0, 0]
    return alpha.numpy(), total.numpy()


# ---------------------------------------------------------------- recording

def layer_and_gradient(net, module, x, targets):
    """A and g = d(sum_n y[n, t_n])/dA at ``module``'s output, as NumPy float32."""
    kept = {}

    def keep(m, inputs, out):
        out.retain_grad()
        kept["A"] = out

    hook = module.register_forward_hook(keep)
    xt = x.clone().requires_grad_(True)             # so that A is part of a graph (the twin's weights are frozen)
    logits = net(xt)
    hook.remove()
    logits.gather(1, torch.as_tensor(targets)[:, None]).sum().backward()
    return kept["A"].detach().numpy(), kept["A"].grad.numpy()


def channel_map(weights, A):
    return np.einsum("nk,nkij->nij", weights, A).astype(np.float32)


def record_layer(gc, net, name, x, targets) -> dict[str, np.ndarray]:
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection, get_2d_projection_with_sign_correction
    module = net.get_submodule(name)
    A, g = layer_and_gradient(net, module, x, targets)
    out = {}
    for key, cls in (("gradcam_plus_plus", gc.GradCAMPlusPlus), ("xgradcam", gc.XGradCAM)):
        with cls(net, [module]) as cam:
            w = cam.get_cam_weights(x, module, None, A, g)
        out[f"{name}:{key}.weights"], out[f"{name}:{key}.map"] = w.astype(np.float32), channel_map(w, A)
    for key, cls in (("hirescam", gc.HiResCAM), ("layercam", gc.LayerCAM)):
        with cls(net, [module]) as cam:
            out[f"{name}:{key}.map"] = np.float32(cam.get_cam_image(x, module, None, A, g, False))
    for key, M in (("eigencam", A), ("eigengradcam", g * A)):
        out[f"{name}:{key}.map"] = get_2d_projection_with_sign_correction(M)
        out[f"{name}:{key}.map_unsigned"] = get_2d_projection(M)
    chosen = [ClassifierOutputTarget(int(c)) for c in targets]
    with gc.ScoreCAM(net, [module]) as cam:
        w = cam.get_cam_weights(x, module, chosen, A, None)
    out[f"{name}:scorecam_pytorch_grad_cam.weights"] = w.astype(np.float32)
    out[f"{name}:scorecam_pytorch_grad_cam.map"] = channel_map(w, A)
    with gc.AblationCAM(net, [module]) as cam:
        w = cam.get_cam_weights(x, module, chosen, A, None)
    out[f"{name}:ablationcam.weights"], out[f"{name}:ablationcam.map"] = w.astype(np.float32), channel_map(w, A)
    alphas, maps = zip(*(authors_scorecam(net, module, x[i:i + 1], int(c)) for i, c in enumerate(targets)))
    out[f"{name}:scorecam.weights"] = np.stack(alphas).astype(np.float32)
    out[f"{name}:scorecam.map"] = channel_map(np.stack(alphas), A)
    out[f"{name}:scorecam.map_upsampled"] = np.stack(maps).astype(np.float32)
    return out


def write_fixture(gc, model_name: str, out_dir: Path) -> Path:
    model = minicnn.load(model_name)
    net = torch_twin(model, torch)
    x = preprocess([load_sample(c, i) for c, i in IMAGES], model.meta["preprocessing"])
    targets = np.array([model.classes.index(t) for t in TARGETS], dtype=np.int64)
    xt = torch.from_numpy(x)
    with torch.no_grad():
        logits = net(xt).numpy()
    arrays = {"x": x, "targets": targets, "logits": logits}
    for name in MODELS[model_name]:
        arrays.update(record_layer(gc, net, name, xt, targets))
    with gc.FullGrad(net, []) as cam:
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
        arrays["fullgrad.map"] = np.float32(cam(xt, [ClassifierOutputTarget(int(c)) for c in targets]))
    import pytorch_grad_cam
    info = {"model": model_name, "torch": torch.__version__,
            "pytorch_grad_cam": getattr(pytorch_grad_cam, "__version__", None) or _dist_version("grad-cam"),
            "images": [f"minicnn/data/cifar10/test/{c}/{i:04d}.jpg" for c, i in IMAGES], "targets": list(TARGETS),
            "layers": list(MODELS[model_name]),
            "maps": "raw, before the final ReLU, normalisation and resizing (fullgrad.map: the library's output)"}
    arrays["info"] = np.frombuffer(json.dumps(info).encode(), np.uint8)
    path = out_dir / f"cam_family_{model_name}.npz"
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
        gc = import_pytorch_grad_cam(Path(workdir))
        for name in args.models:
            write_fixture(gc, name, out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Record captum's LIME and Kernel SHAP, and the RISE authors' formulation, for minicnn's tests.

Needs torch 2.13.0, captum 0.9.0, scikit-image and scikit-learn (captum's default
interpretable models: ``Lime`` fits ``SkLearnLasso(alpha=0.01)``, ``KernelShap``
``SkLearnLinearRegression()``, both with sample weights); scikit-learn 1.9.1 was
installed beside the reference environment with ``pip install --no-deps
scikit-learn==1.9.1 joblib==1.6.0 narwhals==2.29.0 cloudpickle==3.1.3 lazy_loader``.

The network is the PyTorch twin of the shipped ResNet-20 (``make_attribution_fixtures.twin_of``),
in float64. Writes ``tests/fixtures/sampling_resnet20_cifar10.npz`` (float32 maps):

    x, logits, target             (2, 3, 32, 32), (2, 10), (2,)   shipped test images cat/0000, ship/0000
    lime.mask                     (32, 32)       a 4 x 4 grid, M = 16 (minicnn's grid_mask((32, 32), 4))
    lime.coalitions               (2, 80, 16)    the Bernoulli(1/2) draws captum made for each image
    lime.map                      (2, 32, 32)    captum Lime(net) defaults, baselines 0, 80 samples
    kernel_shap.mask              (2, 32, 32)    SLIC superpixels of each image (skimage, about 12 each)
    kernel_shap.coalitions.<i>    (60, M_i)      captum's draws (all on, all off, then Shapley-kernel sampled)
    kernel_shap.map               (2, 32, 32)    captum KernelShap(net), baselines -0.5, 60 samples
    kernel_shap.small.*           the same on a 2 x 2 grid (M = 4) with 40 samples, baseline 0
    rise.grids, rise.shifts       (40, 4, 4), (40, 2)   the draws of the authors' generate_masks (s = 4)
    rise.masks                    (40, 32, 32)   their masks (skimage resize, order 1, mode reflect)
    rise.map                      (2, 32, 32)    their explain: sum_k softmax(f(x M_k))_c M_k / N / p1, p1 = 0.3
    info                          uint8          UTF-8 JSON: versions and every setting

captum draws inside ``Lime``'s perturb function; the perturb function given to it here calls
captum's own (``default_perturb_func``, ``KernelShap.kernel_shap_perturb_generator``) and keeps
what it returns, so minicnn can be given the very same coalitions.

The RISE reference below is the authors' released code (github.com/eclique/RISE, explanations.py:
``RISE.generate_masks`` and ``RISE.forward``) written out with numpy, skimage and the twin.

Usage (from the repository root)::

    PYTHONPATH=. /path/to/python weights/recipes/make_sampling_fixtures.py
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))



def _torchvision_stand_in() -> None:
    """zennit (imported by the twin's recipe) imports torchvision's ResNet blocks; they are never used here."""
    import types
    if "torchvision" in sys.modules:
        return
    try:
        import torchvision  # noqa: F401
        return
    except ImportError:
        pass
    resnet = types.ModuleType("torchvision.models.resnet")
    resnet.Bottleneck = type("Bottleneck", (torch.nn.Module,), {})
    resnet.BasicBlock = type("BasicBlock", (torch.nn.Module,), {})
    models = types.ModuleType("torchvision.models")
    models.resnet = resnet
    package = types.ModuleType("torchvision")
    package.models = models
    sys.modules.update({"torchvision": package, "torchvision.models": models, "torchvision.models.resnet": resnet})


_torchvision_stand_in()

import captum  # noqa: E402
from captum.attr import KernelShap, Lime  # noqa: E402
from captum.attr._core.lime import default_perturb_func  # noqa: E402
from make_attribution_fixtures import as64, numpy32, twin_of  # noqa: E402
from skimage.segmentation import slic  # noqa: E402
from skimage.transform import resize  # noqa: E402

import minicnn  # noqa: E402
from minicnn.explain.features import grid_mask  # noqa: E402
from minicnn.inputs.images import load_image  # noqa: E402
from minicnn.inputs.preprocess import preprocess  # noqa: E402

MODEL = "resnet20_cifar10"
SAMPLES = ["cat/0000.jpg", "ship/0000.jpg"]
LIME_SAMPLES, SHAP_SAMPLES, SMALL_SAMPLES = 80, 60, 40
SHAP_BASELINE = -0.5
SLIC_SEGMENTS = 12
RISE_N, RISE_S, RISE_P1, RISE_SEED = 40, 4, 0.3, 2018
TORCH_SEED = 30


def recording(perturb, draws: list):
    """A perturb function that calls captum's own and keeps its draws (a generator if captum's is one)."""
    import inspect
    if inspect.isgeneratorfunction(perturb):
        def generator(inputs, **kwargs):
            for z in perturb(inputs, **kwargs):
                draws.append(z.numpy().copy())
                yield z
        return generator

    def function(inputs, **kwargs):
        z = perturb(inputs, **kwargs)
        draws.append(z.numpy().copy())
        return z
    return function


def slic_labels(image: np.ndarray) -> np.ndarray:
    """minicnn's slic_mask for one image (C, H, W): min-max to [0, 1], skimage's SLIC from label 0."""
    lo, hi = image.min(), image.max()
    return slic(np.moveaxis((image - lo) / (hi - lo), 0, -1).astype(np.float64), n_segments=SLIC_SEGMENTS,
                start_label=0, channel_axis=-1, convert2lab=True)


# --------------------------------------------------------------------------- RISE, as its authors wrote it

def generate_masks(N, s, p1, input_size, rng):
    """RISE.generate_masks: grids ~ Bernoulli(p1), upsampled to (s + 1) * cell, shifted, cropped."""
    cell_size = np.ceil(np.array(input_size) / s)
    up_size = (s + 1) * cell_size
    grid = rng.rand(N, s, s) < p1
    grid = grid.astype("float32")
    masks = np.empty((N, *input_size))
    shifts = np.empty((N, 2), np.int64)
    for i in range(N):
        x = rng.randint(0, cell_size[0])
        y = rng.randint(0, cell_size[1])
        shifts[i] = x, y
        masks[i, :, :] = resize(grid[i], up_size, order=1, mode="reflect",
                                anti_aliasing=False)[x:x + input_size[0], y:y + input_size[1]]
    return grid, shifts, masks.reshape(-1, 1, *input_size)


def rise_explain(net, x, masks, N, p1):
    """RISE.forward on one image x (1, C, H, W): (classes, H, W), probabilities from a softmax over the twin."""
    _, _, H, W = x.shape
    stack = torch.mul(torch.from_numpy(masks), x)
    with torch.no_grad():
        p = torch.softmax(net(stack), dim=1)
    CL = p.size(1)
    sal = torch.matmul(p.data.transpose(0, 1), torch.from_numpy(masks).view(N, H * W))
    sal = sal.view((CL, H, W))
    return sal / N / p1


# --------------------------------------------------------------------------- recording

def record() -> dict[str, np.ndarray]:
    model = minicnn.load(MODEL)
    net = twin_of(model)
    images = [load_image(ROOT / "minicnn" / "data" / "cifar10" / "test" / s) for s in SAMPLES]
    x32 = preprocess(images, model.meta["preprocessing"])
    x = as64(x32)
    with torch.no_grad():
        logits = net(x)
    target = logits.argmax(1)
    out = {"x": x32, "logits": numpy32(logits), "target": target.numpy().astype(np.int64)}
    torch.manual_seed(TORCH_SEED)

    lime_mask = grid_mask((32, 32), 4)
    out["lime.mask"] = lime_mask
    coalitions, maps = [], []
    for i in range(2):
        draws: list = []
        lime = Lime(net, perturb_func=recording(default_perturb_func, draws))
        attr = lime.attribute(x[i:i + 1], target=int(target[i]), feature_mask=torch.from_numpy(lime_mask)[None, None],
                              n_samples=LIME_SAMPLES, perturbations_per_eval=16)
        coalitions.append(np.concatenate(draws))
        maps.append(attr.numpy()[0, 0])
        assert np.allclose(attr.numpy()[0], attr.numpy()[0, :1])              # one value per pixel, every channel
    out["lime.coalitions"] = np.stack(coalitions).astype(np.int8)
    out["lime.map"] = np.stack(maps)

    for key, masks, baseline, n_samples in (
            ("kernel_shap", np.stack([slic_labels(x32[i]) for i in range(2)]), SHAP_BASELINE, SHAP_SAMPLES),
            ("kernel_shap.small", np.stack([grid_mask((32, 32), 2)] * 2), 0.0, SMALL_SAMPLES)):
        out[f"{key}.mask"] = masks
        maps = []
        for i in range(2):
            draws = []
            ks = KernelShap(net)
            ks.perturb_func = recording(ks.perturb_func, draws)
            attr = ks.attribute(x[i:i + 1], baselines=baseline, target=int(target[i]),
                                feature_mask=torch.from_numpy(masks[i])[None, None], n_samples=n_samples,
                                perturbations_per_eval=16)
            out[f"{key}.coalitions.{i}"] = np.concatenate(draws).astype(np.int8)
            maps.append(attr.numpy()[0, 0])
        out[f"{key}.map"] = np.stack(maps)

    grids, shifts, masks = generate_masks(RISE_N, RISE_S, RISE_P1, (32, 32), np.random.RandomState(RISE_SEED))
    out["rise.grids"], out["rise.shifts"], out["rise.masks"] = grids.astype(np.int8), shifts, masks[:, 0]
    out["rise.map"] = np.stack([rise_explain(net, x[i:i + 1], masks, RISE_N, RISE_P1)[int(target[i])].numpy()
                                for i in range(2)])

    info = {"model": MODEL, "torch": torch.__version__, "captum": captum.__version__,
            "scikit-learn": version("scikit-learn"), "scikit-image": version("scikit-image"),
            "numpy": np.__version__, "dtype": "float64 twin; captum fits its surrogate in float32",
            "images": [f"minicnn/data/cifar10/test/{s}" for s in SAMPLES], "torch_seed": TORCH_SEED,
            "lime": {"samples": LIME_SAMPLES, "mask": "4 x 4 grid", "baselines": 0, "perturbations_per_eval": 16,
                     "interpretable_model": "captum default SkLearnLasso(alpha=0.01)",
                     "similarity": "captum default: exp kernel, cosine distance, kernel_width 1"},
            "kernel_shap": {"samples": SHAP_SAMPLES, "mask": f"skimage slic, n_segments {SLIC_SEGMENTS}, "
                            "compactness 10, Lab, start_label 0, on each image min-max scaled to [0, 1]",
                            "baselines": SHAP_BASELINE},
            "kernel_shap.small": {"samples": SMALL_SAMPLES, "mask": "2 x 2 grid", "baselines": 0.0},
            "rise": {"N": RISE_N, "s": RISE_S, "p1": RISE_P1, "rng": f"np.random.RandomState({RISE_SEED})",
                     "probabilities": "softmax of the twin's logits"},
            "target": "top-1 class of each image"}
    out["info"] = np.frombuffer(json.dumps(info).encode(), np.uint8)
    return {k: (v.astype(np.float32) if v.dtype == np.float64 else v) for k, v in out.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out-dir", default=str(ROOT / "tests" / "fixtures"))
    args = p.parse_args(argv)
    path = Path(args.out_dir) / f"sampling_{MODEL}.npz"
    np.savez_compressed(path, **record())
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Record captum's DeepLift, DeepLiftShap and GradientShap for minicnn's tests (torch and captum needed here only).

For each shipped CIFAR model given, this script builds the same PyTorch twin
as ``make_attribution_fixtures.py`` (float64, every ReLU its own
``torch.nn.ReLU`` module, as captum's DeepLift hooks need) and writes
``tests/fixtures/deeplift_<model>.npz`` (float32 arrays; every input is
float32-exact, so minicnn runs the very values captum ran):

    x, logits, target      (2, 3, 32, 32), (2, 10), (2,)   shipped test images cat/0000, ship/0000;
                                                          target = the second-best class of each image
    deeplift.zeros         (2, 3, 32, 32)  captum DeepLift, zero baseline
    deeplift.zeros.delta   (2,)            captum's convergence delta (rounding: summation to delta)
    baseline.pair          (2, 3, 32, 32)  a uniform-noise baseline per image (pixel range through
                                           the preprocessing, seed UNIFORM_SEED)
    deeplift.pair          (2, 3, 32, 32)  captum DeepLift against those baselines
    baseline.set           (3, 3, 32, 32)  a set of three uniform-noise baselines (seed SET_SEED)
    deeplift_shap          (2, 3, 32, 32)  captum DeepLiftShap over that set
    gradient_shap          (2, 3, 32, 32)  captum GradientShap over that set, n_samples=SAMPLES, stdevs=STDEVS
    gradient_shap.index    (2, SAMPLES)    the baselines captum drew (np.random.choice), row i*S + k
    gradient_shap.noise    (2, SAMPLES, 3, 32, 32)  the noise it added to x
    gradient_shap.alpha    (2, SAMPLES)    the points on the line (np.random.uniform)
    info                   uint8           UTF-8 JSON: versions, settings

GradientShap draws inside captum; here its three draws are recorded as it
makes them, and rounded to float32 first (so the stored draws are exactly
the ones used): ``np.random.choice`` and ``np.random.uniform`` are wrapped
while it runs, and ``NoiseTunnel._add_noise_to_input`` is replaced by one
that draws its noise as captum does (``torch.normal``) and keeps it.
One correction, for max pooling: in captum 0.9.0 a ReLU whose output goes
straight into a MaxPool2d reads the wrong signal. Both modules' hooks are
tensor hooks on that one tensor (``captum/_utils/common.py``,
``_register_backward_hook``), and the ReLU's runs first, so it records the
max pooling's plain gradient, not its DeepLift multipliers; its rescale rule
is applied to that, and summation to delta fails (on vgg_cifar10 captum's
convergence delta is -0.019 and -0.34 for the two images, ``info``
``uncorrected_delta``). The twin recorded here passes each ReLU's output
through a copy (``Copy``) before the pooling, so each hook has a tensor of
its own; the network computes the same function, and captum's delta is
rounding. ResNet-20 has no max pooling and is unchanged. (captum's max-pooling
fallback, where |x - x0| < eps, also reads ``grad_input[0]``, image 0's
gradient, for every image; minicnn uses each image's own. It cannot show in
the maps: such an input of the pooling did not move, so the ReLU before it
multiplies what it receives by 0 / (x - x0) = 0.)

The target is the second-best class, not the top one, so the maps explain
a score the network does not already favour.

Usage (from the repository root)::

    PYTHONPATH=. /path/to/python weights/recipes/make_deeplift_fixtures.py vgg_cifar10 resnet20_cifar10
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# make_lrp_mobilenet_v2_fixture puts a torchvision stand-in in place for zennit, which the twin's recipe imports
import captum  # noqa: E402
import make_lrp_mobilenet_v2_fixture  # noqa: E402, F401
from captum.attr import DeepLift, DeepLiftShap, GradientShap  # noqa: E402
from captum.attr._core import noise_tunnel  # noqa: E402
from make_attribution_fixtures import SAMPLES as IMAGES  # noqa: E402
from make_attribution_fixtures import as64, numpy32, twin_of  # noqa: E402

import minicnn  # noqa: E402
from minicnn.inputs.images import load_image  # noqa: E402
from minicnn.inputs.preprocess import preprocess  # noqa: E402

UNIFORM_SEED, SET_SEED, DRAW_SEED = 11, 12, 13
SET_SIZE, SAMPLES, STDEVS = 3, 4, 0.2


class Copy(torch.nn.Module):
    """out = a copy of x: a tensor of its own between a ReLU and a MaxPool2d (see the module docstring)."""

    def forward(self, x):
        return x.clone()


def with_copies_before_pooling(net: torch.nn.Module) -> torch.nn.Module:
    """The twin with every MaxPool2d m replaced by Sequential(Copy(), m) (the same function)."""
    for parent in list(net.modules()):
        for key, child in list(parent.named_children()):
            if isinstance(child, torch.nn.MaxPool2d):
                setattr(parent, key, torch.nn.Sequential(Copy(), child))
    return net


def uniform_images(prep, count, seed) -> np.ndarray:
    """``count`` images of uniform noise over [0, 1] through the preprocessing, float32."""
    mean = np.asarray(prep["mean"], np.float64)[None, :, None, None]
    std = np.asarray(prep["std"], np.float64)[None, :, None, None]
    return np.random.default_rng(seed).uniform(-mean / std, (1 - mean) / std, (count, 3, 32, 32)).astype(np.float32)


def gradient_shap_recorded(net, x, baselines, target) -> tuple[torch.Tensor, dict]:
    """captum's GradientShap, with its draws recorded (each rounded to float32 before use)."""
    drawn = {}
    choice, uniform, saved = np.random.choice, np.random.uniform, noise_tunnel.NoiseTunnel._add_noise_to_input

    def keep_choice(*args, **kwargs):
        drawn["index"] = np.asarray(choice(*args, **kwargs))
        return drawn["index"]

    def keep_uniform(*args, **kwargs):
        drawn["alpha"] = np.asarray(uniform(*args, **kwargs)).astype(np.float32).astype(np.float64)
        return drawn["alpha"]

    def add(input, stdev, nt_samples_partition):
        size = (input.shape[0] * nt_samples_partition, *input.shape[1:])
        noise = torch.normal(0, torch.full(size, float(stdev), dtype=input.dtype)).float().double()
        drawn["noise"] = noise.numpy().copy()
        return input.repeat_interleave(nt_samples_partition, dim=0) + noise

    np.random.choice, np.random.uniform = keep_choice, keep_uniform
    noise_tunnel.NoiseTunnel._add_noise_to_input = staticmethod(add)
    try:
        attr = GradientShap(net).attribute(x, baselines=baselines, n_samples=SAMPLES, stdevs=STDEVS, target=target)
    finally:
        np.random.choice, np.random.uniform = choice, uniform
        noise_tunnel.NoiseTunnel._add_noise_to_input = saved
    n = x.shape[0]
    return attr, {"index": drawn["index"].reshape(n, SAMPLES).astype(np.int64),
                  "noise": drawn["noise"].reshape(n, SAMPLES, *x.shape[1:]),
                  "alpha": drawn["alpha"].reshape(n, SAMPLES)}


def record(name: str) -> dict[str, np.ndarray]:
    model = minicnn.load(name)
    prep = model.meta["preprocessing"]
    uncorrected = twin_of(model)
    net = with_copies_before_pooling(twin_of(model))
    images = [load_image(ROOT / "minicnn" / "data" / "cifar10" / "test" / s) for s in IMAGES]
    x32 = preprocess(images, prep)
    x = as64(x32)
    with torch.no_grad():
        logits = net(x)
    target = logits.argsort(1, descending=True)[:, 1]            # the second-best class
    out = {"x": x32, "logits": numpy32(logits), "target": target.numpy().astype(np.int64)}

    attr, delta = DeepLift(net).attribute(x, baselines=torch.zeros_like(x), target=target,
                                          return_convergence_delta=True)
    out["deeplift.zeros"], out["deeplift.zeros.delta"] = numpy32(attr), numpy32(delta)
    assert float(delta.abs().max()) < 1e-9, delta                  # summation to delta, up to rounding
    _, uncorrected_delta = DeepLift(uncorrected).attribute(x, baselines=torch.zeros_like(x), target=target,
                                                           return_convergence_delta=True)
    pair = uniform_images(prep, 2, UNIFORM_SEED)
    out["baseline.pair"] = pair
    out["deeplift.pair"] = numpy32(DeepLift(net).attribute(x, baselines=as64(pair), target=target))
    base = uniform_images(prep, SET_SIZE, SET_SEED)
    out["baseline.set"] = base
    out["deeplift_shap"] = numpy32(DeepLiftShap(net).attribute(x, baselines=as64(base), target=target))

    np.random.seed(DRAW_SEED)
    torch.manual_seed(DRAW_SEED)
    attr, drawn = gradient_shap_recorded(net, x, as64(base), target)
    out["gradient_shap"] = numpy32(attr)
    for key, value in drawn.items():
        out[f"gradient_shap.{key}"] = value

    info = {"model": name, "torch": torch.__version__, "captum": captum.__version__, "numpy": np.__version__,
            "dtype": "float64 (stored as float32; every input float32-exact)",
            "images": [f"minicnn/data/cifar10/test/{s}" for s in IMAGES],
            "target": "the second-best class of each image", "deeplift_eps": 1e-10,
            "uniform_seed": UNIFORM_SEED, "set_seed": SET_SEED, "set_size": SET_SIZE, "draw_seed": DRAW_SEED,
            "gradient_shap": {"n_samples": SAMPLES, "stdevs": STDEVS},
            "copies_before_max_pooling": True, "uncorrected_delta": uncorrected_delta.tolist()}
    out["info"] = np.frombuffer(json.dumps(info).encode(), np.uint8)
    return {k: (v.astype(np.float32) if v.dtype == np.float64 else v) for k, v in out.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", help="shipped model names (vgg_cifar10, resnet20_cifar10)")
    p.add_argument("--out-dir", default=str(ROOT / "tests" / "fixtures"))
    args = p.parse_args(argv)
    torch.set_grad_enabled(True)
    for name in args.models:
        path = Path(args.out_dir) / f"deeplift_{name}.npz"
        np.savez_compressed(path, **record(name))
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

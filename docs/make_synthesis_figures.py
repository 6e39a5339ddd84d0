"""Draw the README's class visualisations and channel grids (minicnn.synthesis), seeded and reproducible.

    python docs/make_synthesis_figures.py            # writes docs/synthesis_classes.png, docs/synthesis_channels.png

Class model visualisation of four ImageNet classes on mobilenet_v2 (Fourier parameterisation with
decorrelated colour, jitter up to 16 pixels, scale 0.9 to 1.1, rotation up to 10 degrees; 256 Adam
steps each), and a grid of channels of
one layer of each shipped model. About five minutes on two cores.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import minicnn  # noqa: E402
from minicnn.synthesis import ClassScore, LayerObjective, visualise  # noqa: E402
from minicnn.synthesis.objectives import class_of  # noqa: E402

CLASSES = ["goldfish", "flamingo", "tarantula", "school bus"]
#: At 224x224 the transformations must be larger than the defaults (made for 32x32) to remove the
#: checkerboard texture of strided convolutions: jitter 16 pixels, scale 0.9..1.1, rotation -10..10 degrees.
LARGE_TRANSFORMS = dict(jitter=16, scales=(0.9, 0.95, 1.0, 1.05, 1.1), degrees=tuple(range(-10, 11, 2)))
CHANNELS = {"vgg_cifar10": ("features.10", 48), "resnet20_cifar10": ("layer2.2.conv2", 48),
            "mobilenet_v2": ("features.6", 48)}


def classes_figure(steps: int = 256) -> Path:
    model = minicnn.load("mobilenet_v2")
    fig, axes = plt.subplots(1, len(CLASSES), figsize=(3.2 * len(CLASSES), 3.9))
    for ax, name in zip(axes, CLASSES, strict=True):
        c = class_of(model, name)
        r = visualise(model, ClassScore(c), param="fourier", steps=steps, seed=0, **LARGE_TRANSFORMS)
        ax.imshow(r.image)
        ax.set_title(f"{name} (class {c})\ny = {r.final_value:.1f}", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        print(name, r.values[0], r.final_value, flush=True)
    fig.suptitle(f"mobilenet_v2: what four classes look like to the network (Fourier, {steps} steps, seed 0)")
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    path = ROOT / "docs" / "synthesis_classes.png"
    fig.savefig(path, dpi=80)
    return path


def channels_figure(per_model: int = 6) -> Path:
    fig, axes = plt.subplots(len(CHANNELS), per_model, figsize=(2.2 * per_model, 2.5 * len(CHANNELS)))
    for row, (name, (layer, steps)) in zip(axes, CHANNELS.items(), strict=True):
        model = minicnn.load(name)
        for k, ax in enumerate(row):
            r = visualise(model, LayerObjective(layer, k), param="fourier", steps=steps, seed=k)
            ax.imshow(r.image)
            ax.set_title(f"{layer} ch {k}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(name, fontsize=9)
        print(name, "done", flush=True)
    fig.suptitle("Channels of one layer of each shipped model (mean activation, Fourier)")
    fig.tight_layout()
    path = ROOT / "docs" / "synthesis_channels.png"
    fig.savefig(path, dpi=80)
    return path


if __name__ == "__main__":
    which = sys.argv[1:] or ["classes", "channels"]
    if "classes" in which:
        print(classes_figure())
    if "channels" in which:
        print(channels_figure())

"""Model-parameter randomisation (Adebayo et al., *Sanity Checks for Saliency Maps*, NeurIPS 2018).

If an explanation shows what the network learned, destroying what it
learned must change the explanation. The test re-initialises the weights
and compares each method's map with the map of the trained network:

- **cascading**: from the top (the logits) down, one more unit at each step,
  until every weight is random;
- **independent**: one unit at a time, the rest of the network trained.

A *unit* is a layer with parameters, and a BatchNorm goes with the layer
it normalises (ResNet-20's ``conv1`` and ``bn1`` are one unit), so VGG-style
``vgg_cifar10`` has 8 units and ResNet-20 has 20.

Each layer is drawn afresh from PyTorch's own default initialisation of its
type (``reset_parameters``), from a generator seeded by (seed, layer name),
so the same layer gets the same random weights at every step and in both
modes:

    Conv2d       W, b ~ Uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)),  fan_in = C_in * kh * kw
    Linear       W, b ~ Uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)),  fan_in = in_features
    BatchNorm2d  weight 1, bias 0, running mean 0, running variance 1

(PyTorch draws the weights by ``kaiming_uniform_(W, a=sqrt(5))``, whose bound
sqrt(6 / ((1 + a^2) fan_in)) is 1/sqrt(fan_in).) Note that this is not what
``minicnn.models.zoo.init_weights`` draws: that is torchvision's VGG scheme
(He-normal convolutions, N(0, 0.01) dense layers, zero biases).
"""

from __future__ import annotations

import copy
import zlib

import numpy as np

from ..errors import InputError
from ..layers import BatchNorm2d, Conv2d, Linear
from ..layers.base import Pass
from ..util.checks import check_seed

MODES = ("cascading", "independent")


def layer_rng(seed: int, name: str) -> np.random.Generator:
    """The generator of one layer's random weights: seeded by (seed, crc32 of its name)."""
    return np.random.default_rng([check_seed(seed), zlib.crc32(name.encode())])


def reset_parameters(layer, rng: np.random.Generator) -> None:
    """Re-initialise ``layer`` in place as PyTorch's ``reset_parameters`` does (module docstring)."""
    if isinstance(layer, BatchNorm2d):
        layer.params["weight"] = np.ones_like(layer.params["weight"])
        layer.params["bias"] = np.zeros_like(layer.params["bias"])
        layer.buffers["running_mean"] = np.zeros_like(layer.buffers["running_mean"])
        layer.buffers["running_var"] = np.ones_like(layer.buffers["running_var"])
        return
    if not isinstance(layer, (Conv2d, Linear)):
        raise InputError(f"no default initialisation for a {type(layer).__name__} layer")
    w = layer.params["weight"]
    bound = 1.0 / np.sqrt(np.prod(w.shape[1:]))               # 1 / sqrt(fan_in)
    layer.params["weight"] = rng.uniform(-bound, bound, w.shape).astype(w.dtype)
    if "bias" in layer.params:
        b = layer.params["bias"]
        layer.params["bias"] = rng.uniform(-bound, bound, b.shape).astype(b.dtype)


def units(model) -> list[tuple[str, ...]]:
    """The layers with parameters, input to output, a BatchNorm joined to the layer before it."""
    found: list[list[str]] = []
    for name, layer in model.layers():
        if not layer.params:
            continue
        if isinstance(layer, BatchNorm2d) and found:
            found[-1].append(name)
        else:
            found.append([name])
    return [tuple(u) for u in found]


def unit_label(unit: tuple[str, ...]) -> str:
    """The layers of a unit as one string, later names relative to the first one's parent:
    ("layer3.2.conv2", "layer3.2.bn2") -> "layer3.2.conv2+bn2"."""
    parent = unit[0].rpartition(".")[0]
    rest = [n[len(parent) + 1:] if parent and n.startswith(parent + ".") else n for n in unit[1:]]
    return "+".join([unit[0], *rest])


def randomised(model, names, seed: int = 0):
    """A copy of ``model`` whose layers ``names`` are re-initialised; the model itself is untouched."""
    last_pass, model._run = model._run, Pass()    # copy the weights, not the last pass's activations
    try:
        twin = copy.deepcopy(model)
    finally:
        model._run = last_pass
    twin._logits_shape = None
    for name in names:
        reset_parameters(twin[name], layer_rng(seed, name))
    return twin


def steps(model, mode: str = "cascading") -> list[tuple[str, tuple[str, ...]]]:
    """[(label, layers randomised at this step)]: top-down, one more unit each step (or one unit each step).

    The label names the unit added at that step; in cascading mode every
    unit above it is random too.
    """
    if mode not in MODES:
        raise InputError(f"randomisation mode must be one of {', '.join(MODES)}; got {mode!r}")
    top_down = units(model)[::-1]
    out, so_far = [], ()
    for unit in top_down:
        so_far = so_far + unit
        out.append((unit_label(unit), so_far if mode == "cascading" else unit))
    return out

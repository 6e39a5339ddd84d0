"""What the synthesised image should maximise, with its gradient at the network's input.

An objective J maps the network input x (N, C, H, W) (already normalised) to one number per
image, J (N,), and gives dJ/dx (N, C, H, W) from the engine's own backward pass:

    class score   J = y^c, the pre-softmax logit           seed dlogits = e_c
    channel       J = (1 / HW) sum_ij A^l_c[i, j]            seed dA^l = 1_c / HW at layer l
    unit          J = A^l_c[i, j] (default: the centre)      seed dA^l = e_{c, i, j}

A seed at layer l goes in through ``Model.backward``'s ``rules``: the backward pass starts from
dlogits = 0 (so nothing above l contributes), and the rule at l's last leaf ignores its
(zero) upstream gradient and runs that leaf's own backward from the seed instead. Everything
below l is the plain gradient, so dJ/dx is exact (tests/test_synthesis.py checks it
by central differences).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError, unknown_name
from ..layers import Layer
from ..model import Model


def class_of(model: Model, name) -> int:
    """A class index from an index, a string of digits, a class name, or one of the comma-separated names
    of an ImageNet label ("goldfish" for "goldfish, Carassius auratus"); a one-line error otherwise."""
    classes = model.classes
    text = str(name).strip()
    if text in classes:
        return classes.index(text)
    hits = [i for i, label in enumerate(classes) if text.lower() in (n.strip().lower() for n in label.split(","))]
    if len(hits) == 1:
        return hits[0]
    if text.isdigit() and not isinstance(name, bool):
        k = int(text)
        if classes and k >= len(classes):
            raise InputError(f"class {k} is out of range; {model.name} has classes 0..{len(classes) - 1}")
        return k
    raise unknown_name("class", name, classes)


@dataclass(frozen=True)
class ClassScore:
    """J = y^c, the class's logit before the softmax."""

    index: int

    def describe(self, model: Model) -> str:
        names = model.classes
        return f"class {self.index}" + (f" ({names[self.index].split(',')[0]})" if names else "")

    def check(self, model: Model) -> None:
        k = len(model.classes) if model.classes else None
        if isinstance(self.index, bool) or not isinstance(self.index, (int, np.integer)) or self.index < 0 \
                or (k is not None and self.index >= k):
            raise InputError(f"class {self.index!r} is out of range; {model.name} has classes 0..{(k or 1) - 1}")

    def value_and_grad(self, model: Model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits = model.forward(x)
        seed = np.zeros_like(logits)
        seed[:, self.index] = 1
        return logits[:, self.index].copy(), model.backward(seed)


@dataclass(frozen=True)
class LayerObjective:
    """J = the mean of channel ``channel`` of layer ``layer``'s output, or one unit of it (``unit=(i, j)``).

    ``unit="centre"`` takes the unit at (H // 2, W // 2) of that channel.
    """

    layer: str
    channel: int
    unit: tuple[int, int] | str | None = None

    def describe(self, model: Model) -> str:
        where = "" if self.unit is None else f" unit {self.unit}"
        return f"{self.layer} channel {self.channel}{where}"

    def check(self, model: Model) -> None:
        model[self.layer]                                  # unknown names fail here, with suggestions
        if isinstance(self.channel, bool) or not isinstance(self.channel, (int, np.integer)) or self.channel < 0:
            raise InputError(f"channel must be a non-negative integer; got {self.channel!r}")

    def _leaf(self, model: Model) -> str:
        """The leaf layer whose output is ``layer``'s output (the layer itself, or a container's last step)."""
        if isinstance(model[self.layer], Layer):
            return self.layer
        target = model.activations[self.layer]
        for name, _ in reversed(model.layers()):
            if name.startswith(self.layer + ".") and model.activations.get(name) is target:
                return name
        raise InputError(f"the output of {self.layer!r} is not the output of one of its layers; "
                         f"choose one of its layers (e.g. {self.layer + '.'}...) instead")

    def seed(self, A: np.ndarray) -> np.ndarray:
        """dJ/dA (N, C, H, W) (or (N, C)) for A, the layer's output."""
        if A.ndim not in (2, 4):
            raise InputError(f"layer {self.layer!r} has output shape {A.shape[1:]}; channel objectives need "
                             f"(C, H, W) or (C,)")
        if self.channel >= A.shape[1]:
            raise InputError(f"layer {self.layer!r} has {A.shape[1]} channels (0..{A.shape[1] - 1}); "
                             f"got channel {self.channel}")
        d = np.zeros_like(A)
        if A.ndim == 2:
            d[:, self.channel] = 1
        elif self.unit is None:
            d[:, self.channel] = 1 / (A.shape[2] * A.shape[3])
        else:
            i, j = self._unit(A)
            d[:, self.channel, i, j] = 1
        return d

    def _unit(self, A: np.ndarray) -> tuple[int, int]:
        h, w = A.shape[2:]
        if self.unit == "centre":
            return h // 2, w // 2
        i, j = self.unit
        if not (0 <= i < h and 0 <= j < w):
            raise InputError(f"unit ({i}, {j}) is outside layer {self.layer!r}'s {h}x{w} map")
        return int(i), int(j)

    def value(self, A: np.ndarray) -> np.ndarray:
        """J (N,) = sum(seed(A) * A) per image (J is linear in A)."""
        return np.sum((self.seed(A) * A).reshape(len(A), -1), axis=1)

    def value_and_grad(self, model: Model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits = model.forward(x)
        leaf = self._leaf(model)
        J = self.value(model.activations[self.layer])

        def start_here(layer, inputs, dout):              # dout is 0 (dlogits = 0); the seed replaces it
            out, cache = layer.forward(inputs)
            dx, _ = layer.backward(self.seed(out), cache)
            return dx

        return J, model.backward(np.zeros_like(logits), rules={leaf: start_here})

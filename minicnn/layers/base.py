"""What every layer is, and the two containers that name them.

A *layer* is a pair of hand-written functions over NumPy arrays:

    out, cache = layer.forward(x)
    dx, grads  = layer.backward(dout, cache, param_grads=False, relu="plain")

``dout`` is dL/d(out) for some scalar L, ``dx`` is dL/dx, and ``grads`` maps
a parameter name ("weight", "bias") to dL/d(parameter); it is empty unless
``param_grads`` is true, because explanations never need parameter gradients
and they cost as much as the rest of the backward. ``relu`` chooses the
backward rule of ReLU layers (see ``activation.py``); other layers ignore it.

A backward pass is a chain of local rules: each layer, last to first, maps
the signal at its output to a signal at its input. The gradient is one
choice of rules, every layer's own ``backward`` (its derivative); other
choices give other explanations. ``relu`` swaps the rule of every ReLU
(guided backpropagation, the deconvnet); ``Pass.rules``, a mapping
``{layer name: rule}`` (``Model.backward(seed, rules=...)``), swaps any
layer's, where a rule is a function of the layer, its input in the forward
pass and the signal at its output:

    dx = rule(layer, x, dout)

(Layer-wise Relevance Propagation is such a mapping: see
``minicnn/explain/lrp_rules.py``). A layer the mapping does not name keeps
its own backward, so a new kind of layer works under every set of rules.

Layers compute in the dtype of their input: float32 weights are cast to
float64 on the fly when the input is float64, so a gradient check runs in
float64 on any model.

Containers give layers their names. ``Sequential`` holds named children, and
the name of a layer is its path from the model's root, joined by dots as in
PyTorch ("features.29", "layer3.2.conv2"), so users can cross-reference their
PyTorch modules. During a pass, a container writes every output it sees into
``Pass.activations[path]`` and, going back, every incoming gradient into
``Pass.gradients[path]``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import WeightsError


def join(path: str, name: str) -> str:
    """PyTorch's module path: join("features", "0") == "features.0"."""
    return f"{path}.{name}" if path else name


class StopBackward(Exception):
    """Raised inside a backward pass once the requested gradient is known."""


@dataclass
class Pass:
    """What one forward pass keeps for its backward pass, by layer name."""

    activations: dict[str, np.ndarray] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    caches: dict[str, Any] = field(default_factory=dict)
    gradients: dict[str, np.ndarray] = field(default_factory=dict)
    param_grads: dict[str, np.ndarray] = field(default_factory=dict)
    relu: str = "plain"
    rules: dict[str, Any] | None = None
    want_param_grads: bool = False
    stop_at: str | None = None
    replace: dict[str, np.ndarray] = field(default_factory=dict)
    keep: bool = True

    def record_output(self, path: str, out):
        """Keep the output of ``path``; return it, or the array that replaces it.

        ``replace`` lets a caller feed its own activation A at one layer and
        run the rest of the network from there (finite differences of
        y^c with respect to A use it). With ``keep`` false nothing is kept:
        each output is freed as soon as the next layer has read it.
        """
        out = self.replace.get(path, out)
        if self.keep:
            self.activations[path] = out
        return out

    def record_gradient(self, path: str, dout: np.ndarray) -> None:
        """Keep dL/d(output of ``path``); stop the backward if that was the goal."""
        self.gradients[path] = dout
        if path == self.stop_at:
            raise StopBackward


class Module:
    """Anything with a name in a model: a layer or a container."""

    def spec(self) -> dict:
        """The architecture as plain JSON data: {"type": ..., **hyper-parameters}."""
        raise NotImplementedError

    def children(self) -> list[tuple[str, Module]]:
        return []

    def named_modules(self, path: str = "") -> Iterator[tuple[str, Module]]:
        """(path, module) for this module and everything below it, in forward order."""
        if path:
            yield path, self
        for name, child in self.children():
            yield from child.named_modules(join(path, name))

    def run_forward(self, x, run: Pass, path: str):
        raise NotImplementedError

    def run_backward(self, dout, run: Pass, path: str):
        raise NotImplementedError

    def run_forward_fused(self, x, following: list[Module], run: Pass, path: str):
        """(output, k): this module's forward and, where it can do them in the same pass, the
        forwards of the first k modules of ``following`` (its next siblings) too.

        Only for a pass that keeps nothing and replaces nothing (``run_chain``), so
        that no one reads the outputs in between. Here k = 0; a convolution
        followed by BatchNorm and ReLU runs all three as one (``Conv2d``).
        """
        return self.run_forward(x, run, path), 0


def run_chain(children: list[tuple[str, Module]], x, run: Pass, path: str):
    """The children's forwards one after the other; the last output.

    In a pass that keeps nothing and replaces nothing (``Model.forward(x,
    keep=False)``), each child may run some of the following ones with it
    (``run_forward_fused``); otherwise each runs its own forward, recording
    its output.
    """
    if run.keep or run.replace:
        for name, child in children:
            x = child.run_forward(x, run, join(path, name))
        return x
    modules, i = [child for _, child in children], 0
    while i < len(children):
        x, used = modules[i].run_forward_fused(x, modules[i + 1:], run, join(path, children[i][0]))
        i += 1 + used
    return x


class Layer(Module):
    """A leaf: one forward and one hand-written backward.

    ``params`` holds the trainable arrays, ``buffers`` the others (BatchNorm's
    running statistics), both under PyTorch's names.
    """

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}

    def config(self) -> dict:
        """The constructor's keyword arguments, as JSON-able values."""
        return {}

    def spec(self) -> dict:
        return {"type": type(self).__name__, **self.config()}

    def forward(self, x: np.ndarray):
        raise NotImplementedError

    def backward(self, dout: np.ndarray, cache, param_grads: bool = False, relu: str = "plain"):
        raise NotImplementedError

    def param(self, name: str, dtype) -> np.ndarray | None:
        """Parameter ``name`` in the computing dtype (a cast only when it differs)."""
        p = self.params.get(name, self.buffers.get(name))
        return None if p is None else p.astype(dtype, copy=False)

    def arrays(self) -> dict[str, np.ndarray]:
        return {**self.params, **self.buffers}

    def load_arrays(self, path: str, arrays: dict[str, np.ndarray]) -> None:
        """Replace parameters and buffers, checking that each shape fits."""
        for name, current in self.arrays().items():
            key = join(path, name)
            if name not in arrays:
                raise WeightsError(f"missing array {key!r} (shape {tuple(current.shape)})")
            new = np.asarray(arrays[name])
            if new.shape != current.shape:
                raise WeightsError(
                    f"layer {path!r} ({type(self).__name__}) does not fit: {name} has shape "
                    f"{tuple(new.shape)} in the file, the architecture needs {tuple(current.shape)}")
            if not np.issubdtype(new.dtype, np.floating):
                raise WeightsError(f"array {key!r} has dtype {new.dtype}, expected floating point")
            target = self.params if name in self.params else self.buffers
            target[name] = np.ascontiguousarray(new, dtype=current.dtype)

    def run_forward(self, x, run: Pass, path: str):
        out, cache = self.forward(x)
        if run.keep:
            run.inputs[path], run.caches[path] = x, cache
        return run.record_output(path, out)

    def run_backward(self, dout, run: Pass, path: str):
        run.record_gradient(path, dout)
        if run.rules and path in run.rules:
            return run.rules[path](self, run.inputs[path], dout)
        dx, grads = self.backward(dout, run.caches[path],
                                  param_grads=run.want_param_grads, relu=run.relu)
        for name, g in grads.items():
            run.param_grads[join(path, name)] = g
        return dx


class Sequential(Module):
    """Named children applied in order; the output of the last is the container's output."""

    def __init__(self, children: list[tuple[str, Module]]) -> None:
        self._children = [(str(name), child) for name, child in children]

    def children(self) -> list[tuple[str, Module]]:
        return list(self._children)

    def spec(self) -> dict:
        return {"type": "Sequential", "children": [[name, child.spec()] for name, child in self._children]}

    def run_forward(self, x, run: Pass, path: str):
        x = run_chain(self._children, x, run, path)
        return run.record_output(path, x) if path else x

    def run_backward(self, dout, run: Pass, path: str):
        if path:
            run.record_gradient(path, dout)
        for name, child in reversed(self._children):
            dout = child.run_backward(dout, run, join(path, name))
        return dout


class Identity(Layer):
    """out = x; dx = dout."""

    def forward(self, x):
        return x, None

    def backward(self, dout, cache, param_grads=False, relu="plain"):
        return dout, {}

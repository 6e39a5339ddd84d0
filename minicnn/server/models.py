"""The shipped models, loaded once and shared by every request thread.

A ``Model`` keeps the activations and gradients of its last pass in itself
(``model._run``), so two threads must never run passes on one ``Model``
object. Its layers, however, keep nothing between calls: every cache lives
in the pass. So each request gets its own ``Model`` around the one shared
layer tree (``ModelStore.view``): a new object with an empty pass and the
same weight arrays, which nobody writes to. Creating one costs a dict of
names, not a copy of the weights.

How many explanations run at once is bounded separately (``workers``, a
semaphore): NumPy's BLAS already uses every core for one convolution, and a
bound keeps memory in check when many large images arrive together.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ..errors import InputError, MinicnnError, unknown_name
from ..explain import registry
from ..explain.estimate import pass_seconds
from ..explain.target import default_layer
from ..model import Model
from ..models.shipped import shipped_models
from ..models.weights import load

#: How many (model, input size) pairs ``ModelStore.layer_shapes`` keeps.
SHAPES_KEPT = 64


@dataclass(frozen=True)
class LayerInfo:
    """One addressable layer: its name, type and output shape (C, h, w) for the model's own input size."""

    name: str
    type: str
    shape: tuple[int, ...]
    depth: int

    @property
    def spatial(self) -> bool:
        """Whether its output is a feature map (K, h, w) with h * w > 1: what Grad-CAM can explain."""
        return len(self.shape) == 3 and self.shape[1] * self.shape[2] > 1


class ModelStore:
    """Every shipped model, loaded (and its checksum verified) once; a fresh view per request.

    names   : the models to serve (default: every shipped model)
    workers : how many explanations may compute at the same time (at least 1)
    """

    def __init__(self, names: list[str] | None = None, *, workers: int = 2, log=None) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise InputError(f"workers must be a positive integer; got {workers!r}")
        self.models: dict[str, Model] = {}
        self.skipped: dict[str, str] = {}
        for name in (shipped_models() if names is None else names):
            try:
                self.models[name] = load(name)
            except MinicnnError as e:
                if names is not None:
                    raise
                self.skipped[name] = str(e)
                if log:
                    log(f"{name}: not served: {e}")
        if not self.models:
            raise InputError("no shipped model could be loaded; reinstall minicnn")
        described = {name: describe_layers(m) for name, m in self.models.items()}
        self.layers = {name: d[0] for name, d in described.items()}
        self.default_layers = {name: d[1] for name, d in described.items()}
        self._turns = threading.BoundedSemaphore(workers)
        self.workers = workers
        self._pass_times: dict[str, tuple[float, ...]] = {}
        self._pass_lock = threading.Lock()
        self._unavailable: dict[str, dict[str, str]] = {}
        self._shapes: dict[tuple[str, int, int], dict[str, list[int]]] = {}

    @property
    def names(self) -> list[str]:
        return list(self.models)

    def shared(self, name: str) -> Model:
        """The loaded model itself (read its meta, classes and layer names; never run passes on it)."""
        if not isinstance(name, str) or name not in self.models:
            raise unknown_name("model", name, self.names)
        return self.models[name]

    def view(self, name: str) -> Model:
        """A Model of its own for one request: the shared layers and weights, an empty pass."""
        shared = self.shared(name)
        return Model(shared.root, shared.meta)

    def pass_times(self, name: str) -> tuple[float, ...]:
        """Seconds per image of a forward and a backward (single and batched) on model ``name``:
        ``minicnn.explain.estimate.pass_seconds``, measured once per model, on first use."""
        with self._pass_lock:
            if name not in self._pass_times:
                self._pass_times[name] = pass_seconds(self.view(name))
            return self._pass_times[name]

    def unavailable(self, name: str) -> dict[str, str]:
        """{method: why not} for each optional method (CAM) that does not apply to model ``name``.

        Runs each optional method once on a zero image of the model's input size, on first use.
        """
        with self._pass_lock:
            if name not in self._unavailable:
                why = {}
                run = self.view(name)
                for m in registry.METHODS.values():
                    if m.optional:
                        try:
                            m.run(run, np.zeros((1, *run.input_size), np.float32))
                        except InputError as e:
                            why[m.name] = str(e)
                self._unavailable[name] = why
            return self._unavailable[name]

    def layer_shapes(self, name: str, hw) -> dict[str, list[int]]:
        """{layer: [C, h, w]} of every layer with a feature-map output, for a network input of size hw = (H, W).

        One forward of a zero image per (model, size), kept (at most SHAPES_KEPT sizes; then forgotten).
        """
        key = (name, int(hw[0]), int(hw[1]))
        with self._pass_lock:
            if key not in self._shapes:
                if len(self._shapes) >= SHAPES_KEPT:
                    self._shapes.clear()
                run = self.view(name)
                run.forward(np.zeros((1, run.input_size[0], key[1], key[2]), np.float32))
                self._shapes[key] = {n: [int(s) for s in a.shape[1:]] for n, a in run.activations.items()
                                     if a.ndim == 4}
            return self._shapes[key]

    @contextmanager
    def turn(self, check=None):
        """Wait for one of the ``workers`` places to compute in; ``check()`` every 0.1 s meanwhile
        (it may raise to stop waiting: a client that has gone, a deadline passed)."""
        while not self._turns.acquire(timeout=0.1):
            if check is not None:
                check()
        try:
            yield
        finally:
            self._turns.release()


def describe_layers(model: Model) -> tuple[list[LayerInfo], str | None]:
    """Every addressable layer with its output shape for one input of the model's own size,
    and the layer explanations use by default (None when the model has no feature map)."""
    run = Model(model.root, model.meta)
    run.forward(np.zeros((1, *model.input_size), np.float32))
    acts = run.activations
    layers = [LayerInfo(name, type(run[name]).__name__,
                        tuple(int(s) for s in acts[name].shape[1:]) if name in acts else (), name.count("."))
              for name in run.layer_names]
    try:
        return layers, default_layer(run)
    except InputError:
        return layers, None

"""A model: named layers, every activation and every gradient kept by name.

    logits = model.forward(x)               # x (N, C, H, W) -> logits (N, K)
    model.activations["features.29"]        # A, the output of that layer
    dx = model.backward(dlogits)            # dlogits = d(scalar)/d(logits), (N, K)
    model.gradients["features.29"]          # d(scalar)/dA, the same shape as A

Names are PyTorch module paths ("features.0", "layer3.2.conv2", "classifier.3").
Containers are named too: "features" is the output of the whole feature
extractor, "layer3" the output of a ResNet's last stage.

``backward`` takes the gradient of a scalar with respect to the logits: for
the class score y^c that is the one-hot vector e_c, and the model returns
dy^c/dx and fills ``gradients`` with dy^c/d(every layer's output). The ReLU
backward rule is chosen per call (relu="plain" | "guided" | "deconvnet"),
never by changing the layers, and so is any layer's: ``rules={name: rule}``
replaces the backward of the layers it names by other local rules (a rule
is ``rule(layer, x, dout) -> dx``; see ``minicnn/layers/base.py``), which is
how Layer-wise Relevance Propagation runs on the same pass.

A batch of several images goes through the network in chunks of images,
on every core (``minicnn.parallel``): no layer mixes images, so each chunk
is a pass of its own and ``activations`` and ``gradients`` join the
chunks' arrays along the batch axis when read. A single large image goes
the other way: one pass whose products BLAS shares over the cores
(``parallel.blas_pass``); its backward goes the way its forward went.

This module is over 450 lines because ``Model`` is one object: its forward,
its partial forward from a layer and its backward share the chunks and the
kept arrays, and a learner reads them together.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping

import numpy as np

from . import parallel
from .errors import InputError, WeightsError, unknown_name
from .layers import MODULE_TYPES, Layer, Module, Pass, Sequential, StopBackward, relu_rule
from .layers.base import join
from .memory import keep_freed_memory

#: Input elements (images x C x H x W) per chunk of a batch (about 43 CIFAR images): large
#: enough that the Python work of a pass, which holds the interpreter lock while the other
#: threads wait for it, is small next to its arithmetic (2^16 was 10-25% slower on two
#: threads, benchmarks/README.md).
CHUNK_ELEMENTS = 2 ** 17


def batch_chunks(n: int, image_elements: int, workers: int) -> list[slice]:
    """Cut a batch of n images into near-equal chunks: about CHUNK_ELEMENTS input elements
    each and, unless the batch is small, a multiple of ``workers`` chunks (so that every
    thread gets as many)."""
    count = math.ceil(n * image_elements / CHUNK_ELEMENTS)
    if workers > 1 and n * image_elements >= CHUNK_ELEMENTS // 2:
        count = workers * math.ceil(max(count, workers) / workers)
    return parallel.near_equal(n, count)


class Joined(Mapping):
    """name -> the chunks' arrays for that name, concatenated along the batch axis.

    Read-only; each array is joined once, when first read, and names that
    hold the same arrays in every chunk (a container and its last layer; a
    layer's input and the output of the layer before it, when ``joined`` is
    shared) get the same joined array, as they are the same array in one
    pass. A pair of arrays (the inputs of an Add) is joined array by array.
    """

    def __init__(self, parts: list[dict], joined: dict | None = None) -> None:
        self._parts, self._joined = parts, ({} if joined is None else joined)

    def __getitem__(self, name):
        arrays = [part[name] for part in self._parts]
        if isinstance(arrays[0], tuple):
            return tuple(self._join(list(pair)) for pair in zip(*arrays))
        return self._join(arrays)

    def _join(self, arrays: list[np.ndarray]) -> np.ndarray:
        key = tuple(map(id, arrays))                   # the parts keep the arrays, so ids stay theirs
        if key not in self._joined:
            self._joined[key] = np.concatenate(arrays)
        return self._joined[key]

    def __contains__(self, name) -> bool:
        return name in self._parts[0]

    def __iter__(self):
        return iter(self._parts[0])

    def __len__(self) -> int:
        return len(self._parts[0])


class Chunks:
    """The passes of a batch cut into chunks: (slice of the batch, its Pass) for each."""

    def __init__(self, pieces: list[slice], runs: list[Pass]) -> None:
        self.pieces, self.runs = pieces, runs
        joined: dict = {}                              # one array per set of chunk arrays, read by either name
        self.activations = Joined([run.activations for run in runs], joined)
        self.inputs = Joined([run.inputs for run in runs], joined)
        self.gradients, self.param_grads = {}, {}
        self.keep = runs[0].keep


def build(spec: dict) -> Module:
    """The module tree a JSON spec describes (parameters zero until loaded)."""
    if not isinstance(spec, dict) or "type" not in spec:
        raise WeightsError(f"architecture entry is not a layer description: {str(spec)[:80]!r}")
    kind = spec["type"]
    if kind not in MODULE_TYPES:
        raise WeightsError(f"unknown layer type {kind!r} in the architecture; known: {', '.join(MODULE_TYPES)}")
    if kind == "Sequential":
        return Sequential([(name, build(child)) for name, child in spec.get("children", [])])
    kwargs = {k: v for k, v in spec.items() if k != "type"}
    try:
        return MODULE_TYPES[kind](**kwargs)
    except (TypeError, ValueError) as e:
        raise WeightsError(f"cannot build a {kind} from {kwargs}: {e}") from None


def check_input(x, channels: int | None = None) -> np.ndarray:
    """The batch as a float array (N, C, H, W), or a one-line InputError saying what is wrong.

    float32 and float64 pass unchanged (views too); other float types become
    float32. Integer images must be preprocessed first (see minicnn.inputs.preprocess).
    """
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except (ValueError, TypeError) as e:
            raise InputError(f"input is not an array: {e}") from None
    if x.ndim == 3:
        raise InputError(f"expected a batch (N, C, H, W), got shape {x.shape}; add the batch axis with x[None]")
    if x.ndim != 4:
        raise InputError(f"expected a batch (N, C, H, W), got an array of shape {x.shape}")
    if x.shape[0] == 0:
        raise InputError(f"the batch is empty (shape {x.shape})")
    if channels is not None and x.shape[1] != channels:
        raise InputError(f"expected {channels} channels (N, {channels}, H, W), got shape {x.shape}"
                         + ("; is the image channels-last (N, H, W, C)?" if x.shape[-1] == channels else ""))
    if not np.issubdtype(x.dtype, np.floating):
        raise InputError(f"expected floating-point input, got dtype {x.dtype}; "
                         "preprocess images with minicnn.inputs.preprocess.preprocess "
                         "or convert with x.astype(np.float32)")
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float32)
    if not np.isfinite(x).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(x))[0])
        raise InputError(f"input contains NaN or infinity (first at index {bad})")
    return x


def check_replace(model: Model, replace) -> dict[str, np.ndarray]:
    """``forward``'s ``replace``: {known layer name: float array of finite values}, or a one-line InputError."""
    if replace is None:
        return {}
    if not isinstance(replace, dict):
        raise InputError(f"replace must be a dict {{layer name: array}}; got {type(replace).__name__}")
    checked = {}
    for name, A in replace.items():
        model[name]  # unknown names fail here, with suggestions
        try:
            a = np.asarray(A) if isinstance(A, (list, tuple)) else A
        except ValueError:  # a ragged list
            a = None
        if not isinstance(a, np.ndarray) or a.dtype.kind != "f" or a.ndim == 0:
            what = f"dtype {a.dtype} array" if isinstance(a, np.ndarray) else type(A).__name__
            raise InputError(f"replace[{name!r}] must be a floating-point array (the output that layer {name!r} "
                             f"should have); got a {what}")
        if not np.isfinite(a).all():
            raise InputError(f"replace[{name!r}] contains NaN or infinity")
        checked[name] = a
    return checked


class Model:
    """Named layers with a hand-written backward, plus what describes them (``meta``)."""

    def __init__(self, root: Module, meta: dict | None = None) -> None:
        self.root = root
        self.meta = dict(meta or {})
        self._run = Pass()
        self._modules = dict(root.named_modules())
        self._logits_shape: tuple | None = None
        self._blas = False                               # whether the last forward let BLAS thread its products

    # ------------------------------------------------------------ description
    @property
    def name(self) -> str:
        return self.meta.get("name", "model")

    @property
    def classes(self) -> list[str]:
        """Class names in logit order (numbers as strings if the file names none)."""
        return list(self.meta.get("classes") or [])

    @property
    def input_size(self) -> tuple[int, int, int] | None:
        """(C, H, W) the model was trained on, if known."""
        size = self.meta.get("input_size")
        return tuple(size) if size else None

    @property
    def layer_names(self) -> list[str]:
        """Every addressable name, in forward order (containers before their children)."""
        return list(self._modules)

    def __getitem__(self, name: str) -> Module:
        if name not in self._modules:
            raise unknown_name("layer", name, self.layer_names)
        return self._modules[name]

    def __contains__(self, name: str) -> bool:
        return name in self._modules

    def layers(self):
        """(name, layer) for every leaf layer, in forward order."""
        return [(n, m) for n, m in self._modules.items() if isinstance(m, Layer)]

    def spec(self) -> dict:
        return self.root.spec()

    # ------------------------------------------------------------ parameters
    def state_dict(self) -> dict[str, np.ndarray]:
        """Every parameter and buffer by its PyTorch key ("features.0.weight")."""
        return {join(name, k): a for name, layer in self.layers() for k, a in layer.arrays().items()}

    def parameters(self) -> dict[str, np.ndarray]:
        """The trainable arrays only (no running statistics), by key."""
        return {join(name, k): a for name, layer in self.layers() for k, a in layer.params.items()}

    def num_parameters(self) -> int:
        return int(sum(a.size for a in self.parameters().values()))

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        """Put arrays into the layers, checking every name and shape (one-line WeightsError)."""
        expected = self.state_dict()
        unexpected = sorted(set(arrays) - set(expected))
        if unexpected:
            raise WeightsError(f"unexpected array {unexpected[0]!r} ({len(unexpected)} in all) that no layer of "
                               f"the architecture holds")
        for name, layer in self.layers():
            prefix = f"{name}."
            own = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix) and "." not in k[len(prefix):]}
            layer.load_arrays(name, own)

    def astype(self, dtype) -> Model:
        """A copy whose parameters are stored in ``dtype`` (e.g. float64 for gradient checks)."""
        twin = copy.deepcopy(self)
        for _, layer in twin.layers():
            for store in (layer.params, layer.buffers):
                for k in store:
                    store[k] = store[k].astype(dtype)
        twin._run = Pass()
        return twin

    # ------------------------------------------------------------ passes
    @property
    def activations(self) -> dict[str, np.ndarray]:
        """Output of every named layer in the last forward pass."""
        return self._run.activations

    @property
    def gradients(self) -> dict[str, np.ndarray]:
        """d(scalar)/d(output) of every named layer reached by the last backward pass."""
        return self._run.gradients

    @property
    def inputs(self) -> dict[str, np.ndarray]:
        """Input of every leaf layer in the last forward pass (a pair (a, b) for an Add)."""
        return self._run.inputs

    @property
    def param_grads(self) -> dict[str, np.ndarray]:
        """d(scalar)/d(parameter) by key, after ``backward(..., param_grads=True)``."""
        return self._run.param_grads

    def forward(self, x, *, replace: dict[str, np.ndarray] | None = None, keep: bool = True) -> np.ndarray:
        """Logits (N, K) for the batch x (N, C, H, W), computed in x's dtype.

        Keeps every layer's output in ``activations``. Each forward starts a
        new pass: the previous pass's activations and gradients are dropped
        (copy what you want to keep). ``replace={name: A}`` substitutes A for
        that layer's output and runs the rest from it. ``keep=False`` keeps
        nothing but the logits: ``activations`` stays empty and ``backward``
        is not possible, but each layer's output is freed as soon as the next
        layer has read it (the fastest pass, in the least memory: for when
        only the scores matter).
        """
        self._run, self._logits_shape = Pass(), None   # a forward that fails leaves no pass to go back through
        channels = self.input_size[0] if self.input_size else None
        x = check_input(x, channels)
        replace = check_replace(self, replace)
        n = len(x)
        pieces = batch_chunks(n, x[0].size, parallel.threads())
        blas = parallel.blas_pass(len(pieces), x[0].size)
        keep_freed_memory()                              # the last pass's memory serves this one
        with parallel.session(blas):
            if len(pieces) > 1 and all(np.shape(a)[:1] == (n,) for a in replace.values()):
                runs = [Pass(replace={k: a[s] for k, a in replace.items()}, keep=keep) for s in pieces]
                logits = np.concatenate(parallel.run(
                    lambda piece: self.root.run_forward(x[piece[0]], piece[1], ""), zip(pieces, runs)))
                self._run = Chunks(pieces, runs)
            else:
                self._run = Pass(replace=replace, keep=keep)
                logits = self.root.run_forward(x, self._run, "")
        self._logits_shape, self._dtype, self._blas = logits.shape, x.dtype, blas
        return logits

    def forward_from(self, name: str, A, *, keep: bool = True) -> np.ndarray:
        """Logits (N, K) computed from A, the output of layer ``name``, running only the layers after it.

        Nothing below ``name`` runs (Ablation-CAM scores K edited copies of a
        feature map this way). ``name`` must be a layer whose output alone
        feeds the rest of the network: a step of a Sequential chain, or the
        last step of a block ("layer3.2" or "layer3.2.relu", not
        "layer3.2.conv1", whose block still needs its input for the shortcut).
        ``activations`` then holds A and the outputs of the layers that ran
        (nothing with ``keep=False``). A batch goes in chunks on every core, as
        in ``forward``. A forward-only pass: ``backward`` needs a full ``forward`` first.
        """
        A = np.asarray(A)
        if A.ndim < 2 or A.shape[0] == 0 or A.dtype not in (np.float32, np.float64):
            raise InputError(f"forward_from needs a float32 or float64 batch (N, ...) of layer outputs; "
                             f"got dtype {A.dtype}, shape {A.shape}")
        self[name]  # unknown names fail here, with suggestions
        self._run, self._logits_shape = Pass(), None   # a pass that fails leaves nothing to go back through
        for (container, later), path in zip(self._after(name), self._enclosing(name)):
            if later and not isinstance(container, Sequential):
                raise InputError(f"forward_from cannot resume at {name!r}: the block {path!r} also reads its own "
                                 f"input after it; resume at {path!r} or at a layer outside the block")

        def resume(piece):
            """The layers after ``name``, container by container outwards, on A[piece]."""
            where, run = piece
            out = run.record_output(name, A[where])
            for (_container, later), path in zip(self._after(name), self._enclosing(name)):
                for n, child in later:
                    out = child.run_forward(out, run, join(path, n))
                if path:
                    out = run.record_output(path, out)
            return out

        pieces = batch_chunks(len(A), A[0].size, parallel.threads())
        runs = [Pass(keep=keep) for _ in pieces]
        with parallel.session(parallel.blas_pass(len(pieces), A[0].size)):
            logits = parallel.run(resume, zip(pieces, runs))
        self._run = Chunks(pieces, runs) if len(pieces) > 1 else runs[0]
        return logits[0] if len(logits) == 1 else np.concatenate(logits)

    def _enclosing(self, name: str) -> list[str]:
        """The paths of the containers around ``name``, innermost first, ending with the root ("")."""
        paths = []
        while name:
            name = name.rpartition(".")[0]
            paths.append(name)
        return paths

    def _after(self, name: str) -> list[tuple[Module, list]]:
        """For each container around ``name`` (innermost first): it, and its children after ``name``'s branch."""
        out, step = [], name
        for path in self._enclosing(name):
            container = self.root if not path else self._modules[path]
            children = container.children()
            out.append((container, children[[join(path, n) for n, _ in children].index(step) + 1:]))
            step = path
        return out

    def backward(self, dlogits, *, relu: str = "plain", rules: dict | None = None, param_grads: bool = False,
                 stop_at: str | None = None) -> np.ndarray | None:
        """Backpropagate d(scalar)/d(logits) (N, K) through every layer, last to first.

        Fills ``gradients`` (and ``param_grads`` if asked) and returns
        d(scalar)/dx (N, C, H, W). With ``stop_at=name`` it stops as soon as
        the gradient at that layer's output is known and returns None: the
        cheapest way to get dy^c/dA for Grad-CAM.

        ``rules`` ({layer name: rule(layer, x, dout) -> dx}) runs the same
        pass with other local rules at the named layers; the others keep their
        derivative. The signal is then no longer a gradient (LRP's relevance,
        for instance), but ``gradients`` records it at every layer all the same.
        """
        if self._logits_shape is None:
            raise InputError("call model.forward(x) before model.backward(dlogits)")
        dlogits = np.asarray(dlogits)
        if dlogits.dtype.kind not in "biuf":
            raise InputError(f"dlogits must be real numbers (e.g. the one-hot e_c); got dtype {dlogits.dtype}")
        if dlogits.shape != self._logits_shape:
            raise InputError(f"dlogits must have the logits' shape {self._logits_shape}, got {dlogits.shape}")
        if not np.isfinite(dlogits).all():
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(dlogits))[0])
            raise InputError(f"dlogits contains NaN or infinity (first at index {bad}); the seed must be finite, "
                             f"e.g. the one-hot e_c")
        relu_rule(relu)
        if stop_at is not None:
            self[stop_at]
        if rules:
            for name, rule in rules.items():
                if not isinstance(self[name], Layer) or not callable(rule):
                    raise InputError(f"rules map leaf layer names to functions rule(layer, x, dout); "
                                     f"got {name!r}: {type(rule).__name__}")
            if param_grads:
                raise InputError("param_grads=True needs the gradient at every layer; do not combine it with rules")
        if not self._run.keep:
            raise InputError("the last forward pass kept nothing (keep=False); run model.forward(x) again "
                             "before model.backward")
        dlogits = dlogits.astype(self._dtype, copy=False)
        chunks = self._run if isinstance(self._run, Chunks) else None
        pieces = chunks.pieces if chunks else [slice(None)]
        runs = chunks.runs if chunks else [self._run]

        def one(piece):
            where, run = piece
            run.gradients, run.param_grads = {}, {}
            run.relu, run.rules, run.want_param_grads, run.stop_at = relu, rules or None, param_grads, stop_at
            try:
                return self.root.run_backward(dlogits[where], run, "")
            except StopBackward:
                return None

        with parallel.session(self._blas):
            dx = parallel.run(one, zip(pieces, runs))
        if chunks:
            chunks.gradients = Joined([run.gradients for run in runs])
            chunks.param_grads = {k: sum(run.param_grads[k] for run in runs) for k in runs[0].param_grads}
        if any(d is None for d in dx):                 # stopped at ``stop_at``
            return None
        return dx[0] if len(dx) == 1 else np.concatenate(dx)

    def __call__(self, x) -> np.ndarray:
        return self.forward(x)

    # ------------------------------------------------------------ summary
    def summary(self, input_shape: tuple[int, ...] | None = None) -> str:
        """A table: name, type, output shape (for one input), parameter count."""
        shape = input_shape or self.input_size
        if shape is None:
            raise InputError("the model records no input size; pass input_shape=(C, H, W)")
        run = Pass()
        self.root.run_forward(np.zeros((1, *shape), np.float32), run, "")
        rows = [("name", "type", "output shape", "params")]
        for name, module in self._modules.items():
            depth = name.count(".")
            n_params = sum(a.size for a in module.params.values()) if isinstance(module, Layer) else 0
            out = run.activations.get(name)
            rows.append(("  " * depth + name, type(module).__name__,
                         "x".join(map(str, out.shape[1:])) if out is not None else "-",
                         f"{n_params:,}" if n_params else ""))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = ["  ".join(r[i].ljust(widths[i]) if i < 3 else r[i].rjust(widths[i]) for i in range(4)) for r in rows]
        lines.insert(1, "-" * len(lines[0]))
        lines.append("-" * len(lines[0]))
        lines.append(f"{self.name}: input {'x'.join(map(str, shape))}, {self.num_parameters():,} parameters")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<minicnn Model {self.name!r}: {len(self.layers())} layers, {self.num_parameters():,} parameters>"

"""``minicnn bench``: how fast minicnn explains, next to PyTorch doing the same work.

What is timed, at batch 1 unless said otherwise:

- VGG-16 at 224x224 with random weights (``zoo.build_architecture("vgg16")``,
  no download): forward, Grad-CAM at features.29, guided backprop to the
  input, Guided Grad-CAM;
- each shipped CIFAR-10 model (``minicnn.load``): the same four, an
  occlusion map (the explain defaults: 8x8 patch, stride 2); the forward
  pass of a batch of 64 and of 256 images (``batch64``, ``batch256``:
  logits only, ``keep=False``, as PyTorch under ``no_grad``); a forward and
  backward pass to the input of a batch of 64 (``backward64``: every
  activation kept, the gradient of the sum of each image's target score,
  the step Integrated Gradients and SmoothGrad repeat); Score-CAM at the
  default layer (``scorecam``, ``explain.scorecam``: one masked copy of the
  image per map of that layer, each map upsampled and scaled to [0, 1],
  through the network 2^18 input elements at a time, the weights the
  softmax scores of the class); and, when ``--data`` names the CIFAR-10 JPEG test set
  (a zip or folder, see ``minicnn.datasets``), ``minicnn evaluate`` on it
  end to end (``evaluate``: reading, JPEG decoding, preprocessing, 200
  images per pass) against a PyTorch loop over the same images, decoded
  beforehand, preprocessed and classified 200 at a time;
- the shipped ImageNet model ``mobilenet_v2`` at 224x224 (depthwise
  convolutions, ReLU6, inverted residuals): the first four.

When PyTorch is importable, the same operations run in PyTorch in the same
process, on a twin of the model built layer by layer from ``model.spec()``
(torchvision's names, so "features.29" is the same layer) with the *same*
weights copied in: Grad-CAM keeps a gradient only at the explained layer,
guided backprop uses a guided ReLU written as an autograd Function, and no
parameter needs a gradient. PyTorch gets as many threads as NumPy's BLAS
(threadpoolctl tells). Every result is checked against minicnn's (largest
difference relative to the largest value, the ``diff`` column).

Timing: one warm-up call of each side, then the repetitions alternate
minicnn, PyTorch, minicnn, ... so that a busy machine slows both alike.
Each repetition rests 0.3 s (so that the threads the other library left
spinning have gone to sleep), then times ``inner`` calls (enough for about
0.1 s; 1 for VGG-16) and reports the time per call; the table gives the
median, min and max. ``evaluate`` takes seconds a call: it gets at most 3
repetitions. ratio: the median over the repetitions of minicnn's
time / PyTorch's time in the same turn (a pair taken back to back shares
the machine's load); the JSON also has the ratio of the medians and of the
minima. The load average before and after the run is in the header.

Memory: peak resident memory (VmHWM) of a fresh process that builds the
model, resets the peak (``/proc/self/clear_refs``) and runs the operation
once; minicnn and PyTorch each in their own process, so neither's memory is
counted in the other's. ``peak`` is the whole process (libraries, weights
and all), ``+op`` what the operation added above the memory held before it.
The inputs are random (the time does not depend on the image).

OpenBLAS environment variables that pin an older processor kernel
(OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE) slow down a current NumPy. When they
are set, ``minicnn bench`` does its timing in a child process started
without them (``subprocess``: this process waits and returns the child's
exit status; nothing replaces or ends the caller) and the header says which
variables were dropped; ``--keep-env`` times in this process, with them,
and the header says they were kept.
"""

from __future__ import annotations

import datetime as _dt
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import explain, parallel
from .atomic import Outputs
from .errors import InputError, MinicnnError
from .explain import default_layer
from .explain.occlusion import offsets

#: Environment variables that select an older OpenBLAS kernel; the bench drops them.
SLOW_BLAS_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_DROPPED = "MINICNN_BENCH_DROPPED"

#: The shipped CIFAR-10 models the bench looks for.
CIFAR_MODELS = ("resnet20_cifar10", "vgg_cifar10")

#: Operations, in table order (a model has the ones it is timed on).
OPERATIONS = ("forward", "gradcam", "guided_backprop", "guided_gradcam", "occlusion", "batch64", "batch256",
              "backward64", "scorecam", "evaluate")

#: Operations on batches (CIFAR models only); ``evaluate`` needs ``--data``.
BATCHED = ("occlusion", "batch64", "batch256", "backward64", "scorecam", "evaluate")

#: Seconds of rest before each timed sample (see ``interleaved``).
PAUSE_S = 0.3

#: Repetitions at most for an operation that takes seconds a call.
SLOW_REPS = {"evaluate": 3}

#: Images per pass of ``evaluate`` (its default batch size).
EVALUATE_BATCH = 200

#: Input elements per forward pass of Score-CAM's masked copies (explain's default).
MASKED_BATCH_ELEMENTS = 2 ** 18

#: The targets, as largest ratios to PyTorch: per "model/operation", per operation of every
#: shipped CIFAR model ("cifar/operation").
TARGETS = {"vgg16/gradcam": 1.0, "vgg16/guided_backprop": 1.1, "cifar/gradcam": 2.0,
           **{f"cifar/{op}": 1.2 for op in BATCHED},
           "mobilenet_v2/forward": 1.5, "mobilenet_v2/gradcam": 1.5, "mobilenet_v2/guided_backprop": 1.5}


def say(message: str) -> None:
    """Progress on stderr, so stdout is the table alone."""
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the machine

def blas_info() -> dict:
    """NumPy's BLAS as threadpoolctl reports it: library, version, kernel, threads."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return {"library": "unknown (threadpoolctl not installed)", "threads": os.cpu_count() or 1}
    pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    mine = [p for p in pools if "numpy" in p.get("filepath", "") or "scipy_openblas" in p.get("filepath", "")]
    pool = (mine or pools or [{}])[0]
    return {"library": f"{pool.get('internal_api', 'unknown')} {pool.get('version') or ''}".strip(),
            "kernel": pool.get("architecture"), "threads": int(pool.get("num_threads") or os.cpu_count() or 1)}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load() -> float | None:
    """The 1-minute load average: how busy the machine was (other processes included)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def import_torch():
    """torch, or None when it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def machine_info(torch) -> dict:
    blas = blas_info()
    info = {"date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "blas": blas["library"], "blas_kernel": blas.get("kernel"),
            "threads": blas["threads"], "minicnn_threads": parallel.threads(),
            "torch": torch.__version__ if torch else None,
            "dropped_env": os.environ.get(_DROPPED) or None, "load_before": _load()}
    for name in SLOW_BLAS_VARIABLES:
        if name in os.environ:
            info.setdefault("kept_env", []).append(f"{name}={os.environ[name]}")
    return info


# ---------------------------------------------------------------- what is timed

@dataclass
class Case:
    """One model with its inputs: x (1, C, H, W); for CIFAR models a batch (256, C, H, W)
    (its first 64 images for the batch-64 operations) and the dataset."""

    name: str
    model: object
    x: np.ndarray
    target: int = 0
    layer: str = ""
    batch: np.ndarray | None = None
    data: str | None = None
    operations: tuple = ("forward", "gradcam", "guided_backprop", "guided_gradcam")


def make_case(name: str, data: str | None = None) -> Case:
    """A zoo architecture with random weights ("vgg16", "resnet20", ...) or a shipped model by name.

    Models for inputs up to 64x64 (the CIFAR ones) are timed on every
    operation (``evaluate`` only with ``data``, the path of the CIFAR-10
    test set); larger ones on the first four.
    MinicnnError if the name is neither.
    """
    from .zoo import ARCHITECTURES, build_architecture
    if name in ARCHITECTURES:
        model = build_architecture(name)
    else:
        from . import load
        model = load(name)
    rng = np.random.default_rng(0)
    c, h, w = model.input_size or (3, 32, 32)
    case = Case(name, model, rng.standard_normal((1, c, h, w), np.float32))
    logits = model.forward(case.x)
    case.target = int(np.argmax(logits[0]))
    case.layer = default_layer(model)
    if max(h, w) <= 64:
        case.batch = rng.standard_normal((256, c, h, w), np.float32)
        case.data = data
        case.operations = tuple(op for op in OPERATIONS if op != "evaluate" or data)
    return case


def minicnn_operations(case: Case) -> dict[str, Callable[[], np.ndarray]]:
    """Each operation as a call returning its result, through minicnn.explain and minicnn.evaluate."""
    model, x, c, layer = case.model, case.x, case.target, case.layer
    ops = {
        "forward": lambda: model.forward(x),
        "gradcam": lambda: explain.gradcam(model, x, c, layer).map,
        "guided_backprop": lambda: explain.guided_backprop(model, x, c).map,
        "guided_gradcam": lambda: explain.guided_gradcam(model, x, c, layer).map,
        "occlusion": lambda: explain.occlusion(model, x, c, progress=False).map,
    }
    if case.batch is not None:
        b64, b256 = case.batch[:64], case.batch
        onehot = np.zeros((len(b64), len(model.forward(x)[0])), np.float32)
        onehot[:, c] = 1

        def backward64():
            model.forward(b64)
            return model.backward(onehot)

        def evaluate():
            from .datasets import open_dataset
            from .evaluate import evaluate as run
            return np.array([run(model, open_dataset(case.data), EVALUATE_BATCH).correct])

        ops.update({"batch64": lambda: model.forward(b64, keep=False),
                    "batch256": lambda: model.forward(b256, keep=False),
                    "backward64": backward64, "evaluate": evaluate,
                    "scorecam": lambda: explain.scorecam(model, x, c, layer, progress=False).map})
    return {k: v for k, v in ops.items() if k in case.operations}


# ---------------------------------------------------------------- the PyTorch twin

def torch_twin(model, torch):
    """A PyTorch module with minicnn's architecture (from model.spec()), names and weights."""
    nn, F = torch.nn, torch.nn.functional

    class GuidedReLU(torch.autograd.Function):
        """Forward max(x, 0); backward g * (x > 0) * (g > 0)."""

        @staticmethod
        def forward(ctx, x):
            out = x.clamp(min=0)
            ctx.save_for_backward(out)
            return out

        @staticmethod
        def backward(ctx, g):
            (out,) = ctx.saved_tensors
            return g * ((out > 0) & (g > 0))

    class ReLU(nn.Module):
        guided = False

        def forward(self, x):
            return GuidedReLU.apply(x) if self.guided else F.relu(x)

    class OptionA(nn.Module):
        def __init__(self, pad_channels, stride):
            super().__init__()
            self.p, self.s = pad_channels, stride

        def forward(self, x):
            return F.pad(x[:, :, ::self.s, ::self.s], (0, 0, 0, 0, self.p, self.p))

    class BasicBlock(nn.Module):
        def __init__(self, in_planes, planes, stride=1, shortcut="A"):
            super().__init__()
            self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
            self.bn1, self.relu1 = nn.BatchNorm2d(planes), ReLU()
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2, self.relu = nn.BatchNorm2d(planes), ReLU()
            self.shortcut = OptionA(planes // 4, stride) if stride != 1 or in_planes != planes else nn.Identity()

        def forward(self, x):
            h = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
            return self.relu(h + self.shortcut(x))

    class Flatten(nn.Module):
        def forward(self, x):
            return torch.flatten(x, 1)

    class GuidedReLU6(torch.autograd.Function):
        """Forward clamp(x, 0, 6); backward g * (0 < x < 6) * (g > 0)."""

        @staticmethod
        def forward(ctx, x):
            out = x.clamp(0, 6)
            ctx.save_for_backward(out)
            return out

        @staticmethod
        def backward(ctx, g):
            (out,) = ctx.saved_tensors
            return g * ((out > 0) & (out < 6) & (g > 0))

    class ReLU6(ReLU):
        def forward(self, x):
            return GuidedReLU6.apply(x) if self.guided else F.relu6(x)

    class ZeroPad2d(nn.Module):
        def __init__(self, padding):
            super().__init__()
            self.padding = tuple(padding)               # (left, right, top, bottom), F.pad's order

        def forward(self, x):
            return F.pad(x, self.padding)

    class InvertedResidual(nn.Module):
        def __init__(self, in_channels, out_channels, stride=1, expand_ratio=6, padding="symmetric"):
            super().__init__()
            from collections import OrderedDict
            hidden = in_channels * expand_ratio

            def conv_relu6(c_in, c_out, k, s=1, groups=1):
                pad = padding == "tf_same" and s == 2 and k == 3
                layers = [("pad", ZeroPad2d((0, 1, 0, 1)))] if pad else []
                layers += [("0", nn.Conv2d(c_in, c_out, k, s, 0 if pad else (k - 1) // 2, groups=groups)),
                           ("2", ReLU6())]
                return nn.Sequential(OrderedDict(layers))
            layers = [conv_relu6(in_channels, hidden, 1)] if expand_ratio != 1 else []
            layers += [conv_relu6(hidden, hidden, 3, stride, hidden), nn.Conv2d(hidden, out_channels, 1)]
            self.conv = nn.Sequential(*layers)
            self.use_residual = stride == 1 and in_channels == out_channels

        def forward(self, x):
            return x + self.conv(x) if self.use_residual else self.conv(x)

    def build(spec):
        kind, kw = spec["type"], {k: v for k, v in spec.items() if k != "type"}
        if kind == "Sequential":
            from collections import OrderedDict
            return nn.Sequential(OrderedDict((name, build(child)) for name, child in kw["children"]))
        simple = {"Conv2d": nn.Conv2d, "MaxPool2d": nn.MaxPool2d, "AvgPool2d": nn.AvgPool2d,
                  "AdaptiveAvgPool2d": nn.AdaptiveAvgPool2d, "Linear": nn.Linear, "Dropout": nn.Dropout,
                  "BatchNorm2d": nn.BatchNorm2d, "Identity": nn.Identity}
        if kind in simple:
            return simple[kind](**{k: tuple(v) if isinstance(v, list) else v for k, v in kw.items()})
        others = {"ReLU": ReLU, "Flatten": Flatten, "BasicBlock": BasicBlock,
                  "OptionAShortcut": lambda pad_channels, stride: OptionA(pad_channels, stride),
                  "ReLU6": ReLU6, "ZeroPad2d": ZeroPad2d, "InvertedResidual": InvertedResidual}
        if kind not in others:
            raise MinicnnError(f"the PyTorch twin has no {kind} layer")
        return others[kind](**kw)

    with torch.no_grad():
        twin = build(model.spec()).eval()
        missing, unexpected = twin.load_state_dict(
            {k: torch.from_numpy(np.array(v, np.float32)) for k, v in model.state_dict().items()}, strict=False)
    if unexpected or any(not k.endswith("num_batches_tracked") for k in missing):
        raise MinicnnError(f"the PyTorch twin does not fit: missing {missing[:3]}, unexpected {unexpected[:3]}")
    for p in twin.parameters():
        p.requires_grad_(False)
    twin.relus = [m for m in twin.modules() if isinstance(m, ReLU)]
    return twin


def torch_operations(case: Case, twin, torch, only: str | None = None) -> dict[str, Callable[[], np.ndarray]]:
    """The same operations in PyTorch: gradients only where the method needs them.

    ``only``: the one operation wanted (``evaluate`` decodes the data set when it is built).
    """
    F = torch.nn.functional
    x, c = torch.from_numpy(case.x), case.target
    A_module = twin.get_submodule(case.layer)

    def forward():
        with torch.no_grad():
            return twin(x)

    def gradcam():
        kept = {}

        def keep(module, inputs, out):        # the graph starts at A: nothing before it is recorded
            kept["A"] = out.detach().requires_grad_(True)
            return kept["A"]

        hook = A_module.register_forward_hook(keep)
        try:
            score = twin(x)[0, c]
        finally:
            hook.remove()
        A = kept["A"]
        (dA,) = torch.autograd.grad(score, A)
        alpha = dA.mean(dim=(2, 3), keepdim=True)
        return torch.relu((alpha * A.detach()).sum(1))

    def guided_backprop():
        for relu in twin.relus:
            relu.guided = True
        try:
            xg = x.detach().requires_grad_(True)
            (dx,) = torch.autograd.grad(twin(xg)[0, c], xg)
        finally:
            for relu in twin.relus:
                relu.guided = False
        return dx

    def guided_gradcam():
        cam = gradcam()
        heat = F.interpolate(cam[:, None], size=x.shape[2:], mode="bilinear", align_corners=False)
        return guided_backprop() * heat

    def occlusion():
        n, ch, h, w = x.shape
        size = max(1, min(h, w) // 4)
        stride = max(1, size // 4)
        rows, cols = offsets(h, size, stride), offsets(w, size, stride)
        positions = [(r, s) for r in rows for s in cols]
        per_pass = max(1, 2 ** 18 // x[0].numel())
        with torch.no_grad():
            base = twin(x)[0, c]
            grid = torch.empty(len(positions))
            for start in range(0, len(positions), per_pass):
                chunk = positions[start:start + per_pass]
                copies = x.repeat(len(chunk), 1, 1, 1)
                for b, (r, s) in enumerate(chunk):
                    copies[b, :, r:r + size, s:s + size] = 0
                grid[start:start + len(chunk)] = base - twin(copies)[:, c]
            total, count = torch.zeros(h, w), torch.zeros(h, w)
            for (r, s), drop in zip(positions, grid):
                total[r:r + size, s:s + size] += drop
                count[r:r + size, s:s + size] += 1
        return total / count

    ops = {"forward": forward, "gradcam": gradcam, "guided_backprop": guided_backprop,
           "guided_gradcam": guided_gradcam, "occlusion": occlusion}
    if case.batch is not None:
        b64, b256 = torch.from_numpy(case.batch[:64]), torch.from_numpy(case.batch)

        def batch(b):
            with torch.no_grad():
                return twin(b)

        def backward64():
            xg = b64.detach().requires_grad_(True)
            (dx,) = torch.autograd.grad(twin(xg)[:, c].sum(), xg)
            return dx

        def scorecam():
            kept = {}
            hook = A_module.register_forward_hook(lambda module, inputs, out: kept.update(A=out))
            try:
                with torch.no_grad():
                    twin(x)
            finally:
                hook.remove()
            A = kept["A"][0]                                                       # K, h, w
            with torch.no_grad():
                U = F.interpolate(A[None], size=x.shape[2:], mode="bilinear", align_corners=False)[0]
                low, high = U.amin(dim=(1, 2), keepdim=True), U.amax(dim=(1, 2), keepdim=True)
                k = torch.nonzero(high.flatten() > low.flatten()).flatten()       # constant maps weigh 0
                H = (U[k] - low[k]) / (high[k] - low[k])
                per_pass = max(1, MASKED_BATCH_ELEMENTS // x[0].numel())
                scores = torch.cat([torch.softmax(twin(x * H[j:j + per_pass, None]), dim=1)[:, c]
                                    for j in range(0, len(k), per_pass)])
                alpha = torch.zeros(len(A)).index_put_((k,), scores)
                return torch.relu((alpha[:, None, None] * A).sum(0))

        ops.update({"batch64": lambda: batch(b64), "batch256": lambda: batch(b256), "backward64": backward64,
                    "scorecam": scorecam})
        if case.data and only in (None, "evaluate"):
            ops["evaluate"] = torch_evaluate(case, twin, torch)
    return {k: v for k, v in ops.items() if k in case.operations}


def torch_evaluate(case: Case, twin, torch) -> Callable[[], np.ndarray]:
    """A PyTorch loop over the test set's images, decoded here (untimed, and resized as the model's
    preprocessing says), 200 at a time: scale, normalise, channels first, classify, count the correct top-1."""
    from .datasets import open_dataset
    from .evaluate import label_map
    from PIL import Image
    dataset = open_dataset(case.data)
    prep = case.model.meta["preprocessing"]
    to_model = torch.from_numpy(label_map(case.model.classes, dataset.classes))
    h, w = prep["size"]

    def resized(images):                              # as minicnn's "exact" resize, when sizes differ
        if images.shape[1:3] == (h, w):
            return images
        return np.stack([np.asarray(Image.fromarray(im).resize((w, h), Image.Resampling.BILINEAR)) for im in images])

    decoded = [(torch.from_numpy(resized(images)), torch.from_numpy(labels))
               for images, labels in dataset.batches(EVALUATE_BATCH)]
    mean = torch.tensor(prep["mean"], dtype=torch.float32)
    std = torch.tensor(prep["std"], dtype=torch.float32)

    def evaluate():
        correct = 0
        with torch.no_grad():
            for images, labels in decoded:
                x = ((images.float() / 255 - mean) / std).permute(0, 3, 1, 2).contiguous()
                correct += int((twin(x).argmax(dim=1) == to_model[labels]).sum())
        return np.array([correct])
    return evaluate


def relative_difference(a, b) -> float:
    """max |a - b| / max |b|: how far minicnn's result is from PyTorch's."""
    a = np.asarray(a, np.float64).reshape(-1)
    b = np.asarray(b.detach().numpy() if hasattr(b, "detach") else b, np.float64).reshape(-1)
    if a.shape != b.shape:
        return float("nan")
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))


# ---------------------------------------------------------------- timing

def interleaved(fns: list[Callable], reps: int, inner: int, pause: float | None = None) -> list[list[float]]:
    """Seconds per call for each function, ``reps`` samples each, taken in turns A B A B ...

    Each sample times ``inner`` calls after a short pause: a BLAS or OpenMP
    library keeps its idle threads spinning for a while after a call (about
    0.1 s for OpenBLAS), and without the pause they would take a core from
    the next library's sample.
    """
    times = [[] for _ in fns]
    for _ in range(reps):
        for i, fn in enumerate(fns):
            time.sleep(PAUSE_S if pause is None else pause)
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            times[i].append((time.perf_counter() - start) / inner)
    return times


def summary(times: list[float]) -> dict:
    return {"s": statistics.median(times), "min_s": min(times), "max_s": max(times)}


# ---------------------------------------------------------------- memory

def _status_kib(field_name: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def probe(case_name: str, operation: str, side: str, data: str | None = None) -> dict:
    """Build the case in this (fresh) process, reset the peak, run the operation once; MiB figures.

    Runs in a child process started by ``measure_memory``.
    """
    torch = import_torch() if side == "torch" else None
    if torch is not None:
        torch.set_num_threads(blas_info()["threads"])
    case = make_case(case_name, data or None)
    if side == "torch":
        twin = torch_twin(case.model, torch)
        fn = torch_operations(case, twin, torch, only=operation)[operation]
        case.model = None                      # minicnn's copy of the weights leaves this process
    else:
        fn = minicnn_operations(case)[operation]
    gc.collect()
    before = _status_kib("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")                       # VmHWM := VmRSS, forgetting the set-up's peak
        method = "VmHWM after clear_refs"
    except OSError:
        method = "ru_maxrss (set-up included)"
    fn()
    peak = _status_kib("VmHWM")
    if peak is None:
        import resource
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"peak_mib": peak / 1024, "op_mib": (peak - (before or 0)) / 1024, "method": method}


def measure_memory(case_name: str, operation: str, side: str, data: str | None = None) -> dict | None:
    """``probe`` in a fresh Python process; None if it fails (the reason goes to stderr)."""
    code = ("import json, sys; from minicnn.bench import probe; "
            "print(json.dumps(probe(*sys.argv[1:])))")
    try:
        done = subprocess.run([sys.executable, "-c", code, case_name, operation, side, data or ""],
                              capture_output=True, text=True, timeout=600)
        if done.returncode == 0:
            return json.loads(done.stdout.strip().splitlines()[-1])
        say(f"  memory probe {case_name}/{operation} ({side}) failed: {done.stderr.strip().splitlines()[-1:]}")
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired) as e:
        say(f"  memory probe {case_name}/{operation} ({side}) failed: {e}")
    return None


# ---------------------------------------------------------------- the run

@dataclass
class Settings:
    reps: int = 7
    min_sample_s: float = 0.1           # inner calls per sample: enough for this long (1 for slow calls)
    memory: bool = True
    use_torch: bool = True
    case_names: tuple = ("vgg16", *CIFAR_MODELS, "mobilenet_v2")   # zoo architectures (random weights) or shipped models
    data: str | None = None             # the CIFAR-10 test set, for ``evaluate``
    notes: list = field(default_factory=list)


def bench_case(case: Case, settings: Settings, torch) -> dict[str, dict]:
    """Time (and measure) every operation of one case; {"name/op": {...}}."""
    results = {}
    mine = minicnn_operations(case)
    theirs = {}
    if torch is not None:
        twin = torch_twin(case.model, torch)
        theirs = torch_operations(case, twin, torch)
    for op, fn in mine.items():
        key = f"{case.name}/{op}"
        say(f"timing {key} ...")
        other = theirs.get(op)
        ours = fn()                                           # warm-up, and the result to compare
        row = {}
        if other is not None:
            row["diff"] = relative_difference(ours, other())  # the other side's warm-up
        sides = [fn] + ([other] if other is not None else [])
        once = min(t[0] for t in interleaved(sides, 1, 1))   # calls per sample: the faster side's
        inner = max(1, math.ceil(settings.min_sample_s / max(once, 1e-6)))
        reps = min(settings.reps, SLOW_REPS.get(op, settings.reps))
        times = interleaved(sides, reps, inner)
        s = summary(times[0])
        row.update({"minicnn_s": s["s"], "minicnn_min_s": s["min_s"], "minicnn_max_s": s["max_s"]})
        if other is not None:
            t = summary(times[1])
            row.update({"torch_s": t["s"], "torch_min_s": t["min_s"], "torch_max_s": t["max_s"],
                        "ratio": statistics.median(a / b for a, b in zip(*times)),
                        "ratio_of_medians": s["s"] / t["s"], "ratio_of_minima": s["min_s"] / t["min_s"]})
        row.update({"reps": reps, "calls_per_rep": inner})
        if settings.memory:
            for side in ("minicnn",) + (("torch",) if other is not None else ()):
                say(f"  memory {key} ({side}) ...")
                m = measure_memory(case.name, op, side, case.data)
                if m:
                    row[f"{side}_peak_mib"], row[f"{side}_op_mib"] = m["peak_mib"], m["op_mib"]
                    row["memory_method"] = m["method"]
        results[key] = row
    return results


def run(settings: Settings) -> tuple[dict, dict[str, dict]]:
    """(machine info, results by "model/operation") for the cases in ``settings``."""
    torch = import_torch() if settings.use_torch else None
    info = machine_info(torch)
    if torch is not None:
        torch.set_num_threads(info["threads"])
        info["torch_threads"] = torch.get_num_threads()
    elif settings.use_torch:
        settings.notes.append("PyTorch is not installed: minicnn alone (pip install torch for the comparison)")
    results = {}
    for name in settings.case_names:
        try:
            case = make_case(name, settings.data)
        except MinicnnError as e:
            settings.notes.append(f"{name} skipped: {e}")
            say(f"{name} skipped: {e}")
            continue
        results.update(bench_case(case, settings, torch))
        del case
        gc.collect()
    if not settings.data and any(n in CIFAR_MODELS for n in settings.case_names):
        settings.notes.append("evaluate not timed: give the CIFAR-10 JPEG test set with --data PATH")
    info["notes"] = list(settings.notes)
    info["reps"] = settings.reps
    info["load_after"] = _load()
    return info, results


# ---------------------------------------------------------------- the report

def target_of(key: str) -> float | None:
    """The largest ratio to PyTorch that ``TARGETS`` allows for "model/operation", if any."""
    model, _, op = key.partition("/")
    if key in TARGETS:
        return TARGETS[key]
    return TARGETS.get(f"cifar/{op}") if model in CIFAR_MODELS else None


def targets(results: dict) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for each of the issue's targets that this run measured."""
    rows = []
    for key, r in results.items():
        limit = target_of(key)
        if limit is not None and "ratio" in r:
            rows.append((f"{key} <= {limit:.2f}x PyTorch", f"{r['ratio']:.2f}x", r["ratio"] <= limit))
    both = [(k, r) for k, r in results.items() if "minicnn_peak_mib" in r and "torch_peak_mib" in r]
    if both:
        worse = [k for k, r in both if r["minicnn_peak_mib"] > r["torch_peak_mib"]]
        rows.append(("peak memory <= PyTorch's", f"{len(both) - len(worse)}/{len(both)} operations"
                     + (f" (not: {', '.join(worse)})" if worse else ""), not worse))
    return rows


def table(info: dict, results: dict) -> str:
    """The report as plain text: header, one row per operation, the targets."""
    torch_txt = (f"torch {info['torch']} ({info.get('torch_threads')} threads)" if info.get("torch")
                 else "torch not installed")
    lines = [f"minicnn bench, {info['date']}",
             f"machine: {info['cpu']}, {info['cores']} cores; Python {info['python']}",
             f"numpy {info['numpy']}, BLAS {info['blas']}"
             + (f" ({info['blas_kernel']} kernel)" if info.get("blas_kernel") else "")
             + f", {info['threads']} threads; {torch_txt}"]
    if "minicnn_threads" in info:
        lines.append(f"minicnn: {info['minicnn_threads']} threads of its own for batches and large images "
                     "(BLAS held to one thread meanwhile)")
    if info.get("load_before") is not None:
        lines.append(f"load average (1 min): {info['load_before']} before, {info.get('load_after')} after "
                     f"(on {info['cores']} cores)")
    if info.get("dropped_env"):
        lines.append(f"note: ran without {info['dropped_env']} (they select an older, slower OpenBLAS kernel)")
    if info.get("kept_env"):
        lines.append(f"note: {', '.join(info['kept_env'])} set: BLAS may run an older, slower kernel")
    lines.append(f"time per call: median (min-max) of {info['reps']} repetitions after a warm-up, minicnn and "
                 "PyTorch alternating; ratio: median of minicnn / PyTorch over the pairs")
    lines.append("memory: peak RSS of a fresh process running the operation once (+op: above the memory "
                 "held before it), one process per side")
    lines.append("")
    head = ("operation", "minicnn", "PyTorch", "ratio", "diff", "minicnn MiB", "PyTorch MiB")
    rows = [head]

    def span(r, side):
        if f"{side}_s" not in r:
            return "-"
        return _ms(r[side + '_s'], r[side + '_min_s'], r[side + '_max_s'])

    def mem(r, side):
        if f"{side}_peak_mib" not in r:
            return "-"
        return f"{r[side + '_peak_mib']:.0f} (+{max(0.0, r[side + '_op_mib']):.0f})"   # below 0: noise, not memory

    for key, r in results.items():
        rows.append((key, span(r, "minicnn"), span(r, "torch"),
                     f"{r['ratio']:.2f}x" if "ratio" in r else "-",
                     f"{r['diff']:.0e}" if "diff" in r else "-", mem(r, "minicnn"), mem(r, "torch")))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    for n, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)))
        if n == 0:
            lines.append("-" * len(lines[-1]))
    checks = targets(results)
    if checks:
        lines += ["", "targets:"]
        lines += [f"  {'met   ' if ok else 'MISSED'} {what}: {measured}" for what, measured, ok in checks]
    for note in info.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines)


def _ms(seconds: float, low: float | None = None, high: float | None = None) -> str:
    """A time in the unit that suits it, and its range in brackets in that same unit.

    "4.5 ms (3.1-21.7)", "592 ms (421-1520)", "1.29 s (0.85-2.10)": ms with one
    decimal below 0.1 s, whole ms below 1 s, s with two decimals from 1 s up.
    """
    scale, digits, unit = (1.0, 2, "s") if seconds >= 1 else (1e3, 1 if seconds < 0.1 else 0, "ms")
    text = f"{seconds * scale:.{digits}f} {unit}"
    if low is not None and high is not None:
        text += f" ({low * scale:.{digits}f}-{high * scale:.{digits}f})"
    return text


def to_json(info: dict, results: dict) -> dict:
    """{"model/operation": {...}, ...} plus "_meta" (date, machine, versions, notes)."""
    return {**results, "_meta": info}


# ---------------------------------------------------------------- the command

def clean_environment(environ) -> tuple[dict, list[str]]:
    """(environ without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, ["NAME=value" of those dropped])."""
    dropped = [f"{k}={environ[k]}" for k in SLOW_BLAS_VARIABLES if k in environ]
    return {k: v for k, v in environ.items() if k not in SLOW_BLAS_VARIABLES}, dropped


def bench_argv(args) -> list[str]:
    """The command-line arguments that repeat ``args`` (for the child process)."""
    argv = ["--json", args.json] if args.json else []
    argv += ["--quick"] if args.quick else []
    argv += ["--models", ",".join(args.models)] if getattr(args, "models", None) else []
    argv += ["--reps", str(args.reps)] if getattr(args, "reps", None) else []
    argv += ["--no-memory"] if getattr(args, "no_memory", False) else []
    argv += ["--data", args.data] if getattr(args, "data", None) else []
    argv += ["--force"] if getattr(args, "force", False) else []
    return argv


def run_without_slow_blas(argv: list[str]) -> int:
    """Run ``minicnn bench ARGV`` in a child process without the slow-BLAS variables; its exit status.

    The child inherits stdout and stderr; this process only waits for it.
    """
    env, dropped = clean_environment(os.environ)
    env[_DROPPED] = ", ".join(dropped)
    say(f"timing in a child process without {', '.join(dropped)} (they select an older, slower kernel for "
        "this NumPy's BLAS; --keep-env times with them)")
    sys.stdout.flush()
    return subprocess.run([sys.executable, "-m", "minicnn.cli", "bench", *argv], env=env, check=False).returncode


def check_model_names(names) -> None:
    """A one-line error (before any timing) for a name in ``--models`` that is no architecture, shipped model or file."""
    from .weights import locate
    from .zoo import ARCHITECTURES
    if not names:
        raise InputError("--models names no model; give a comma-separated list, e.g. resnet20_cifar10,vgg16")
    for name in names:
        if name not in ARCHITECTURES:
            locate(name)


def bench_command(args) -> int:
    outputs = Outputs(force=getattr(args, "force", False))  # every command's overwrite rule
    if getattr(args, "models", None) is not None:
        check_model_names(args.models)
    if args.json:
        outputs.output(args.json, "--json")            # refuse now, not after minutes of timing
    slow = any(k in os.environ for k in SLOW_BLAS_VARIABLES)
    if slow and _DROPPED not in os.environ and not getattr(args, "keep_env", False):
        return run_without_slow_blas(bench_argv(args))
    settings = Settings()
    if args.quick:
        settings.reps, settings.min_sample_s, settings.case_names = 3, 0.05, CIFAR_MODELS
    if getattr(args, "models", None):
        settings.case_names = tuple(args.models)
    if getattr(args, "reps", None):
        settings.reps = args.reps
    if getattr(args, "no_memory", False):
        settings.memory = False
    if getattr(args, "data", None):
        from .datasets import open_dataset
        open_dataset(args.data)                        # a bad path fails now, not after minutes of timing
        settings.data = str(args.data)
    info, results = run(settings)
    text = table(info, results)
    print(text)
    if args.json:
        with outputs.writing(), outputs.open(args.json) as f:
            f.write((json.dumps(to_json(info, results), indent=2) + "\n").encode("utf-8"))
        say(f"wrote {args.json}")
    return 0

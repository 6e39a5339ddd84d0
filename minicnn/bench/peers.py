"""``minicnn bench --peers``: every explanation method against the peer libraries' own public calls.

For each model (the shipped CIFAR-10 models by default) one shipped CIFAR-10 test image is
explained for its predicted class, at the method's default layer (``default_layer``), by
every method of the registry (``minicnn.explain.registry.METHODS``, with its defaults), and
by each peer library that has the method, called as its users call it, with the same
model (a PyTorch twin with the same weights), image, target, layer and settings:

    pytorch-grad-cam 1.5.7   GradCAM, GradCAMPlusPlus, XGradCAM, HiResCAM, LayerCAM, ScoreCAM,
                             AblationCAM, EigenCAM, EigenGradCAM, FullGrad: ``with Cls(model,
                             [layer]) as cam: cam(input_tensor=x, targets=[ClassifierOutputTarget(c)])``
                             (its maps come back min-max scaled and resized to the input: part of its call)
    captum 0.9.0             LayerGradCam, GuidedBackprop, GuidedGradCam, Deconvolution, Saliency,
                             InputXGradient, IntegratedGradients (50 steps, Gauss-Legendre, zero
                             baseline), NoiseTunnel over Saliency (smoothgrad, smoothgrad_sq,
                             vargrad; 50 samples, sigma = 0.15 (max x - min x)), Occlusion (8x8
                             patch, stride 2, fill 0, as many occluded copies per forward pass as
                             minicnn's): ``Cls(model[, layer]).attribute(x, target=c, ...)``
    zennit 0.5.1             the LRP composites (epsilon: a LayerMapComposite with Epsilon on every
                             convolution and dense layer; EpsilonPlus; EpsilonGammaBox with the
                             input's box), BatchNorm merged by SequentialMergeBatchNorm:
                             ``with Gradient(model, composite) as attributor: attributor(x, y^c one-hot)``

A method no library has (Counterfactual, CAM) says "no peer"; a peer whose library is not
installed says which library and what to install, in one line, and the run goes on without it.

The libraries (which are installed, what to install, the stand-ins for the torchvision,
OpenCV and scikit-learn names they import) are ``peer_libraries``; the table and JSON
``peer_report``.

Timing as in ``minicnn bench``: one warm-up call of each side, then repetitions that
alternate minicnn, peer 1, peer 2, minicnn, ... (``timing.interleaved``), the median and
range of each, and the ratio minicnn / peer as the median over the repetitions of the
pair's quotient. Both sides run on the BLAS library's thread count. Peak memory: each side
once in a fresh process (``peer_probe``), as ``timing.probe`` does for the plain bench.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
import tempfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MinicnnError
from ..explain import default_layer
from ..explain.deeplift import baseline_set
from ..explain.features import feature_mask
from ..explain.registry import METHODS
from ..inputs.preprocess import preprocess
from ..inputs.samples import load_sample
from ..models.weights import load
from .cases import CIFAR_MODELS, MASKED_BATCH_ELEMENTS
from .machine import _load, blas_info, import_torch, machine_info, say
from .peer_libraries import LIBRARIES, available_libraries, install_stand_ins, no_torch_message, version_of
from .timing import _status_kib, interleaved

#: Each registry method's peers: (library, the library's name for it). Methods not listed have no peer.
PEERS = {
    "gradcam": (("pytorch-grad-cam", "GradCAM"), ("captum", "LayerGradCam")),
    "guided-backprop": (("captum", "GuidedBackprop"),),
    "guided-gradcam": (("captum", "GuidedGradCam"),),
    "occlusion": (("captum", "Occlusion"),),
    "saliency": (("captum", "Saliency"),),
    "gradcam-plus-plus": (("pytorch-grad-cam", "GradCAMPlusPlus"),),
    "xgradcam": (("pytorch-grad-cam", "XGradCAM"),),
    "hirescam": (("pytorch-grad-cam", "HiResCAM"),),
    "layercam": (("pytorch-grad-cam", "LayerCAM"),),
    "scorecam": (("pytorch-grad-cam", "ScoreCAM"),),
    "ablationcam": (("pytorch-grad-cam", "AblationCAM"),),
    "eigencam": (("pytorch-grad-cam", "EigenCAM"),),
    "eigengradcam": (("pytorch-grad-cam", "EigenGradCAM"),),
    "fullgrad": (("pytorch-grad-cam", "FullGrad"),),
    "input-x-gradient": (("captum", "InputXGradient"),),
    "deconvnet": (("captum", "Deconvolution"),),
    "integrated-gradients": (("captum", "IntegratedGradients"),),
    "smoothgrad": (("captum", "NoiseTunnel(smoothgrad)"),),
    "smoothgrad-squared": (("captum", "NoiseTunnel(smoothgrad_sq)"),),
    "vargrad": (("captum", "NoiseTunnel(vargrad)"),),
    "lrp-epsilon": (("zennit", "LayerMapComposite(Epsilon)"),),
    "lrp-epsilon-plus": (("zennit", "EpsilonPlus"),),
    "lrp-epsilon-gamma-box": (("zennit", "EpsilonGammaBox"),),
    "deeplift": (("captum", "DeepLift"),),
    "deeplift-shap": (("captum", "DeepLiftShap"),),
    "gradient-shap": (("captum", "GradientShap"),),
    "lime": (("captum", "Lime"),),                    # captum's default Lasso needs scikit-learn
    "kernel-shap": (("captum", "KernelShap"),),       # its least squares too
}
#: Methods whose only references are not libraries one installs (RISE: its authors' code; Excitation
#: Backprop: TorchRay, unmaintained): timed alone, "no peer".

#: The image explained: a shipped CIFAR-10 test image (class, index).
IMAGE = ("cat", 0)

# ---------------------------------------------------------------- the twin in the peers' canonical form

def canonical_twin(model, torch, zennit=None):
    """A PyTorch module with the model's architecture, names and weights, as the peer libraries expect it.

    Unlike ``twins.torch_twin`` (made for timing PyTorch's own passes), the ReLUs here are
    ``torch.nn.ReLU`` modules (captum's guided backprop and deconvnet hook those) and a residual
    block's addition is zennit's ``Sum`` over the two summands stacked, when zennit is there
    (zennit's rules apply by module type). ResNet-20 and the VGG-style models only. Its
    parameters require gradients, as a user's model's do: pytorch-grad-cam's backward relies on it.
    """
    nn, F = torch.nn, torch.nn.functional

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
            self.bn1, self.relu1 = nn.BatchNorm2d(planes), nn.ReLU()
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.shortcut = OptionA(planes // 4, stride) if stride != 1 or in_planes != planes else nn.Identity()
            self.add = zennit.layer.Sum() if zennit is not None else None
            self.relu = nn.ReLU()

        def forward(self, x):
            h = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
            s = self.shortcut(x)
            return self.relu(self.add(torch.stack([h, s], dim=-1)) if self.add is not None else h + s)

    def build(spec):
        kind, kw = spec["type"], {k: v for k, v in spec.items() if k != "type"}
        if kind == "Sequential":
            return nn.Sequential(OrderedDict((name, build(child)) for name, child in kw["children"]))
        simple = {"Conv2d": nn.Conv2d, "MaxPool2d": nn.MaxPool2d, "AvgPool2d": nn.AvgPool2d,
                  "AdaptiveAvgPool2d": nn.AdaptiveAvgPool2d, "Linear": nn.Linear, "Dropout": nn.Dropout,
                  "BatchNorm2d": nn.BatchNorm2d, "Identity": nn.Identity}
        if kind in simple:
            return simple[kind](**{k: tuple(v) if isinstance(v, list) else v for k, v in kw.items()})
        others = {"ReLU": lambda: nn.ReLU(), "Flatten": lambda: nn.Flatten(), "BasicBlock": BasicBlock,
                  "OptionAShortcut": OptionA}
        if kind not in others:
            raise MinicnnError(f"the peers' twin has no {kind} layer (the peer comparison covers the CIFAR models)")
        return others[kind](**kw)

    with torch.no_grad():
        twin = build(model.spec()).eval()
        missing, unexpected = twin.load_state_dict(
            {k: torch.from_numpy(np.array(v, np.float32)) for k, v in model.state_dict().items()}, strict=False)
    if unexpected or any(not k.endswith("num_batches_tracked") for k in missing):
        raise MinicnnError(f"the peers' twin does not fit: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return twin                    # parameters require gradients, as in a user's model (pytorch-grad-cam needs it)


# ---------------------------------------------------------------- the case and the calls

@dataclass
class PeerCase:
    """One model with its image x (1, C, H, W), target and default layer."""

    name: str
    model: object
    x: np.ndarray
    target: int
    layer: str


def make_peer_case(name: str) -> PeerCase:
    """A shipped model (minicnn.load) with the shipped test image ``IMAGE``, its predicted class, its default layer."""
    model = load(name)
    x = preprocess([load_sample(*IMAGE)], model.meta["preprocessing"])
    target = int(np.argmax(model.forward(x)[0]))
    return PeerCase(name, model, x, target, default_layer(model))


def minicnn_call(case: PeerCase, method: str) -> Callable[[], np.ndarray]:
    """The registry's method with its defaults, as ``minicnn explain`` runs it; returns the raw map."""
    row = METHODS[method]
    return lambda: row.run(case.model, case.x, case.target, case.layer).map


def peer_call(case: PeerCase, library: str, name: str, modules: dict, torch, twins: dict) -> Callable[[], object]:
    """The peer library's public call for the same model, image, target, layer and settings."""
    x, c = torch.from_numpy(case.x), case.target
    net = twins["zennit" if library == "zennit" else "plain"]
    module = net.get_submodule(case.layer)
    if library == "pytorch-grad-cam":
        gc = modules[library]
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # lazy: the peer is optional
        cls = getattr(gc, name)
        layers = [] if name == "FullGrad" else [module]

        def grad_cam():
            with cls(model=net, target_layers=layers) as cam:
                return cam(input_tensor=x, targets=[ClassifierOutputTarget(c)])
        return grad_cam
    if library == "captum":
        from captum import attr  # lazy: the peer is optional
        if name in ("LayerGradCam", "GuidedGradCam"):
            method = getattr(attr, name)(net, module)
            return lambda: method.attribute(x, target=c)
        if name == "IntegratedGradients":
            method = attr.IntegratedGradients(net)
            return lambda: method.attribute(x, baselines=torch.zeros_like(x), target=c, n_steps=50,
                                            method="gausslegendre")
        if name.startswith("NoiseTunnel"):
            kind = name[len("NoiseTunnel("):-1]
            tunnel = attr.NoiseTunnel(attr.Saliency(net))
            sigma = 0.15 * float(x.max() - x.min())
            return lambda: tunnel.attribute(x, nt_type=kind, nt_samples=50, stdevs=sigma, target=c, abs=False)
        if name == "Occlusion":
            h, w = x.shape[2:]
            size = max(1, min(h, w) // 4)
            method = attr.Occlusion(net)
            return lambda: method.attribute(x, sliding_window_shapes=(x.shape[1], size, size),
                                            strides=(x.shape[1], max(1, size // 4), max(1, size // 4)),
                                            baselines=0, target=c,
                                            perturbations_per_eval=max(1, MASKED_BATCH_ELEMENTS // x[0].numel()))
        if name in ("DeepLift", "DeepLiftShap", "GradientShap"):   # minicnn's defaults: zeros; 10 uniform baselines
            method = getattr(attr, name)(net)                       # (DeepLIFT-SHAP, GradientSHAP), 20 draws
            if name == "DeepLift":
                return lambda: method.attribute(x, baselines=torch.zeros_like(x), target=c)
            base = torch.from_numpy(baseline_set(case.model, case.x, "uniform", 10 if name == "DeepLiftShap" else 20))
            if name == "DeepLiftShap":
                return lambda: method.attribute(x, baselines=base, target=c)
            return lambda: method.attribute(x, baselines=base, n_samples=20, stdevs=0.0, target=c)
        if name in ("Lime", "KernelShap"):                          # minicnn's defaults: an 8 x 8 grid, 256 draws
            import sklearn  # noqa: F401  # lazy: captum's default surrogate models need it; ImportError: absent
            labels, _ = feature_mask(case.x)
            mask = torch.from_numpy(labels.astype(np.int64))[:, None].expand(-1, x.shape[1], -1, -1)
            method = getattr(attr, name)(net)
            per_eval = max(1, MASKED_BATCH_ELEMENTS // x[0].numel())
            return lambda: method.attribute(x, target=c, feature_mask=mask, n_samples=256,
                                            perturbations_per_eval=per_eval)
        method = getattr(attr, name)(net)
        return lambda: method.attribute(x, target=c)
    if library == "zennit":
        zennit = modules[library]
        from zennit.attribution import Gradient  # lazy: the peer is optional
        from zennit.canonizers import SequentialMergeBatchNorm  # lazy: the peer is optional
        from zennit.composites import EpsilonGammaBox, EpsilonPlus, LayerMapComposite, layer_map_base  # lazy: as above
        prep = case.model.meta["preprocessing"]
        mean = torch.tensor(prep["mean"], dtype=torch.float32)[None, :, None, None]
        std = torch.tensor(prep["std"], dtype=torch.float32)[None, :, None, None]

        def composite():
            canonizers = [SequentialMergeBatchNorm()]
            if name == "EpsilonPlus":
                return EpsilonPlus(canonizers=canonizers)
            if name == "EpsilonGammaBox":
                return EpsilonGammaBox(low=((0 - mean) / std).expand_as(x), high=((1 - mean) / std).expand_as(x),
                                       canonizers=canonizers)
            rule = zennit.rules.Epsilon()
            return LayerMapComposite(layer_map=layer_map_base() + [(zennit.types.Convolution, rule),
                                                                   (zennit.types.Linear, rule)],
                                     canonizers=canonizers)

        def lrp():
            with Gradient(model=net, composite=composite()) as attributor:
                out, relevance = attributor(x, lambda y: y * torch.nn.functional.one_hot(
                    torch.tensor([c]), y.shape[1]).to(y.dtype))
            return relevance
        return lrp
    raise MinicnnError(f"no peer library {library!r}")


def make_twins(model, torch, modules) -> dict:
    return {"plain": canonical_twin(model, torch), "zennit": canonical_twin(model, torch, modules.get("zennit"))}


# ---------------------------------------------------------------- timing and memory

@dataclass
class PeerSettings:
    reps: int = 5
    min_sample_s: float = 0.1
    memory: bool = True
    case_names: tuple = CIFAR_MODELS
    methods: tuple = tuple(METHODS)


def peer_probe(case_name: str, method: str, side: str) -> dict:
    """Build the case in this (fresh) process, reset the peak, run ``side`` ("minicnn" or "library:Name") once."""
    with tempfile.TemporaryDirectory() as folder:
        case = make_peer_case(case_name)
        if side == "minicnn":
            fn = minicnn_call(case, method)
        else:
            torch = import_torch()
            torch.set_num_threads(blas_info()["threads"])
            install_stand_ins(Path(folder))
            modules, _ = available_libraries()
            library, name = side.split(":", 1)
            fn = peer_call(case, library, name, modules, torch, make_twins(case.model, torch, modules))
            case.model = None                              # minicnn's copy of the weights leaves this process
        return _peak_of(fn)


def _peak_of(fn) -> dict:
    """Peak resident memory of one call of fn, the set-up's peak forgotten (VmHWM after clear_refs); MiB."""
    before = _status_kib("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        return {"peak_mib": None}
    fn()
    peak = _status_kib("VmHWM")
    return {"peak_mib": peak / 1024, "op_mib": (peak - (before or 0)) / 1024}


def measure_peer_memory(case_name: str, method: str, side: str) -> dict | None:
    """``peer_probe`` in a fresh Python process; None where it fails (the reason on stderr)."""
    code = ("import json, sys; from minicnn.bench.peers import peer_probe; "
            "print(json.dumps(peer_probe(*sys.argv[1:])))")
    try:
        done = subprocess.run([sys.executable, "-c", code, case_name, method, side], capture_output=True, text=True,
                              timeout=600)
        if done.returncode == 0:
            result = json.loads(done.stdout.strip().splitlines()[-1])
            return result if result.get("peak_mib") is not None else None
        say(f"  memory probe {case_name}/{method} ({side}) failed: {done.stderr.strip().splitlines()[-1:]}")
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired) as e:
        say(f"  memory probe {case_name}/{method} ({side}) failed: {e}")
    return None


def time_method(case: PeerCase, method: str, peers: list[tuple[str, Callable]], settings: PeerSettings) -> dict:
    """One row: minicnn's median, min, max; per peer the same and the ratio minicnn / peer."""
    mine = minicnn_call(case, method)
    mine()                                                          # warm-up
    for _, fn in peers:
        fn()
    sides = [mine] + [fn for _, fn in peers]
    once = min(t[0] for t in interleaved(sides, 1, 1))
    inner = max(1, math.ceil(settings.min_sample_s / max(once, 1e-6)))
    times = interleaved(sides, settings.reps, inner)
    row = {"minicnn_s": statistics.median(times[0]), "minicnn_min_s": min(times[0]),
           "minicnn_max_s": max(times[0]), "reps": settings.reps, "calls_per_rep": inner, "peers": {}}
    for (label, _), t in zip(peers, times[1:]):
        row["peers"][label] = {"s": statistics.median(t), "min_s": min(t), "max_s": max(t),
                               "ratio": statistics.median(a / b for a, b in zip(times[0], t))}
    return row


def run(settings: PeerSettings) -> tuple[dict, dict]:
    """(machine info with notes, {"model/method": row}) for the peer comparison; torch must be importable."""
    torch = import_torch()
    if torch is None:
        raise MinicnnError(no_torch_message())
    info = machine_info(torch)
    torch.set_num_threads(info["threads"])
    info["torch_threads"] = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as folder:               # the stand-ins live as long as the run
        info["stand_ins"] = install_stand_ins(Path(folder))
        modules, notes = available_libraries()
        info["libraries"] = {lib: version_of(lib, modules.get(lib)) for lib in LIBRARIES}
        results = compare(settings, torch, modules)
    info["notes"] = notes
    info["reps"] = settings.reps
    info["image"] = f"minicnn/data/cifar10/test/{IMAGE[0]}/{IMAGE[1]:04d}.jpg"
    info["load_after"] = _load()
    return info, results


def compare(settings: PeerSettings, torch, modules: dict) -> dict:
    """{"model/method": row} for every case and method of ``settings`` (see ``time_method``)."""
    results = {}
    for name in settings.case_names:
        case = make_peer_case(name)
        twins = make_twins(case.model, torch, modules)
        for method in settings.methods:
            key = f"{name}/{method}"
            peers, absent = [], []
            for library, peer_name in PEERS.get(method, ()):
                try:
                    if library not in modules:
                        raise ImportError(library)
                    peers.append((f"{library}:{peer_name}", peer_call(case, library, peer_name, modules, torch, twins)))
                except ImportError as e:                              # the library, or what its call needs
                    absent.append(f"{library}:{peer_name}" + ("" if str(e) == library else f" (needs {e.name})"))
            say(f"timing {key} ...")
            try:
                row = time_method(case, method, peers, settings)
            except MinicnnError as e:                             # CAM on a network without global pooling
                results[key] = {"skipped": str(e)}
                continue
            row["absent"] = absent
            if not PEERS.get(method):
                row["no_peer"] = True
            if settings.memory:
                for side in ["minicnn"] + list(row["peers"]):
                    m = measure_peer_memory(name, method, side)
                    if m:
                        target = row if side == "minicnn" else row["peers"][side]
                        prefix = "minicnn_" if side == "minicnn" else ""
                        target[f"{prefix}peak_mib"], target[f"{prefix}op_mib"] = m["peak_mib"], m["op_mib"]
            results[key] = row
    return results

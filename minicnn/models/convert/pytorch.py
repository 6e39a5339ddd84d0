"""PyTorch checkpoint -> minicnn weights file.

    minicnn convert resnet20-12fca82f.th --arch resnet20 --out resnet20.npz
    minicnn convert vgg16_bn.pth --arch vgg16_bn --fold-bn --out vgg16_bn.npz

Reading a checkpoint is the only place minicnn needs PyTorch (imported here,
lazily): ``torch.load(path, map_location="cpu", weights_only=True)`` reads
both the zip and the legacy ``torch.save`` formats and refuses anything but
tensors and plain containers. The state_dict may be bare or wrapped in
``{"state_dict": ...}``; a ``module.`` prefix (DataParallel) is removed and
BatchNorm's ``num_batches_tracked`` counters are ignored (inference does not
use them). The rest is NumPy (``convert_state_dict``), so it is tested
without PyTorch.

minicnn's layer names are PyTorch's module paths, so the mapping is the
identity on keys: "layer1.0.conv1.weight" -> layer "layer1.0.conv1",
parameter "weight". Widths (VGG channels, hidden sizes, number of classes)
are read off the checkpoint's shapes, so a reduced-width torchvision-layout
VGG converts as well as the real one.

Folding BatchNorm (VGG-style networks: conv then BN), per output channel f,
with scale = gamma / sqrt(var + eps):

    w'[f] = w[f] * scale[f]                 (F, C, kh, kw)
    b'[f] = (b[f] - mean[f]) * scale[f] + beta[f]

so conv' (x) = BN(conv(x)) exactly (computed in float64, stored as float32).
The folded model keeps PyTorch's indices: in vgg16_bn, "features.2" is still
the ReLU PyTorch calls features.2, and "features.1" (the BN) no longer exists.
"""

from __future__ import annotations

import hashlib
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np

from ...errors import InputError, MissingDependencyError, WeightsError, unknown_name
from ...inputs.datasets import class_names
from ...layers import BatchNorm2d, Conv2d
from ...layers.norm import fold_into_conv
from ...model import Model
from ...util.files import check_regular_file
from ..content import check_model
from ..zoo import ARCHITECTURES, VGG_CONFIGS, resnet20, vgg, vgg_cifar
from .meta import with_user_meta

SUPPORTED = sorted(ARCHITECTURES)
_PREFIXES = ("module.", "_orig_mod.")  # DataParallel, torch.compile
_IGNORED_SUFFIXES = (".num_batches_tracked",)
#: A checkpoint larger than this is refused before it is read (VGG-19's is 548 MB).
MAX_CHECKPOINT_BYTES = 4 * 2**30


def import_torch():
    """PyTorch, or a one-line MissingDependencyError saying how to install it."""
    try:
        import torch  # lazy: torch is optional
    except ImportError:
        raise MissingDependencyError("converting needs PyTorch: pip install 'minicnn[torch]'") from None
    return torch


# ---------------------------------------------------------------- reading checkpoints (torch)

def read_checkpoint(path) -> dict[str, np.ndarray]:
    """The checkpoint's state_dict as float NumPy arrays, keys as saved (bare or unwrapped)."""
    path = Path(os.fspath(path))
    if not path.is_file():
        raise WeightsError(not_a_checkpoint(path))
    torch = import_torch()
    check_checkpoint_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols, not the user's business
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds here (UnpicklingError, RuntimeError, EOFError, ...)
        raise WeightsError(load_failure(path, e)) from None
    state = unwrap_state_dict(obj, path)
    arrays = {}
    for key, value in state.items():
        if not torch.is_tensor(value):
            raise WeightsError(f"{path}: state_dict entry {key!r} is a {type(value).__name__}, not a tensor")
        t = value.detach().cpu()
        if t.is_floating_point() and t.dtype not in (torch.float32, torch.float64):
            t = t.float()  # float16, bfloat16: NumPy lacks bfloat16
        arrays[str(key)] = t.numpy()
    return arrays


def not_a_checkpoint(path: Path) -> str:
    """Why ``path`` (not a regular file) cannot be read as a checkpoint: missing, a folder, or a device."""
    if path.is_dir():
        return f"{path} is a folder, not a checkpoint file; give the .pth file inside it"
    if path.exists():
        return f"{path} is not a regular file (a device, pipe or socket), not a checkpoint file"
    return f"checkpoint not found: {path}"


def check_checkpoint_file(path: Path) -> None:
    """A one-line WeightsError for a file that cannot be a ``torch.save`` checkpoint (before torch reads it).

    ``torch.save`` writes a zip archive (``PK\\x03\\x04``) or, in the legacy format,
    a pickle (``\\x80`` then the protocol number); a minicnn ``.npz`` is a zip too.
    """
    check_regular_file(path, MAX_CHECKPOINT_BYTES, "the checkpoint", WeightsError)
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise WeightsError(f"cannot read the checkpoint {path}: {e.strerror or e}") from None
    if not head:
        raise WeightsError(f"the checkpoint {path} is empty (0 bytes); was the download cut short?")
    if head == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError):
            return  # torch's reader says what is wrong with it
        if "__meta__.npy" in names:
            raise WeightsError(f"{path} is already a minicnn weights file; use it as it is "
                               f"(e.g. minicnn layers --model {path})")
        return
    if head[0] != 0x80:
        raise WeightsError(f"cannot read {path} as a PyTorch checkpoint: torch.save writes a zip archive or a "
                           f"pickle, this file starts {head!r}")


def load_failure(path: Path, e: BaseException) -> str:
    """One line saying why ``torch.load(path, weights_only=True)`` failed, from torch's many-line message."""
    text = str(e)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if "Unsupported global" in text:
        what = text.split("Unsupported global:", 1)[1].split()
        name = what[1] if len(what) > 1 and what[0] == "GLOBAL" else (what[0] if what else "?")
        return (f"{path} holds more than tensors (a pickled {name}, refused, never run); "
                f"save model.state_dict() instead and convert that")
    if "WeightsUnpickler error" in text:
        after = text.split("WeightsUnpickler error:", 1)[1].strip().splitlines()
        detail = after[0].strip() if after and after[0].strip() else type(e).__name__
        return f"cannot read the PyTorch checkpoint {path}: not a plain pickle of tensors ({detail}); nothing was run"
    if isinstance(e, EOFError) or "central directory" in text or "truncated" in text.lower():
        return f"cannot read the PyTorch checkpoint {path}: it is truncated or corrupt; download or copy it again"
    first = lines[0][:200] if lines else type(e).__name__
    return f"cannot read the PyTorch checkpoint {path}: {first}"


def unwrap_state_dict(obj, where="the checkpoint") -> dict:
    """The state_dict inside ``obj``: obj itself, or obj["state_dict"] (or "model_state_dict")."""
    if not isinstance(obj, dict):
        raise WeightsError(f"{where} holds a {type(obj).__name__}, not a state_dict (a dict of tensors)")
    for wrapper in ("state_dict", "model_state_dict"):
        if isinstance(obj.get(wrapper), dict):
            return obj[wrapper]
    if not obj:
        raise WeightsError(f"{where} holds an empty dict")
    return obj


def checkpoint_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------- mapping (NumPy only)

def normalise_keys(state: dict) -> dict[str, np.ndarray]:
    """Strip ``module.``/``_orig_mod.`` prefixes, drop ``num_batches_tracked``, keep float arrays."""
    out = {}
    for key, value in state.items():
        key = str(key)
        while key.startswith(_PREFIXES):
            key = key.split(".", 1)[1]
        if key.endswith(_IGNORED_SUFFIXES):
            continue
        a = np.asarray(value)
        if not np.issubdtype(a.dtype, np.floating):
            raise WeightsError(f"checkpoint array {key!r} has dtype {a.dtype}, expected floating point")
        if key in out:
            raise WeightsError(f"checkpoint key {key!r} appears twice (with and without a prefix)")
        out[key] = a
    return out


def _shape(state, key, axis=0, default=None):
    a = state.get(key)
    return int(a.shape[axis]) if a is not None and a.ndim > axis else default


def build_for(arch: str, state: dict, *, fold_bn: bool = False) -> Model:
    """The ``arch`` model whose widths fit the checkpoint's arrays (random weights)."""
    if arch == "resnet20":
        if fold_bn:
            raise InputError("--fold-bn is for VGG-style networks (conv then BatchNorm in one Sequential); "
                             "resnet20 keeps its BatchNorm layers")
        return resnet20(num_classes=_shape(state, "linear.weight", default=10))
    has_bn = any(k.endswith(".running_mean") for k in state)
    if arch == "vgg_cifar":
        _check_bn(arch, has_bn, has_bn, fold_bn)
        return vgg_cifar(batch_norm=has_bn, fold_bn=fold_bn,
                         num_classes=_shape(state, "classifier.3.weight", default=10))
    base, bn = arch.removesuffix("_bn"), arch.endswith("_bn")
    _check_bn(arch, bn, has_bn, fold_bn)
    cfg, index = [], 0
    for v in VGG_CONFIGS[base]:
        if v == "M":
            cfg.append("M")
            index += 1
            continue
        cfg.append(_shape(state, f"features.{index}.weight", default=v))
        index += 3 if bn else 2
    hidden = (_shape(state, "classifier.0.weight", default=4096), _shape(state, "classifier.3.weight", default=4096))
    return vgg(cfg, batch_norm=bn, fold_bn=fold_bn, num_classes=_shape(state, "classifier.6.weight", default=1000),
               hidden=hidden, name=arch)


def _check_bn(arch, arch_has_bn, ckpt_has_bn, fold_bn):
    if ckpt_has_bn and not arch_has_bn:
        raise WeightsError(f"the checkpoint has BatchNorm layers but {arch} has none: use --arch {arch}_bn")
    if arch_has_bn and not ckpt_has_bn:
        plain = arch.removesuffix("_bn")
        raise WeightsError(f"the checkpoint has no BatchNorm layers but {arch} has: use --arch {plain}"
                           if plain != arch else f"the checkpoint has no BatchNorm layers for {arch}")
    if fold_bn and not ckpt_has_bn:
        raise InputError(f"--fold-bn: the {arch} checkpoint has no BatchNorm layers to fold")


def check_keys(model: Model, state: dict, arch: str) -> None:
    """A one-line WeightsError naming the first missing or unexpected checkpoint key."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    also = f"supported architectures: {', '.join(SUPPORTED)}"
    if unexpected:
        raise WeightsError(f"the checkpoint's {unexpected[0]!r} has no place in {arch} ({len(unexpected)} "
                           f"unexpected keys; is it a {arch} checkpoint? {also})")
    if missing:
        raise WeightsError(f"the checkpoint has no {missing[0]!r} ({len(missing)} of {len(expected)} {arch} "
                           f"arrays missing; is it a {arch} checkpoint? {also})")


def conv_bn_pairs(model: Model) -> list[tuple[str, str]]:
    """(conv name, BN name) for every BatchNorm2d that directly follows a Conv2d in one container."""
    pairs = []
    layers = model.layers()
    for (name_a, a), (name_b, b) in zip(layers, layers[1:]):
        if (isinstance(a, Conv2d) and isinstance(b, BatchNorm2d)
                and name_a.rpartition(".")[0] == name_b.rpartition(".")[0]):
            pairs.append((name_a, name_b))
    return pairs


def fold_batchnorm(state: dict, pairs: list[tuple[str, str]], eps: dict[str, float]) -> dict[str, np.ndarray]:
    """The state with every (conv, BN) pair replaced by one conv: w' = w * scale, b' = (b - mean) * scale + beta."""
    out = dict(state)
    for conv, bn in pairs:
        w = out[f"{conv}.weight"].astype(np.float64)
        b = out.get(f"{conv}.bias")
        gamma, beta, mean, var = (out.pop(f"{bn}.{k}").astype(np.float64)
                                  for k in ("weight", "bias", "running_mean", "running_var"))
        w2, b2 = fold_into_conv(w, None if b is None else b.astype(np.float64), gamma, beta, mean, var, eps[bn])
        out[f"{conv}.weight"], out[f"{conv}.bias"] = w2.astype(np.float32), b2.astype(np.float32)
    return out


def convert_state_dict(state: dict, arch: str, *, fold_bn: bool = False, meta: dict | None = None) -> Model:
    """A Model of architecture ``arch`` holding the state_dict ``state`` (NumPy arrays; no torch needed)."""
    if arch not in ARCHITECTURES:
        raise unknown_name("architecture", arch, SUPPORTED)
    state = normalise_keys(unwrap_state_dict(state))
    model = build_for(arch, state, fold_bn=False)
    check_keys(model, state, arch)
    if fold_bn:
        pairs = conv_bn_pairs(model)
        folded = fold_batchnorm(state, pairs, {bn: model[bn].eps for _, bn in pairs})
        model = build_for(arch, state, fold_bn=True)  # same widths, no BN layers
        state = folded
    state = {k: v.astype(np.float32, copy=False) for k, v in state.items()}
    model.load_state_dict(state)
    model.meta = converted_meta(arch, model, fold_bn, meta)
    check_model(model, where="the checkpoint")  # what the loader will check: a model that fails is never written
    return model


def converted_meta(arch: str, model: Model, fold_bn: bool, meta: dict | None) -> dict:
    """The zoo's metadata for ``arch`` (ImageNet class names for 1000 classes), then ``meta`` on top."""
    out = dict(model.meta)
    out["arch"] = arch
    n_classes = len(model.classes)
    if n_classes == 1000 and arch.startswith("vgg") and arch != "vgg_cifar":
        try:
            out["classes"] = class_names("imagenet")
        except Exception:  # the shipped label file is optional here; numbers remain
            pass
    if fold_bn:
        out["bn_folded"] = True
    return with_user_meta(out, meta, n_classes, "the checkpoint's classifier")


# ---------------------------------------------------------------- the whole conversion

def convert_checkpoint(path, arch: str, *, fold_bn: bool = False, meta: dict | None = None) -> Model:
    """A Model from a PyTorch checkpoint file (needs torch), with ``meta`` merged into its metadata.

    The provenance records the source file name and sha256 and the torch version.
    """
    if arch not in ARCHITECTURES:
        raise unknown_name("architecture", arch, SUPPORTED)
    state = read_checkpoint(path)
    torch = import_torch()
    meta = dict(meta or {})
    source = {"source_file": Path(path).name, "source_sha256": checkpoint_sha256(path),
              "converted_with": f"minicnn convert --arch {arch}" + (" --fold-bn" if fold_bn else ""),
              "torch": str(torch.__version__).split("+")[0]}
    meta["provenance"] = {**source, **(meta.get("provenance") or {})}
    return convert_state_dict(state, arch, fold_bn=fold_bn, meta=meta)

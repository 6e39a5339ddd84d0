"""Train the small VGG-style CIFAR-10 classifier shipped with minicnn (PyTorch).

Architecture (torchvision VGG layout, so module paths match minicnn's ``vgg_cifar``):

    features   = [32, 32, M, 64, 64, M, 128, 128, M], each number is
                 Conv2d(3x3, padding=1) -> BatchNorm2d -> ReLU, each M is MaxPool2d(2, 2)
                 (N, 3, 32, 32) -> (N, 128, 4, 4)
    flatten    -> (N, 2048)
    classifier = Linear(2048, 256) -> ReLU -> Dropout(0.5) -> Linear(256, 10)   -> (N, 10)

Preprocessing: RGB scaled to [0, 1], normalised with mean (0.485, 0.456, 0.406) and
std (0.229, 0.224, 0.225); input 32x32; classes in the CIFAR-10 order below.

Training: SGD (Nesterov, momentum 0.9, weight decay 5e-4), OneCycleLR peaking at 0.1,
batch 128, cross-entropy with label smoothing 0.1, random crop (4-pixel zero padding)
and horizontal flips. The whole training set lives on the device as a uint8 tensor and is
augmented there, so a GPU never waits for a data loader.

Data (positional argument ``data``), either
  * a zip of image folders: ``train/<class>/*.jpg`` and optionally ``test/<class>/*.jpg``;
  * the CIFAR-10 python archive ``cifar-10-python.tar.gz`` or its extracted folder
    ``cifar-10-batches-py``, read with ``minicnn.inputs.datasets`` (whose unpickler runs no code).

Examples::

    python weights/recipes/train_vgg_cifar10.py cifar-10-python.tar.gz --out vgg_cifar10.pth
    python weights/recipes/train_vgg_cifar10.py data.zip --limit 512 --epochs 1   # smoke test
    python weights/recipes/train_vgg_cifar10.py data.zip --eval-only vgg_cifar10.pth
"""
from __future__ import annotations

import argparse
import io
import multiprocessing as mp
import os
import random
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]   # the repository, for minicnn.inputs.datasets
CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck"]
CFG = [32, 32, "M", 64, 64, "M", 128, 128, "M"]
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
ARCH = "vgg_cifar"


# --------------------------------------------------------------------------- model

def make_layers(cfg: list, in_channels: int = 3) -> nn.Sequential:
    """torchvision's ``make_layers(cfg, batch_norm=True)``: conv, bn, relu per number, pool per "M"."""
    layers: list[nn.Module] = []
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(in_channels, v, kernel_size=3, padding=1),
                       nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
            in_channels = v
    return nn.Sequential(*layers)


class VGGCifar(nn.Module):
    """(N, 3, 32, 32) -> features (N, 128, 4, 4) -> flatten (N, 2048) -> logits (N, 10)."""

    def __init__(self, cfg: list = CFG, num_classes: int = 10, hidden: int = 256):
        super().__init__()
        self.features = make_layers(cfg)
        channels = [v for v in cfg if v != "M"][-1]
        side = 32 // (2 ** cfg.count("M"))
        self.classifier = nn.Sequential(
            nn.Linear(channels * side * side, hidden), nn.ReLU(inplace=True),
            nn.Dropout(0.5), nn.Linear(hidden, num_classes))
        for m in self.modules():  # torchvision VGG initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


# --------------------------------------------------------------------------- data: zip of folders

_ZIP: zipfile.ZipFile | None = None


def _open_zip(path: str) -> None:
    global _ZIP
    _ZIP = zipfile.ZipFile(path)


def _decode(names: list[str]) -> np.ndarray:
    """Decode JPEG/PNG members of the worker's open zip -> (n, 32, 32, 3) uint8."""
    from PIL import Image
    out = np.empty((len(names), 32, 32, 3), np.uint8)
    for i, name in enumerate(names):
        with Image.open(io.BytesIO(_ZIP.read(name))) as im:
            im = im.convert("RGB")
            if im.size != (32, 32):
                raise ValueError(f"{name}: expected a 32x32 image, got {im.size[0]}x{im.size[1]}")
            out[i] = np.asarray(im)
    return out


def _zip_split(path: str, split: str, limit: int | None, seed: int, workers: int):
    with zipfile.ZipFile(path) as z:
        members = [n for n in z.namelist() if not n.endswith("/")]
    items = []
    for n in members:
        parts = n.split("/")
        if len(parts) == 3 and parts[0] == split and parts[1] in CLASSES:
            items.append((n, CLASSES.index(parts[1])))
    if not items:
        return None
    items.sort()
    if limit is not None and limit < len(items):
        pick = np.random.default_rng(seed).permutation(len(items))[:limit]
        items = [items[i] for i in sorted(pick)]
    names = [n for n, _ in items]
    labels = np.array([c for _, c in items], np.int64)
    chunks = [names[i:i + 500] for i in range(0, len(names), 500)]
    if workers > 1 and len(chunks) > 1:
        with mp.get_context("spawn").Pool(workers, initializer=_open_zip, initargs=(path,)) as pool:
            parts = pool.map(_decode, chunks)
    else:
        _open_zip(path)
        parts = [_decode(c) for c in chunks]
    return np.concatenate(parts), labels


# --------------------------------------------------------------------------- data: CIFAR python archive

def _cifar_split(path: str, split: str, limit: int | None, seed: int):
    """The CIFAR-10 python archive, read by minicnn.inputs.datasets: its unpickler builds the arrays
    itself from checked placeholders, so a tampered batch can neither run code nor forge a dtype."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from minicnn.errors import UnknownNameError
    from minicnn.inputs.datasets import open_dataset
    try:
        ds = open_dataset(path, split)
    except UnknownNameError:  # the archive has no such split
        return None
    if list(ds.classes) != CLASSES:
        raise ValueError(f"{path}: classes {ds.classes} are not CIFAR-10's {CLASSES}")
    parts = list(ds.batches(10000))
    images = np.concatenate([a for a, _ in parts])
    labels = np.concatenate([b for _, b in parts])
    if limit is not None and limit < len(images):
        pick = np.sort(np.random.default_rng(seed).permutation(len(images))[:limit])
        images, labels = images[pick], labels[pick]
    return np.ascontiguousarray(images), labels


def load_split(path: str, split: str, limit: int | None = None, seed: int = 0,
               workers: int = 1):
    """-> (images (n, 32, 32, 3) uint8 RGB, labels (n,) int64), or None when the split is absent."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such data file or folder: {path}")
    if os.path.isfile(path) and zipfile.is_zipfile(path):
        return _zip_split(path, split, limit, seed, workers)
    return _cifar_split(path, split, limit, seed)


# --------------------------------------------------------------------------- device-side batches

def to_device_nchw(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """(n, 32, 32, 3) uint8 -> (n, 3, 32, 32) uint8 on device."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(device)


def normalise(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float32 ((x / 255) - mean) / std."""
    return (x.float().div_(255.0) - mean) / std


def augment(padded: torch.Tensor, idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random 32x32 crop of the 4-pixel zero-padded images (n, 3, 40, 40) + random h-flip.

    -> (B, 3, 32, 32) uint8, B = len(idx).
    """
    b, dev = idx.numel(), padded.device
    pad = (padded.shape[-1] - 32) // 2
    oy = torch.randint(0, 2 * pad + 1, (b,), device=dev, generator=gen)
    ox = torch.randint(0, 2 * pad + 1, (b,), device=dev, generator=gen)
    flip = torch.rand(b, device=dev, generator=gen) < 0.5
    ar = torch.arange(32, device=dev)
    rows = oy[:, None] + ar                                      # (B, 32)
    cols = ox[:, None] + ar                                      # (B, 32)
    cols = torch.where(flip[:, None], cols.flip(1), cols)        # flip = reversed columns
    ch = torch.arange(3, device=dev)
    return padded[idx[:, None, None, None], ch[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
             mean, std, batch: int = 1000, channels_last: bool = False) -> float:
    """Top-1 accuracy in percent, eval mode (BatchNorm running stats, no dropout)."""
    model.eval()
    correct = 0
    for i in range(0, len(images), batch):
        x = normalise(images[i:i + batch], mean, std)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        correct += (model(x).argmax(1) == labels[i:i + batch]).sum().item()
    return 100.0 * correct / len(images)


# --------------------------------------------------------------------------- main

def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def atomic_save(obj, path: str) -> None:
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def run_eval_only(args, device: torch.device) -> int:
    ckpt = torch.load(args.eval_only, map_location="cpu", weights_only=True)
    if ckpt.get("arch") != ARCH:
        sys.exit(f"error: {args.eval_only} holds arch {ckpt.get('arch')!r}, expected {ARCH!r}")
    model = VGGCifar(ckpt.get("cfg", CFG)).to(device)
    model.load_state_dict(ckpt["state_dict"])
    t0 = time.time()
    test = load_split(args.data, "test", args.limit, args.seed, args.workers)
    if test is None:
        sys.exit(f"error: {args.data} has no test split")
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
    x, y = to_device_nchw(test[0], device), torch.from_numpy(test[1]).to(device)
    top1 = evaluate(model, x, y, mean, std)
    print(f"test top-1 {top1:.2f}% on {len(y)} images ({time.time() - t0:.1f} s, {device_name(device)})")
    if args.write_back:
        ckpt["test_top1"] = round(top1, 2)
        ckpt["test_images"] = int(len(y))
        atomic_save(ckpt, args.eval_only)
        print(f"wrote test_top1 into {args.eval_only}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", help="zip of train/<class>/ image folders, or the CIFAR-10 python archive/folder")
    p.add_argument("--out", default="vgg_cifar10.pth", help="checkpoint to write")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1, help="OneCycleLR peak learning rate")
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--limit", type=int, default=None, help="use only this many images per split")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 1),
                   help="processes decoding images")
    p.add_argument("--eval-only", metavar="CHECKPOINT", help="only evaluate CHECKPOINT on the test split")
    p.add_argument("--write-back", action="store_true",
                   help="with --eval-only: store the measured test_top1 in the checkpoint")
    args = p.parse_args(argv)

    device = pick_device(args.device)
    seed_everything(args.seed)
    if args.eval_only:
        return run_eval_only(args, device)

    channels_last = device.type == "cpu"
    print(f"torch {torch.__version__}, device {device_name(device)}", flush=True)

    t0 = time.time()
    train = load_split(args.data, "train", args.limit, args.seed, args.workers)
    if train is None:
        sys.exit(f"error: {args.data} has no train split")
    test = load_split(args.data, "test", args.limit, args.seed, args.workers)
    print(f"loaded {len(train[1])} train / {0 if test is None else len(test[1])} test images "
          f"in {time.time() - t0:.1f} s", flush=True)

    x_train = to_device_nchw(train[0], device)
    y_train = torch.from_numpy(train[1]).to(device)
    padded = F.pad(x_train, (4, 4, 4, 4))  # zero padding, uint8 (n, 3, 40, 40)
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1)

    model = VGGCifar(CFG).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model {ARCH} cfg {CFG}: {n_params:,} parameters", flush=True)

    n = len(y_train)
    steps_per_epoch = (n + args.batch_size - 1) // args.batch_size
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True,
                          weight_decay=args.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, epochs=args.epochs,
                                                steps_per_epoch=steps_per_epoch)
    criterion = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    gen = torch.Generator(device=device)
    gen.manual_seed(args.seed)

    t_train = time.time()
    for epoch in range(1, args.epochs + 1):
        model.train()
        t_ep = time.time()
        perm = torch.randperm(n, device=device, generator=gen)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        for s in range(steps_per_epoch):
            idx = perm[s * args.batch_size:(s + 1) * args.batch_size]
            x = normalise(augment(padded, idx, gen), mean, std)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = y_train[idx]
            logits = model(x)
            loss = criterion(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.detach() * len(idx)
            correct += (logits.detach().argmax(1) == y).sum()
        if device.type == "cuda":
            torch.cuda.synchronize()
        print(f"epoch {epoch:3d}/{args.epochs}  loss {loss_sum.item() / n:.4f}  "
              f"train acc {100.0 * correct.item() / n:6.2f}%  lr {sched.get_last_lr()[0]:.4f}  "
              f"{time.time() - t_ep:6.1f} s", flush=True)
    train_seconds = time.time() - t_train

    test_top1 = None
    if test is not None:
        x_test = to_device_nchw(test[0], device)
        y_test = torch.from_numpy(test[1]).to(device)
        test_top1 = round(evaluate(model, x_test, y_test, mean, std, channels_last=channels_last), 2)
        print(f"test top-1 {test_top1:.2f}% on {len(y_test)} images", flush=True)

    model = model.to(memory_format=torch.contiguous_format).cpu()
    ckpt = {"state_dict": model.state_dict(), "arch": ARCH, "cfg": CFG,
            "classes": CLASSES, "mean": list(MEAN), "std": list(STD),
            "epochs": args.epochs, "test_top1": test_top1,
            "train_images": n, "train_seconds": round(train_seconds, 1),
            "device": device_name(device), "torch": str(torch.__version__), "seed": args.seed}
    atomic_save(ckpt, args.out)
    print(f"trained {args.epochs} epochs in {train_seconds:.1f} s on {device_name(device)}; "
          f"wrote {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

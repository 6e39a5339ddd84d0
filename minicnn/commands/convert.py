"""``minicnn convert``: a PyTorch checkpoint or a TensorFlow Lite model -> a minicnn weights file.

    minicnn convert resnet20-12fca82f.th --arch resnet20 --out resnet20.npz
    minicnn convert mobilenet_v2.tflite --labels labels.txt --out mobilenet_v2.npz

The conversions are ``minicnn.models.convert.pytorch`` (needs torch) and
``minicnn.models.convert.tflite`` (needs tflite); each imports its library
only when it reads a file. Every check that needs neither (the overwrite
rule, --arch, --meta, --labels) is done first.
"""

from __future__ import annotations

import json

from ..errors import InputError, one_line, unknown_name
from ..models.zoo import ARCHITECTURES
from ..util.files import MAX_TEXT_BYTES, read_text_file
from .options import add_force_option

HELP = ("convert a PyTorch checkpoint (needs torch) or a TensorFlow Lite model "
        "(needs tflite) to a minicnn weights file")


def add_arguments(p) -> None:
    p.add_argument("checkpoint")
    p.add_argument("--arch", default=None, help="architecture name (e.g. resnet20, vgg16, vgg_cifar); required for "
                                               "PyTorch checkpoints, read from the file for .tflite models")
    p.add_argument("--labels", default=None, help="class names, one a line, in output order")
    p.add_argument("--out", required=True, help="the .npz file to write")
    p.add_argument("--fold-bn", action="store_true", help="fold BatchNorm into the preceding convolution")
    p.add_argument("--name", default=None, help="model name recorded in the file")
    p.add_argument("--meta", default=None, help="JSON file with extra metadata (licence, provenance, accuracy)")
    add_force_option(p)


def tflite_model(path) -> bool:
    """Whether ``path`` is a TensorFlow Lite model (``.tflite``, or the flatbuffer identifier "TFL3")."""
    from ..models.convert.tflite import is_tflite  # lazy: the converters slow `minicnn --help`
    return str(path).lower().endswith(".tflite") or is_tflite(path)


def read_meta_argument(text) -> dict:
    """``--meta``: a JSON file, or JSON text starting with '{'."""
    if text is None:
        return {}
    if len(text) > MAX_TEXT_BYTES:
        raise InputError(f"--meta is {len(text)} characters long, over the limit of {MAX_TEXT_BYTES}")
    raw = text if text.lstrip().startswith("{") else read_text_file(text, MAX_TEXT_BYTES, "--meta")
    try:
        meta = json.loads(raw)
    except (ValueError, RecursionError) as e:           # RecursionError: nesting thousands deep
        raise InputError(f"--meta is not valid JSON: {one_line(e)}") from None
    if not isinstance(meta, dict):
        raise InputError("--meta must be a JSON object, e.g. {\"licence\": \"BSD-2-Clause\"}")
    return meta


def run(args) -> int:
    """``minicnn convert CHECKPOINT --arch NAME --out FILE [--fold-bn] [--name] [--meta] [--force]``."""
    from ..models.convert.pytorch import SUPPORTED, convert_checkpoint  # lazy: the converters slow `minicnn --help`
    from ..models.convert.tflite import read_labels  # lazy: as above
    from ..models.weights import save, sha256_file  # lazy: zipfile, json, hashlib slow `minicnn --help`
    from ..util.atomic import Outputs  # lazy: keeps `minicnn --help` fast
    outputs = Outputs(force=args.force)               # the overwrite rule of every command; refuse before the slow part
    outputs.input(args.checkpoint, "CHECKPOINT")
    out = outputs.output(args.out, "--out")
    if getattr(args, "labels", None):
        outputs.input(args.labels, "--labels")
    tflite = tflite_model(args.checkpoint)
    if not tflite and args.arch is None:
        raise InputError("--arch is required for a PyTorch checkpoint (e.g. --arch resnet20); supported: "
                         + ", ".join(SUPPORTED))
    if not tflite and args.arch not in ARCHITECTURES:
        raise unknown_name("architecture", args.arch, SUPPORTED)
    meta = read_meta_argument(args.meta)
    if args.name:
        meta["name"] = args.name
    meta.setdefault("name", out.stem if out.suffix == ".npz" else out.name)
    if getattr(args, "labels", None):
        meta["classes"] = read_labels(args.labels)
    if tflite:
        return run_tflite(args, meta)
    model = convert_checkpoint(args.checkpoint, args.arch, fold_bn=args.fold_bn, meta=meta)
    save(model, out, force=args.force)
    print(f"wrote {out} ({model.meta['arch']}{', BatchNorm folded' if args.fold_bn else ''}: "
          f"{model.num_parameters():,} parameters, {len(model.classes)} classes, "
          f"input {'x'.join(map(str, model.input_size))}; sha256 {sha256_file(out)})")
    return 0


def run_tflite(args, meta: dict) -> int:
    """``minicnn convert MODEL.tflite --out FILE [--labels] [--name] [--meta] [--force]`` (after the checks)."""
    from ..models.convert.tflite import convert_tflite  # lazy: the converters slow `minicnn --help`
    from ..models.weights import save, sha256_file  # lazy: as above
    if getattr(args, "fold_bn", False):
        raise InputError("--fold-bn is for PyTorch checkpoints; a TensorFlow Lite model has its BatchNorm folded")
    model, quantized = convert_tflite(args.checkpoint, meta=meta)
    save(model, args.out, force=args.force, quantized=quantized)
    print(f"wrote {args.out} (TensorFlow Lite, {len(quantized)} arrays kept quantised: "
          f"{model.num_parameters():,} parameters, {len(model.classes)} classes, "
          f"input {'x'.join(map(str, model.input_size))}; sha256 {sha256_file(args.out)})")
    return 0

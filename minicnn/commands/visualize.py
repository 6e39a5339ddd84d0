"""``minicnn visualize``: the image a class, a channel or a unit wants to see, by gradient ascent.

    minicnn visualize --model vgg_cifar10 --class cat --out cat.png
    minicnn visualize --model mobilenet_v2 --class goldfish --steps 128 --param fourier
    minicnn visualize --model resnet20_cifar10 --layer layer2 --channel 5 --param pixel --seed 3

writes a PNG at the network's input size (lossless, 8 bits per channel) and prints the
objective before and after the ascent (``minicnn.synthesis.visualise``). The same command
with the same seed writes the same image. Work is bounded before it starts (``--steps`` at
most ``minicnn.synthesis.MAX_STEPS``); like every command it replaces an existing file only
with ``--force`` (``minicnn.util.atomic.Outputs``).
"""

from __future__ import annotations

import argparse
import io
import re
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import InputError
from ..util.progress import Progress
from .options import add_force_option, positive_int

NAME = "visualize"
HELP = "the image a class (or a channel, a unit) of the network wants to see: gradient ascent on the input"



def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="vgg_cifar10", help="shipped model name or weights file")
    p.add_argument("--class", dest="target", default=None,
                   help="the class to visualise: an index or a name (mobilenet_v2: 'goldfish' finds "
                        "'goldfish, Carassius auratus')")
    p.add_argument("--layer", default=None, help="visualise a channel of this layer instead (with --channel)")
    p.add_argument("--channel", type=int, default=None, help="the channel of --layer")
    p.add_argument("--unit", action="store_true", help="maximise the channel's centre unit, not its mean")
    p.add_argument("--steps", type=positive_int, default=128, help="gradient steps (at most 2048)")
    p.add_argument("--param", choices=("pixel", "fourier"), default="fourier",
                   help="optimise the pixels (L2 decay, blur, clipping) or a Fourier spectrum with decorrelated "
                        "colour (Adam)")
    p.add_argument("--seed", type=int, default=0, help="seed of the start image and the random transformations")
    p.add_argument("--lr", type=float, default=0.05, help="step size (pixel units for pixel, Adam's for fourier)")
    p.add_argument("--out", default=None, help="the PNG to write (default: MODEL.CLASS.png or "
                                               "MODEL.LAYER-CHANNEL.png in the current folder)")
    add_force_option(p)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "x"


def png_bytes(image_hwc: np.ndarray) -> bytes:
    """(H, W, 3) floats in [0, 1] as an 8-bit RGB PNG (lossless at 8 bits)."""
    buf = io.BytesIO()
    Image.fromarray(np.round(np.clip(image_hwc, 0, 1) * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def run(args) -> int:
    from ..models.weights import load, locate  # lazy: zipfile, json, hashlib slow `minicnn --help`
    from ..synthesis import ClassScore, LayerObjective, visualise  # lazy: keeps `minicnn --help` fast
    from ..synthesis.objectives import class_of  # lazy: as above
    from ..synthesis.visualise import check_steps  # lazy: as above
    from ..util.atomic import Outputs  # lazy: as above

    if (args.target is None) == (args.layer is None):
        raise InputError("give either --class, or --layer with --channel")
    if args.layer is not None and args.channel is None:
        raise InputError(f"--layer {args.layer} needs --channel (a channel index of that layer)")
    if args.layer is None and (args.channel is not None or args.unit):
        raise InputError("--channel and --unit go with --layer")
    steps = check_steps(args.steps)
    outputs = Outputs(force=args.force)                    # the overwrite rule, before any work
    weights_file = outputs.input(locate(args.model)[0], "--model")
    what = f"class-{args.target}" if args.target is not None else f"{args.layer}-{args.channel}"
    out = outputs.output(args.out or f"{Path(weights_file).stem}.{slug(what)}.png", "--out", suffixes=(".png",),
                         kind="the image (a lossless PNG)")
    model = load(args.model)
    if args.target is not None:
        objective = ClassScore(class_of(model, args.target))
    else:
        objective = LayerObjective(args.layer, args.channel, "centre" if args.unit else None)
    objective.check(model)
    print(f"model: {model.name}  objective: {objective.describe(model)}  param: {args.param}  steps: {steps}  "
          f"seed: {args.seed}")
    with Progress(steps, "visualising", unit="steps", after=1.0) as progress:
        result = visualise(model, objective, param=args.param, steps=steps, seed=args.seed, lr=args.lr,
                           progress=progress)
    print(f"objective: {result.values[0]:.3f} at the first step -> {result.final_value:.3f} on the final image")
    with outputs.writing():
        with outputs.open(out) as f:
            f.write(png_bytes(result.image))
    h, w = result.image.shape[:2]
    print(f"image: {out} ({w}x{h})")
    return 0

"""``minicnn attack IMAGE``: the smallest L-infinity change that changes the network's answer.

    minicnn attack minicnn/data/cifar10/test/cat/0000.jpg --model resnet20_cifar10 --epsilon 8/255
    minicnn attack cat.jpg --method pgd --steps 10 --target dog --out cat_dog.png --save cat_dog.npz

prints the prediction before and after (``minicnn.synthesis.fgsm`` / ``pgd``), writes the
adversarial image as a lossless PNG at the network's input size (``--out``; its 8-bit rounding
is the only change, and the prediction on the written PNG is printed too) and the raw arrays
(``--save``, .npz: pixels, adversarial, logits before and after, label, target, epsilon).
``--epsilon`` is in the image's [0, 1] pixel units and accepts fractions such as 8/255.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import InputError
from ..explain.run import top_predictions
from ..inputs.images import DEFAULT_MAX_PIXELS, load_image
from ..inputs.preprocess import preprocess
from ..util.progress import Progress
from .options import add_force_option, positive_int

NAME = "attack"
HELP = "an adversarial example: FGSM or PGD in the L-infinity ball, untargeted or targeted"



def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", help="the image file to attack (PNG, JPEG, ...; the model's resize rule applies)")
    p.add_argument("--model", default="vgg_cifar10", help="shipped model name or weights file")
    p.add_argument("--method", choices=("fgsm", "pgd"), default="fgsm",
                   help="one signed gradient step, or projected gradient descent with a random start")
    p.add_argument("--epsilon", default="8/255", help="the largest change of a pixel, in [0, 1] pixel units; a "
                                                      "number or a fraction")
    p.add_argument("--steps", type=positive_int, default=10, help="PGD steps (at most 1000; FGSM takes one)")
    p.add_argument("--target", default=None, help="a class (index or name) to push the image towards "
                                                   "(default: untargeted, away from the top-1 class)")
    p.add_argument("--seed", type=int, default=0, help="seed of PGD's random start")
    p.add_argument("--out", default=None, help="the adversarial image, a PNG (default: IMAGE_NAME.METHOD.png in "
                                               "the current folder)")
    p.add_argument("--save", default=None, help="the raw arrays to write (a file name ending .npz)")
    p.add_argument("--top", type=positive_int, default=3, help="how many top classes to print before and after")
    add_force_option(p)
    p.add_argument("--max-pixels", type=positive_int, default=DEFAULT_MAX_PIXELS,
                   help="refuse image files of more pixels than this, before decoding")


def predictions(model, logits: np.ndarray, top: int) -> str:
    return "  ".join(f"{name.split(',')[0]} p={p:.3f} y={y:.2f}" for _, name, p, y in
                     top_predictions(model, logits, top))


def run(args) -> int:
    from ..models.weights import load, locate  # lazy: zipfile, json, hashlib slow `minicnn --help`
    from ..synthesis import adversarial  # lazy: keeps `minicnn --help` fast
    from ..synthesis.objectives import class_of  # lazy: as above
    from ..synthesis.visualise import normalisation  # lazy: as above
    from ..util.atomic import Outputs  # lazy: as above

    epsilon = adversarial.parse_epsilon(args.epsilon)
    if args.steps > adversarial.MAX_STEPS:
        raise InputError(f"--steps must be at most {adversarial.MAX_STEPS}; got {args.steps}")
    outputs = Outputs(force=args.force)                    # the overwrite rule, before any work
    outputs.input(args.image, "IMAGE")
    outputs.input(locate(args.model)[0], "--model")
    out = outputs.output(args.out or f"{Path(args.image).stem or 'image'}.{args.method}.png", "--out",
                         suffixes=(".png",), kind="the adversarial image (a lossless PNG)")
    save = outputs.output(args.save, "--save", suffixes=(".npz",), kind="the raw arrays (an .npz archive)") \
        if args.save else None
    model = load(args.model)
    target = None if args.target is None else class_of(model, args.target)
    prep = model.meta.get("preprocessing")
    if not prep:
        raise InputError(f"{model.name} records no preprocessing (mean, std, resize); cannot prepare an image for it")
    image = load_image(args.image, max_pixels=args.max_pixels)
    pixels = preprocess(image, {**prep, "mean": [0, 0, 0], "std": [1, 1, 1]})   # [0, 1], the network's size
    if args.method == "fgsm":
        result = adversarial.fgsm(model, pixels, epsilon, target=target)
    else:
        with Progress(args.steps, "attacking", unit="steps", after=1.0) as progress:
            result = adversarial.pgd(model, pixels, epsilon, steps=args.steps, seed=args.seed, target=target,
                                     progress=progress)
    quantised = np.round(result.adversarial * 255) / 255                 # what the 8-bit PNG holds
    mean, std = normalisation(model)
    logits_png = model.forward(((quantised - mean) / std).astype(np.float32))
    h, w = pixels.shape[2:]
    goal = f"towards {target} {model.classes[target]!r}" if target is not None else "untargeted"
    print(f"model: {model.name}  method: {args.method}  epsilon: {epsilon:.5f} ({epsilon * 255:.2f}/255)  "
          f"{goal}  network input: {w}x{h}")
    print(f"before: {predictions(model, result.logits_before[0], args.top)}")
    print(f"after:  {predictions(model, result.logits_after[0], args.top)}")
    print(f"as written (8-bit PNG): {predictions(model, logits_png[0], 1)}")
    print(f"fooled: {'yes' if result.success[0] else 'no'}  largest change: "
          f"{np.abs(result.adversarial - pixels).max() * 255:.2f}/255")
    buf = io.BytesIO()
    Image.fromarray(np.round(quantised[0].transpose(1, 2, 0) * 255).astype(np.uint8)).save(buf, format="PNG")
    with outputs.writing():                               # the image and the arrays appear together, or neither does
        with outputs.open(out) as f:
            f.write(buf.getvalue())
        if save:
            with outputs.open(save) as f:
                np.savez(f, pixels=pixels, adversarial=result.adversarial, logits_before=result.logits_before,
                         logits_after=result.logits_after, label=result.labels,
                         target=np.array([-1 if target is None else target]), epsilon=np.array(epsilon))
    print(f"image: {out}" + (f"\narrays: {save}" if save else ""))
    return 0

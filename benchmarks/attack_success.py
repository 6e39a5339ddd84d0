"""Attack success rate against epsilon on CIFAR-10 test images, for the shipped CIFAR-10 models.

    python benchmarks/attack_success.py ../shared/datasets/cifar10-jpeg.zip --per-class 100 \\
        --out benchmarks/attack_success.txt

Takes the first ``--per-class`` test images of each class (files in name order: 100 per class
is the first 1,000 images of the collection, balanced), and for each model and epsilon runs
FGSM and PGD (``--pgd-steps`` steps of 2.5 eps / steps, random start, seed 0) untargeted,
away from the true label. The success rate is the share of the correctly classified images
whose top-1 answer the attack changes. Prints (and with ``--out`` writes) a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import minicnn  # noqa: E402
from minicnn.inputs.datasets import open_dataset  # noqa: E402
from minicnn.models.evaluate import label_map  # noqa: E402
from minicnn.synthesis import fgsm, parse_epsilon, pgd  # noqa: E402

EPSILONS = ["1/255", "2/255", "4/255", "8/255"]


def first_per_class(data: str, per_class: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(pixels (N, 3, 32, 32) float32 in [0, 1], labels (N,), the dataset's classes)."""
    ds = open_dataset(data, "test")
    kept_x, kept_y, counts = [], [], np.zeros(len(ds.classes), int)
    for images, labels in ds.batches(500):
        take = []
        for i, y in enumerate(labels):
            if counts[y] < per_class:
                counts[y] += 1
                take.append(i)
        kept_x.append(images[take])
        kept_y.append(labels[take])
        if counts.min() >= per_class:
            break
    x = np.concatenate(kept_x).transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255)
    return x, np.concatenate(kept_y), ds.classes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="the CIFAR-10 JPEG test set (zip or folder) or the python archive")
    parser.add_argument("--models", default="vgg_cifar10,resnet20_cifar10")
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--epsilons", default=",".join(EPSILONS))
    parser.add_argument("--pgd-steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--out", default=None, help="also write the table to this file")
    args = parser.parse_args()
    epsilons = [parse_epsilon(e) for e in args.epsilons.split(",")]
    names = args.epsilons.split(",")
    start = time.perf_counter()
    pixels, labels, classes = first_per_class(args.data, args.per_class)
    lines = [f"Attack success rate on the first {args.per_class} CIFAR-10 test images of each class "
             f"({len(labels)} images): the share of correctly classified images whose top-1 answer changes.",
             f"PGD: {args.pgd_steps} steps of 2.5 eps / steps, random start (seed 0). Untargeted.", "",
             "| model | clean accuracy | attack | " + " | ".join(f"eps {n}" for n in names) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in names) + " |"]
    for name in args.models.split(","):
        model = minicnn.load(name)
        truth = label_map(model.classes, classes)[labels]
        rows = {"FGSM": [], f"PGD-{args.pgd_steps}": []}
        right = None
        for eps in epsilons:
            changed = {k: 0 for k in rows}
            right_count = 0
            for s in range(0, len(truth), args.batch):
                p, t = pixels[s:s + args.batch], truth[s:s + args.batch]
                a = fgsm(model, p, eps, labels=t)
                ok = a.logits_before.argmax(1) == t
                right_count += ok.sum()
                changed["FGSM"] += (a.logits_after.argmax(1)[ok] != t[ok]).sum()
                b = pgd(model, p, eps, steps=args.pgd_steps, labels=t)
                changed[f"PGD-{args.pgd_steps}"] += (b.logits_after.argmax(1)[ok] != t[ok]).sum()
            right = right_count
            for k in rows:
                rows[k].append(changed[k] / right_count)
            print(f"{name} eps {eps * 255:.1f}/255: " + ", ".join(f"{k} {v[-1]:.1%}" for k, v in rows.items())
                  + f"  ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
        for k, v in rows.items():
            lines.append(f"| {name} | {right / len(truth):.1%} | {k} | " + " | ".join(f"{r:.1%}" for r in v) + " |")
    lines += ["", f"{time.perf_counter() - start:.0f} s in all."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

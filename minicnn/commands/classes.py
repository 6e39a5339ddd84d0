"""``minicnn classes``: a model's classes, one a line with its index."""

from __future__ import annotations

HELP = ("list a model's classes, one a line with its index (a class may be named "
        "by any of its comma-separated synonyms)")


def add_arguments(p) -> None:
    p.add_argument("--model", default="vgg_cifar10", help="shipped model name or weights file")


def run(args) -> int:
    from ..models.weights import load  # lazy: zipfile, json, hashlib slow `minicnn --help`
    classes = load(args.model).classes or []
    width = len(str(max(len(classes) - 1, 0)))
    print("\n".join(f"{i:>{width}}  {name}" for i, name in enumerate(classes)))
    return 0

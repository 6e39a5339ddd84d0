"""``minicnn layers``: a model's layer table (name, type, output shape, parameters)."""

from __future__ import annotations

HELP = "print a model's layer table (name, type, output shape, parameters)"


def add_arguments(p) -> None:
    p.add_argument("--model", default="vgg_cifar10", help="shipped model name or weights file")


def run(args) -> int:
    from ..models.weights import load  # lazy: zipfile, json, hashlib slow `minicnn --help`
    print(load(args.model).summary())
    return 0

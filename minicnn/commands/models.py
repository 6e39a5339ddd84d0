"""``minicnn models``: the shipped models."""

from __future__ import annotations

HELP = "list the shipped models"


def add_arguments(p) -> None:
    pass


def run(args) -> int:
    from ..models.shipped import models_table  # lazy: zipfile, json, hashlib slow `minicnn --help`
    print(models_table())
    return 0

"""The argparse pieces several commands share: argument types and the ``--force`` option.

Every command module may import this one (and no other command).
"""

from __future__ import annotations

import argparse
import re


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000 ** 2, "mb": 1000 ** 2, "mib": 1024 ** 2,
          "g": 1000 ** 3, "gb": 1000 ** 3, "gib": 1024 ** 3}


def byte_size(text: str) -> int:
    """An argparse type: a number of bytes, "10485760", "10MiB", "512k", "2MB"."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    unit = m.group(2).lower() if m else None
    if not m or unit not in _UNITS:
        raise argparse.ArgumentTypeError(f"expected a size such as 10485760, 512KiB or 10MiB; got {text!r}")
    value = int(float(m.group(1)) * _UNITS[unit])
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a size of at least 1 byte; got {text!r}")
    return value


def seconds(text: str) -> float:
    """An argparse type: a positive, finite number of seconds below 1e6 ("300", "0.5")."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds such as 300 or 0.5; got {text!r}") from None
    if not 0 < value < 1e6:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds below 1e6; got {text!r}")
    return value


def add_force_option(p: argparse.ArgumentParser) -> None:
    """``--force``, the one overwrite rule of every command that writes files (see minicnn.util.atomic.Outputs)."""
    p.add_argument("--force", action="store_true",
                   help="replace output files that already exist (never an input file, never two outputs "
                        "on one file; without it an existing output is refused before any work)")

"""The argparse pieces several commands share: argument types and the ``--force`` option.

Every command module may import this one (and no other command).
"""

from __future__ import annotations

import argparse
import re

from ..errors import InputError


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


def count_or_all(text: str):
    """An argparse type: a positive integer, or "all"."""
    return "all" if text.strip().lower() == "all" else positive_int(text)


def add_data_option(p: argparse.ArgumentParser) -> None:
    """``--data PATH``: explain the test split of a dataset rather than the shipped test images."""
    p.add_argument("--data", default=None, metavar="PATH",
                   help="explain the test split of this dataset (the forms minicnn evaluate --data reads: "
                        "folders test/<class>/*.jpg, a zip of them, cifar-10-python.tar.gz), class by class in "
                        "turn; --images N takes the first N, all takes every one (default: the 300 shipped test "
                        "images)")


def add_cluster_options(p: argparse.ArgumentParser, *, cache: bool = True) -> None:
    """``--workers``, ``--scheduler``, ``--chunk-size`` (and ``--cache``): the run in chunks on Dask workers."""
    g = p.add_argument_group("on a Dask cluster (pip install 'minicnn[distributed]'; the results are the serial run's)")
    where = g.add_mutually_exclusive_group()
    where.add_argument("--workers", type=positive_int, default=None, metavar="N",
                       help="run on a local Dask cluster of N worker processes (one BLAS thread each)")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="run on an existing dask.distributed scheduler, e.g. tcp://10.0.0.5:8786")
    g.add_argument("--chunk-size", type=positive_int, default=10, metavar="IMAGES",
                   help="images per task on the cluster (default 10)")
    if cache:
        g.add_argument("--cache", default=None, metavar="DIR",
                       help="keep each finished chunk in DIR (created if missing): a rerun, a resumed run or one "
                            "with more methods computes only what is missing (needs --workers or --scheduler)")


def cluster_from(args):
    """The :class:`minicnn.util.cluster.Cluster` the flags ask for, or None for the serial run."""
    from ..util.cluster import Cluster  # lazy: the serial run and `minicnn --help` need none of it
    cache = getattr(args, "cache", None)
    if args.workers is None and args.scheduler is None:
        if cache is not None:
            raise InputError("--cache keeps the chunks of a run on Dask workers: "
                             "add --workers N or --scheduler ADDRESS")
        return None
    return Cluster(workers=args.workers, scheduler=args.scheduler, chunk=args.chunk_size, cache=cache)

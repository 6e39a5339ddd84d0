"""``minicnn demo``: the Grad-CAM paper's Figure 1 on the shipped models, offline (see ``minicnn.figures.demo``).

Prints the paths of the PNGs it wrote; its progress and the time it took go to stderr.
"""

from __future__ import annotations

import sys
import time

from .options import add_force_option

HELP = "reproduce the Grad-CAM paper's Figure 1 on the shipped models, offline"


def add_arguments(p) -> None:
    p.add_argument("--out-dir", default="minicnn-demo", help="folder for the PNGs (created if missing)")
    add_force_option(p)


def run(args) -> int:
    from ..figures.demo import run_demo  # lazy: matplotlib slows `minicnn --help`
    start = time.perf_counter()
    paths = run_demo(args.out_dir, force=getattr(args, "force", False), log=lambda text: print(text, file=sys.stderr))
    for p in paths:
        print(p)
    print(f"done in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0

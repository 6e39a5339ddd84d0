"""``minicnn fetch``: download an official checkpoint, verify it and convert it (see ``minicnn.models.fetch``)."""

from __future__ import annotations

from .options import add_force_option

HELP = "download an official checkpoint, verify it and convert it (needs torch)"


def add_arguments(p) -> None:
    p.add_argument("name", help="e.g. vgg16")
    p.add_argument("--out", default=None, help="the converted .npz file (default: NAME.npz)")
    p.add_argument("--url", default=None, help="download from this address instead of the official one")
    p.add_argument("--checkpoint", default=None, help="use this already-downloaded checkpoint file")
    add_force_option(p)


def run(args) -> int:
    """``minicnn fetch NAME [--out FILE] [--url URL] [--checkpoint FILE] [--force]``."""
    from ..models.fetch import fetch  # lazy: urllib.request slows `minicnn --help`
    out = fetch(args.name, out=args.out, url=args.url, checkpoint=args.checkpoint, force=args.force)
    print(f"wrote {out}")
    return 0

"""``minicnn sanity``: do the maps change when the network's weights are randomised?

    minicnn sanity --model vgg_cifar10 --images 50 --json sanity.json --out sanity.png
    minicnn sanity --model resnet20_cifar10 --methods gradcam,guided-backprop --mode independent

prints one Markdown table per similarity (a row per method, a column per
randomisation step), and writes the JSON of ``minicnn.metrics.Sanity.json``
(``--json``) and two figures (``--out FIG.png``: the maps step by step, in
the style of Adebayo et al.'s Figure 2, and ``FIG_curves.png``: similarity
against depth).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def curves_path(out) -> Path:
    """FIG.png -> FIG_curves.png, beside it."""
    out = Path(out)
    return out.with_name(f"{out.stem}_curves{out.suffix or '.png'}")


def write_json(path, data) -> str:
    from ..atomic import atomic_output
    with atomic_output(path, force=True) as f:
        f.write((json.dumps(data, indent=1, allow_nan=False) + "\n").encode())
    return str(path)


def sanity_command(args) -> int:
    from .. import load
    from ..atomic import check_writable
    from ..metrics import sanity
    from ..metrics.runs import selected_methods

    selected_methods(args.methods)                        # unknown names fail before any work
    for path in filter(None, [args.json, args.out, args.out and curves_path(args.out)]):
        check_writable(path, force=True)
    model = load(args.model)
    cpu = time.process_time()
    result = sanity(model, methods=args.methods, images=args.images, mode=args.mode, seed=args.seed)
    print(result.tables())
    print(f"\n{result.model}: {len(result.steps)} {result.mode} steps, {result.images} images, "
          f"{len(result.methods)} methods, {result.seconds:.0f} s ({time.process_time() - cpu:.0f} s of CPU)",
          file=sys.stderr)
    if args.json:
        print(f"json: {write_json(args.json, result.json())}")
    if args.out:
        from ..figures import save_png
        from ..metrics.figures import sanity_curves, sanity_grid
        print(f"figure: {save_png(sanity_grid(result), args.out, dpi=80)}")        # a panel per method and step
        print(f"figure: {save_png(sanity_curves(result), curves_path(args.out), dpi=100)}")
    return 0

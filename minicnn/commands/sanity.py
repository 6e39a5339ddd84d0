"""``minicnn sanity``: do the maps change when the network's weights are randomised?

    minicnn sanity --model vgg_cifar10 --images 50 --json sanity.json --out sanity.png
    minicnn sanity --model resnet20_cifar10 --methods gradcam,guided-backprop --mode independent

prints one Markdown table per similarity (a row per method, a column per
randomisation step), and writes the JSON of ``minicnn.metrics.Sanity.json``
(``--json``) and two figures (``--out FIG.png``: the maps step by step, in
the style of Adebayo et al.'s Figure 2, and ``FIG_curves.png``: similarity
against depth). Like every command (``minicnn.util.atomic.Outputs``), it
replaces an existing file only with ``--force``, checks every output before
the work, and writes them all or none.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path


def curves_path(out) -> Path:
    """FIG.png -> FIG_curves.png, beside it."""
    out = Path(out)
    return out.with_name(f"{out.stem}_curves{out.suffix or '.png'}")


def sanity_command(args) -> int:
    from ..models.weights import load
    from ..util.atomic import Outputs
    from ..metrics import sanity
    from ..metrics.runs import selected_methods
    from ..models.shipped import locate

    selected_methods(args.methods)                        # unknown names fail before any work
    outputs = Outputs(force=args.force)                   # the overwrite rule of every command, before the work
    outputs.input(locate(args.model)[0], "--model")
    if args.json:
        outputs.output(args.json, "--json", suffixes=(".json",), kind="JSON")
    if args.out:
        outputs.output(args.out, "--out", suffixes=(".png",), kind="a PNG figure")
        outputs.output(curves_path(args.out), "the curves figure")
    model = load(args.model)
    cpu = time.process_time()
    result = sanity(model, methods=args.methods, images=args.images, mode=args.mode, seed=args.seed)
    print(result.tables())
    if result.images < 2 and args.out:
        from ..metrics.intervals import IntervalWarning
        warnings.warn("the curves figure has no 95% bands: a mean over one image has no spread to estimate them "
                      "from; use --images 2 or more", IntervalWarning, stacklevel=2)
    print(f"\n{result.model}: {len(result.steps)} {result.mode} steps, {result.images} images, "
          f"{len(result.methods)} methods, {result.seconds:.0f} s ({time.process_time() - cpu:.0f} s of CPU)",
          file=sys.stderr)
    written = []
    with outputs.writing():                              # the JSON and both figures appear together, or none does
        if args.json:
            written.append(f"json: {outputs.write_json(args.json, result.json())}")
        if args.out:
            from ..figures import save_png
            from ..figures.metrics import sanity_curves, sanity_grid
            grid = save_png(sanity_grid(result), args.out, dpi=80, outputs=outputs)    # a panel per method and step
            curves = save_png(sanity_curves(result), curves_path(args.out), dpi=100, outputs=outputs)
            written += [f"figure: {grid}", f"figure: {curves}"]
    print("\n".join(written)) if written else None
    return 0

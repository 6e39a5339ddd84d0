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

from .options import add_cluster_options, add_data_option, add_force_option, cluster_from, count_or_all

HELP = "do the maps change when the weights are randomised? (Adebayo et al. 2018)"


def add_arguments(p) -> None:
    p.add_argument("--model", required=True, help="shipped model name or weights file")
    p.add_argument("--methods", default=None, help="comma-separated methods (default: every registered method)")
    p.add_argument("--images", type=count_or_all, default=50,
                   help="test images to explain, or all (default 50)")
    p.add_argument("--mode", choices=["cascading", "independent"], default="cascading",
                   help="randomise from the logits down, one more layer each step, or one layer at a time")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    p.add_argument("--json", default=None, help="write the similarities to this JSON file")
    p.add_argument("--out", default=None, help="figure of the maps step by step (PNG); curves go to FIG_curves.png")
    add_data_option(p)
    add_force_option(p)
    add_cluster_options(p)


def curves_path(out) -> Path:
    """FIG.png -> FIG_curves.png, beside it."""
    out = Path(out)
    return out.with_name(f"{out.stem}_curves{out.suffix or '.png'}")


def run(args) -> int:
    from ..metrics import sanity  # lazy: the metrics (and SciPy) slow `minicnn --help`
    from ..metrics.intervals import IntervalWarning  # lazy: as above
    from ..metrics.runs import selected_methods  # lazy: as above
    from ..metrics.testset import TestImages  # lazy: as above
    from ..models.weights import load, locate  # lazy: zipfile, json, hashlib slow `minicnn --help`
    from ..util.atomic import Outputs  # lazy: as above

    selected_methods(args.methods)                        # unknown names fail before any work
    cluster = cluster_from(args)                          # None: the serial run
    outputs = Outputs(force=args.force)                   # the overwrite rule of every command, before the work
    outputs.input(locate(args.model)[0], "--model")
    data = None if args.data is None else TestImages(args.data)     # a bad --data fails before any work
    if data is not None:
        outputs.input(data.dataset.path, "--data")
        count = data.count(args.images)                   # more images than the dataset has: refused now
    if args.json:
        outputs.output(args.json, "--json", suffixes=(".json",), kind="JSON")
    if args.out:
        outputs.output(args.out, "--out", suffixes=(".png",), kind="a PNG figure")
        outputs.output(curves_path(args.out), "the curves figure")
    model = load(args.model)
    if data is not None:
        print(f"data: the first {count} of {data.describe()}, class by class in turn",
              file=sys.stderr)
    cpu = time.process_time()
    result = sanity(model, methods=args.methods, images=args.images, mode=args.mode, seed=args.seed, cluster=cluster,
                    source=args.model, data=data)
    print(result.tables())
    if result.images < 2 and args.out:
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
            from ..figures import save_png  # lazy: matplotlib slows `minicnn --help`
            from ..figures.metrics import sanity_curves, sanity_grid  # lazy: as above
            grid = save_png(sanity_grid(result), args.out, dpi=80, outputs=outputs)    # a panel per method and step
            curves = save_png(sanity_curves(result), curves_path(args.out), dpi=100, outputs=outputs)
            written += [f"figure: {grid}", f"figure: {curves}"]
    print("\n".join(written)) if written else None
    return 0

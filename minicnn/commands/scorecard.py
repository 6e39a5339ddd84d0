"""``minicnn scorecard``: faithfulness, localisation and cost of every method, against baselines.

    minicnn scorecard --model resnet20_cifar10 --images 200 --json card.json --out-dir card/
    minicnn scorecard --model vgg_cifar10 --methods gradcam,saliency --images 20

prints a Markdown table (a row per method and baseline, mean and 95%
confidence interval per metric), and writes the JSON of
``minicnn.metrics.Scorecard.json`` (``--json``) and, with ``--out-dir``
(created if missing), three figures: ``scorecard_<model>_curves.png``
(deletion and insertion curves), ``scorecard_<model>_maps.png`` (a grid
of example maps) and ``scorecard_<model>_trust.png`` (the columns from
Average Drop to random-logit, a panel each). Like every command (``minicnn.util.atomic.Outputs``), it
replaces an existing file only with ``--force``, checks every output before
the work, and writes them all or none.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path

from .options import add_cluster_options, add_data_option, add_force_option, cluster_from, count_or_all

HELP = "faithfulness, localisation and cost of every method, against baselines"


def add_arguments(p) -> None:
    p.add_argument("--model", required=True, help="shipped model name or weights file")
    p.add_argument("--methods", default=None, help="comma-separated methods (default: every registered method)")
    p.add_argument("--images", type=count_or_all, default=200,
                   help="test images to explain, or all (default 200)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random baseline, tie-breaking, noise, mosaics")
    p.add_argument("--json", default=None, help="write the scorecard to this JSON file")
    p.add_argument("--out-dir", default=None, help="folder for the figures (created if missing)")
    add_data_option(p)
    add_force_option(p)
    add_cluster_options(p)


def figure_paths(out_dir, model_name: str) -> dict[str, Path]:
    out = Path(os.fspath(out_dir))
    return {"curves": out / f"scorecard_{model_name}_curves.png", "maps": out / f"scorecard_{model_name}_maps.png",
            "trust": out / f"scorecard_{model_name}_trust.png"}


def run(args) -> int:
    from ..metrics import scorecard  # lazy: the metrics (and SciPy) slow `minicnn --help`
    from ..metrics.intervals import IntervalWarning  # lazy: as above
    from ..metrics.runs import selected_methods  # lazy: as above
    from ..metrics.scorecard import INTERVAL_NOTE  # lazy: as above
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
    model = load(args.model)
    paths = figure_paths(args.out_dir, model.name) if args.out_dir else {}
    for what, path in paths.items():
        outputs.output(path, f"the {what} figure", create_folder=True)     # --out-dir is created if missing
    if data is not None:
        print(f"data: the first {count} of {data.describe()}, class by class in turn; "
              f"the mosaics of the pointing games are made of the dataset's images too", file=sys.stderr)
    cpu = time.process_time()
    card = scorecard(model, methods=args.methods, images=args.images, seed=args.seed, cluster=cluster,
                     source=args.model, data=data)
    print(card.table())
    if card.unknown_intervals():
        warnings.warn(INTERVAL_NOTE, IntervalWarning, stacklevel=2)        # one "minicnn: note:" line on stderr
    print(f"\n{card.model}: {card.images} images, {card.mosaics} mosaics, {len(card.methods)} methods and 3 baselines, "
          f"{card.seconds:.0f} s ({time.process_time() - cpu:.0f} s of CPU; "
          + ", ".join(f"{k} {v:.0f} s" for k, v in card.phases.items()) + ")", file=sys.stderr)
    written = []
    with outputs.writing():                              # the JSON and the figures appear together, or none does
        if args.json:
            written.append(f"json: {outputs.write_json(args.json, card.json())}")
        if paths:
            from ..figures import save_png  # lazy: matplotlib
            from ..figures.metrics import deletion_insertion_curves, example_maps, trust_columns  # lazy: matplotlib
            written.append(
                f"figure: {save_png(deletion_insertion_curves(card), paths['curves'], dpi=100, outputs=outputs)}")
            written.append(f"figure: {save_png(example_maps(card), paths['maps'], dpi=90, outputs=outputs)}")
            written.append(f"figure: {save_png(trust_columns(card), paths['trust'], dpi=100, outputs=outputs)}")
    print("\n".join(written)) if written else None
    return 0

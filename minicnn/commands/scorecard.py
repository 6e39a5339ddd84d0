"""``minicnn scorecard``: faithfulness, localisation and cost of every method, against baselines.

    minicnn scorecard --model resnet20_cifar10 --images 200 --json card.json --out-dir card/
    minicnn scorecard --model vgg_cifar10 --methods gradcam,saliency --images 20

prints a Markdown table (a row per method and baseline, mean and 95%
confidence interval per metric), and writes the JSON of
``minicnn.metrics.Scorecard.json`` (``--json``) and, with ``--out-dir``
(created if missing), two figures: ``scorecard_<model>_curves.png``
(deletion and insertion curves) and ``scorecard_<model>_maps.png`` (a grid
of example maps).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from ..errors import OutputError
from .sanity import write_json


def figure_paths(out_dir, model_name: str) -> dict[str, Path]:
    out = Path(os.fspath(out_dir))
    return {"curves": out / f"scorecard_{model_name}_curves.png", "maps": out / f"scorecard_{model_name}_maps.png"}


def scorecard_command(args) -> int:
    from .. import load
    from ..atomic import check_writable
    from ..metrics import scorecard
    from ..metrics.runs import selected_methods

    selected_methods(args.methods)                        # unknown names fail before any work
    if args.json:
        check_writable(args.json, force=True)
    model = load(args.model)
    paths = {}
    if args.out_dir:
        try:
            Path(args.out_dir).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"cannot create the folder {args.out_dir}: {e.strerror or e}") from None
        paths = figure_paths(args.out_dir, model.name)
        for path in paths.values():
            check_writable(path, force=True)
    cpu = time.process_time()
    card = scorecard(model, methods=args.methods, images=args.images, seed=args.seed)
    print(card.table())
    print(f"\n{card.model}: {card.images} images, {card.mosaics} mosaics, {len(card.methods)} methods and 3 baselines, "
          f"{card.seconds:.0f} s ({time.process_time() - cpu:.0f} s of CPU; "
          + ", ".join(f"{k} {v:.0f} s" for k, v in card.phases.items()) + ")", file=sys.stderr)
    if args.json:
        print(f"json: {write_json(args.json, card.json())}")
    if paths:
        from ..figures import save_png
        from ..metrics.figures import deletion_insertion_curves, example_maps
        print(f"figure: {save_png(deletion_insertion_curves(card), paths['curves'], dpi=100)}")
        print(f"figure: {save_png(example_maps(card), paths['maps'], dpi=90)}")
    return 0

"""What the scorecard's columns from Average Drop to random-logit cost per image, on the shipped CIFAR-10 models.

    python benchmarks/trust_metrics_cost.py [--images 16] [--methods saliency,gradcam,integrated-gradients]

For each model, on the first ``--images`` shipped test images: the seconds per image and map of the
six map columns (``trust.map_metrics``: 31 forwards), of the two robustness columns per method
(``trust.robustness``: 3 + 1 more maps) against the method's own map, and, for comparison, of
deletion, insertion and ROAD (36 forwards). Then the scorecard's added time for 25 methods and
200 images: (28 maps sets) x 200 x the map columns' time, plus 50 x 4 x the sum over the methods of
their seconds per map (taken from the published scorecards' JSON, docs/scorecard/). Prints the load
average beside the numbers: on a shared machine, every time grows with it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import minicnn  # noqa: E402
from minicnn.explain import registry  # noqa: E402
from minicnn.metrics.deletion import blur, deletion_curve, insertion_curve  # noqa: E402
from minicnn.metrics.road import road_curves  # noqa: E402
from minicnn.metrics.runs import model_inputs, run_method  # noqa: E402
from minicnn.metrics.trust import ROBUSTNESS_IMAGES, Draws, class_scores, map_metrics, robustness  # noqa: E402


def measure(name: str, images: int, methods: list[str]) -> dict:
    model = minicnn.load(name)
    x, _ = model_inputs(model, images)
    logits = model.forward(x)
    targets = logits.argmax(axis=1)
    draws = Draws.of(x, targets, logits.shape[1], 0)
    out = {"methods": {}}
    prob = class_scores(model, targets, probability=True)
    for key in methods:
        m = registry.get(key)
        run = run_method(model, m, x, targets)
        t0 = time.perf_counter()
        map_metrics(model, x, targets, run.raw, m.kind, draws, logits=logits)
        t1 = time.perf_counter()
        robustness(model, m, x, targets, run.raw, draws)
        t2 = time.perf_counter()
        deletion_curve(prob, x, run.pixels, steps=10)
        insertion_curve(prob, x, run.pixels, steps=10, start=blur(x))
        road_curves(prob, x, run.pixels)
        t3 = time.perf_counter()
        out["methods"][key] = {"map": run.seconds, "map_columns": (t1 - t0) / images,
                               "robustness": (t2 - t1) / draws.robust, "deletion_road": (t3 - t2) / images}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=16)
    p.add_argument("--methods", default="saliency,gradcam,integrated-gradients")
    args = p.parse_args()
    for name in ("vgg_cifar10", "resnet20_cifar10"):
        result = measure(name, args.images, args.methods.split(","))
        print(f"{name}, {args.images} images, load average {os.getloadavg()[0]:.2f} (seconds per image):")
        for key, t in result["methods"].items():
            print(f"  {key:22s} map {t['map']:.4f}  map columns {t['map_columns']:.4f}  "
                  f"robustness {t['robustness']:.4f} ({t['robustness'] / t['map']:.1f} maps)  "
                  f"deletion+insertion+ROAD {t['deletion_road']:.4f}")
        columns = np.mean([t["map_columns"] for t in result["methods"].values()])
        published = json.loads((ROOT / "docs" / "scorecard" / f"scorecard_{name}.json").read_text())
        per_map = [v["seconds_per_image"]["mean"] for v in published["methods"].values() if "seconds_per_image" in v]
        added = 28 * 200 * columns + ROBUSTNESS_IMAGES * 4 * sum(per_map)
        print(f"  added to the 25-method, 200-image scorecard: about {added:.0f} s "
              f"({28 * 200 * columns:.0f} s map columns + {ROBUSTNESS_IMAGES * 4 * sum(per_map):.0f} s robustness, "
              f"from the published {sum(per_map):.2f} s of maps per image)")


if __name__ == "__main__":
    main()

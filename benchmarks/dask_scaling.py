"""Wall time of one scorecard serial and on 1, 2, ... local Dask workers, and the cost of a task.

    python benchmarks/dask_scaling.py                                    # ~5 minutes on a quiet 2-core machine
    python benchmarks/dask_scaling.py --images 200 --methods all --workers 1,2 --out benchmarks/dask_scaling.txt

1. The same scorecard (``--model``, ``--methods``, ``--images``, seed 0) run serially (the
   engine's own threads on every core) and on a local cluster of N worker processes of one
   thread each (``--workers``, chunks of ``--chunk`` images), alternating serial and cluster
   runs ``--repeats`` times; the cluster's time includes starting it. Each cluster run's
   numbers are checked against the serial run's (1e-5).
2. The overhead of a task: ``--tasks`` trivial tasks (``math.sqrt``) on a running local
   cluster of 2 workers, wall time per task, through the same ``run_tasks`` the commands use.
3. The load average (``os.getloadavg``) before and after every measurement: on a shared
   machine the times mean little without it.

From these, an estimate on paper: the time of ``--images`` images with these methods on
``--cores`` cores, as (serial seconds per image on one worker) x images / cores, plus the
overhead of one task per chunk and the cluster's start.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import minicnn  # noqa: E402
from minicnn.metrics import scorecard  # noqa: E402
from minicnn.util.cluster import Cluster, client_for, run_tasks  # noqa: E402


def load() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def same(a, b) -> str:
    """"yes", or the values of card b that differ from card a's by more than 1e-4 (largest difference)."""
    bad = []
    for k, values in a.values.items():
        for m, v in values.items():
            v, w = np.asarray(v, float), np.asarray(b.values[k][m], float)
            if m != "seconds_per_image" and not np.allclose(w, v, atol=1e-4, equal_nan=True):
                bad.append(f"{k} {m} {np.nanmax(np.abs(w - v)):.1e}")
    return "yes" if not bad else "NO: " + "; ".join(bad)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="resnet20_cifar10")
    p.add_argument("--methods", default="gradcam,saliency,integrated-gradients")
    p.add_argument("--images", type=int, default=50)
    p.add_argument("--workers", default="1,2", help="comma-separated numbers of local workers")
    p.add_argument("--chunk", type=int, default=10, help="images per task")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--tasks", type=int, default=400, help="trivial tasks for the overhead measurement")
    p.add_argument("--cores", type=int, default=32, help="cores of the cluster of the estimate")
    p.add_argument("--full", type=int, default=10_000, help="images of the estimate (the CIFAR-10 test set)")
    p.add_argument("--out", default=None, help="also write the report to this file")
    args = p.parse_args(argv)
    workers = [int(w) for w in args.workers.split(",")]
    model = minicnn.load(args.model)
    lines = [f"# Dask scaling: {args.model}, methods {args.methods}, {args.images} images, chunks of {args.chunk}",
             f"machine: {os.cpu_count()} cores; load average (1/5/15 min) at the start: {load()}", "",
             "| run | wall s | s / image | load before | load after | equal to serial |", "|---|---|---|---|---|---|"]
    times: dict[str, list[float]] = {}
    serial_card = None
    for _ in range(args.repeats):
        for name in ["serial", *[f"{w} workers" for w in workers]]:
            before = load()
            began = time.perf_counter()
            cluster = None if name == "serial" else Cluster(workers=int(name.split()[0]), chunk=args.chunk)
            card = scorecard(model, methods=args.methods, images=args.images, progress=False, cluster=cluster,
                             source=args.model)
            wall = time.perf_counter() - began
            serial_card = card if name == "serial" else serial_card
            times.setdefault(name, []).append(wall)
            equal = "-" if name == "serial" else same(serial_card, card)
            lines.append(f"| {name} | {wall:.1f} | {wall / args.images:.2f} | {before} | {load()} | {equal} |")
            print(lines[-1], flush=True)

    before = load()
    cluster = Cluster(workers=2)
    with client_for(cluster) as client:
        run_tasks([(math.sqrt, (1.0,))] * 4, cluster=cluster, sizes=[1] * 4, names=["warm-up"] * 4, progress=False,
                  client=client)
        began = time.perf_counter()
        run_tasks([(math.sqrt, (float(i),)) for i in range(args.tasks)], cluster=cluster, sizes=[1] * args.tasks,
                  names=[f"task {i}" for i in range(args.tasks)], progress=False, client=client)
        per_task = (time.perf_counter() - began) / args.tasks
    lines += ["", f"overhead: {args.tasks} trivial tasks on 2 local workers: {1000 * per_task:.2f} ms per task "
                  f"(load {before} -> {load()})"]

    best = {k: min(v) for k, v in times.items()}
    one = best.get("1 workers", best["serial"])
    per_image_one_core = one / args.images
    chunks = math.ceil(args.full / args.chunk)
    estimate = per_image_one_core * args.full / args.cores + chunks * per_task
    lines += ["speed-up over serial: " + ", ".join(f"{k} {best['serial'] / v:.2f}x" for k, v in best.items()
                                                   if k != "serial"),
              f"estimate: {args.full} images, these methods, {args.cores} single-threaded workers: "
              f"{per_image_one_core:.2f} s/image on one worker x {args.full} / {args.cores} + {chunks} tasks x "
              f"{1000 * per_task:.1f} ms = {estimate / 60:.0f} min (the mosaics add about a quarter of the maps)"]
    report = "\n".join(lines)
    print("\n".join(lines[-3:]))
    if args.out:
        Path(args.out).write_text(report + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

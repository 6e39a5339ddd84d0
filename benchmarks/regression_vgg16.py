"""VGG-16 at 224x224 (random weights): minicnn's two ways of using the cores, next to PyTorch.

    python benchmarks/regression_vgg16.py                 # 15 repetitions, about 3 minutes on a quiet machine
    python benchmarks/regression_vgg16.py --reps 31
    python benchmarks/regression_vgg16.py --model mobilenet_v2      # the rule applies to every 224x224 photo

Needs PyTorch (``pip install torch==2.13.0``). Both libraries get 2 threads
(threadpoolctl for NumPy's BLAS, ``torch.set_num_threads``). For forward,
Grad-CAM at features.29 and guided backprop (the ``minicnn bench``
operations), it times in turns, one sample each, 0.3 s of rest before each:

- ``blas``: a single large image as a ``parallel.blas_pass`` (BLAS shares each
  product over the cores), whatever the load (``parallel.BUSY_LOAD_PER_CORE``
  lifted);
- ``own``: the same pass cut into blocks on minicnn's own threads with BLAS
  held to one thread (``parallel.BLAS_IMAGE_ELEMENTS`` raised past the image);
- ``pytorch``: the twin of ``minicnn bench``.

Printed: each side's median time and the median over the turns of its
ratio to PyTorch's sample in the same turn, with the load average before
and after. This is the check that would have caught the regression the
own-threads pass caused (on a quiet Intel Xeon, 2026-12-01: Grad-CAM 1.39-1.43x,
guided backprop 1.55-1.59x, where BLAS's threads gave 0.94x and 1.22x).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from minicnn import parallel  # noqa: E402
from minicnn.bench.cases import make_case, minicnn_operations  # noqa: E402
from minicnn.bench.timing import interleaved  # noqa: E402
from minicnn.bench.twins import torch_operations, torch_twin  # noqa: E402

OPERATIONS = ("forward", "gradcam", "guided_backprop")


def with_setting(name: str, value, fn):
    """fn run with ``parallel.<name>`` set to value."""
    def call():
        saved = getattr(parallel, name)
        setattr(parallel, name, value)
        try:
            return fn()
        finally:
            setattr(parallel, name, saved)
    return call


def main(argv=None) -> int:
    dropped = [k for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ]
    if dropped:                                          # they pin a slower kernel, as ``minicnn bench`` says
        env = {k: v for k, v in os.environ.items() if k not in dropped}
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--operations", default=",".join(OPERATIONS))
    parser.add_argument("--model", default="vgg16", help="a zoo architecture or shipped model (default vgg16)")
    args = parser.parse_args(argv)
    import torch
    from threadpoolctl import threadpool_limits
    torch.set_num_threads(args.threads)
    case = make_case(args.model)
    mine = minicnn_operations(case)
    theirs = torch_operations(case, torch_twin(case.model, torch), torch)
    load = os.getloadavg()[0]
    print(f"{args.model} {'x'.join(map(str, case.x.shape[1:]))}, {args.threads} threads each, {args.reps} turns; "
          f"load average {load:.2f} before")
    print(f"{'operation':16} {'blas':>9} {'own':>9} {'pytorch':>9}  {'blas/pt':>7} {'own/pt':>7}")
    with threadpool_limits(limits=args.threads, user_api="blas"):
        for op in args.operations.split(","):
            sides = [with_setting("BUSY_LOAD_PER_CORE", float("inf"), mine[op]),
                     with_setting("BLAS_IMAGE_ELEMENTS", 2 ** 62, mine[op]), theirs[op]]
            for side in sides:
                side()                                            # warm-up
            blas, own, pt = interleaved(sides, args.reps, 1)
            ratio = [statistics.median(a / b for a, b in zip(t, pt)) for t in (blas, own)]
            print(f"{op:16} {1e3 * statistics.median(blas):6.0f} ms {1e3 * statistics.median(own):6.0f} ms "
                  f"{1e3 * statistics.median(pt):6.0f} ms  {ratio[0]:6.2f}x {ratio[1]:6.2f}x", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} after; at this load the rule chooses "
          f"{'blas' if parallel.blas_pass(1, case.x[0].size) else 'own'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

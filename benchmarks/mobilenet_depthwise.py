"""MobileNetV2 at 224x224 against PyTorch: forward, Grad-CAM, guided backprop, the depthwise layers alone,
and Score-CAM on one photograph (measured, and estimated from its forward passes).

    python benchmarks/mobilenet_depthwise.py [--reps 7] [--scorecam] [--threads N]

Needs PyTorch (the comparison runs the ``minicnn bench`` twin in the same process, with the
same weights: ``minicnn.bench.twins``). Repetitions alternate minicnn and PyTorch with a
short rest before each (``minicnn.bench.timing.interleaved``); each line gives the medians,
the ranges, the ratio (median over the pairs of minicnn / PyTorch) and the load average
(1 minute) before and after it, so that a reading taken on a busy machine says so.

The depthwise lines time every depthwise convolution of the network (their inputs recorded
from one forward pass of the photo) through the fast tier (``layers/depthwise.py``), the
einsum tier (``layers/grouped.py``, the reference) and ``torch.nn.functional.conv2d`` with
groups = C, forward and dx.

Score-CAM at MobileNetV2's default layer ("features", 1280 maps of 7x7) runs one masked
copy of the photo per non-constant map through the network, one copy per pass at 224x224
(2^18 input elements per pass): its time is about (maps that are not constant) x (one
forward pass). ``--scorecam`` also times it once, on ``minicnn/data/images/chelsea.png``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import minicnn  # noqa: E402
from minicnn import explain  # noqa: E402
from minicnn.bench.cases import Case  # noqa: E402
from minicnn.bench.machine import import_torch  # noqa: E402
from minicnn.bench.timing import interleaved  # noqa: E402
from minicnn.bench.twins import torch_operations, torch_twin  # noqa: E402
from minicnn.inputs.images import load_image  # noqa: E402
from minicnn.inputs.preprocess import preprocess  # noqa: E402
from minicnn.layers import conv, depthwise, grouped  # noqa: E402

PHOTO = Path(__file__).resolve().parents[1] / "minicnn" / "data" / "images" / "chelsea.png"


def load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def line(what, mine, theirs, before):
    r = statistics.median(a / b for a, b in zip(mine, theirs))
    print(f"{what:28s} minicnn {statistics.median(mine) * 1e3:7.1f} ms ({min(mine) * 1e3:.1f}-{max(mine) * 1e3:.1f})  "
          f"torch {statistics.median(theirs) * 1e3:7.1f} ms ({min(theirs) * 1e3:.1f}-{max(theirs) * 1e3:.1f})  "
          f"ratio {r:.2f}x  load {before} -> {load()}", flush=True)


def depthwise_inputs(model, x):
    """(x, w, b, stride, padding) of every depthwise convolution, recorded from one forward pass."""
    seen, original = [], conv.depthwise_conv2d_forward

    def record(x_, w, b, stride, padding, dilation):
        seen.append((x_.copy(), w, b, stride, padding))
        return original(x_, w, b, stride, padding, dilation)

    conv.depthwise_conv2d_forward = record
    try:
        model.forward(x)
    finally:
        conv.depthwise_conv2d_forward = original
    return seen


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--threads", type=int, default=None, help="threads for both (default: the BLAS library's)")
    p.add_argument("--scorecam", action="store_true", help="also time Score-CAM on the photo once")
    args = p.parse_args()
    torch = import_torch()
    if torch is None:
        print("needs PyTorch: pip install torch==2.13.0", file=sys.stderr)
        return 2
    if args.threads:
        from threadpoolctl import threadpool_limits
        threadpool_limits(args.threads)
    from minicnn.bench.machine import blas_info
    torch.set_num_threads(blas_info()["threads"])
    print(f"threads: {blas_info()['threads']} (NumPy's BLAS and minicnn), torch {torch.get_num_threads()}; "
          f"cores {os.cpu_count()}; load {load()}")
    model = minicnn.load("mobilenet_v2")
    x = preprocess([load_image(PHOTO)], model.meta["preprocessing"])
    case = Case("mobilenet_v2", model, x)
    case.target = int(np.argmax(model.forward(x)[0]))
    case.layer = explain.default_layer(model)
    twin = torch_twin(model, torch)
    theirs = torch_operations(case, twin, torch)
    mine = {"forward": lambda: model.forward(x),
            "gradcam": lambda: explain.gradcam(model, x, case.target, case.layer).map,
            "guided_backprop": lambda: explain.guided_backprop(model, x, case.target).map}
    for op, fn in mine.items():
        fn(), theirs[op]()
        before = load()
        a, b = interleaved([fn, theirs[op]], args.reps, 1)
        line(op, a, b, before)

    layers = depthwise_inputs(model, x)
    tiers = {"fast": (depthwise.depthwise_conv2d_forward, depthwise.depthwise_conv2d_backward),
             "einsum": (grouped.depthwise_conv2d_forward_reference, grouped.depthwise_conv2d_backward_reference)}
    F = torch.nn.functional
    for name, (forward, backward) in tiers.items():
        def ours(forward=forward, backward=backward):
            for x_, w, b, s, pd in layers:
                out = forward(x_, w, b, s, pd)
                backward(np.ones_like(out), x_, w, s, pd, param_grads=False)

        tensors = [(torch.from_numpy(x_), torch.from_numpy(w), torch.from_numpy(b), s, pd)
                   for x_, w, b, s, pd in layers]

        def torch_side(tensors=tensors):
            for xt, wt, bt, s, pd in tensors:
                xg = xt.detach().requires_grad_(True)
                out = F.conv2d(xg, wt, bt, s, pd, 1, xt.shape[1])
                torch.autograd.grad(out, xg, torch.ones_like(out))

        ours(), torch_side()
        before = load()
        a, b = interleaved([ours, torch_side], args.reps, 1)
        line(f"depthwise x{len(layers)} fwd+dx ({name})", a, b, before)

    A = model.activations[case.layer][0]
    varying = int(np.sum(A.reshape(len(A), -1).max(axis=1) > A.reshape(len(A), -1).min(axis=1)))
    one = statistics.median(interleaved([lambda: model.forward(x, keep=False)], args.reps, 1)[0])
    with torch.no_grad():
        t_one = statistics.median(interleaved([lambda: twin(torch.from_numpy(x))], args.reps, 1)[0])
    print(f"Score-CAM at {case.layer!r}: {len(A)} maps of {A.shape[1]}x{A.shape[2]}, {varying} not constant: "
          f"about {varying} forward passes of one copy; estimate {varying * one:.1f} s for minicnn "
          f"({one * 1e3:.1f} ms a pass), {varying * t_one:.1f} s at PyTorch's forward ({t_one * 1e3:.1f} ms); "
          f"20 s needs <= {20 / max(varying, 1) * 1e3:.1f} ms a pass; load {load()}")
    if args.scorecam:
        before = load()
        start = time.perf_counter()
        explain.scorecam(model, x, case.target, case.layer, progress=False)
        print(f"Score-CAM measured: {time.perf_counter() - start:.1f} s; load {before} -> {load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

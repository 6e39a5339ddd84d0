"""How close an im2col engine on NumPy can come to PyTorch: the floor under minicnn's batched passes.

    python benchmarks/floor.py                                  # both CIFAR models at batch 64, VGG-16 at batch 1
    python benchmarks/floor.py --models resnet20_cifar10 --batch 256 --reps 9

Needs PyTorch (``pip install torch==2.13.0``). On one core each (BLAS held to
one thread with threadpoolctl, ``torch.set_num_threads(1)``), for a forward
pass of a batch of random images, it times:

- ``pytorch``: the PyTorch twin of ``minicnn bench`` (same weights), under
  ``no_grad``, logits only;
- ``minicnn``: ``model.forward(x, keep=False)``;
- ``products``: the matrix products of every convolution and dense layer
  alone, W_mat @ cols, on columns already built, block by block as
  ``conv2d_forward`` takes them;
- ``columns``: building those columns alone (the images side by side and
  the slice copies of each tap for stride 1, im2col's gather otherwise).

Every time is the median of ``--reps`` repetitions, as milliseconds and as a
ratio to ``pytorch``; ``minicnn/floor`` is minicnn's time over products +
columns (the target: at most 1.15). ``products + columns`` is work that any engine made of
im2col and a BLAS product must do; everything else a pass does (the bias,
BatchNorm, ReLU, pooling, writing the outputs, Python) comes on top. If
that sum alone exceeds a target ratio, no tuning of the rest meets it.
Grouped convolutions (MobileNetV2) are not counted.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import minicnn  # noqa: E402
from minicnn.bench import machine, twins
from minicnn.layers import Conv2d, Linear  # noqa: E402
from minicnn.layers import conv as conv_module  # noqa: E402
from minicnn.models import zoo  # noqa: E402
from minicnn.windows import column_blocks, im2col, input_rows, output_hw, pad, pair, shifted_columns, side_by_side  # noqa: E402


def median_ms(fn, reps: int) -> float:
    """The median of ``reps`` timed calls of fn (after one warm-up), in milliseconds."""
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def conv_blocks(layer: Conv2d, x: np.ndarray):
    """For each of conv2d_forward's blocks: (build its columns, W_mat) for this input x (N, C, H, W)."""
    w = layer.params["weight"]
    f, _, kh, kw = w.shape
    stride, padding, dilation = layer.stride, layer.padding, layer.dilation
    n, _, h, wd = x.shape
    ho, wo = output_hw(h, wd, (kh, kw), stride, padding, dilation)
    wmat = w.reshape(f, -1)
    if conv_module.use_side_by_side(x.shape, w.shape, stride, padding):
        wp = wd + 2 * pair(padding)[1]
        for images, rows, _ in column_blocks(n, ho, wp, wmat.shape[1]):
            yield (lambda i=images, r=rows: shifted_columns(
                side_by_side(x, padding, i, input_rows(r, (kh, kw), 1, dilation)), (kh, kw), dilation)), wmat
    else:
        xp = pad(x, padding)
        for images, rows, _ in column_blocks(n, ho, wo, wmat.shape[1]):
            yield (lambda i=images, r=rows: im2col(xp[i, :, input_rows(r, (kh, kw), stride, dilation)],
                                                   (kh, kw), stride, dilation)), wmat


def products_and_columns(model, x: np.ndarray, reps: int) -> tuple[float, float]:
    """Milliseconds of the products alone and of the column building alone, over the whole network.

    Each block's columns are built and at once multiplied, as in a pass (so
    the product finds them in cache); the two are timed apart and summed
    over the network; the medians over ``reps`` repetitions are returned.
    """
    model.forward(x)
    inputs = model.inputs
    steps = []                                      # (build the columns or None, the product on them)
    for name, layer in model.layers():
        if isinstance(layer, Conv2d) and layer.groups == 1:
            steps += [(build, lambda cols, wmat=wmat: wmat @ cols) for build, wmat in conv_blocks(layer, inputs[name])]
        elif isinstance(layer, Linear):
            steps.append((None, lambda _, a=inputs[name], w=layer.params["weight"]: a @ w.T))

    def once() -> tuple[float, float]:
        building = multiplying = 0.0
        for build, product in steps:
            start = time.perf_counter()
            cols = build() if build else None
            built = time.perf_counter()
            product(cols)
            building, multiplying = building + built - start, multiplying + time.perf_counter() - built
        return multiplying, building

    once()
    runs = np.array([once() for _ in range(reps)])
    return tuple(1e3 * np.median(runs, axis=0))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="resnet20_cifar10,vgg_cifar10,vgg16")
    parser.add_argument("--batch", type=int, default=64, help="images per pass for the CIFAR models (VGG-16: 1)")
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args(argv)
    import torch
    from threadpoolctl import threadpool_limits
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    print(f"one core each; {machine.cpu_model()}; numpy {np.__version__}, torch {torch.__version__}; "
          f"load average {os.getloadavg()[0]:.2f}")
    if any(k in os.environ for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")):
        print("note: OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are set (an older, slower kernel); unset them to time "
              "what `minicnn bench` times")
    print(f"{'model':18} {'batch':>5} {'pytorch':>9} {'minicnn':>16} {'products':>16} {'columns':>16} "
          f"{'products+columns':>17} {'minicnn/floor':>14}")
    for name in args.models.split(","):
        if name == "vgg16":
            model, shape = zoo.build_architecture("vgg16"), (1, 3, 224, 224)     # random weights, as in bench
        else:
            model, shape = minicnn.load(name), (args.batch, 3, 32, 32)
        x = rng.standard_normal(shape).astype(np.float32)
        twin = twins.torch_twin(model, torch).eval()
        with threadpool_limits(limits=1, user_api="blas"), torch.no_grad():
            tx = torch.from_numpy(x)
            pytorch = median_ms(lambda: twin(tx), args.reps)
            ours = median_ms(lambda: model.forward(x, keep=False), args.reps)
            products, columns = products_and_columns(model, x, args.reps)

        def cell(ms):
            return f"{ms:7.1f} ms {ms / pytorch:5.2f}x"
        print(f"{name:18} {shape[0]:5} {pytorch:6.1f} ms {cell(ours)} {cell(products)} {cell(columns)} "
              f"{(products + columns) / pytorch:16.2f}x {ours / (products + columns):13.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

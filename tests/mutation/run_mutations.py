#!/usr/bin/env python3
"""A mutation check of the engine's core: plant known bugs, one at a time, and see the unit tests fail.

    python tests/mutation/run_mutations.py                 # every mutant (about 20-40 minutes on 2 cores)
    python tests/mutation/run_mutations.py -k relu -k gradcam --list
    python tests/mutation/run_mutations.py --source /some/other/checkout --json result.json

Each mutant below is one small, realistic mistake in ``minicnn/layers/``,
``minicnn/gradcheck.py``, ``minicnn/explain/`` or their helpers: a kernel not
flipped, a tie rule dropped, alpha summed instead of averaged, a guided mask
removed, a constant upstream gradient in the checker. It is an exact text
replacement (the original must occur exactly once, so a mutant that no longer
fits the code is reported as stale rather than silently skipped).

Nothing in the checkout is modified: the source tree is copied into a
temporary folder, each mutant is written into the copy, the fast unit tests
(``FAST_TESTS``, lessons and torch tests excluded) run there with the copy
first on the import path, and the original file is written back before the
next mutant (in a ``finally``). The copy is deleted at the end.

The engine's mutants are listed below; every ``mutants_*.py`` beside this
file adds a list of its own (``MUTANTS``, built from ``run_mutations.Mutant``)
for another part of the package. A mutant may name the test files that must
kill it (``tests=``); without them it runs ``FAST_TESTS``.

A mutant is *killed* when the tests fail (or time out), *survived* when they
pass. Survivors are either real gaps in the tests (add a test that kills
them) or equivalent mutants that change no result (a speed choice); the
latter are marked ``equivalent=True`` with the reason, and tests/README.md
records the last run's score and survivors. This is a tool to run by hand
after changing the engine or its tests, not part of CI.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: The fast unit tests of the core, in the order they run (-x stops at the first failure).
FAST_TESTS = ["tests/engine/test_gradcheck.py", "tests/engine/test_layers.py", "tests/engine/test_fast_paths.py", "tests/engine/test_model.py",
              "tests/test_explain_helpers.py", "tests/explain/test_explain_gradcam.py", "tests/explain/test_explain_guided.py",
              "tests/explain/test_explain_cam.py", "tests/explain/test_explain_occlusion.py", "tests/explain/test_explain_catdog.py",
              "tests/explain/test_resize.py", "tests/models/test_fixtures.py", "tests/docs/test_readme.py"]

#: What is copied into the scratch folder: the package, its tests and the files they read.
COPIED = ["minicnn", "tests", "weights", "lessons", "README.md", "pyproject.toml", ".ci"]


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str
    new: str
    what: str
    equivalent: str = ""          # why the mutant changes no result, if it cannot be killed
    tests: tuple[str, ...] = ()   # the test files that must kill it (default: FAST_TESTS)


MUTANTS = [
    # ------------------------------------------------------------ convolution
    Mutant("conv.kernel-not-flipped", "minicnn/layers/conv.py",
           "flipped = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))",
           "flipped = np.ascontiguousarray(w.transpose(1, 0, 2, 3))",
           "dx as a transposed convolution with the kernel not flipped"),
    Mutant("conv.transposed-padding", "minicnn/layers/conv.py",
           "return conv2d_forward(dout, flipped, None, 1, (dh * (kh - 1) - ph, dw * (kw - 1) - pw), dilation)",
           "return conv2d_forward(dout, flipped, None, 1, (ph, pw), dilation)",
           "the transposed convolution padded by p instead of d(k - 1) - p"),
    Mutant("conv.db-mean", "minicnn/layers/conv.py", "db = dy.sum(axis=1)", "db = dy.mean(axis=1)",
           "bias gradient averaged over positions instead of summed"),
    Mutant("conv.dw-undilated", "minicnn/layers/conv.py",
           "cols = im2col(pad(x, padding), (kh, kw), stride, dilation)\n    dw",
           "cols = im2col(pad(x, padding), (kh, kw), stride, 1)\n    dw",
           "weight gradient read from undilated windows"),
    Mutant("col2im.overwrite", "minicnn/windows.py",
           "dxp[:, channels, rows, columns] += taps[channels, u, v].transpose(1, 0, 2, 3)",
           "dxp[:, channels, rows, columns] = taps[channels, u, v].transpose(1, 0, 2, 3)",
           "col2im overwrites instead of adding where windows overlap"),
    Mutant("conv.always-transposed", "minicnn/layers/conv.py",
           "return fits and f <= c and n * h * w >= c", "return fits",
           "dx by the transposed convolution wherever it is possible, cheaper or not (a test pins the choice)"),
    Mutant("col2im.one-channel-blocks", "minicnn/windows.py",
           "block = max(1, BLOCK_FLOATS // (n * hp * wp))", "block = 1",
           "col2im one channel at a time",
           equivalent="the same additions in another order of channels; only the speed changes"),
    # ------------------------------------------------------------ pooling
    Mutant("maxpool.ties-to-every-maximum", "minicnn/layers/pool.py",
           "            hit &= ~claimed\n", "",
           "max pooling's backward routes the gradient to every tied maximum, not the first"),
    Mutant("maxpool.overlap-overwrites", "minicnn/layers/pool.py",
           "overlap = stride[0] < kh or stride[1] < kw", "overlap = False",
           "overlapping max-pool windows overwrite each other's gradient"),
    Mutant("maxpool.zero-padding", "minicnn/layers/pool.py",
           "win = windows(pad(x, padding, -np.inf), (kh, kw), stride)\n    out = win[..., 0, 0].copy()",
           "win = windows(pad(x, padding), (kh, kw), stride)\n    out = win[..., 0, 0].copy()",
           "max pooling pads with zeros instead of -inf"),
    Mutant("avgpool.share", "minicnn/layers/pool.py",
           "    share = dout / (kh * kw)\n    for u in range(kh):",
           "    share = dout / kh\n    for u in range(kh):",
           "average pooling's backward divides by kh, not kh*kw"),
    Mutant("adaptive.floor-bins", "minicnn/layers/pool.py",
           "return [(i * size // out, math.ceil((i + 1) * size / out)) for i in range(out)]",
           "return [(i * size // out, (i + 1) * size // out) for i in range(out)]",
           "adaptive pooling bins end at floor, not ceil (not PyTorch's bins)"),
    Mutant("adaptive.share", "minicnn/layers/pool.py",
           "        kh, kw = h // ho, w // wo\n        share = dout / (kh * kw)",
           "        kh, kw = h // ho, w // wo\n        share = dout / kh",
           "adaptive pooling's tiled backward divides by kh, not kh*kw"),
    # ------------------------------------------------------------ ReLU rules
    Mutant("relu.plain-passes-zero", "minicnn/layers/activation.py",
           "    return np.multiply(dout, out > 0, out=into)", "    return np.multiply(dout, out >= 0, out=into)",
           "the plain rule lets the gradient through where x <= 0"),
    Mutant("relu.guided-without-forward-mask", "minicnn/layers/activation.py",
           "    return np.multiply(dx, out > 0, out=dx)", "    return dx",
           "the guided rule forgets x > 0 (it becomes the deconvnet)"),
    Mutant("relu.guided-mask-removed", "minicnn/layers/activation.py",
           "    dx = np.maximum(dout, 0, out=into)\n    return np.multiply(dx, out > 0, out=dx)",
           "    return np.multiply(dout, out > 0, out=into)",
           "the guided rule forgets dout > 0 (it becomes the gradient)"),
    Mutant("relu.deconvnet-forward-mask", "minicnn/layers/activation.py",
           "    return np.maximum(dout, 0, out=into)", "    return np.multiply(dout, out > 0, out=into)",
           "the deconvnet rule masks by x instead of the signal"),
    # ------------------------------------------------------------ residual blocks, BN, dense
    Mutant("residual.inner-relu-ignores-the-rule", "minicnn/layers/base.py",
           "param_grads=run.want_param_grads, relu=run.relu)",
           "param_grads=run.want_param_grads, relu=\"plain\" if path.endswith(\"relu1\") else run.relu)",
           "the residual block's inner ReLU always takes the plain rule"),
    Mutant("residual.shortcut-dropped", "minicnn/layers/residual.py",
           "return dh + self.shortcut.run_backward(ds, run, join(path, \"shortcut\"))", "return dh",
           "the block's backward forgets the shortcut's gradient"),
    Mutant("residual.option-a-channels", "minicnn/layers/residual.py",
           "dx[:, :, ::stride, ::stride] = dout[:, pad_channels:pad_channels + c]",
           "dx[:, :, ::stride, ::stride] = dout[:, :c]",
           "the option A shortcut's backward reads the zero-padded channels"),
    Mutant("residual.add-one-branch", "minicnn/layers/residual.py",
           "return (dout, dout), {}", "return (dout, dout * 0), {}",
           "the addition sends the gradient down one branch only"),
    Mutant("bn.dx-without-inv-std", "minicnn/layers/norm.py",
           "dx = dout * _per_channel(gamma * inv_std)", "dx = dout * _per_channel(gamma)",
           "BatchNorm's dx forgets 1/sqrt(var + eps)"),
    Mutant("bn.backward-without-eps", "minicnn/layers/norm.py",
           "inv_std = 1.0 / np.sqrt(var + eps)", "inv_std = 1.0 / np.sqrt(var)",
           "BatchNorm's backward drops eps (a relative error of about eps / var)"),
    Mutant("bn.dgamma-uncentred", "minicnn/layers/norm.py",
           "x_hat = (x - _per_channel(mean)) * _per_channel(inv_std)", "x_hat = x * _per_channel(inv_std)",
           "dgamma uses x instead of x - mean"),
    Mutant("linear.db-mean", "minicnn/layers/linear.py",
           "return dx, dout.T @ x, dout.sum(axis=0)", "return dx, dout.T @ x, dout.mean(axis=0)",
           "the dense bias gradient averaged over the batch"),
    # ------------------------------------------------------------ the gradient checker
    Mutant("gradcheck.constant-dout-layer", "minicnn/gradcheck.py",
           "    dout = rng.standard_normal(out.shape)\n", "    dout = np.ones(out.shape)\n",
           "check_layer uses a constant upstream gradient"),
    Mutant("gradcheck.constant-dout-model", "minicnn/gradcheck.py",
           "dout = rng.standard_normal(model.forward(x).shape)", "dout = np.ones(model.forward(x).shape)",
           "check_model uses a constant upstream gradient"),
    Mutant("gradcheck.one-sided-step", "minicnn/gradcheck.py",
           "gflat[i] = (plus - minus) / (2 * h)", "gflat[i] = (plus - minus) / h",
           "central differences divided by h instead of 2h"),
    Mutant("gradcheck.no-floor", "minicnn/gradcheck.py",
           "max(floor, float(np.max(np.abs(a) + np.abs(b))))", "float(np.max(np.abs(a) + np.abs(b)))",
           "the relative error loses its floor"),
    Mutant("gradcheck.loose-tolerance", "minicnn/gradcheck.py",
           "    if not err <= tol:\n", "    if not err <= 1e-3:\n",
           "the checker ignores its tolerance and passes errors up to 1e-3"),
    Mutant("gradcheck.model-params-unchecked", "minicnn/gradcheck.py",
           "    if params:\n        for key, p in model.parameters().items():",
           "    if False:\n        for key, p in model.parameters().items():",
           "check_model never checks parameter gradients"),
    Mutant("gradcheck.layer-params-unchecked", "minicnn/gradcheck.py",
           "    if params:\n        for key, p in layer.params.items():",
           "    if False:\n        for key, p in layer.params.items():",
           "check_layer never checks parameter gradients"),
    Mutant("gradcheck.skips-coordinates", "minicnn/gradcheck.py",
           "    checked = ~np.isnan(numeric)\n", "    checked = ~np.isnan(numeric)\n    checked[...] = False\n",
           "compare checks no coordinate at all"),
    # ------------------------------------------------------------ explanations
    Mutant("gradcam.alpha-summed", "minicnn/explain/gradcam.py",
           "alpha = dA.mean(axis=(2, 3))", "alpha = dA.sum(axis=(2, 3))",
           "alpha summed over the map instead of averaged"),
    Mutant("gradcam.no-relu", "minicnn/explain/gradcam.py",
           "        cam = np.maximum(cam, 0)\n", "        cam = cam\n",
           "the Grad-CAM map without its final ReLU"),
    Mutant("gradcam.guided-backward", "minicnn/explain/gradcam.py",
           "model.backward(onehot(targets, logits.shape[1], logits.dtype), stop_at=layer)",
           "model.backward(onehot(targets, logits.shape[1], logits.dtype), stop_at=layer, relu=\"guided\")",
           "Grad-CAM's dy/dA taken with the guided rule below the output"),
    Mutant("counterfactual.not-negated", "minicnn/explain/gradcam.py",
           "        alpha = -alpha\n", "        alpha = alpha\n",
           "the counterfactual map uses +dy/dA"),
    Mutant("guided.deconvnet-rule", "minicnn/explain/guided.py",
           "logits.dtype), relu=\"guided\")", "logits.dtype), relu=\"deconvnet\")",
           "Guided Backprop runs the deconvnet rule"),
    Mutant("guided.plain-rule", "minicnn/explain/guided.py",
           "logits.dtype), relu=\"guided\")", "logits.dtype), relu=\"plain\")",
           "Guided Backprop runs the plain rule (the guided mask removed)"),
    Mutant("guided-gradcam.align-corners", "minicnn/explain/guided.py",
           "heat = cam.upsampled(guided.map.shape[2:], align_corners=align_corners)",
           "heat = cam.upsampled(guided.map.shape[2:], align_corners=True)",
           "Guided Grad-CAM upsamples with aligned corners"),
    Mutant("guided-gradcam.normalised", "minicnn/explain/guided.py",
           "map=guided.map * heat[:, None],", "map=guided.map * (heat / (heat.max() + 1e-12))[:, None],",
           "Guided Grad-CAM normalises the Grad-CAM factor (raw values by default)"),
    Mutant("saliency.guided-rule", "minicnn/explain/saliency.py",
           "grad = model.backward(onehot(targets, logits.shape[1], logits.dtype))\n    return Explanation(method=\"saliency\"",
           "grad = model.backward(onehot(targets, logits.shape[1], logits.dtype), relu=\"guided\")\n"
           "    return Explanation(method=\"saliency\"",
           "saliency takes the guided rule instead of the gradient"),
    Mutant("cam.over-z", "minicnn/explain/cam.py",
           "weights = W[targets]  ", "weights = W[targets] / (A.shape[2] * A.shape[3])  ",
           "CAM divided by Z (it would then equal Grad-CAM without the ReLU)"),
    Mutant("resize.no-half-pixel", "minicnn/explain/resize.py",
           "src = (d + 0.5) * (in_size / out_size) - 0.5", "src = d * (in_size / out_size)",
           "bilinear upsampling without half-pixel centres"),
    Mutant("resize.no-clamp", "minicnn/explain/resize.py",
           "return np.maximum(src, 0.0)", "return src",
           "source coordinates not clamped at 0"),
    Mutant("occlusion.sign", "minicnn/explain/occlusion.py",
           "grid[i] = base[i] - every[:, targets[i]]",
           "grid[i] = every[:, targets[i]] - base[i]",
           "occlusion reports the rise of the score, not its drop"),
]


@dataclass
class Result:
    name: str
    outcome: str           # killed, survived, stale, timeout
    seconds: float
    first_failure: str
    what: str
    equivalent: str


def copy_tree(source: Path, scratch: Path) -> Path:
    """The parts of ``source`` the tests need, copied into ``scratch/src``; returns that folder."""
    target = scratch / "src"
    target.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", ".pytest_cache", ".hypothesis", "*.egg-info", "mutation")
    for name in COPIED:
        path = source / name
        if path.is_dir():
            shutil.copytree(path, target / name, ignore=ignore)
        elif path.exists():
            shutil.copy2(path, target / name)
    return target


def run_tests(tree: Path, timeout: float, tests=()) -> tuple[str, str, float]:
    """Run ``tests`` (default FAST_TESTS) in ``tree``: (outcome "passed" | "failed" | "timeout", first failure, seconds)."""
    env = dict(os.environ, PYTHONPATH=str(tree), MPLBACKEND="Agg")
    env = {k: v for k, v in env.items() if not k.startswith("MINICNN_")}
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-m", "not slow and not torch",
               "--no-header", "-rfE", *(tests or FAST_TESTS)]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", "", time.perf_counter() - start
    seconds = time.perf_counter() - start
    failed = [line.split(" ", 2)[1] for line in done.stdout.splitlines() if line.startswith(("FAILED ", "ERROR "))]
    if done.returncode == 0:
        return "passed", "", seconds
    return "failed", failed[0] if failed else done.stdout.strip().splitlines()[-1][:120], seconds


def check_imports_from(tree: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(tree))
    where = subprocess.run([sys.executable, "-c", "import minicnn; print(minicnn.__file__)"], cwd=tree, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    if not Path(where).resolve().is_relative_to(tree.resolve()):
        sys.exit(f"the copy's tests would import minicnn from {where}, not from the copy {tree}")


def all_mutants() -> list[Mutant]:
    """The engine's mutants above, then those of every ``mutants_*.py`` beside this file (each defines MUTANTS)."""
    mutants = list(MUTANTS)
    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here))
    try:
        for module in sorted(here.glob("mutants_*.py")):
            mutants += importlib.import_module(module.stem).MUTANTS
    finally:
        sys.path.remove(str(here))
    names = [m.name for m in mutants]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        sys.exit(f"mutant names must be unique: {duplicates}")
    return mutants


def unmutated_tests(mutants) -> list[str]:
    """Every test file that some selected mutant runs, so the unmutated check covers them all."""
    files = []
    for m in mutants:
        for f in (m.tests or FAST_TESTS):
            if f not in files:
                files.append(f)
    return files


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", type=Path, default=ROOT, help="the checkout to copy and mutate (default: this one)")
    p.add_argument("-k", action="append", default=[], help="only mutants whose name contains this (repeatable)")
    p.add_argument("--list", action="store_true", help="list the mutants and exit")
    p.add_argument("--timeout", type=float, default=900, help="seconds per test run before it counts as killed")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    mutants = [m for m in all_mutants() if not args.k or any(k in m.name for k in args.k)]
    if args.list:
        for m in mutants:
            found = (args.source / m.path).read_text(encoding="utf-8").count(m.old)
            print(f"{m.name:40s} {m.path:32s} {m.what}" + (" [equivalent]" if m.equivalent else "")
                  + ("" if found == 1 else f"  STALE: the text occurs {found} times"))
        return 0
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="minicnn-mutants-") as scratch:
        tree = copy_tree(args.source.resolve(), Path(scratch))
        check_imports_from(tree)
        outcome, failure, seconds = run_tests(tree, args.timeout, unmutated_tests(mutants))
        print(f"unmutated: {outcome} in {seconds:.0f} s", flush=True)
        if outcome != "passed":
            print(f"the unmutated tests do not pass ({failure}); fix that first", file=sys.stderr)
            return 2
        for i, m in enumerate(mutants, 1):
            path = tree / m.path
            original = path.read_text(encoding="utf-8")
            if original.count(m.old) != 1:
                results.append(Result(m.name, "stale", 0.0, f"text found {original.count(m.old)} times", m.what,
                                      m.equivalent))
            else:
                try:
                    path.write_text(original.replace(m.old, m.new), encoding="utf-8")
                    outcome, failure, seconds = run_tests(tree, args.timeout, m.tests)
                finally:
                    path.write_text(original, encoding="utf-8")
                results.append(Result(m.name, {"passed": "survived", "failed": "killed"}.get(outcome, outcome),
                                      seconds, failure, m.what, m.equivalent))
            r = results[-1]
            print(f"[{i:2d}/{len(mutants)}] {r.outcome:8s} {r.seconds:5.0f} s  {r.name:40s} {r.first_failure}",
                  flush=True)
    killed = sum(r.outcome in ("killed", "timeout") for r in results)
    counted = sum(r.outcome != "stale" for r in results)
    equivalent = [r for r in results if r.outcome == "survived" and r.equivalent]
    gaps = [r for r in results if r.outcome == "survived" and not r.equivalent]
    print(f"\nscore: {killed}/{counted} killed"
          + (f" ({killed}/{counted - len(equivalent)} of the non-equivalent mutants)" if equivalent else ""))
    for r in equivalent:
        print(f"  survived, equivalent: {r.name}: {r.equivalent}")
    for r in gaps:
        print(f"  SURVIVED: {r.name}: {r.what}")
    for r in results:
        if r.outcome == "stale":
            print(f"  stale: {r.name} ({r.first_failure}): update its text to the current code")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1) + "\n", encoding="utf-8")
    return 1 if gaps else 0


if __name__ == "__main__":
    sys.exit(main())

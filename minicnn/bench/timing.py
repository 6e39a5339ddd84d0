"""Timing and memory: alternating repetitions of minicnn and PyTorch, peak memory of a fresh process,
and the run over every case (see the package docstring for how each number is taken)."""

from __future__ import annotations

import gc
import json
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..errors import MinicnnError
from .cases import CIFAR_MODELS, Case, make_case, minicnn_operations
from .machine import _load, blas_info, import_torch, machine_info, say
from .twins import torch_operations, torch_twin

#: Seconds of rest before each timed sample (see ``interleaved``).
PAUSE_S = 0.3


#: Repetitions at most for an operation that takes seconds a call.
SLOW_REPS = {"evaluate": 3}


def relative_difference(a, b) -> float:
    """max |a - b| / max |b|: how far minicnn's result is from PyTorch's."""
    a = np.asarray(a, np.float64).reshape(-1)
    b = np.asarray(b.detach().numpy() if hasattr(b, "detach") else b, np.float64).reshape(-1)
    if a.shape != b.shape:
        return float("nan")
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))


def interleaved(fns: list[Callable], reps: int, inner: int, pause: float | None = None) -> list[list[float]]:
    """Seconds per call for each function, ``reps`` samples each, taken in turns A B A B ...

    Each sample times ``inner`` calls after a short pause: a BLAS or OpenMP
    library keeps its idle threads spinning for a while after a call (about
    0.1 s for OpenBLAS), and without the pause they would take a core from
    the next library's sample.
    """
    times = [[] for _ in fns]
    for _ in range(reps):
        for i, fn in enumerate(fns):
            time.sleep(PAUSE_S if pause is None else pause)
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            times[i].append((time.perf_counter() - start) / inner)
    return times


def summary(times: list[float]) -> dict:
    return {"s": statistics.median(times), "min_s": min(times), "max_s": max(times)}


def _status_kib(field_name: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def probe(case_name: str, operation: str, side: str, data: str | None = None) -> dict:
    """Build the case in this (fresh) process, reset the peak, run the operation once; MiB figures.

    Runs in a child process started by ``measure_memory``.
    """
    torch = import_torch() if side == "torch" else None
    if torch is not None:
        torch.set_num_threads(blas_info()["threads"])
    case = make_case(case_name, data or None)
    if side == "torch":
        twin = torch_twin(case.model, torch)
        fn = torch_operations(case, twin, torch, only=operation)[operation]
        case.model = None                      # minicnn's copy of the weights leaves this process
    else:
        fn = minicnn_operations(case)[operation]
    gc.collect()
    before = _status_kib("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")                       # VmHWM := VmRSS, forgetting the set-up's peak
        method = "VmHWM after clear_refs"
    except OSError:
        method = "ru_maxrss (set-up included)"
    fn()
    peak = _status_kib("VmHWM")
    if peak is None:
        import resource  # lazy: resource is Unix-only
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"peak_mib": peak / 1024, "op_mib": (peak - (before or 0)) / 1024, "method": method}


def measure_memory(case_name: str, operation: str, side: str, data: str | None = None) -> dict | None:
    """``probe`` in a fresh Python process; None if it fails (the reason goes to stderr)."""
    code = ("import json, sys; from minicnn.bench.timing import probe; "
            "print(json.dumps(probe(*sys.argv[1:])))")
    try:
        done = subprocess.run([sys.executable, "-c", code, case_name, operation, side, data or ""],
                              capture_output=True, text=True, timeout=600)
        if done.returncode == 0:
            return json.loads(done.stdout.strip().splitlines()[-1])
        say(f"  memory probe {case_name}/{operation} ({side}) failed: {done.stderr.strip().splitlines()[-1:]}")
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired) as e:
        say(f"  memory probe {case_name}/{operation} ({side}) failed: {e}")
    return None


@dataclass
class Settings:
    reps: int = 7
    min_sample_s: float = 0.1           # inner calls per sample: enough for this long (1 for slow calls)
    memory: bool = True
    use_torch: bool = True
    # zoo architectures (random weights) or shipped models
    case_names: tuple = ("vgg16", *CIFAR_MODELS, "mobilenet_v2")
    data: str | None = None             # the CIFAR-10 test set, for ``evaluate``
    notes: list = field(default_factory=list)


def bench_case(case: Case, settings: Settings, torch) -> dict[str, dict]:
    """Time (and measure) every operation of one case; {"name/op": {...}}."""
    results = {}
    mine = minicnn_operations(case)
    theirs = {}
    if torch is not None:
        twin = torch_twin(case.model, torch)
        theirs = torch_operations(case, twin, torch)
    for op, fn in mine.items():
        key = f"{case.name}/{op}"
        say(f"timing {key} ...")
        other = theirs.get(op)
        ours = fn()                                           # warm-up, and the result to compare
        row = {}
        if other is not None:
            row["diff"] = relative_difference(ours, other())  # the other side's warm-up
        sides = [fn] + ([other] if other is not None else [])
        once = min(t[0] for t in interleaved(sides, 1, 1))   # calls per sample: the faster side's
        inner = max(1, math.ceil(settings.min_sample_s / max(once, 1e-6)))
        reps = min(settings.reps, SLOW_REPS.get(op, settings.reps))
        times = interleaved(sides, reps, inner)
        s = summary(times[0])
        row.update({"minicnn_s": s["s"], "minicnn_min_s": s["min_s"], "minicnn_max_s": s["max_s"]})
        if other is not None:
            t = summary(times[1])
            row.update({"torch_s": t["s"], "torch_min_s": t["min_s"], "torch_max_s": t["max_s"],
                        "ratio": statistics.median(a / b for a, b in zip(*times)),
                        "ratio_of_medians": s["s"] / t["s"], "ratio_of_minima": s["min_s"] / t["min_s"]})
        row.update({"reps": reps, "calls_per_rep": inner})
        if settings.memory:
            for side in ("minicnn",) + (("torch",) if other is not None else ()):
                say(f"  memory {key} ({side}) ...")
                m = measure_memory(case.name, op, side, case.data)
                if m:
                    row[f"{side}_peak_mib"], row[f"{side}_op_mib"] = m["peak_mib"], m["op_mib"]
                    row["memory_method"] = m["method"]
        results[key] = row
    return results


def run(settings: Settings) -> tuple[dict, dict[str, dict]]:
    """(machine info, results by "model/operation") for the cases in ``settings``."""
    torch = import_torch() if settings.use_torch else None
    info = machine_info(torch)
    if torch is not None:
        torch.set_num_threads(info["threads"])
        info["torch_threads"] = torch.get_num_threads()
    elif settings.use_torch:
        settings.notes.append("PyTorch is not installed: minicnn alone (pip install torch for the comparison)")
    results = {}
    for name in settings.case_names:
        try:
            case = make_case(name, settings.data)
        except MinicnnError as e:
            settings.notes.append(f"{name} skipped: {e}")
            say(f"{name} skipped: {e}")
            continue
        results.update(bench_case(case, settings, torch))
        del case
        gc.collect()
    if not settings.data and any(n in CIFAR_MODELS for n in settings.case_names):
        settings.notes.append("evaluate not timed: give the CIFAR-10 JPEG test set with --data PATH")
    info["notes"] = list(settings.notes)
    info["reps"] = settings.reps
    info["load_after"] = _load()
    return info, results

"""The bench's report: the targets (largest ratios to PyTorch), the table and the JSON."""

from __future__ import annotations

from .cases import BATCHED, CIFAR_MODELS

#: The targets, as largest ratios to PyTorch: per "model/operation", per operation of every
#: shipped CIFAR model ("cifar/operation"). VGG-16's three guard the single large image's
#: pass (BLAS's threads on each product, ``parallel.blas_pass``): cut into blocks on minicnn's
#: threads it gave forward 1.5-1.6x, Grad-CAM 1.39-1.43x, guided backprop 1.55-1.59x.
TARGETS = {"vgg16/forward": 1.3, "vgg16/gradcam": 1.0, "vgg16/guided_backprop": 1.1, "cifar/gradcam": 2.0,
           **{f"cifar/{op}": 1.2 for op in BATCHED},
           # a depthwise 3x3 convolution is nine shifted multiply-adds per channel, memory-bound as in PyTorch
           "mobilenet_v2/forward": 1.3, "mobilenet_v2/gradcam": 1.3, "mobilenet_v2/guided_backprop": 1.3}


def target_of(key: str) -> float | None:
    """The largest ratio to PyTorch that ``TARGETS`` allows for "model/operation", if any."""
    model, _, op = key.partition("/")
    if key in TARGETS:
        return TARGETS[key]
    return TARGETS.get(f"cifar/{op}") if model in CIFAR_MODELS else None


def targets(results: dict) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for each of the issue's targets that this run measured."""
    rows = []
    for key, r in results.items():
        limit = target_of(key)
        if limit is not None and "ratio" in r:
            rows.append((f"{key} <= {limit:.2f}x PyTorch", f"{r['ratio']:.2f}x", r["ratio"] <= limit))
    both = [(k, r) for k, r in results.items() if "minicnn_peak_mib" in r and "torch_peak_mib" in r]
    if both:
        worse = [k for k, r in both if r["minicnn_peak_mib"] > r["torch_peak_mib"]]
        rows.append(("peak memory <= PyTorch's", f"{len(both) - len(worse)}/{len(both)} operations"
                     + (f" (not: {', '.join(worse)})" if worse else ""), not worse))
    return rows


def table(info: dict, results: dict) -> str:
    """The report as plain text: header, one row per operation, the targets."""
    torch_txt = (f"torch {info['torch']} ({info.get('torch_threads')} threads)" if info.get("torch")
                 else "torch not installed")
    lines = [f"minicnn bench, {info['date']}",
             f"machine: {info['cpu']}, {info['cores']} cores; Python {info['python']}",
             f"numpy {info['numpy']}, BLAS {info['blas']}"
             + (f" ({info['blas_kernel']} kernel)" if info.get("blas_kernel") else "")
             + f", {info['threads']} threads; {torch_txt}"]
    if "minicnn_threads" in info:
        lines.append(f"minicnn: {info['minicnn_threads']} threads of its own for batches (BLAS held to one thread "
                     "meanwhile); BLAS's threads on each product of a single large image on a quiet machine")
    if info.get("load_before") is not None:
        lines.append(f"load average (1 min): {info['load_before']} before, {info.get('load_after')} after "
                     f"(on {info['cores']} cores)")
    if info.get("dropped_env"):
        lines.append(f"note: ran without {info['dropped_env']} (they select an older, slower OpenBLAS kernel)")
    if info.get("kept_env"):
        lines.append(f"note: {', '.join(info['kept_env'])} set: BLAS may run an older, slower kernel")
    lines.append(f"time per call: median (min-max) of {info['reps']} repetitions after a warm-up, minicnn and "
                 "PyTorch alternating; ratio: median of minicnn / PyTorch over the pairs")
    lines.append("memory: peak RSS of a fresh process running the operation once (+op: above the memory "
                 "held before it), one process per side")
    lines.append("")
    head = ("operation", "minicnn", "PyTorch", "ratio", "diff", "minicnn MiB", "PyTorch MiB")
    rows = [head]

    def span(r, side):
        if f"{side}_s" not in r:
            return "-"
        return _ms(r[side + '_s'], r[side + '_min_s'], r[side + '_max_s'])

    def mem(r, side):
        if f"{side}_peak_mib" not in r:
            return "-"
        return f"{r[side + '_peak_mib']:.0f} (+{max(0.0, r[side + '_op_mib']):.0f})"   # below 0: noise, not memory

    for key, r in results.items():
        rows.append((key, span(r, "minicnn"), span(r, "torch"),
                     f"{r['ratio']:.2f}x" if "ratio" in r else "-",
                     f"{r['diff']:.0e}" if "diff" in r else "-", mem(r, "minicnn"), mem(r, "torch")))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    for n, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
                               for i, cell in enumerate(row)))
        if n == 0:
            lines.append("-" * len(lines[-1]))
    checks = targets(results)
    if checks:
        lines += ["", "targets:"]
        lines += [f"  {'met   ' if ok else 'MISSED'} {what}: {measured}" for what, measured, ok in checks]
    for note in info.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines)


def _ms(seconds: float, low: float | None = None, high: float | None = None) -> str:
    """A time in the unit that suits it, and its range in brackets in that same unit.

    "4.5 ms (3.1-21.7)", "592 ms (421-1520)", "1.29 s (0.85-2.10)": ms with one
    decimal below 0.1 s, whole ms below 1 s, s with two decimals from 1 s up.
    """
    scale, digits, unit = (1.0, 2, "s") if seconds >= 1 else (1e3, 1 if seconds < 0.1 else 0, "ms")
    text = f"{seconds * scale:.{digits}f} {unit}"
    if low is not None and high is not None:
        text += f" ({low * scale:.{digits}f}-{high * scale:.{digits}f})"
    return text


def to_json(info: dict, results: dict) -> dict:
    """{"model/operation": {...}, ...} plus "_meta" (date, machine, versions, notes)."""
    return {**results, "_meta": info}

"""The machine a bench runs on: BLAS kernel and threads, processor, load average, PyTorch if installed."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import sys

import numpy as np

from .. import parallel

#: Environment variables that select an older OpenBLAS kernel; the bench drops them.
SLOW_BLAS_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


_DROPPED = "MINICNN_BENCH_DROPPED"


def say(message: str) -> None:
    """Progress on stderr, so stdout is the table alone."""
    print(message, file=sys.stderr, flush=True)


def blas_info() -> dict:
    """NumPy's BLAS as threadpoolctl reports it: library, version, kernel, threads."""
    try:
        from threadpoolctl import threadpool_info  # lazy: threadpoolctl is optional here
    except ImportError:
        return {"library": "unknown (threadpoolctl not installed)", "threads": os.cpu_count() or 1}
    pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    mine = [p for p in pools if "numpy" in p.get("filepath", "") or "scipy_openblas" in p.get("filepath", "")]
    pool = (mine or pools or [{}])[0]
    return {"library": f"{pool.get('internal_api', 'unknown')} {pool.get('version') or ''}".strip(),
            "kernel": pool.get("architecture"), "threads": int(pool.get("num_threads") or os.cpu_count() or 1)}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load() -> float | None:
    """The 1-minute load average: how busy the machine was (other processes included)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def import_torch():
    """torch, or None when it is not installed."""
    try:
        import torch  # lazy: torch is optional
    except ImportError:
        return None
    return torch


def machine_info(torch) -> dict:
    blas = blas_info()
    info = {"date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "blas": blas["library"], "blas_kernel": blas.get("kernel"),
            "threads": blas["threads"], "minicnn_threads": parallel.threads(),
            "torch": torch.__version__ if torch else None,
            "dropped_env": os.environ.get(_DROPPED) or None, "load_before": _load()}
    for name in SLOW_BLAS_VARIABLES:
        if name in os.environ:
            info.setdefault("kept_env", []).append(f"{name}={os.environ[name]}")
    return info


def clean_environment(environ) -> tuple[dict, list[str]]:
    """(environ without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, ["NAME=value" of those dropped])."""
    dropped = [f"{k}={environ[k]}" for k in SLOW_BLAS_VARIABLES if k in environ]
    return {k: v for k, v in environ.items() if k not in SLOW_BLAS_VARIABLES}, dropped

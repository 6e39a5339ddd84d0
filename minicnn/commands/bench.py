"""``minicnn bench``: time minicnn next to PyTorch (see ``minicnn.bench``), print the table, write the JSON.

Where OpenBLAS variables pin a slow kernel, the timing runs in a child process without them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from ..errors import InputError
from ..util.atomic import Outputs
from ..bench.cases import CIFAR_MODELS
from ..bench.machine import SLOW_BLAS_VARIABLES, _DROPPED, clean_environment, say
from ..bench.report import table, to_json
from ..bench.timing import Settings, run


def bench_argv(args) -> list[str]:
    """The command-line arguments that repeat ``args`` (for the child process)."""
    argv = ["--json", args.json] if args.json else []
    argv += ["--quick"] if args.quick else []
    argv += ["--models", ",".join(args.models)] if getattr(args, "models", None) else []
    argv += ["--reps", str(args.reps)] if getattr(args, "reps", None) else []
    argv += ["--no-memory"] if getattr(args, "no_memory", False) else []
    argv += ["--data", args.data] if getattr(args, "data", None) else []
    argv += ["--force"] if getattr(args, "force", False) else []
    return argv


def run_without_slow_blas(argv: list[str]) -> int:
    """Run ``minicnn bench ARGV`` in a child process without the slow-BLAS variables; its exit status.

    The child inherits stdout and stderr; this process only waits for it.
    """
    env, dropped = clean_environment(os.environ)
    env[_DROPPED] = ", ".join(dropped)
    say(f"timing in a child process without {', '.join(dropped)} (they select an older, slower kernel for "
        "this NumPy's BLAS; --keep-env times with them)")
    sys.stdout.flush()
    return subprocess.run([sys.executable, "-m", "minicnn.commands.cli", "bench", *argv], env=env, check=False).returncode


def check_model_names(names) -> None:
    """A one-line error (before any timing) for a name in ``--models`` that is no architecture, shipped model or file."""
    from ..models.shipped import locate
    from ..models.zoo import ARCHITECTURES
    if not names:
        raise InputError("--models names no model; give a comma-separated list, e.g. resnet20_cifar10,vgg16")
    for name in names:
        if name not in ARCHITECTURES:
            locate(name)


def bench_command(args) -> int:
    outputs = Outputs(force=getattr(args, "force", False))  # every command's overwrite rule
    if getattr(args, "models", None) is not None:
        check_model_names(args.models)
    if args.json:
        outputs.output(args.json, "--json")            # refuse now, not after minutes of timing
    slow = any(k in os.environ for k in SLOW_BLAS_VARIABLES)
    if slow and _DROPPED not in os.environ and not getattr(args, "keep_env", False):
        return run_without_slow_blas(bench_argv(args))
    settings = Settings()
    if args.quick:
        settings.reps, settings.min_sample_s, settings.case_names = 3, 0.05, CIFAR_MODELS
    if getattr(args, "models", None):
        settings.case_names = tuple(args.models)
    if getattr(args, "reps", None):
        settings.reps = args.reps
    if getattr(args, "no_memory", False):
        settings.memory = False
    if getattr(args, "data", None):
        from ..inputs.datasets import open_dataset
        open_dataset(args.data)                        # a bad path fails now, not after minutes of timing
        settings.data = str(args.data)
    info, results = run(settings)
    text = table(info, results)
    print(text)
    if args.json:
        with outputs.writing(), outputs.open(args.json) as f:
            f.write((json.dumps(to_json(info, results), indent=2) + "\n").encode("utf-8"))
        say(f"wrote {args.json}")
    return 0

"""``minicnn bench``: time minicnn next to PyTorch (see ``minicnn.bench``), print the table, write the JSON.

Where OpenBLAS variables pin a slow kernel, the timing runs in a child process without them."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

from ..errors import InputError
from ..models.zoo import ARCHITECTURES
from .options import add_force_option, positive_int

HELP = "time minicnn (and PyTorch, if installed) on VGG-16 and the shipped models"


def add_arguments(p) -> None:
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    add_force_option(p)
    p.add_argument("--quick", action="store_true", help="fewer repetitions, CIFAR models only")
    p.add_argument("--models", type=lambda s: [m for m in s.split(",") if m], default=None,
                   help="comma-separated models to time (default: vgg16, the shipped CIFAR-10 models and mobilenet_v2)")
    p.add_argument("--reps", type=positive_int, default=None,
                   help="repetitions per operation (default 7; 3 with --quick)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory probes (fresh processes)")
    p.add_argument("--data", default=None,
                   help="the CIFAR-10 JPEG test set (zip or folder): also time `minicnn evaluate` on it")
    p.add_argument("--peers", action="store_true",
                   help="time every explanation method against the peer libraries' own calls (pytorch-grad-cam, "
                        "captum, zennit) on the CIFAR-10 models; needs torch and those libraries")
    p.add_argument("--out", default=None,
                   help="with --peers: write the table to this text file and its JSON beside it (same name, .json)")
    p.add_argument("--keep-env", action="store_true",
                   help="time in this process even when OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are set "
                        "(default: a child process without them)")


def bench_argv(args) -> list[str]:
    """The command-line arguments that repeat ``args`` (for the child process)."""
    argv = ["--json", args.json] if args.json else []
    argv += ["--quick"] if args.quick else []
    argv += ["--models", ",".join(args.models)] if getattr(args, "models", None) else []
    argv += ["--reps", str(args.reps)] if getattr(args, "reps", None) else []
    argv += ["--no-memory"] if getattr(args, "no_memory", False) else []
    argv += ["--data", args.data] if getattr(args, "data", None) else []
    argv += ["--peers"] if getattr(args, "peers", False) else []
    argv += ["--out", args.out] if getattr(args, "out", None) else []
    argv += ["--force"] if getattr(args, "force", False) else []
    return argv


def run_without_slow_blas(argv: list[str]) -> int:
    """Run ``minicnn bench ARGV`` in a child process without the slow-BLAS variables; its exit status.

    The child inherits stdout and stderr; this process only waits for it.
    """
    from ..bench.machine import _DROPPED, clean_environment, say  # lazy: keeps `minicnn --help` fast
    env, dropped = clean_environment(os.environ)
    env[_DROPPED] = ", ".join(dropped)
    say(f"timing in a child process without {', '.join(dropped)} (they select an older, slower kernel for "
        "this NumPy's BLAS; --keep-env times with them)")
    sys.stdout.flush()
    return subprocess.run([sys.executable, "-m", "minicnn.commands.cli", "bench", *argv], env=env,
                          check=False).returncode


def check_model_names(names) -> None:
    """A one-line error (before any timing) for a name in ``--models`` that is no architecture, shipped model
    or file."""
    from ..models.weights import locate  # lazy: zipfile, json, hashlib slow `minicnn --help`
    if not names:
        raise InputError("--models names no model; give a comma-separated list, e.g. resnet20_cifar10,vgg16")
    for name in names:
        if name not in ARCHITECTURES:
            locate(name)


def torch_installed() -> bool:
    """Whether PyTorch can be imported (looked up, not imported: a child process may do the timing)."""
    return importlib.util.find_spec("torch") is not None


def json_beside(path: str) -> str:
    """The JSON file written beside ``--out``: the same name with .json (report.txt -> report.json)."""
    root, ext = os.path.splitext(path)
    return (root if ext.lower() != ".json" else path) + ".json"


def run_peers(args, outputs) -> int:
    """``minicnn bench --peers``: the table on stdout and, with ``--out``, as text and JSON."""
    from ..bench import peer_report, peers  # lazy: the bench slows `minicnn --help`
    from ..bench.machine import import_torch, say  # lazy: as above
    from ..bench.peer_libraries import no_torch_message  # lazy: as above
    if import_torch() is None:
        raise InputError(no_torch_message())
    settings = peers.PeerSettings()
    if getattr(args, "models", None):
        settings.case_names = tuple(args.models)
    if getattr(args, "reps", None):
        settings.reps = args.reps
    if getattr(args, "quick", False):
        settings.reps, settings.min_sample_s = 3, 0.05
    if getattr(args, "no_memory", False):
        settings.memory = False
    info, results = peers.run(settings)
    text = peer_report.peer_table(info, results)
    print(text)
    if args.out:
        with outputs.writing():
            with outputs.open(args.out) as f:
                f.write((text + "\n").encode("utf-8"))
            with outputs.open(json_beside(args.out)) as f:
                f.write((json.dumps(peer_report.peer_json(info, results), indent=2) + "\n").encode("utf-8"))
        say(f"wrote {args.out} and {json_beside(args.out)}")
    return 0


def run(args) -> int:
    from ..bench import timing  # lazy: the bench (statistics, decimal) slows `minicnn --help`
    from ..bench.cases import CIFAR_MODELS  # lazy: as above
    from ..bench.machine import _DROPPED, SLOW_BLAS_VARIABLES, say  # lazy: as above
    from ..bench.report import table, to_json  # lazy: as above
    from ..inputs.datasets import open_dataset  # lazy: tarfile, zipfile slow `minicnn --help`
    from ..util.atomic import Outputs  # lazy: keeps `minicnn --help` fast
    outputs = Outputs(force=getattr(args, "force", False))  # every command's overwrite rule
    if getattr(args, "models", None) is not None:
        check_model_names(args.models)
    if args.json:
        outputs.output(args.json, "--json")            # refuse now, not after minutes of timing
    if getattr(args, "out", None) and not getattr(args, "peers", False):
        raise InputError("--out goes with --peers (the plain bench writes its JSON with --json)")
    if getattr(args, "out", None):
        outputs.output(args.out, "--out")
        outputs.output(json_beside(args.out), "--out (its JSON)")
    if getattr(args, "peers", False) and not torch_installed():
        from ..bench.peer_libraries import no_torch_message  # lazy: keeps `minicnn --help` fast
        raise InputError(no_torch_message())               # before any child process or timing
    slow = any(k in os.environ for k in SLOW_BLAS_VARIABLES)
    if slow and _DROPPED not in os.environ and not getattr(args, "keep_env", False):
        return run_without_slow_blas(bench_argv(args))
    if getattr(args, "peers", False):
        return run_peers(args, outputs)
    settings = timing.Settings()
    if args.quick:
        settings.reps, settings.min_sample_s, settings.case_names = 3, 0.05, CIFAR_MODELS
    if getattr(args, "models", None):
        settings.case_names = tuple(args.models)
    if getattr(args, "reps", None):
        settings.reps = args.reps
    if getattr(args, "no_memory", False):
        settings.memory = False
    if getattr(args, "data", None):
        open_dataset(args.data)                        # a bad path fails now, not after minutes of timing
        settings.data = str(args.data)
    info, results = timing.run(settings)
    text = table(info, results)
    print(text)
    if args.json:
        with outputs.writing(), outputs.open(args.json) as f:
            f.write((json.dumps(to_json(info, results), indent=2) + "\n").encode("utf-8"))
        say(f"wrote {args.json}")
    return 0

"""The ``minicnn`` command line. Each subcommand is a thin layer over the public API.

Errors the library raises on purpose (MinicnnError) are printed as one line on
stderr, ``minicnn: error: ...``, with exit status 2; nothing is half-written.
A mistake in the arguments themselves is one such line too (argparse's usage
text is left to ``--help``), and a warning (e.g. "using the first frame only"
of an animated GIF) is one ``minicnn: note: ...`` line.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from ..errors import MinicnnError


class HelpFormatter(argparse.HelpFormatter):
    """argparse's help, with "(default: X)" after every option that has a default its text does not name."""

    def _get_help_string(self, action) -> str:
        text = action.help or ""
        if (action.option_strings and action.default not in (None, False, argparse.SUPPRESS)
                and "default" not in text):
            text += " (default: %(default)s)"
        return text


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with a usage mistake reported like every other error: one line, exit status 2.

    Every subcommand's ``--help`` shows each option's default (:class:`HelpFormatter`).
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"minicnn: error: {message}; see `{self.prog} --help`\n")


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def show_note(message, category, filename, lineno, file=None, line=None) -> None:
    """Print a warning as one line on stderr (replaces warnings.showwarning while a command runs)."""
    text = (str(message).strip().splitlines() or [category.__name__])[0]
    if not issubclass(category, UserWarning) or category is UserWarning:
        text = f"{category.__name__}: {text}"
    print(f"minicnn: note: {text}", file=sys.stderr)


def cmd_layers(args) -> int:
    from ..models.weights import load
    print(load(args.model).summary())
    return 0


def cmd_models(args) -> int:
    from ..models.weights import models_table
    print(models_table())
    return 0


def cmd_evaluate(args) -> int:
    from ..models.evaluate import evaluate_command
    return evaluate_command(args)


def cmd_convert(args) -> int:
    from ..models.convert.pytorch import convert_command
    return convert_command(args)


def cmd_fetch(args) -> int:
    from ..models.fetch import fetch_command
    return fetch_command(args)


def cmd_explain(args) -> int:
    from .explain import explain_command
    return explain_command(args)


def cmd_demo(args) -> int:
    from ..figures.demo import demo_command
    return demo_command(args)


def cmd_bench(args) -> int:
    from .bench import bench_command
    return bench_command(args)


def add_force_option(p: argparse.ArgumentParser) -> None:
    """``--force``, the one overwrite rule of every command that writes files (see minicnn.util.atomic.Outputs)."""
    p.add_argument("--force", action="store_true",
                   help="replace output files that already exist (never an input file, never two outputs "
                        "on one file; without it an existing output is refused before any work)")


def cmd_serve(args) -> int:
    from .serve import serve_command
    return serve_command(args)


def cmd_sanity(args) -> int:
    from .sanity import sanity_command
    return sanity_command(args)


def cmd_scorecard(args) -> int:
    from .scorecard import scorecard_command
    return scorecard_command(args)


def add_method_options(p: argparse.ArgumentParser) -> None:
    """--method, and every option a registered method takes (each flag once)."""
    from ..explain import registry
    p.add_argument("--method", default="gradcam",
                   help="a method, a comma-separated list of them, or 'all' (default: gradcam); methods: "
                        + ", ".join(registry.METHODS))
    seen = {}
    for m in registry.METHODS.values():
        for o in m.options:
            if o.flag in seen:
                continue
            seen[o.flag] = o
            p.add_argument(o.flag, dest=o.param, type=o.type, default=o.default,
                           help=f"{o.help} ({', '.join(n.name for n in registry.METHODS.values() if o in n.options)})")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="minicnn", description="A NumPy CNN engine that shows its work: backprop and Grad-CAM in the open.",
        epilog="Commands that write files (explain, convert, fetch, demo, bench --json) replace an existing file "
               "only with --force, never write over their own input files, and check every output before any work.")
    from .. import __version__
    parser.add_argument("--version", action="version", version=f"minicnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("layers", help="print a model's layer table (name, type, output shape, parameters)")
    p.add_argument("--model", default="vgg_cifar10", help="shipped model name or weights file")
    p.set_defaults(func=cmd_layers)

    p = sub.add_parser("models", help="list the shipped models")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("evaluate", help="top-1 accuracy on a labelled image dataset")
    p.add_argument("--model", required=True, help="shipped model name or weights file")
    p.add_argument("--data", default=None,
                   help="image folders <split>/<class>/*.jpg, a zip of them, or the CIFAR-10 python archive "
                        "(cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html) "
                        "(default: the 300 CIFAR-10 test images shipped in minicnn/data/cifar10)")
    p.add_argument("--split", default="test", help="which split: a folder of --data, or the archive's test or train")
    p.add_argument("--batch-size", type=int, default=200, help="images per forward pass")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N images (default: all)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("convert", help="convert a PyTorch checkpoint (needs torch) or a TensorFlow Lite model "
                                       "(needs tflite) to a minicnn weights file")
    p.add_argument("checkpoint")
    p.add_argument("--arch", default=None, help="architecture name (e.g. resnet20, vgg16, vgg_cifar); required for "
                                               "PyTorch checkpoints, read from the file for .tflite models")
    p.add_argument("--labels", default=None, help="class names, one a line, in output order")
    p.add_argument("--out", required=True, help="the .npz file to write")
    p.add_argument("--fold-bn", action="store_true", help="fold BatchNorm into the preceding convolution")
    p.add_argument("--name", default=None, help="model name recorded in the file")
    p.add_argument("--meta", default=None, help="JSON file with extra metadata (licence, provenance, accuracy)")
    add_force_option(p)
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("fetch", help="download an official checkpoint, verify it and convert it (needs torch)")
    p.add_argument("name", help="e.g. vgg16")
    p.add_argument("--out", default=None, help="the converted .npz file (default: NAME.npz)")
    p.add_argument("--url", default=None, help="download from this address instead of the official one")
    p.add_argument("--checkpoint", default=None, help="use this already-downloaded checkpoint file")
    add_force_option(p)
    p.set_defaults(func=cmd_fetch)

    from ..explain.estimate import HELP as EXPLAIN_TIMES
    p = sub.add_parser("explain", help="explain a prediction: Grad-CAM, guided backprop, occlusion, ...",
                       epilog=EXPLAIN_TIMES)
    p.add_argument("image", help="the image file to explain (PNG, JPEG, ...; any size: the model's resize rule applies)")
    p.add_argument("--model", default="vgg_cifar10", help="shipped model name or weights file")
    p.add_argument("--target", default=None, help="class index or name (default: the top-1 class)")
    p.add_argument("--layer", default=None,
                   help="layer name (default: the last convolutional feature map); methods that work on the input "
                        "pixels ignore it, with a note")
    add_method_options(p)
    p.add_argument("--out", default=None,
                   help="figure to write; its extension picks the format: .png, .jpg, .jpeg, .pdf or .svg "
                        "(default: IMAGE_NAME.METHOD.png in the current folder)")
    p.add_argument("--save", default=None, help="raw maps to write (a file name ending .npz)")
    p.add_argument("--top", type=int, default=5, help="how many top classes to print")
    add_force_option(p)
    from ..inputs.images import DEFAULT_MAX_INPUT_PIXELS, DEFAULT_MAX_PIXELS
    p.add_argument("--max-pixels", type=positive_int, default=DEFAULT_MAX_PIXELS,
                   help=f"refuse image files of more pixels than this, before decoding (default {DEFAULT_MAX_PIXELS})")
    p.add_argument("--max-input-pixels", type=positive_int, default=DEFAULT_MAX_INPUT_PIXELS,
                   help="refuse a network input (the image after the model's resize rule) of more pixels than this, "
                        f"before the forward pass (default {DEFAULT_MAX_INPUT_PIXELS} = 512x512)")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("demo", help="reproduce the Grad-CAM paper's Figure 1 on the shipped models, offline")
    p.add_argument("--out-dir", default="minicnn-demo", help="folder for the PNGs (created if missing)")
    add_force_option(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("bench", help="time minicnn (and PyTorch, if installed) on VGG-16 and the shipped models")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    add_force_option(p)
    p.add_argument("--quick", action="store_true", help="fewer repetitions, CIFAR models only")
    p.add_argument("--models", type=lambda s: [m for m in s.split(",") if m], default=None,
                   help="comma-separated models to time (default: vgg16, the shipped CIFAR-10 models and mobilenet_v2)")
    p.add_argument("--reps", type=positive_int, default=None, help="repetitions per operation (default 7; 3 with --quick)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory probes (fresh processes)")
    p.add_argument("--data", default=None,
                   help="the CIFAR-10 JPEG test set (zip or folder): also time `minicnn evaluate` on it")
    p.add_argument("--keep-env", action="store_true",
                   help="time in this process even when OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are set "
                        "(default: a child process without them)")
    p.set_defaults(func=cmd_bench)

    from .serve import byte_size
    p = sub.add_parser("serve", help="the explorer in the browser: pick an image, a class, a layer, a method")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    p.add_argument("--open", action="store_true", help="open the page in the default web browser")
    p.add_argument("--max-upload", type=byte_size, default=10 * 1024 * 1024,
                   help="largest image upload in bytes, e.g. 10MiB (the default) or 512KiB")
    p.add_argument("--workers", type=positive_int, default=2,
                   help="explanations computed at the same time (default: 2); more requests wait their turn")
    p.add_argument("--quiet", action="store_true", help="no request log on stderr")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("sanity", help="do the maps change when the weights are randomised? (Adebayo et al. 2018)")
    p.add_argument("--model", required=True, help="shipped model name or weights file")
    p.add_argument("--methods", default=None, help="comma-separated methods (default: every registered method)")
    p.add_argument("--images", type=positive_int, default=50, help="shipped test images to explain (default 50)")
    p.add_argument("--mode", choices=["cascading", "independent"], default="cascading",
                   help="randomise from the logits down, one more layer each step, or one layer at a time")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    p.add_argument("--json", default=None, help="write the similarities to this JSON file")
    p.add_argument("--out", default=None, help="figure of the maps step by step (PNG); curves go to FIG_curves.png")
    add_force_option(p)
    p.set_defaults(func=cmd_sanity)

    p = sub.add_parser("scorecard", help="faithfulness, localisation and cost of every method, against baselines")
    p.add_argument("--model", required=True, help="shipped model name or weights file")
    p.add_argument("--methods", default=None, help="comma-separated methods (default: every registered method)")
    p.add_argument("--images", type=positive_int, default=200, help="shipped test images to explain (default 200)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random baseline, tie-breaking, noise, mosaics")
    p.add_argument("--json", default=None, help="write the scorecard to this JSON file")
    p.add_argument("--out-dir", default=None, help="folder for the figures (created if missing)")
    add_force_option(p)
    p.set_defaults(func=cmd_scorecard)

    from . import attack, visualize  # each module holds its subcommand's flags and body
    for command in (visualize, attack):
        command.add_arguments(p := sub.add_parser(command.NAME, help=command.HELP))
        p.set_defaults(func=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage mistake already printed in one line
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        with warnings.catch_warnings():
            warnings.showwarning = show_note
            status = int(args.func(args) or 0)
        sys.stdout.flush()                           # a reader that left shows here, not at exit
        return status
    except MinicnnError as e:
        print(f"minicnn: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("minicnn: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return stdout_closed()


def stdout_closed() -> int:
    """The reader of stdout left early (``minicnn explain ... | head -1``): no traceback, SIGPIPE's status.

    What is still buffered for stdout goes to the null device, so that the
    flush at exit does not fail again.
    """
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):                    # stdout is not a file (a test's capture)
        pass
    return 128 + 13                                  # as a program ended by SIGPIPE


if __name__ == "__main__":
    sys.exit(main())

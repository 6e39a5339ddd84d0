"""The ``minicnn`` command line. Each subcommand is a thin layer over the public API.

Errors the library raises on purpose (MinicnnError) are printed as one line on
stderr, ``minicnn: error: ...``, with exit status 2; nothing is half-written.
A mistake in the arguments themselves is one such line too (argparse's usage
text is left to ``--help``), and a warning (e.g. "using the first frame only"
of an animated GIF) is one ``minicnn: note: ...`` line.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
import warnings

from .. import __version__
from ..errors import MinicnnError
from ..util.files import check_name
from . import (
    attack,
    bench,
    classes,
    convert,
    demo,
    evaluate,
    explain,
    fetch,
    layers,
    models,
    sanity,
    scorecard,
    serve,
    visualize,
)


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


def show_note(message, category, filename, lineno, file=None, line=None) -> None:
    """Print a warning as one line on stderr (replaces warnings.showwarning while a command runs)."""
    text = (str(message).strip().splitlines() or [category.__name__])[0]
    if not issubclass(category, UserWarning) or category is UserWarning:
        text = f"{category.__name__}: {text}"
    print(f"minicnn: note: {text}", file=sys.stderr)


#: The subcommands, in the order ``minicnn --help`` lists them: each module's name is the command's.
COMMANDS = (layers, classes, models, evaluate, convert, fetch, explain, demo, bench, serve, sanity, scorecard,
            visualize, attack)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="minicnn", description="A NumPy CNN engine that shows its work: backprop and Grad-CAM in the open.")
    parser.add_argument("--version", action="version", version=f"minicnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        p = sub.add_parser(command.__name__.rpartition(".")[2], help=command.HELP,
                           description=getattr(command, "DESCRIPTION", None), epilog=getattr(command, "EPILOG", None))
        command.add_arguments(p)
        p.set_defaults(func=command.run)
    writers = [name for name, p in sub.choices.items() if any("--force" in a.option_strings for a in p._actions)]
    parser.epilog = (f"Commands that write files ({', '.join(writers)}) replace an existing file only with --force, "
                     "never write over their own input files, and check every output before any work.")
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
    if sys.stdout is None:                           # started with stdout closed (`minicnn ... >&-`)
        print("minicnn: error: stdout is closed; give the command somewhere to write (e.g. > /dev/null)",
              file=sys.stderr)
        return 2
    pil_log = logging.getLogger("PIL")
    if not pil_log.handlers:                         # Pillow logs what its refusal then says again
        pil_log.addHandler(logging.NullHandler())
    try:
        check_path_names(args)
        with warnings.catch_warnings():
            warnings.showwarning = show_note
            warnings.filterwarnings("ignore", module=r"PIL\.")   # a damaged file's metadata: the error, if any, says it
            status = int(args.func(args) or 0)
        if sys.stdout is not None:
            sys.stdout.flush()                       # a reader that left shows here, not at exit
        return status
    except MinicnnError as e:                        # in the command line's words (--force, not force=True)
        print(f"minicnn: error: {getattr(e, 'cli_message', None) or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("minicnn: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return stdout_closed()
    except OSError as e:                             # not said by the library: stdout on a full disk, ...
        if e.filename is None and e.errno in (errno.ENOSPC, errno.EIO, errno.EBADF, errno.EDQUOT):
            print(f"minicnn: error: cannot write to stdout: {e.strerror or e}", file=sys.stderr)
            _silence_stdout()
        else:
            where = f"{e.filename}: " if e.filename is not None else ""
            print(f"minicnn: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2


#: The options (argparse dests) that name files or folders, as the user typed them.
PATH_OPTIONS = {"image": "IMAGE", "checkpoint": "CHECKPOINT", "model": "--model", "data": "--data",
                "out": "--out", "save": "--save", "json": "--json", "out_dir": "--out-dir",
                "labels": "--labels", "meta": "--meta"}


def check_path_names(args) -> None:
    """A one-line InputError for a path option no file system can hold (a name over 255 bytes, a NUL byte)."""
    for dest, flag in PATH_OPTIONS.items():
        value = getattr(args, dest, None)
        if isinstance(value, str) and not (dest == "meta" and value.lstrip().startswith("{")):
            check_name(value, flag)


def _silence_stdout() -> None:
    """Drop what is still buffered for stdout, so that the flush at exit does not fail again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


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

"""The exceptions minicnn raises on bad input.

Every error the library raises on purpose is a ``MinicnnError``; each kind
also subclasses the built-in exception a Python programmer would expect
(ValueError, LookupError, OSError, ImportError), so ``except ValueError``
keeps working. The message is one line: what was wrong and what would be
right. The command line prints it on stderr and exits with status 2.
"""

from __future__ import annotations

import difflib


class MinicnnError(Exception):
    """Base class of every error minicnn raises on purpose."""


class InputError(MinicnnError, ValueError):
    """An array or argument given to the API has the wrong shape, dtype or value."""


class ImageError(MinicnnError, ValueError):
    """An image file cannot be read (missing, not an image, truncated, too large)."""


class WeightsError(MinicnnError, ValueError):
    """A weights file is corrupt, tampered with, or does not fit its architecture."""


class ChecksumError(WeightsError):
    """A file's sha256 does not match the one recorded for it."""


class UnknownNameError(MinicnnError, LookupError):
    """An unknown model, layer, class or architecture name."""

    def __str__(self) -> str:  # LookupError would otherwise print repr-quoted text
        return str(self.args[0]) if self.args else ""


class OutputError(MinicnnError, OSError):
    """A result cannot be written (missing folder, no permission, file exists)."""


class DownloadError(MinicnnError, OSError):
    """A download failed (network error, HTTP error status, connection cut short)."""


class MissingDependencyError(MinicnnError, ImportError):
    """An optional dependency (PyTorch, for conversion) is not installed."""


class GradientCheckError(MinicnnError, AssertionError):
    """An analytic gradient disagrees with central finite differences."""


def one_line(e: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (or its type's name), at most ``limit`` characters.

    For quoting what a library (NumPy, Pillow, zipfile) said inside minicnn's own one-line errors.
    """
    lines = [line for line in str(e).strip().splitlines() if line.strip()]
    return (lines[0] if lines else type(e).__name__)[:limit]


def unknown_name(kind: str, name: object, valid: list[str] | tuple[str, ...], *, show: int = 12) -> UnknownNameError:
    """Build the one-line error for an unknown ``kind`` (e.g. "layer").

    Lists the valid names (at most ``show`` of them) and suggests the
    closest one, e.g. ``unknown layer 'layer4'; did you mean 'layer3'?
    valid: conv1, bn1, ...``.
    """
    valid = [str(v) for v in valid]
    close = difflib.get_close_matches(str(name), valid, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ";"
    listed = ", ".join(valid[:show]) + (f", ... ({len(valid)} in all)" if len(valid) > show else "")
    return UnknownNameError(f"unknown {kind} {name!r}{hint} valid {_plural(kind)}: {listed}")


def _plural(kind: str) -> str:
    """"layer" -> "layers", "class" -> "classes", "class list" -> "class lists"."""
    return kind + ("es" if kind.endswith(("s", "x", "ch", "sh")) else "s")

"""The shipped models: where their weights folder is, its manifest, finding a model by name.

Shipped models live in the repository's top-level ``weights/`` folder (or
``$MINICNN_WEIGHTS_DIR``; :func:`weights_dir`); a shipped model's name is its
file name without ``.npz``. ``weights/manifest.json`` records each shipped
file's sha256, size, classes, input size and accuracy (written by
``minicnn.models.weights.register``); :func:`locate` turns a name or a path
into a file and the sha256 it must have, and :func:`models_table` lists the
shipped models for ``minicnn models``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from ..errors import ChecksumError, UnknownNameError, WeightsError, unknown_name
from ..util.atomic import worded
from ..util.files import MAX_TEXT_BYTES, check_name, read_text_file
from .official import CHECKPOINTS

__all__ = ["MANIFEST", "weights_dir", "read_manifest", "shipped_models", "sha256_file", "verify_checksum",
           "locate", "models_table"]

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "minicnn-manifest"
#: The folder of the minicnn package (in a checkout, the shipped weights are in ../weights).
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def weights_dir() -> Path:
    """The shipped weights folder.

    ``$MINICNN_WEIGHTS_DIR`` if set; else ``<repository>/weights`` (a source
    checkout or an editable install); else ``<prefix>/share/minicnn/weights``,
    where a regular ``pip install .`` puts the shipped files.
    """
    env = os.environ.get("MINICNN_WEIGHTS_DIR")
    if env:
        return Path(env)
    checkout = PACKAGE_DIR.parent / "weights"
    installed = Path(sys.prefix) / "share" / "minicnn" / "weights"
    return checkout if (checkout / MANIFEST).exists() or not (installed / MANIFEST).exists() else installed


def read_manifest(folder=None) -> dict:
    """The manifest of ``folder`` (default: ``weights_dir()``) as {"models": {name: entry}}.

    A missing manifest means no shipped models; a damaged one is a WeightsError.
    """
    path = Path(folder or weights_dir()) / MANIFEST
    if not path.exists():
        return {"format": MANIFEST_FORMAT, "version": 1, "models": {}}
    try:
        manifest = json.loads(read_text_file(path, MAX_TEXT_BYTES, "the manifest", WeightsError))
    except (OSError, ValueError, RecursionError) as e:
        raise WeightsError(f"cannot read the manifest {path}: {e}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("models"), dict):
        raise WeightsError(f"the manifest {path} has no 'models' table")
    return manifest


def shipped_models() -> list[str]:
    """Names of the shipped models, sorted."""
    return sorted(read_manifest()["models"])


def sha256_file(path, chunk: int = 1 << 20) -> str:
    """The sha256 of a file's bytes, as 64 hex digits (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_checksum(path, expected: str) -> None:
    """A one-line ChecksumError unless the file's sha256 is ``expected``."""
    actual = sha256_file(path)
    if actual != expected.lower():
        raise ChecksumError(f"{path} has sha256 {actual}, the manifest records {expected}: "
                            f"the file is damaged or was modified")


def locate(name_or_path) -> tuple[Path, str | None]:
    """(file, sha256 the manifest records for it or None) for a shipped name or a path."""
    folder = weights_dir()
    models = read_manifest(folder)["models"]
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise WeightsError(f"expected a model name or a file path, got {name_or_path!r}")
    text = os.fspath(name_or_path)
    if not isinstance(text, str) or not text:
        raise WeightsError(f"expected a model name or a file path, got {name_or_path!r}")
    if text in models:
        entry = models[text]
        path = folder / entry.get("file", f"{text}.npz")
        if not path.is_file():
            raise WeightsError(f"the shipped weights file {path} is missing; reinstall minicnn "
                               f"or point MINICNN_WEIGHTS_DIR at a folder holding it")
        return path, entry.get("sha256")
    path = check_name(text, "weights file", WeightsError)   # a name no file system holds: one line, not Errno 36
    looks_like_path = isinstance(name_or_path, os.PathLike) or os.sep in text or "/" in text or path.suffix
    if not path.exists():
        fetchable = _fetchable(path)
        if fetchable:                               # an official checkpoint: `minicnn fetch` makes the file
            out = "" if os.fspath(path) == f"{fetchable}.npz" else f" --out {path}"
            if looks_like_path:
                problem, then, then_api = f"weights file not found: {path}", "", ""
            else:
                problem = f"unknown model {text!r} (not shipped)"
                then, then_api = f"; then --model {fetchable}.npz", f"; then load('{fetchable}.npz')"
                out = ""
            kind = WeightsError if looks_like_path else UnknownNameError
            raise worded(kind(f"{problem}; minicnn.models.fetch.fetch({fetchable!r}) downloads and converts it "
                                      f"(needs PyTorch){then_api}"),
                         f"{problem}; `minicnn fetch {fetchable}{out}` downloads and converts it (needs PyTorch)"
                         f"{then}")
        if looks_like_path:
            raise WeightsError(f"weights file not found: {path}")
        raise unknown_name("model", text, sorted(models) or ["(none shipped)"])
    if not path.is_file():
        raise WeightsError(_not_a_file(path))
    # a shipped file given by its path is checked too
    for name, entry in models.items():
        shipped = folder / entry.get("file", f"{name}.npz")
        if shipped.exists() and path.resolve() == shipped.resolve():
            return path, entry.get("sha256")
    return path, None


def _fetchable(path: Path) -> str | None:
    """The name ``minicnn fetch`` knows for a missing weights file ("vgg16.npz" or "vgg16" -> "vgg16"), or None."""
    stem = path.name.removesuffix(".npz")
    return stem if stem in CHECKPOINTS and path.suffix in ("", ".npz") else None


def _not_a_file(path: Path) -> str:
    """Why an existing ``path`` cannot be a weights file: a folder, or not a regular file."""
    if path.is_dir():
        return f"{path} is a folder, not a weights file"
    return f"{path} is not a regular file (a device, pipe or socket), not a weights file"


def _accuracy_text(acc) -> str:
    if isinstance(acc, dict) and acc.get("top1") is None and acc.get("note"):
        return "- (not measured here)"
    if not isinstance(acc, dict) or acc.get("top1") is None:
        return "-"
    on = [str(acc["dataset"])] if acc.get("dataset") else []
    if isinstance(acc.get("images"), int):
        on.append(f"{acc['images']:,} images")
    return f"{acc['top1']:.2f}%" + (f" ({', '.join(on)})" if on else "")


def models_table() -> str:
    """The shipped models as a table: name, classes, input size, top-1 accuracy, parameters."""
    models = read_manifest()["models"]
    if not models:
        return f"no shipped models in {weights_dir()}"
    rows = [("name", "classes", "input", "top-1 accuracy", "parameters")]
    for name, e in sorted(models.items()):
        classes = e.get("classes") or [repr(c) for c in e.get("first_classes") or []]
        n = e.get("num_classes")
        what = f"{n}" + (f" ({', '.join(classes[:3])}, ...)" if classes and len(classes) > 3 else
                         f" ({', '.join(classes)})" if classes else "")
        size = "x".join(map(str, e.get("input_size") or [])) or "-"
        params = f"{e['parameters']:,}" if isinstance(e.get("parameters"), int) else "-"
        rows.append((name, what, size, _accuracy_text(e.get("accuracy")), params))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(r[i].ljust(widths[i]) if i < 4 else r[i].rjust(widths[i]) for i in range(5)).rstrip()
             for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)

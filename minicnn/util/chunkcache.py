"""Finished chunks of a long run, kept on disk so that a run computes only what is missing.

    cache = ChunkCache("cache/")
    key = {"kind": "scorecard images", "model": sha256, "method": "gradcam", "settings": {...}, "ids": [0, 1, 2],
           "inputs": array_digest(x[ids])}
    part = cache.get(key)              # {name: array} as it was put, or None
    cache.put(key, {"deletion_auc": np.array([...]), "skipped": np.array("why")})

An entry is one ``.npz`` file named by the SHA-256 of its key (canonical
JSON: sorted keys, no spaces) plus the package version; the key itself is
stored inside (``__key__``) and compared on reading, so a file renamed or
damaged is a miss, never a wrong answer. Files are written atomically
(:func:`minicnn.util.atomic.atomic_output`: a reader never sees half a file;
an interrupted run leaves whole entries only). Loads execute nothing:
NumPy reads them with ``allow_pickle=False``; each file is checked to be a
regular file of at most :data:`MAX_ENTRY_BYTES` bytes, read with that
bound, and made of stored (uncompressed) members of that size in all, so
nothing unpacks past it; an entry that does not read back is a miss, and is
computed again.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from ..errors import InputError, MinicnnError
from .atomic import atomic_output
from .files import check_folder, read_regular_file

#: The largest cache entry read back (a chunk's maps and curves are far smaller).
MAX_ENTRY_BYTES = 256 * 1024 ** 2
VERSION_FIELD = "minicnn"


def package_version() -> str:
    """The installed minicnn's version (part of every key: a new version computes everything again)."""
    from importlib.metadata import PackageNotFoundError, version  # lazy: only a cached run needs it
    try:
        return version("minicnn")
    except PackageNotFoundError:
        return "unknown"


def array_digest(*arrays) -> str:
    """SHA-256 of the arrays' dtypes, shapes and bytes, in order: what a chunk was computed from, for its key
    (the same ids with other images, from another dataset or another order, make another key)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def canonical(key: dict) -> str:
    """The key as canonical JSON (sorted keys, no spaces), with the package version added."""
    return json.dumps({**key, VERSION_FIELD: package_version()}, sort_keys=True, separators=(",", ":"))


def stored_within(data: bytes, limit: int) -> bool:
    """Whether the zip ``data`` holds only stored (uncompressed) members, ``limit`` bytes in all: what ``put``
    writes. A compressed member could unpack to far more than the file's bounded size (a zip bomb)."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        members = z.infolist()
    return (all(m.compress_type == zipfile.ZIP_STORED for m in members)
            and sum(m.file_size for m in members) <= limit)


class ChunkCache:
    """A folder of finished chunks (module docstring); created if missing."""

    def __init__(self, folder) -> None:
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"cannot make the cache folder {self.folder}: {e.strerror or e}") from None
        check_folder(self.folder, "cache folder")
        self.hits = self.misses = self.writes = 0

    def path(self, key: dict) -> Path:
        return self.folder / f"{hashlib.sha256(canonical(key).encode()).hexdigest()}.npz"

    def get(self, key: dict) -> dict[str, np.ndarray] | None:
        """The arrays put under ``key``, or None if there are none (or they do not read back whole)."""
        path = self.path(key)
        if not path.exists():
            self.misses += 1
            return None
        try:
            data = read_regular_file(path, MAX_ENTRY_BYTES, "cache entry")
            if not stored_within(data, MAX_ENTRY_BYTES):
                raise ValueError("compressed or too large once unpacked")
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
        except (MinicnnError, OSError, ValueError, EOFError, zipfile.BadZipFile):
            self.misses += 1
            return None
        stored = arrays.pop("__key__", None)
        if stored is None or stored.shape != () or str(stored) != canonical(key):
            self.misses += 1
            return None
        self.hits += 1
        return arrays

    def put(self, key: dict, arrays: dict[str, np.ndarray]) -> None:
        """Keep ``arrays`` under ``key``, replacing any entry there, all at once."""
        buffer = io.BytesIO()
        np.savez(buffer, __key__=np.array(canonical(key)), **{k: np.asarray(v) for k, v in arrays.items()})
        with atomic_output(self.path(key), force=True) as f:
            f.write(buffer.getvalue())
        self.writes += 1

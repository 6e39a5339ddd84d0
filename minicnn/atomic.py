"""Writing a file so that nobody ever sees half of it.

    with atomic_output("model.npz", force=False) as f:   # f: a binary file
        f.write(data)
    # only now does model.npz exist (or hold the new content)

The data goes to a temporary file in the same folder, which is flushed to
disk and then renamed over the target with ``os.replace`` (atomic on POSIX
and Windows within one file system). If the block raises, or the process is
killed, the target keeps its previous content (or stays absent) and the
temporary file is removed (or, after a kill, left as a hidden ``.*.tmp``).

``check_writable`` runs the same checks up front, so a command can refuse
before spending minutes on work whose result it could not write.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

from .errors import MinicnnError, OutputError


def check_writable(path, *, force: bool = False) -> Path:
    """``path`` as a Path, or a one-line OutputError if it cannot (or must not) be written.

    Refuses a missing folder, a folder that is not writable, a path that is
    a folder, and an existing file unless ``force``.
    """
    path = Path(os.fspath(path))
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder; give a file name")
    if not folder.is_dir():
        existing = next((p for p in [folder, *folder.parents] if p.exists()), None)  # nearest that exists
        if existing is not None and not existing.is_dir():
            raise OutputError(f"cannot write {path}: {existing} is a file, not a folder; choose another path")
        raise OutputError(f"cannot write {path}: the folder {folder} does not exist; "
                          f"create it first or choose another path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {path}: the folder {folder} is not writable; choose another folder")
    if path.exists() and not force:
        raise OutputError(f"{path} already exists; pass --force (force=True) to overwrite it")
    return path


@contextmanager
def atomic_output(path, *, force: bool = False, mode: int = 0o644) -> Iterator[BinaryIO]:
    """A binary file object whose content replaces ``path`` only when the block succeeds."""
    path = check_writable(path, force=force)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        if path.exists() and not force:  # appeared while we were writing
            raise OutputError(f"{path} already exists; pass --force (force=True) to overwrite it")
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError) and not isinstance(e, MinicnnError):
            raise OutputError(f"writing {path} failed: {e.strerror or e}") from None
        raise

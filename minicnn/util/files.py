"""Reading the files a user names: regular files only, each read with a size bound.

Every file minicnn reads (an image, a weights file, a checkpoint, a label
list, JSON metadata, a dataset) goes through :func:`check_regular_file`
(or :func:`read_regular_file`, which also reads it) and every folder
through :func:`check_folder`, so that

- a device (``/dev/zero``), a pipe (a FIFO would block forever) or a socket
  is refused before it is opened;
- a file larger than its bound is refused before it is read (no 21 GB
  ``--meta /dev/zero``);
- a name the file system cannot hold (a component over 255 bytes, a path
  over 4096) is one line, not ``Errno 36``;
- a missing or unreadable file is one line naming it.

Each error is the ``error`` class the caller passes (ImageError,
WeightsError, InputError, ...), so its message is the caller's kind.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from ..errors import InputError

__all__ = ["NAME_MAX", "PATH_MAX", "MAX_TEXT_BYTES", "check_name", "check_regular_file", "read_regular_file",
           "read_text_file", "check_folder", "list_folder"]

#: The longest file-name component (bytes, in the file system's encoding) Linux and macOS file systems take.
NAME_MAX = 255
#: The longest path (bytes) the system calls take.
PATH_MAX = 4096
#: Bound on small text inputs: label lists, JSON metadata, manifests (16 MiB).
MAX_TEXT_BYTES = 16 * 2**20


def check_name(path, what: str = "file", error: type[Exception] = InputError) -> Path:
    """``path`` as a Path, or a one-line ``error`` if no file system could hold such a name.

    Refused: an empty name, a NUL byte, a component longer than
    :data:`NAME_MAX` bytes, a path longer than :data:`PATH_MAX` bytes.
    """
    if path is None or isinstance(path, bool):
        raise error(f"{what}: expected a file name, got {path!r}")
    try:
        text = os.fspath(path)
    except TypeError:
        raise error(f"{what}: expected a file name, got a {type(path).__name__}") from None
    raw = os.fsencode(text)
    if not raw:
        raise error(f"{what}: the file name is empty")
    if b"\0" in raw:
        raise error(f"{what}: the file name contains a NUL byte")
    if len(raw) > PATH_MAX:
        raise error(f"{what}: the path is {len(raw)} bytes long, over the system's limit of {PATH_MAX}")
    longest = max(raw.split(b"/"), key=len)
    if len(longest) > NAME_MAX:
        shown = os.fsdecode(longest[:40]) + "..."
        raise error(f"{what}: the name {shown!r} is {len(longest)} bytes long, over the file system's limit of "
                    f"{NAME_MAX} bytes per name; choose a shorter name")
    return Path(text)


def _stat(path: Path, what: str, error: type[Exception]) -> os.stat_result:
    try:
        return path.stat()
    except FileNotFoundError:
        raise error(f"cannot read {what} {path}: not found") from None
    except OSError as e:
        raise error(f"cannot read {what} {path}: {_reason(e)}") from None


def _reason(e: OSError) -> str:
    if e.errno == errno.ENAMETOOLONG:
        return f"the name is too long for the file system ({NAME_MAX} bytes per name)"
    return e.strerror or str(e)


def check_regular_file(path, max_bytes: int | None, what: str = "file",
                       error: type[Exception] = InputError) -> Path:
    """``path`` as a Path if it names a regular file of at most ``max_bytes`` bytes; else a one-line ``error``.

    Follows symbolic links (a link to a regular file is fine). Nothing is
    opened: a FIFO or a device is refused from its ``stat``.
    """
    path = check_name(path, what, error)
    st = _stat(path, what, error)
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{what} {path} is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{what} {path} is not a regular file (a device, pipe or socket); save it to a file first")
    if max_bytes is not None and st.st_size > max_bytes:
        raise error(f"{what} {path} is {st.st_size} bytes, over the limit of {max_bytes} bytes")
    return path


def read_regular_file(path, max_bytes: int, what: str = "file", error: type[Exception] = InputError) -> bytes:
    """The bytes of the regular file ``path``, at most ``max_bytes`` of them; else a one-line ``error``.

    The size is checked before reading and again while reading (a file that
    grows in between is refused too). The file is opened with ``O_NONBLOCK``
    so that a FIFO swapped in after the check cannot block.
    """
    path = check_regular_file(path, max_bytes, what, error)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise error(f"{what} {path} is not a regular file (a device, pipe or socket)")
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise error(f"cannot read {what} {path}: {_reason(e)}") from None
    if len(data) > max_bytes:
        raise error(f"{what} {path} is larger than the limit of {max_bytes} bytes")
    return data


def read_text_file(path, max_bytes: int = MAX_TEXT_BYTES, what: str = "file",
                   error: type[Exception] = InputError) -> str:
    """:func:`read_regular_file` decoded as UTF-8 (one-line ``error`` if it is not)."""
    data = read_regular_file(path, max_bytes, what, error)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{what} {path} is not UTF-8 text (byte {e.start}: {data[e.start:e.start + 1]!r})") from None


def check_folder(path, what: str = "folder", error: type[Exception] = InputError) -> Path:
    """``path`` as a Path if it names a folder this process can list; else a one-line ``error``."""
    path = check_name(path, what, error)
    st = _stat(path, what, error)
    if not stat.S_ISDIR(st.st_mode):
        raise error(f"{what} {path} is not a folder")
    if not os.access(path, os.R_OK | os.X_OK):
        raise error(f"cannot read {what} {path}: permission denied")
    return path


def list_folder(path, what: str = "folder", error: type[Exception] = InputError) -> list[Path]:
    """The entries of the folder ``path`` (sorted by name); a one-line ``error`` if it cannot be listed."""
    path = check_folder(path, what, error)
    try:
        return sorted(path.iterdir())
    except OSError as e:
        raise error(f"cannot list {what} {path}: {_reason(e)}") from None

"""Writing files so that nobody ever sees half of one, and no command destroys a file it was given.

One rule for every command (explain, convert, fetch, demo, bench --json, and any new one):

- an output never replaces a file that already exists unless the user says
  ``--force`` (``force=True`` from Python);
- an output is never, not even with ``--force``, the same file as one of the
  command's inputs (its image, its weights, its checkpoint) or as another of
  its outputs; symbolic and hard links count (paths are resolved, existing
  files are compared by device and inode);
- every output is checked before any work starts (its folder exists and
  takes new files, it is not a folder, device or pipe), so a refusal never
  comes after minutes of computing;
- the files are written to temporaries beside their targets and renamed
  only when all of them are complete; if one write or rename fails, the
  outputs already renamed are rolled back, so a run leaves all of its
  outputs or none of them (and previous files keep their content).

:class:`Outputs` is that rule; a command declares what it reads and what it
writes, computes, then writes::

    outputs = Outputs(force=args.force)
    outputs.input(args.image, "IMAGE")
    fig = outputs.output(args.out, "--out", suffixes=(".png", ".pdf"), kind="a figure")
    npz = outputs.output(args.save, "--save", suffixes=(".npz",), kind="an .npz archive")
    ...                                            # the work
    with outputs.writing():                        # all files appear, or none does
        with outputs.open(fig) as f:
            figure.savefig(f, format="png")
        with outputs.open(npz) as f:
            np.savez(f, **maps)

For a single file, :func:`atomic_output` does the same in one line::

    with atomic_output("model.npz", force=False) as f:   # f: a binary file
        f.write(data)
    # only now does model.npz exist (or hold the new content)

A process killed mid-write may leave a hidden ``.NAME.*.tmp`` beside the
target; the target itself keeps its previous content (or stays absent).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from ..errors import InputError, MinicnnError, OutputError
from .files import check_name

#: What every "already exists" refusal says: to the API (force=True), and on the command line (--force).
FORCE_HINT, FORCE_HINT_CLI = "pass force=True to overwrite it", "pass --force to overwrite it"


def exists_error(path) -> OutputError:
    """The refusal to replace an existing ``path``, in the API's words; the command line prints ``cli_message``."""
    return worded(OutputError(f"{path} already exists; {FORCE_HINT}"), f"{path} already exists; {FORCE_HINT_CLI}")


def worded(error: MinicnnError, cli_message: str) -> MinicnnError:
    """``error`` (its message speaks of the API: ``force=True``), with what the command line says instead
    (``--force``) as its ``cli_message``; ``minicnn.commands.cli.main`` prints that one."""
    error.cli_message = cli_message
    return error


def temp_prefix(path) -> str:
    """The start of the hidden temporary name beside ``path``: ``.NAME.``, NAME cut to fit the file system.

    ``tempfile`` adds 8 random characters and ``.tmp``; NAME is shortened (at a
    character boundary) so that the whole name stays within 255 bytes, and a
    legal 255-byte target still gets a legal temporary.
    """
    raw = os.fsencode(Path(os.fspath(path)).name)
    keep = 255 - len(b"..") - 8 - len(b".tmp") - 16          # 16 bytes to spare
    if len(raw) > keep:
        raw = raw[:keep]
        while raw:
            try:
                os.fsdecode(raw).encode("utf-8", "strict")
                break
            except UnicodeError:
                raw = raw[:-1]
    return "." + os.fsdecode(raw) + "."


def same_file(a, b) -> bool:
    """Whether paths ``a`` and ``b`` name one file: the same inode if both exist, else the same resolved path.

    Catches ``x.png`` and ``./x.png``, a symbolic link and its target, two
    hard links to one file, and a dangling link and the file it would create.
    """
    try:
        return os.path.samefile(a, b)              # st_dev and st_ino, links followed
    except (OSError, ValueError):                  # one of them does not exist (yet)
        return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def check_writable(path, *, force: bool = False, create_folder: bool = False) -> Path:
    """``path`` as a Path, or a one-line OutputError if it cannot (or must not) be written.

    Refuses a missing folder (unless ``create_folder``: then the nearest
    existing folder above it must take new folders), a folder that is not
    writable or does not take new files (``/proc``, a read-only mount), a path
    that is a folder, a device or a pipe, and an existing file unless
    ``force``. The folder is probed by creating (and removing) an empty
    hidden file in it.
    """
    path = Path(os.fspath(path))
    folder = path.parent if str(path.parent) else Path(".")
    refuse_folder_or_device(path)
    probe = folder
    if not folder.is_dir():
        existing = next((p for p in [folder, *folder.parents] if p.exists()), None)  # nearest that exists
        if existing is not None and not existing.is_dir():
            start = "cannot create the folder " + str(folder) if create_folder else "cannot write " + str(path)
            raise OutputError(f"{start}: {existing} is a file, not a folder; choose another path")
        if not create_folder or existing is None:
            raise OutputError(f"cannot write {path}: the folder {folder} does not exist; "
                              f"create it first or choose another path")
        probe = existing
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {path}: the folder {probe} is not writable; choose another folder")
    if os.path.lexists(path) and not force:
        raise exists_error(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=".tmp", dir=probe)
    except OSError as e:
        raise OutputError(f"cannot write {path}: the folder {probe} does not take new files "
                          f"({e.strerror or e}); choose another folder") from None
    os.close(fd)
    os.unlink(tmp)
    return path


def refuse_folder_or_device(path) -> None:
    """A one-line OutputError if ``path`` is an existing folder, device, pipe or socket (not a file to replace)."""
    path = Path(os.fspath(path))
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder; give a file name")
    if os.path.lexists(path) and not path.is_symlink() and not path.is_file():
        raise OutputError(f"cannot write {path}: it is not a regular file (a device, pipe or socket); "
                          f"give a file name")


class Outputs:
    """The files one run reads and writes: checked together before any work, written all or nothing.

    ``input(path, what)`` declares a file the run reads; ``output(path, what)``
    declares one it writes and refuses it at once (one-line OutputError) if it
    is the same file as an input or another output, has the wrong extension,
    or fails :func:`check_writable`. Inside ``with outputs.writing():``,
    ``open(path)`` gives a binary file for each output; the targets are
    replaced only when the block ends without error.
    """

    def __init__(self, *, force: bool = False) -> None:
        self.force = bool(force)
        self._inputs: list[tuple[str, Path]] = []
        self._outputs: dict[Path, tuple[str, bool]] = {}     # path -> (what, create_folder)
        self._staged: dict[Path, tuple[str, int]] = {}       # path -> (temporary file, mode)
        self._writing = False
        self._current: Path | None = None

    def input(self, path, what: str = "input") -> Path:
        """Declare a file this run reads (it need not exist yet); refuse it if an output already names it."""
        path = Path(os.fspath(path))
        for other, (other_what, _) in self._outputs.items():
            if same_file(path, other):
                raise self._clash(other_what, other, what, path)
        self._inputs.append((what, path))
        return path

    def output(self, path, what: str = "output", *, suffixes: tuple[str, ...] | None = None,
               kind: str = "", create_folder: bool = False) -> Path:
        """Declare a file this run writes; a one-line OutputError now if it must not be written.

        ``suffixes`` (lower case, with the dot) are the extensions allowed;
        ``kind`` says what the file is, for that message ("a figure").
        ``create_folder``: missing folders above it are created when writing
        starts (and removed again if the run fails).
        """
        path = check_name(path, what, OutputError)
        for other_what, other in self._inputs:
            if same_file(path, other):
                raise self._clash(what, path, other_what, other)
        for other, (other_what, _) in self._outputs.items():
            if same_file(path, other):
                raise OutputError(f"{what} {path} and {other_what} {other} are the same file; "
                                  f"give each output its own name")
        refuse_folder_or_device(path)
        if suffixes is not None and path.suffix.lower() not in suffixes:
            names = ", ".join(suffixes[:-1]) + (" or " if len(suffixes) > 1 else "") + suffixes[-1]
            kind = kind or "this file"
            problem = (f"'{path.suffix}' is not a format for {kind}" if path.suffix
                       else f"the name has no extension to say the format of {kind}")
            raise OutputError(f"{what} {path}: {problem}; name it {names}")
        check_writable(path, force=self.force, create_folder=create_folder)
        self._outputs[path] = (what, create_folder)
        return path

    @staticmethod
    def _clash(what: str, path: Path, input_what: str, input_path: Path) -> OutputError:
        how = "" if str(path) == str(input_path) else " (through a link or another spelling of its path)"
        def text(force):
            return (f"{what} {path} is the same file as {input_what} {input_path}{how}; an output never replaces "
                    f"an input, not even with {force}: choose another name")
        return worded(OutputError(text("force=True")), text("--force"))

    @contextmanager
    def writing(self) -> Iterator[Outputs]:
        """Create missing folders, let the block write every output, then rename them all (or undo all)."""
        created: list[Path] = []
        self._writing = True
        try:
            for path, (_, create_folder) in self._outputs.items():
                if create_folder:
                    self._make_folders(path.parent, created)
            yield self
            self._commit()
        except BaseException as e:
            self._discard()
            for folder in reversed(created):
                try:
                    folder.rmdir()
                except OSError:
                    pass
            if isinstance(e, OSError) and not isinstance(e, MinicnnError):
                where = self._current if self._current is not None else "the output"
                raise OutputError(f"writing {where} failed: {e.strerror or e}") from None
            raise
        finally:
            self._writing = False
            self._staged = {}

    @contextmanager
    def open(self, path, *, mode: int = 0o644) -> Iterator[BinaryIO]:
        """A binary file whose content becomes ``path`` when ``writing()`` ends without error."""
        path = Path(os.fspath(path))
        if not self._writing:
            raise InputError("Outputs.open(path) is for use inside `with outputs.writing():`")
        if path not in self._outputs:
            raise InputError(f"{path} was not declared with Outputs.output(); declare every output before the work")
        if path in self._staged:
            raise InputError(f"{path} is already written in this run")
        self._current = path
        folder = path.parent if str(path.parent) else Path(".")
        try:
            fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=".tmp", dir=folder)
        except OSError as e:
            raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
        self._staged[path] = (tmp, mode)
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)

    def write_json(self, path, data) -> str:
        """``data`` as JSON (indented, no NaN) into ``path``, one of these outputs (inside ``writing()``)."""
        with self.open(path) as f:
            f.write((json.dumps(data, indent=1, allow_nan=False) + "\n").encode())
        return str(path)

    # ---------------------------------------------------------------- internals

    def _commit(self) -> None:
        """Rename every temporary over its target; on any failure put back what was there before."""
        done: list[tuple[Path, str | None]] = []
        backup = None
        try:
            for path, (tmp, _) in self._staged.items():
                self._current = path
                if os.path.lexists(path) and not self.force:  # appeared while we were computing
                    raise exists_error(path)
                backup = None
                if len(self._staged) > 1 and os.path.lexists(path):  # keep the old file until all are renamed
                    backup = self._backup(path)
                os.replace(tmp, path)
                done.append((path, backup))
                backup = None
        except BaseException:
            if backup is not None:          # its rename failed: the old file is still in place
                _unlink_quietly(backup)
            for path, old in reversed(done):
                try:
                    if old is not None:
                        os.replace(old, path)  # the previous content comes back
                    else:
                        os.unlink(path)        # this run's file goes
                except OSError:
                    pass                       # the old content stays under its hidden name, never deleted
            raise
        for _, old in done:
            if old is not None:
                _unlink_quietly(old)

    @staticmethod
    def _backup(path: Path) -> str:
        """A hidden second name for the file at ``path`` (a hard link, or else a copy)."""
        folder = path.parent if str(path.parent) else Path(".")
        fd, backup = tempfile.mkstemp(prefix=temp_prefix(path), suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(backup)
        try:
            os.link(path, backup, follow_symlinks=False)
        except OSError:
            shutil.copy2(path, backup, follow_symlinks=False)
        return backup

    def _discard(self) -> None:
        for tmp, _ in self._staged.values():
            _unlink_quietly(tmp)

    @staticmethod
    def _make_folders(folder: Path, created: list[Path]) -> None:
        """Create ``folder`` and any missing folder above it, appending each one made to ``created``."""
        for p in [p for p in [folder, *folder.parents] if not p.exists()][::-1]:
            try:
                p.mkdir()
            except OSError as e:
                raise OutputError(f"cannot create the folder {p}: {e.strerror or e}") from None
            created.append(p)


def _unlink_quietly(path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


@contextmanager
def atomic_output(path, *, force: bool = False, mode: int = 0o644) -> Iterator[BinaryIO]:
    """A binary file object whose content replaces ``path`` only when the block succeeds."""
    outputs = Outputs(force=force)
    path = outputs.output(path)
    with outputs.writing(), outputs.open(path, mode=mode) as f:
        yield f


"""A plain-text progress bar on stderr.

On a terminal the line is redrawn in place (``\\r``) at most ~10 times a
second; elsewhere (a log file, a pipe, CI) one line is printed per 10% so
logs stay short. Nothing is printed when ``enabled`` is false, nor before
``after`` seconds have passed (so quick work stays quiet).

    evaluating  [##########----------]   5000/10000 images   50%

Every loop over batches counts its work with a ``Progress``, which makes it
the place where long work can be watched and stopped: inside ``watching(check)``
every ``Progress`` made in this thread calls ``check()`` when it is made and
after each ``update`` (between batches); ``check`` stops the work by raising
(e.g. a server whose client has gone). With ``quiet`` no bar is drawn.

    with watching(lambda: stop_if_client_gone(), quiet=True):
        occlusion(model, x)          # check() before the first batch and after each one
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager

_WATCH = threading.local()          # .check: called between batches; .quiet: draw nothing


@contextmanager
def watching(check: Callable[[], None] | None = None, *, quiet: bool = False):
    """In this thread, within the block: every Progress calls ``check()`` when made and after each update;
    with ``quiet`` no bar is drawn. ``check`` stops the work by raising; blocks nest (the inner one wins)."""
    saved = getattr(_WATCH, "check", None), getattr(_WATCH, "quiet", False)
    _WATCH.check, _WATCH.quiet = check, quiet
    try:
        yield
    finally:
        _WATCH.check, _WATCH.quiet = saved


def check_watch() -> None:
    """Call this thread's ``watching`` check, if any (it raises to stop the work)."""
    check = getattr(_WATCH, "check", None)
    if check is not None:
        check()


class Progress:
    """Counts ``done`` out of ``total`` (None if unknown) and draws it."""

    def __init__(self, total: int | None, label: str, *, unit: str = "", stream=None, enabled: bool = True,
                 width: int = 24, fmt=None, after: float = 0.0) -> None:
        self.total, self.label, self.unit = total, label, unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled, self.width = enabled and not getattr(_WATCH, "quiet", False), width
        self.fmt = fmt or (lambda n: f"{n:,}")
        self.done = 0
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_draw = 0.0
        self._last_tenth = -1
        self._drawn = False
        self._start, self.after = time.monotonic(), after
        check_watch()

    def update(self, n: int) -> None:
        """Add ``n`` to the count and redraw if it is time to (after calling the ``watching`` check)."""
        check_watch()
        self.done += n
        if not self.enabled or time.monotonic() - self._start < self.after:
            return
        if self._tty:
            now = time.monotonic()
            if now - self._last_draw >= 0.1 or self._finished():
                self._last_draw = now
                self.stream.write("\r" + self.line())
                self.stream.flush()
                self._drawn = True
        elif self.total:
            tenth = min(10, 10 * self.done // self.total)
            if tenth > self._last_tenth:
                self._last_tenth = tenth
                self.stream.write(self.line() + "\n")
                self.stream.flush()

    def close(self) -> None:
        """End the in-place line (terminal only)."""
        if self.enabled and self._tty and self._drawn:
            self.stream.write("\r" + self.line() + "\n")
            self.stream.flush()
            self._drawn = False

    def _finished(self) -> bool:
        return self.total is not None and self.done >= self.total

    def line(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if not self.total:
            return f"{self.label}  {self.fmt(self.done)}{unit}"
        frac = min(1.0, self.done / self.total)
        filled = int(round(frac * self.width))
        bar = "#" * filled + "-" * (self.width - filled)
        return (f"{self.label}  [{bar}]  {self.fmt(self.done)}/{self.fmt(self.total)}{unit}  "
                f"{100 * frac:3.0f}%")

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

"""``minicnn serve``: the explorer in the browser, on this machine.

    minicnn serve                      # http://127.0.0.1:8000/
    minicnn serve --port 0 --open      # a free port, and open the page in the default browser

The first line printed (stdout, flushed at once) is ``minicnn serving on
http://HOST:PORT/`` with the port actually bound. Bound to an address other
than loopback, a warning follows on stderr: anyone who can reach that
address can use the server. Ctrl-C (or SIGTERM) stops it: the server
finishes, prints ``minicnn: stopped`` on stderr, and the exit status is 0.
A request log goes to stderr unless ``--quiet``: one line per request and
one per real problem.

The limits (see ``minicnn.server.app``): ``--max-upload`` bytes per body,
``--max-pixels`` per uploaded image (16 000 000 by default, a quarter of the
command line's limit), ``--read-timeout`` seconds for a request's headers and
body to arrive, ``--deadline`` seconds of work per request, and
``--max-connections`` connections at once.
"""

from __future__ import annotations

import signal
import sys
import threading

from ..errors import InputError
from .options import byte_size, positive_int, seconds

HELP = "the explorer in the browser: pick an image, a class, a layer, a method"


def add_arguments(p) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    p.add_argument("--open", action="store_true", help="open the page in the default web browser")
    p.add_argument("--max-upload", type=byte_size, default=10 * 1024 * 1024,
                   help="largest image upload in bytes, e.g. 10MiB (the default) or 512KiB")
    p.add_argument("--workers", type=positive_int, default=2,
                   help="explanations computed at the same time (default: 2); more requests wait their turn")
    p.add_argument("--max-pixels", type=positive_int, default=16_000_000,
                   help="most pixels an uploaded image may have (default: 16000000, below the 64000000 of "
                        "`minicnn explain`)")
    p.add_argument("--deadline", type=seconds, default=300.0,
                   help="seconds a request's work may take, waiting for a worker included (default: 300); then 503")
    p.add_argument("--read-timeout", type=seconds, default=30.0,
                   help="seconds for a request's headers and body to arrive (default: 30); then 408")
    p.add_argument("--max-connections", type=positive_int, default=64,
                   help="connections served at once (default: 64); past it the slowest waiting one is closed")
    p.add_argument("--quiet", action="store_true", help="no request log on stderr")


def run(args) -> int:
    from ..server import is_loopback, make_server  # lazy: the server (and matplotlib) slow `minicnn --help`

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if args.workers < 1:
        raise InputError(f"--workers must be at least 1; got {args.workers}")
    server = make_server(args.host, args.port, max_upload=args.max_upload, workers=args.workers,
                         log=None if args.quiet else log, **limits(args))
    print(f"minicnn serving on {server.url}", flush=True)
    if not is_loopback(args.host):
        log(f"minicnn: warning: bound to {args.host}, not a loopback address: anyone who can reach this machine "
            f"can use the server (and the Host check is off); use --host 127.0.0.1 to keep it local")
    for name, why in server.store.skipped.items():
        log(f"minicnn: note: {name} is not served: {why}")
    if args.open:
        url = server.url.replace("0.0.0.0", "127.0.0.1").replace("[::]", "[::1]")
        threading.Thread(target=open_page, args=(url, log), daemon=True).start()
    return serve_until_stopped(server)


def open_page(url: str, log) -> bool:
    """Open ``url`` in the default web browser; where there is none (a server, a container), say so through ``log``."""
    import webbrowser  # lazy: only --open needs it; keeps `minicnn --help` fast
    try:
        opened = webbrowser.open(url)
    except webbrowser.Error:
        opened = False
    if not opened:
        log(f"minicnn: note: --open found no web browser on this machine; open {url} in one yourself")
    return opened


def limits(args) -> dict:
    """make_server's limits from the command line (absent attributes keep make_server's defaults)."""
    names = ("max_pixels", "deadline", "read_timeout", "max_connections")
    return {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}


def serve_until_stopped(server) -> int:
    """Serve until Ctrl-C or SIGTERM; close the socket; 0."""
    previous = None
    if threading.current_thread() is threading.main_thread():
        def stop(signum, frame):
            raise KeyboardInterrupt
        previous = signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    print("minicnn: stopped", file=sys.stderr, flush=True)
    return 0

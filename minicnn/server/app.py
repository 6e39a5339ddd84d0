"""HTTP for the explorer: the routes, the page's static files, ``make_server``.

Every request first passes the checks of ``guards.py`` (the Host guard, the
Origin rule, Content-Length, the read and work deadlines, the connection
cap, every refusal as JSON; its docstring lists what the server promises);
here it is routed. ``ROUTES`` names each path and the verbs it answers: 404
an unknown path, 405 a known path with the wrong verb (with ``Allow``).
Static files are looked up in a table made at start-up of the files in
``static/`` (no path from the client ever reaches the file system), so
``/static/../x`` or ``/static/%2e%2e/x`` is simply an unknown path (404).
"""

from __future__ import annotations

import errno
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import InputError, MinicnnError, OutputError, one_line
from . import api, synth
from .connections import (
    DEFAULT_DEADLINE,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_UPLOAD,
    DEFAULT_READ_TIMEOUT,
    GuardedServer,
)
from .guards import GuardedHandler
from .models import ModelStore

#: Where the page's files live, inside the package.
STATIC_DIR = Path(__file__).resolve().parent / "static"
#: The content type of each kind of static file served.
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}
#: The most pixels an uploaded image may have (16 megapixels: a 12 MP phone photo fits; 48 MB as RGB uint8),
#: a quarter of the command line's ``DEFAULT_MAX_PIXELS``: the server decodes what strangers send, two at a time.
SERVER_MAX_PIXELS = 16_000_000

ROUTES = {  # path -> the verbs it answers
    "/": ("GET", "HEAD"),
    "/api/models": ("GET", "HEAD"),
    "/api/methods": ("GET", "HEAD"),
    "/api/samples": ("GET", "HEAD"),
    "/api/explain": ("POST",),
    "/api/visualize": ("POST",),
    "/api/attack": ("POST",),
}


def static_files() -> dict[str, Path]:
    """URL path -> file for every file shipped in ``static/`` (the only files the server reads for a client)."""
    files = {f"/static/{p.name}": p for p in sorted(STATIC_DIR.iterdir())
             if p.is_file() and p.suffix in CONTENT_TYPES} if STATIC_DIR.is_dir() else {}
    if "/static/index.html" not in files:
        raise OutputError(f"the page's files are missing from {STATIC_DIR}; reinstall minicnn")
    return files


class Server(GuardedServer):
    """The explorer's server: the models, the limits, the static files, a thread per connection."""

    def __init__(self, address, store: ModelStore, *, max_upload: int = DEFAULT_MAX_UPLOAD,
                 max_pixels: int = SERVER_MAX_PIXELS, read_timeout: float = DEFAULT_READ_TIMEOUT,
                 deadline: float = DEFAULT_DEADLINE, max_connections: int = DEFAULT_MAX_CONNECTIONS,
                 log=None) -> None:
        self.store = store
        self.max_pixels = max_pixels
        self.static = static_files()
        self.visualisations = synth.Visualisations()
        super().__init__(address, Handler, max_upload=max_upload, read_timeout=read_timeout, deadline=deadline,
                         max_connections=max_connections, log=log)


class Handler(GuardedHandler):
    """One connection: parses each request, routes it, answers JSON (or the page's files)."""

    server: Server

    def dispatch(self, verb: str) -> None:
        self.check_host()
        if verb not in ("GET", "HEAD"):
            self.check_origin()
        parts = urlsplit(self.path)
        path, query = parts.path, parts.query
        if path in self.server.static or path.startswith("/api/samples/"):
            allowed = ("GET", "HEAD")
        else:
            allowed = ROUTES.get(path)
        if allowed is None:
            raise api.ApiError(404, f"no such path: {path[:200]}")
        if verb not in allowed:
            self.extra_headers = {"Allow": ", ".join(allowed)}
            raise api.ApiError(405, f"{path} answers {' and '.join(allowed)}, not {verb}")
        head = verb == "HEAD"
        if path == "/":
            return self.send_file(self.server.static["/static/index.html"], head)
        if path.startswith("/static/"):
            return self.send_file(self.server.static[path], head)
        if path.startswith("/api/samples/"):
            data, ctype = api.sample_file(path[len("/api/samples/"):])
            return self.send_bytes(200, data, ctype, head, cache=True)
        if path == "/api/models":
            return self.send_json(200, api.models_info(self.server.store), head)
        if path == "/api/methods":
            return self.send_json(200, api.methods_info(), head)
        if path == "/api/samples":
            return self.send_json(200, api.samples_info(), head)
        if path == "/api/explain":
            query = self.parse_query(query)
            body = self.read_body()
            answer = api.explain(self.server.store, query, body, max_pixels=self.server.max_pixels,
                                 check=self.check_work)
            return self.send_json(200, answer)
        if path == "/api/visualize":
            query = self.parse_query(query)
            self.read_no_body()
            return self.send_json(200, synth.visualize(self.server.store, query, self.server.visualisations,
                                                       check=self.check_work))
        if path == "/api/attack":
            query = self.parse_query(query)
            body = self.read_body()
            return self.send_json(200, synth.attack(self.server.store, query, body, max_pixels=self.server.max_pixels,
                                                    check=self.check_work))
        raise api.ApiError(404, f"no such path: {path[:200]}")  # pragma: no cover (ROUTES and the above agree)

    def send_file(self, path: Path, head: bool) -> None:
        self.send_bytes(200, path.read_bytes(), CONTENT_TYPES[path.suffix], head)


def make_server(host: str = "127.0.0.1", port: int = 8000, *, max_upload: int = DEFAULT_MAX_UPLOAD,
                workers: int = 2, store: ModelStore | None = None, log=None,
                max_pixels: int = SERVER_MAX_PIXELS, read_timeout: float = DEFAULT_READ_TIMEOUT,
                deadline: float = DEFAULT_DEADLINE, max_connections: int = DEFAULT_MAX_CONNECTIONS) -> Server:
    """A bound, not yet serving, explorer server (call ``serve_forever``); models are loaded now.

    max_upload      : the largest request body, in bytes (413 over it)
    workers         : explanations computed at the same time (others wait their turn)
    max_pixels      : the most pixels an uploaded image may have (400 over it)
    read_timeout    : seconds for a request's headers and body to arrive (408), and for an idle connection
    deadline        : seconds a request's work may take, its wait for a worker included (503)
    max_connections : connections served at once (see ``guards.py``)

    A one-line OutputError when the address cannot be bound (in use, not this machine's, no permission).
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise InputError(f"port must be an integer in 0..65535; got {port!r}")
    for name, value in (("max_upload", max_upload), ("max_pixels", max_pixels), ("max_connections", max_connections)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{name} must be a positive integer; got {value!r}")
    for name, value in (("read_timeout", read_timeout), ("deadline", deadline)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e6:
            raise InputError(f"{name} must be a positive number of seconds (below 1e6); got {value!r}")
    store = store or ModelStore(workers=workers, log=log)
    try:
        return Server((host, port), store, max_upload=max_upload, max_pixels=max_pixels,
                      read_timeout=float(read_timeout), deadline=float(deadline),
                      max_connections=max_connections, log=log)
    except MinicnnError:
        raise
    except OSError as e:
        why = e.strerror or one_line(e)
        hint = "; choose another --port (or --port 0 for a free one)" if e.errno == errno.EADDRINUSE else ""
        raise OutputError(f"cannot listen on {host}:{port}: {why}{hint}") from None

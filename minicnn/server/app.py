"""HTTP for the explorer: routes, JSON errors, the static page, and the checks that keep it local.

The standard library's ``ThreadingHTTPServer``: one thread per connection
(HTTP/1.1, kept alive), every answer with a ``Content-Length``. What the
server promises:

- every refusal is JSON ``{"error": "one line"}`` with its status: 400 bad
  input, 403 a foreign ``Host``, 404 an unknown path, 405 a known path with
  the wrong verb (with ``Allow``), 411 a body without ``Content-Length``,
  413 a body over the upload limit, 408 a body that stops arriving; a 500 only for a bug, logged with its
  traceback; the server keeps serving after every one of them;
- static files are looked up in a table made at start-up of the files in
  ``static/`` (no path from the client ever reaches the file system), so
  ``/static/../x`` or ``/static/%2e%2e/x`` is simply an unknown path (404);
- bound to a loopback address, a request whose ``Host`` header names any
  host other than ``localhost`` or a loopback address is refused with 403,
  so a web page elsewhere cannot reach the server through DNS rebinding;
- nothing the client sends is written to disk or executed: an upload is
  decoded in memory (``minicnn.inputs.images.image_from_bytes``, with its pixel
  limit), explained and forgotten.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import socket
import sys
import threading
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from ..errors import InputError, MinicnnError, OutputError, one_line
from ..inputs.images import DEFAULT_MAX_PIXELS
from . import api
from .models import ModelStore

#: Where the page's files live, inside the package.
STATIC_DIR = Path(__file__).resolve().parent / "static"
#: The content type of each kind of static file served.
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}
#: The largest request body accepted by default (10 MiB).
DEFAULT_MAX_UPLOAD = 10 * 1024 * 1024
#: Seconds a connection may stay silent before the server closes it.
IDLE_TIMEOUT = 30
#: The page may load only its own files and talk only to its own server.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

ROUTES = {  # path -> the verbs it answers
    "/": ("GET", "HEAD"),
    "/api/models": ("GET", "HEAD"),
    "/api/methods": ("GET", "HEAD"),
    "/api/samples": ("GET", "HEAD"),
    "/api/explain": ("POST",),
}


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or "localhost") means this machine only: 127.0.0.0/8, ::1, localhost."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The host part of a ``Host`` header: "localhost:8000" -> "localhost", "[::1]:8000" -> "::1"."""
    header = header.strip()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def static_files() -> dict[str, Path]:
    """URL path -> file for every file shipped in ``static/`` (the only files the server reads for a client)."""
    files = {f"/static/{p.name}": p for p in sorted(STATIC_DIR.iterdir())
             if p.is_file() and p.suffix in CONTENT_TYPES} if STATIC_DIR.is_dir() else {}
    if "/static/index.html" not in files:
        raise OutputError(f"the page's files are missing from {STATIC_DIR}; reinstall minicnn")
    return files


class Server(ThreadingHTTPServer):
    """The explorer's server: the models, the limits, the static files, a thread per connection."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128      # connections waiting to be accepted (socketserver's 5 resets a classroom's burst)

    def __init__(self, address, store: ModelStore, *, max_upload: int = DEFAULT_MAX_UPLOAD,
                 max_pixels: int = DEFAULT_MAX_PIXELS, log=None) -> None:
        host = address[0]
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.store = store
        self.max_upload = max_upload
        self.max_pixels = max_pixels
        self.log = log
        self.static = static_files()
        self.guard_host = is_loopback(host)
        self.requests = 0
        self._count_lock = threading.Lock()
        super().__init__(address, Handler)

    @property
    def url(self) -> str:
        """http://HOST:PORT/ with the port actually bound (``port=0`` picks a free one)."""
        host, port = self.server_address[:2]
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"

    def handle_error(self, request, client_address) -> None:
        """A connection that failed outside any handler (a reset socket): one line in the log, keep serving."""
        e = sys.exc_info()[1]
        if self.log:
            self.log(f"connection from {client_address[0]}: {type(e).__name__}: {one_line(e) if e else ''}")


class Handler(BaseHTTPRequestHandler):
    """One connection: parses each request, routes it, answers JSON (or the page's files)."""

    server: Server
    protocol_version = "HTTP/1.1"
    server_version = "minicnn"
    sys_version = ""
    timeout = IDLE_TIMEOUT
    error_content_type = "application/json"

    # ------------------------------------------------------------ verbs
    def do_GET(self):
        self.route("GET")

    def do_HEAD(self):
        self.route("HEAD")

    def do_POST(self):
        self.route("POST")

    def do_PUT(self):
        self.route("PUT")

    def do_DELETE(self):
        self.route("DELETE")

    def do_PATCH(self):
        self.route("PATCH")

    def do_OPTIONS(self):
        self.route("OPTIONS")

    # ------------------------------------------------------------ routing
    def route(self, verb: str) -> None:
        self._body_read, self.extra_headers = False, {}
        try:
            self.dispatch(verb)
        except api.ApiError as e:
            self.send_json(e.status, {"error": str(e)})
        except MinicnnError as e:
            self.send_json(400, {"error": one_line(e, 500)})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except TimeoutError:                # a client that stopped sending its body half-way
            self.close_connection = True
            self.send_json(408, {"error": f"the request body stopped arriving for {self.timeout} s"})
        except Exception as e:  # a bug: say so in one line, log the traceback, keep serving
            if self.server.log:
                self.server.log("".join(traceback.format_exception(e)).rstrip())
            self.send_json(500, {"error": f"internal error: {type(e).__name__}: {one_line(e)}"})

    def dispatch(self, verb: str) -> None:
        if self.server.guard_host:
            host = self.headers.get("Host")
            if host is not None and not is_loopback(host_name(host)):
                raise api.ApiError(403, f"Host {host!r} is not this server's: a server bound to a loopback address "
                                        f"answers only requests for localhost or a loopback address")
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
            return self.send_json(200, api.explain(self.server.store, query, body, max_pixels=self.server.max_pixels))
        raise api.ApiError(404, f"no such path: {path[:200]}")  # pragma: no cover (ROUTES and the above agree)

    def parse_query(self, query: str) -> dict[str, str]:
        try:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query), max_num_fields=32)
        except ValueError as e:
            raise InputError(f"cannot read the query string: {one_line(e)}") from None
        out: dict[str, str] = {}
        for k, v in pairs:
            if k in out:
                raise InputError(f"query parameter {k!r} is given twice")
            out[k] = v
        return out

    def read_body(self) -> bytes:
        """The request body, refused (without reading it) when it is over the upload limit."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            raise api.ApiError(411, "send the image with a Content-Length header (chunked uploads are not accepted)")
        text = self.headers.get("Content-Length")
        if text is None:
            raise api.ApiError(411, "send the image as the request body, with a Content-Length header")
        try:
            length = int(text)
            if length < 0:
                raise ValueError
        except ValueError:
            raise InputError(f"Content-Length must be a number of bytes; got {text!r}") from None
        limit = self.server.max_upload
        if length > limit:
            raise api.ApiError(413, f"the upload is {length} bytes, over the limit of {limit} bytes "
                                    f"(minicnn serve --max-upload)")
        data = self.rfile.read(length)
        self._body_read = True
        if len(data) < length:
            self.close_connection = True
            raise InputError(f"the body ended after {len(data)} of {length} bytes")
        return data

    # ------------------------------------------------------------ answers
    def send_file(self, path: Path, head: bool) -> None:
        self.send_bytes(200, path.read_bytes(), CONTENT_TYPES[path.suffix], head)

    def send_json(self, status: int, payload: dict, head: bool = False) -> None:
        data = json.dumps(payload, allow_nan=False, separators=(",", ":")).encode("utf-8")
        self.send_bytes(status, data, "application/json", head)

    def send_bytes(self, status: int, data: bytes, ctype: str, head: bool = False, *, cache: bool = False) -> None:
        if self.declares_body() and not getattr(self, "_body_read", False):
            self.close_connection = True       # the unread body would be taken for the next request
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "max-age=3600" if cache else "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            if ctype.startswith("text/html"):
                self.send_header("Content-Security-Policy", CSP)
            for k, v in getattr(self, "extra_headers", {}).items():
                self.send_header(k, v)
            self.extra_headers = {}
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if not head:
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def declares_body(self) -> bool:
        """Whether the request announced a body (which, unread, must not be taken for the next request)."""
        headers = getattr(self, "headers", None)
        if headers is None:
            return False
        if headers.get("Transfer-Encoding"):
            return True
        try:
            return int(headers.get("Content-Length") or 0) != 0
        except ValueError:
            return True

    def send_error(self, code, message=None, explain=None) -> None:
        """http.server's own refusals (a malformed request line, an unknown verb, a long URL) as JSON too."""
        self.close_connection = True
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            self.request_version = "HTTP/1.0"     # an unreadable request line still gets a status line and headers
        text = message or HTTPStatus(code).phrase
        self.log_error("code %d, message %s", code, text)
        if code == 501:  # a verb this server does not know at all
            text = f"unsupported method {getattr(self, 'command', '')!r}: use GET or POST"
        self.send_json(code, {"error": one_line(Exception(text), 300)}, head=getattr(self, "command", "") == "HEAD")

    def log_message(self, format, *args) -> None:
        if self.server.log:
            self.server.log(f"{self.address_string()} {format % args}")


def make_server(host: str = "127.0.0.1", port: int = 8000, *, max_upload: int = DEFAULT_MAX_UPLOAD,
                workers: int = 2, store: ModelStore | None = None, log=None) -> Server:
    """A bound, not yet serving, explorer server (call ``serve_forever``); models are loaded now.

    A one-line OutputError when the address cannot be bound (in use, not this machine's, no permission).
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise InputError(f"port must be an integer in 0..65535; got {port!r}")
    if isinstance(max_upload, bool) or not isinstance(max_upload, int) or max_upload < 1:
        raise InputError(f"max_upload must be a positive number of bytes; got {max_upload!r}")
    store = store or ModelStore(workers=workers, log=log)
    try:
        return Server((host, port), store, max_upload=max_upload, log=log)
    except MinicnnError:
        raise
    except OSError as e:
        why = e.strerror or one_line(e)
        hint = "; choose another --port (or --port 0 for a free one)" if e.errno == errno.EADDRINUSE else ""
        raise OutputError(f"cannot listen on {host}:{port}: {why}{hint}") from None

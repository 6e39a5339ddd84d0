"""HTTP for the explorer: routes, JSON errors, the static page, and the checks that keep it local.

The standard library's ``ThreadingHTTPServer``: one thread per connection
(HTTP/1.1, kept alive), every answer with a ``Content-Length``. What the
server promises:

- every refusal is JSON ``{"error": "one line"}`` with its status: 400 bad
  input (or a cost over a cap, named in the message), 403 a foreign ``Host``
  or ``Origin``, 404 an unknown path, 405 a known path with the wrong verb
  (with ``Allow``), 408 a request that did not arrive in time, 411 a body
  without ``Content-Length``, 413 a body over the upload limit, 503 work over
  the request deadline (or every connection busy); a 500 only for a bug,
  logged with its traceback; the server keeps serving after every one of them;
- static files are looked up in a table made at start-up of the files in
  ``static/`` (no path from the client ever reaches the file system), so
  ``/static/../x`` or ``/static/%2e%2e/x`` is simply an unknown path (404);
- exactly one ``Host`` header, ``host[:port]`` and nothing else (400
  otherwise, e.g. ``localhost:80@evil.example``); bound to a loopback
  address, a request whose ``Host`` names any host other than ``localhost``
  or a loopback address is refused with 403, so a web page elsewhere cannot
  reach the server through DNS rebinding;
- the Origin rule: a request other than GET and HEAD whose ``Origin`` (or,
  without one, ``Referer``) is not this server's own origin,
  ``http://`` + its ``Host``, is refused with 403, so a page on another site
  cannot make the server work for it (browsers send ``Origin`` with every
  POST, the page's own included). A request with neither header passes:
  it comes from a program (curl, a script, the tests), not from a web page;
- a body needs exactly one ``Content-Length``, all ASCII digits (400 for
  ``1_0``, ``+5`` or two of them);
- every cost a request can set is capped before any work (``api.CAPS``,
  the pixel limit, the network-input limit), and the work itself is bounded:
  a request's headers and body must arrive within ``read_timeout`` seconds
  (408 and the connection closed; an idle kept-alive connection is closed
  silently), its work must end within ``deadline`` seconds (503), and the
  work stops between batches as soon as the client has closed its
  connection (a browser that aborts its fetch; a client that shuts down
  its sending side while it waits counts as gone too), leaving the worker
  to the next request;
- at most ``max_connections`` connections are served at once: a new one
  past the cap closes the connection that has waited longest for its
  request to arrive (a slow or idle client), or, when every connection is
  working, is answered 503 and closed; the threads never pile up;
- the log (stderr, unless ``--quiet``) has one line per request and one per
  real problem: no progress bars, no idle connections;
- nothing the client sends is written to disk or executed: an upload is
  decoded in memory (``minicnn.inputs.images.image_from_bytes``, with the server's
  own pixel limit ``SERVER_MAX_PIXELS``, below the command line's),
  explained and forgotten.
"""

from __future__ import annotations

import errno
import io
import ipaddress
import json
import re
import select
import socket
import sys
import threading
import time
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from ..errors import InputError, MinicnnError, OutputError, one_line
from . import api
from .models import ModelStore

#: Where the page's files live, inside the package.
STATIC_DIR = Path(__file__).resolve().parent / "static"
#: The content type of each kind of static file served.
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}
#: The largest request body accepted by default (10 MiB).
DEFAULT_MAX_UPLOAD = 10 * 1024 * 1024
#: The most pixels an uploaded image may have (16 megapixels: a 12 MP phone photo fits; 48 MB as RGB uint8),
#: a quarter of the command line's ``DEFAULT_MAX_PIXELS``: the server decodes what strangers send, two at a time.
SERVER_MAX_PIXELS = 16_000_000
#: Seconds a request's headers and body have to arrive, from the connection's start or the previous answer
#: (a kept-alive connection with no new request is closed after as long).
DEFAULT_READ_TIMEOUT = 30.0
#: Seconds a request's work may take, waiting for a worker included, before it is stopped (503).
DEFAULT_DEADLINE = 300.0
#: Connections served at once (one thread each).
DEFAULT_MAX_CONNECTIONS = 64
#: A Host header: a name, an IPv4 address or [an IPv6 address], and an optional port; nothing else.
HOST_HEADER = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::([0-9]{1,5}))?")
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


def parse_host(header: str) -> tuple[str, int] | None:
    """(host, port) of a well-formed ``Host`` header ("[::1]:8000" -> ("::1", 8000); port 80 if absent), else None."""
    m = HOST_HEADER.fullmatch(header.strip())
    if not m or (m.group(2) is not None and int(m.group(2)) > 65535):
        return None
    return m.group(1).strip("[]").lower(), int(m.group(2) or 80)


def origin_of(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an ``Origin`` or ``Referer`` value, None when it has none ("null", garbage)."""
    try:
        parts = urlsplit(url.strip())
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host or parts.username is not None or parts.password is not None:
        return None
    return parts.scheme, host.lower(), port if port is not None else (443 if parts.scheme == "https" else 80)


class _Writer(io.BufferedIOBase):
    """Answers to the connection, each write sent whole (``sendall``, bounded by the socket's timeout)."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self.sock = sock

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.sock.sendall(data)
        return len(data)


class ClientGone(Exception):
    """The client closed its connection while its request was being worked on: stop the work."""


class _DeadlineReader(io.RawIOBase):
    """The connection's bytes, each ``recv`` bounded by the time left until the current request's deadline."""

    def __init__(self, handler: "Handler") -> None:
        super().__init__()
        self.handler = handler

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        h = self.handler
        left = h.read_deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request did not arrive in time")
        h.connection.settimeout(left)
        n = h.connection.recv_into(buffer)
        if h.record.evicted:
            raise ConnectionAbortedError("closed for a newer connection")
        h.received += n
        return n


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
                 max_pixels: int = SERVER_MAX_PIXELS, read_timeout: float = DEFAULT_READ_TIMEOUT,
                 deadline: float = DEFAULT_DEADLINE, max_connections: int = DEFAULT_MAX_CONNECTIONS,
                 log=None) -> None:
        host = address[0]
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.store = store
        self.max_upload = max_upload
        self.max_pixels = max_pixels
        self.read_timeout = read_timeout
        self.deadline = deadline
        self.max_connections = max_connections
        self.log = log
        self.static = static_files()
        self.guard_host = is_loopback(host)
        self.requests = 0
        self._count_lock = threading.Lock()
        self.connections: dict[socket.socket, Connection] = {}     # every connection with a thread, by socket
        self._full_logged = 0.0
        super().__init__(address, Handler)

    def process_request(self, request, client_address) -> None:
        """A thread for the new connection; at the cap, first close the one that has waited longest to be read."""
        now = time.monotonic()
        with self._count_lock:
            live = [c for c in self.connections.values() if not c.evicted]
            waiting = [c for c in live if c.reading]
            full = len(live) >= self.max_connections
            if full and waiting:
                victim = min(waiting, key=lambda c: c.since)
                victim.evicted = True
                try:
                    victim.sock.shutdown(socket.SHUT_RDWR)       # its thread's recv returns b"": it ends
                except OSError:
                    pass
            if not full or waiting:
                self.connections[request] = Connection(request, now)
        if full and not waiting:
            self._refuse(request, now)
            return
        super().process_request(request, client_address)

    def _refuse(self, request, now: float) -> None:
        """Every connection is working: a 503 (written without waiting) and close."""
        body = json.dumps({"error": f"the server is busy: all {self.max_connections} connections are working "
                                    f"(minicnn serve --max-connections); try again shortly"}).encode()
        head = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        try:
            request.setblocking(False)
            request.send(head + body)
        except OSError:
            pass
        self.shutdown_request(request)
        if self.log and now - self._full_logged > 10:
            self._full_logged = now
            self.log(f"refusing connections: all {self.max_connections} are working (--max-connections)")

    def shutdown_request(self, request) -> None:
        with self._count_lock:
            self.connections.pop(request, None)
        super().shutdown_request(request)

    @property
    def url(self) -> str:
        """http://HOST:PORT/ with the port actually bound (``port=0`` picks a free one)."""
        host, port = self.server_address[:2]
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"

    def connection_count(self) -> int:
        """Connections that have a thread now."""
        with self._count_lock:
            return len(self.connections)

    def handle_error(self, request, client_address) -> None:
        """A connection that failed outside any handler (a reset socket): one line in the log, keep serving."""
        e = sys.exc_info()[1]
        if self.log:
            self.log(f"connection from {client_address[0]}: {type(e).__name__}: {one_line(e) if e else ''}")


class Connection:
    """What the server knows of one connection: whether it is still reading its request, and since when."""

    def __init__(self, sock: socket.socket, since: float) -> None:
        self.sock, self.since = sock, since
        self.reading = True          # waiting for (the rest of) a request: may be closed for a new connection
        self.evicted = False


class Handler(BaseHTTPRequestHandler):
    """One connection: parses each request, routes it, answers JSON (or the page's files)."""

    server: Server
    protocol_version = "HTTP/1.1"
    server_version = "minicnn"
    sys_version = ""
    error_content_type = "application/json"

    def setup(self) -> None:
        self.connection = self.request
        self.read_deadline, self.received = time.monotonic() + self.server.read_timeout, 0
        self.rfile = io.BufferedReader(_DeadlineReader(self))
        self.wfile = _Writer(self.connection)
        self.record = self.server.connections.get(self.request) or Connection(self.request, time.monotonic())

    def handle_one_request(self) -> None:
        """One request, its headers and body within ``read_timeout``; an idle connection closes without a word."""
        self.read_deadline, self.received = time.monotonic() + self.server.read_timeout, 0
        self.record.reading, self.record.since = True, time.monotonic()
        self.command, self.request_version, self.requestline = None, "HTTP/1.1", ""
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if len(self.raw_requestline) > 65536:
                self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            method = getattr(self, "do_" + self.command, None)
            if method is None:
                self.send_error(HTTPStatus.NOT_IMPLEMENTED)
                return
            method()
            self.wfile.flush()
        except TimeoutError:
            self.close_connection = True
            if self.received and not self.record.evicted:      # a request that stopped arriving: say so
                self.send_json(408, {"error": self.late_message()})
        except OSError:
            self.close_connection = True                       # reset, or closed for a newer connection

    def late_message(self) -> str:
        return (f"the request did not arrive in full within {self.server.read_timeout:g} s "
                f"(headers and body; minicnn serve --read-timeout)")

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
        self.started = time.monotonic()
        if verb != "POST":
            self.record.reading = False
        try:
            self.dispatch(verb)
        except api.ApiError as e:
            self.send_json(e.status, {"error": str(e)})
        except MinicnnError as e:
            self.send_json(400, {"error": one_line(e, 500)})
        except ClientGone:
            self.close_connection = True
            self.log_message('"%s" cancelled: the client closed the connection after %.1f s',
                             self.requestline, time.monotonic() - self.started)
        except ConnectionError:             # reset, or closed for a newer connection
            self.close_connection = True
        except TimeoutError:                # a client that stopped sending its body half-way
            self.close_connection = True
            self.send_json(408, {"error": self.late_message()})
        except Exception as e:  # a bug: say so in one line, log the traceback, keep serving
            if self.server.log:
                self.server.log("".join(traceback.format_exception(e)).rstrip())
            self.send_json(500, {"error": f"internal error: {type(e).__name__}: {one_line(e)}"})

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
        raise api.ApiError(404, f"no such path: {path[:200]}")  # pragma: no cover (ROUTES and the above agree)

    # ------------------------------------------------------------ the guards
    def check_host(self) -> None:
        """Exactly one well-formed Host (400); on a loopback server, a loopback one (403)."""
        hosts = self.headers.get_all("Host") or []
        if len(hosts) > 1:
            raise InputError(f"the request has {len(hosts)} Host headers; send exactly one")
        if not hosts:
            return                                     # HTTP/1.0 without Host: this server's own address
        host = hosts[0]
        parsed = parse_host(host)
        if self.server.guard_host and (parsed is None or not is_loopback(parsed[0])):
            if parsed is None and host.strip():
                raise InputError(f"malformed Host header {host[:100]!r}: expected host or host:port")
            raise api.ApiError(403, f"Host {host[:100]!r} is not this server's: a server bound to a loopback "
                                    f"address answers only requests for localhost or a loopback address")
        if parsed is None:
            raise InputError(f"malformed Host header {host[:100]!r}: expected host or host:port")

    def own_origin(self) -> tuple[str, str, int]:
        """("http", host, port) this request was sent to: its Host header, else the bound address."""
        host = self.headers.get("Host")
        parsed = parse_host(host) if host is not None else None
        if parsed is None:
            parsed = (self.server.server_address[0].lower(), self.server.server_address[1])
        return ("http", *parsed)

    def check_origin(self) -> None:
        """The Origin rule: a foreign (or unreadable) Origin, or else Referer, is refused with 403."""
        for header in ("Origin", "Referer"):
            values = self.headers.get_all(header) or []
            if not values:
                continue
            own = self.own_origin()
            if len(values) > 1 or origin_of(values[0]) != own:
                raise api.ApiError(403, f"{header} {values[0][:100]!r} is not this server's origin "
                                        f"(http://{self.headers.get('Host', '')[:100]}): requests other than GET "
                                        f"come only from the server's own page or from programs")
            return

    def check_work(self) -> None:
        """Between batches of a request's work: stop it when the client has gone or the deadline has passed."""
        if self.client_gone():
            raise ClientGone
        spent = time.monotonic() - self.started
        if spent > self.server.deadline:
            raise api.ApiError(503, f"the work took more than the request deadline of {self.server.deadline:g} s "
                                    f"(minicnn serve --deadline); choose fewer or cheaper methods")

    def client_gone(self) -> bool:
        """Whether the client has closed (or reset) its connection: readable, and nothing to read."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

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

    def content_length(self) -> int | None:
        """The one Content-Length, all ASCII digits (None without one); 400 for two or a malformed one."""
        values = self.headers.get_all("Content-Length") or []
        if len(values) > 1:
            raise InputError(f"the request has {len(values)} Content-Length headers; send exactly one")
        if not values:
            return None
        text = values[0].strip(" \t")
        if not re.fullmatch(r"[0-9]{1,18}", text):
            raise InputError(f"Content-Length must be a number of bytes (ASCII digits only); got {values[0][:40]!r}")
        return int(text)

    def read_body(self) -> bytes:
        """The request body, refused (without reading it) when it is over the upload limit."""
        if self.headers.get("Transfer-Encoding"):
            raise api.ApiError(411, "send the image with a Content-Length header (chunked uploads are not accepted)")
        length = self.content_length()
        if length is None:
            raise api.ApiError(411, "send the image as the request body, with a Content-Length header")
        limit = self.server.max_upload
        if length > limit:
            raise api.ApiError(413, f"the upload is {length} bytes, over the limit of {limit} bytes "
                                    f"(minicnn serve --max-upload)")
        data = self.rfile.read(length)
        self._body_read = True
        if len(data) < length:
            self.close_connection = True
            raise InputError(f"the body ended after {len(data)} of {length} bytes")
        self.record.reading = False
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
            self.connection.settimeout(self.server.read_timeout)     # a client that does not read: bounded
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
        except OSError:                        # reset, closed, or not read within the timeout
            self.close_connection = True

    def declares_body(self) -> bool:
        """Whether the request announced a body (which, unread, must not be taken for the next request)."""
        headers = getattr(self, "headers", None)
        if headers is None:
            return False
        if headers.get("Transfer-Encoding"):
            return True
        try:
            return (self.content_length() or 0) != 0
        except InputError:
            return True

    def send_error(self, code, message=None, explain=None) -> None:
        """http.server's own refusals (a malformed request line, an unknown verb, a long URL) as JSON too."""
        self.close_connection = True
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            self.request_version = "HTTP/1.0"     # an unreadable request line still gets a status line and headers
        text = message or HTTPStatus(code).phrase
        if code == 501:  # a verb this server does not know at all
            text = f"unsupported method {getattr(self, 'command', '')!r}: use GET or POST"
        self.send_json(code, {"error": one_line(Exception(text), 300)}, head=getattr(self, "command", "") == "HEAD")

    def log_message(self, format, *args) -> None:
        if self.server.log:
            self.server.log(f"{self.address_string()} {format % args}")


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
    max_connections : connections served at once (see the module docstring)

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

"""The checks every request to the explorer passes: the Host guard, the Origin rule, the limits, JSON errors.

The standard library's ``ThreadingHTTPServer``: one thread per connection
(HTTP/1.1, kept alive), every answer with a ``Content-Length``.
``connections.py`` caps the connections and bounds each read, ``hosts.py``
reads ``Host`` and ``Origin`` values, :class:`GuardedHandler` checks each
request and answers every refusal as JSON, ``app.py`` adds the routes, the
page and ``make_server``. What the server promises:

- every refusal is JSON ``{"error": "one line"}`` with its status: 400 bad
  input (or a cost over a cap, named in the message), 403 a foreign ``Host``
  or ``Origin``, 404 an unknown path, 405 a known path with the wrong verb
  (with ``Allow``), 408 a request that did not arrive in time, 411 a body
  without ``Content-Length``, 413 a body over the upload limit, 503 work over
  the request deadline (or every connection busy); a 500 only for a bug,
  logged with its traceback; the server keeps serving after every one of them;
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
  own pixel limit ``app.SERVER_MAX_PIXELS``, below the command line's),
  explained and forgotten.
"""

from __future__ import annotations

import io
import json
import re
import select
import socket
import time
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, urlsplit

from ..errors import InputError, MinicnnError, one_line
from .api import ApiError
from .connections import ClientGone, Connection, DeadlineReader, GuardedServer, Writer
from .hosts import is_loopback, origin_of, parse_host

#: The page may load only its own files and talk only to its own server.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


class GuardedHandler(BaseHTTPRequestHandler):
    """One connection: reads each request within its deadline, checks it, answers JSON; ``dispatch`` routes it."""

    server: GuardedServer
    protocol_version = "HTTP/1.1"
    server_version = "minicnn"
    sys_version = ""
    error_content_type = "application/json"

    def setup(self) -> None:
        self.connection = self.request
        self.read_deadline, self.received = time.monotonic() + self.server.read_timeout, 0
        self.rfile = io.BufferedReader(DeadlineReader(self))
        self.wfile = Writer(self.connection)
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

    # ------------------------------------------------------------ one request, its refusals as JSON
    def route(self, verb: str) -> None:
        """Answer one request: ``dispatch`` it, and every refusal as JSON with its status (a bug as a 500, logged)."""
        self._body_read, self.extra_headers = False, {}
        self.started = time.monotonic()
        if verb != "POST":
            self.record.reading = False
        try:
            self.dispatch(verb)
        except ApiError as e:
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
        """Check and answer the request (the routes: ``app.Handler``); raise to refuse it."""
        raise NotImplementedError

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
            raise ApiError(403, f"Host {host[:100]!r} is not this server's: a server bound to a loopback "
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
                raise ApiError(403, f"{header} {values[0][:100]!r} is not this server's origin "
                                    f"(http://{self.headers.get('Host', '')[:100]}): requests other than GET "
                                    f"come only from the server's own page or from programs")
            return

    def check_work(self) -> None:
        """Between batches of a request's work: stop it when the client has gone or the deadline has passed."""
        if self.client_gone():
            raise ClientGone
        spent = time.monotonic() - self.started
        if spent > self.server.deadline:
            raise ApiError(503, f"the work took more than the request deadline of {self.server.deadline:g} s "
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
            raise ApiError(411, "send the image with a Content-Length header (chunked uploads are not accepted)")
        length = self.content_length()
        if length is None:
            raise ApiError(411, "send the image as the request body, with a Content-Length header")
        limit = self.server.max_upload
        if length > limit:
            raise ApiError(413, f"the upload is {length} bytes, over the limit of {limit} bytes "
                                f"(minicnn serve --max-upload)")
        data = self.rfile.read(length)
        self._body_read = True
        if len(data) < length:
            self.close_connection = True
            raise InputError(f"the body ended after {len(data)} of {length} bytes")
        self.record.reading = False
        return data

    def read_no_body(self) -> None:
        """For a request whose settings are all in its query: refuse a body (400) rather than leave it unread."""
        if self.headers.get("Transfer-Encoding") or (self.content_length() or 0) > 0:
            raise InputError(f"{urlsplit(self.path).path[:100]} takes no request body; send its settings in the query")
        self._body_read = True
        self.record.reading = False

    # ------------------------------------------------------------ answers
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


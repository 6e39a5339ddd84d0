"""The explorer's connections: one thread each, at most ``max_connections``, each request read within its deadline.

:class:`GuardedServer` accepts a connection past the cap by closing the one
that has waited longest for its request (a slow or idle client), or, when
every connection is working, answers 503 and closes it; :class:`DeadlineReader`
bounds every ``recv`` by the time left until the request's deadline. The
handler that uses them is ``guards.GuardedHandler``.
"""

from __future__ import annotations

import io
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ..errors import one_line
from .hosts import is_loopback

#: The largest request body accepted by default (10 MiB).
DEFAULT_MAX_UPLOAD = 10 * 1024 * 1024
#: Seconds a request's headers and body have to arrive, from the connection's start or the previous answer
#: (a kept-alive connection with no new request is closed after as long).
DEFAULT_READ_TIMEOUT = 30.0
#: Seconds a request's work may take, waiting for a worker included, before it is stopped (503).
DEFAULT_DEADLINE = 300.0
#: Connections served at once (one thread each).
DEFAULT_MAX_CONNECTIONS = 64


class Writer(io.BufferedIOBase):
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


class DeadlineReader(io.RawIOBase):
    """The connection's bytes, each ``recv`` bounded by the time left until the current request's deadline."""

    def __init__(self, handler: BaseHTTPRequestHandler) -> None:       # a guards.GuardedHandler
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


class GuardedServer(ThreadingHTTPServer):
    """A server that keeps to its limits: a thread per connection, at most ``max_connections`` of them."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128      # connections waiting to be accepted (socketserver's 5 resets a classroom's burst)

    def __init__(self, address, handler, *, max_upload: int = DEFAULT_MAX_UPLOAD,
                 read_timeout: float = DEFAULT_READ_TIMEOUT, deadline: float = DEFAULT_DEADLINE,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS, log=None) -> None:
        host = address[0]
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.max_upload = max_upload
        self.read_timeout = read_timeout
        self.deadline = deadline
        self.max_connections = max_connections
        self.log = log
        self.guard_host = is_loopback(host)
        self.requests = 0
        self._count_lock = threading.Lock()
        self.connections: dict[socket.socket, Connection] = {}     # every connection with a thread, by socket
        self._full_logged = 0.0
        super().__init__(address, handler)

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

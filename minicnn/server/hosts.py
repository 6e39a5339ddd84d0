"""Who may talk to the explorer: ``Host``, ``Origin`` and ``Referer`` values, read strictly.

``GuardedHandler.check_host`` and ``check_origin`` (``guards.py``, whose
docstring states the rules) refuse a request with these: a ``Host`` that is
not ``host[:port]``, or on a loopback server not a loopback host (DNS
rebinding); an ``Origin`` (else ``Referer``) other than the server's own.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

#: A Host header: a name, an IPv4 address or [an IPv6 address], and an optional port; nothing else.
HOST_HEADER = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::([0-9]{1,5}))?")


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


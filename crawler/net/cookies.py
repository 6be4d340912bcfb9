"""Cookies (``cookies = true``): what a response sets, and what a request sends.

The jar itself lives in Redis, one per host beside the host's state
(``ck:<host>`` in ``crawler.store.keys``), so every worker that claims the
host sends the same cookies. ``claim.lua`` hands each lease its host's jar,
expired cookies already dropped on Redis's clock; ``cookies.lua`` stores what
a response set, in the completion's round trip. This module is the pure part
on the worker: parsing ``Set-Cookie`` lines into jar updates, and choosing
from a jar the cookies one URL gets.

Rules (RFC 6265, per-host):
- A cookie is kept for the host that set it and sent only to that host. A
  ``Domain`` attribute must domain-match that host (else the cookie is
  refused), but does not widen it to the parent domain or its siblings: a
  crawl's hosts are separate sites to it, and a per-host jar is what the
  frontier can keep on one shard.
- ``Path``: sent to URLs under it; without one, the default path of the URL
  that set it (RFC 6265 5.1.4).
- ``Secure``: sent over https only, and refused when set over http.
- ``HttpOnly``: stored and sent (it only keeps scripts in browsers away).
- ``Max-Age`` wins over ``Expires``; both become an age in ms that Redis
  turns into a time on its own clock. ``Expires`` is read against this
  worker's clock once, at parse time. A cookie already expired deletes the
  stored one of the same host, path and name.
- Bounded: a cookie over ``MAX_COOKIE_BYTES`` is refused; a jar keeps at most
  ``MAX_COOKIES`` cookies and ``MAX_JAR_BYTES`` bytes, dropping the oldest set
  first (``cookies.lua``).

Parsing uses ``http.cookiejar.parse_ns_headers``, the standard library's
reader of the Netscape-style lines servers actually send: unlike
``http.cookies.SimpleCookie`` it does not drop a whole cookie for an attribute
it does not know (``Partitioned``, ``SameSite`` on older Pythons), keeps a
quoted value as sent, and reads ``Expires`` dates in their many forms.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from http.cookiejar import parse_ns_headers  # type: ignore[attr-defined]  # not in typeshed
from urllib.parse import urlsplit

MAX_COOKIES = 50
"""Cookies one host's jar keeps, at most (RFC 6265 6.1 asks for at least 50)."""
MAX_JAR_BYTES = 8 * 1024
"""Bytes of names, paths and values one host's jar keeps, at most."""
MAX_COOKIE_BYTES = 4096
"""A longer cookie (name, value and attributes) is refused (RFC 6265 6.1's minimum)."""
MAX_SET_COOKIE_LINES = 50
"""Set-Cookie lines read from one response; more are ignored."""

_FORBIDDEN = frozenset(" \t\r\n;,=\"") | {chr(c) for c in range(32)} | {"\x7f"}
_VALUE_FORBIDDEN = frozenset("\t\r\n;") | {chr(c) for c in range(32)} | {"\x7f"}


@dataclass(frozen=True, slots=True)
class CookieUpdate:
    """One cookie a response set (or deleted), as ``cookies.lua`` stores it.

    ``expires_in_ms``: None for a session cookie (kept until the jar's bounds
    push it out), <= 0 to delete the stored one.
    """

    host: str
    path: str
    name: str
    value: str
    expires_in_ms: int | None
    secure: bool
    http_only: bool

    @property
    def field(self) -> str:
        """Its field in the host's jar: one cookie per (host, path, name)."""
        return f"{self.host} {self.path} {self.name}"

    def script_args(self) -> list[str]:
        """Its four ARGV entries for ``cookies.lua``: field, age ('' session, '0' delete),
        flags, value."""
        age = "" if self.expires_in_ms is None else str(max(0, self.expires_in_ms))
        flags = ("s" if self.secure else "") + ("h" if self.http_only else "") or "-"
        return [self.field, age, flags, self.value]


@dataclass(frozen=True, slots=True)
class StoredCookie:
    """One cookie of a jar as claim.lua returns it."""

    host: str
    path: str
    name: str
    value: str
    secure: bool


def _url_parts(url: str) -> tuple[str, str, str]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.path or "/"


def default_path(path: str) -> str:
    """RFC 6265 5.1.4: the directory of the request path."""
    if not path.startswith("/") or path.count("/") == 1:
        return "/"
    return path[:path.rindex("/")]


def path_matches(request_path: str, cookie_path: str) -> bool:
    """RFC 6265 5.1.4 path-match."""
    if request_path == cookie_path:
        return True
    if request_path.startswith(cookie_path):
        return cookie_path.endswith("/") or request_path[len(cookie_path)] == "/"
    return False


def domain_matches(host: str, domain: str) -> bool:
    """RFC 6265 5.1.3: ``host`` is ``domain`` or a name under it (not for IP literals)."""
    domain = domain.lstrip(".").lower()
    if host == domain:
        return True
    return host.endswith("." + domain) and not host.replace(".", "").isdigit() \
        and ":" not in host


def parse_set_cookies(lines: Iterable[str], url: str, now: float | None = None
                      ) -> list[CookieUpdate]:
    """The jar updates the ``Set-Cookie`` lines of ``url``'s response ask for.

    Refused (left out): malformed names or values, oversized cookies, a
    Domain that is not the host or a parent of it, Secure set over http.
    """
    scheme, host, request_path = _url_parts(url)
    if not host:
        return []
    clock = time.time() if now is None else now
    out: list[CookieUpdate] = []
    for line in list(lines)[:MAX_SET_COOKIE_LINES]:
        if len(line) > MAX_COOKIE_BYTES:
            continue
        update = _one(line, scheme, host, request_path, clock)
        if update is not None:
            out.append(update)
    return out


def _one(line: str, scheme: str, host: str, request_path: str, clock: float
         ) -> CookieUpdate | None:
    try:
        [pairs] = parse_ns_headers([line])
    except (ValueError, IndexError):
        return None
    if not pairs or pairs[0][1] is None:
        return None
    name, value = pairs[0]
    if not name or any(c in _FORBIDDEN for c in name) \
            or any(c in _VALUE_FORBIDDEN for c in value):
        return None
    attrs = {k.lower(): v for k, v in pairs[1:]}
    secure = "secure" in attrs
    if secure and scheme != "https":
        return None  # RFC 6265bis 5.4: an insecure origin may not set a Secure cookie
    domain = attrs.get("domain")
    if domain and not domain_matches(host, domain):
        return None
    path = attrs.get("path")
    if not path or not path.startswith("/") or any(c in _FORBIDDEN - {"=", ","}
                                                   for c in path):
        path = default_path(request_path)
    expires_in_ms: int | None = None
    max_age = attrs.get("max-age")
    if max_age is not None and max_age.lstrip("-").isdigit():
        expires_in_ms = int(max_age) * 1000
    elif attrs.get("expires") is not None:
        expires_in_ms = int((float(attrs["expires"]) - clock) * 1000)
    return CookieUpdate(host=host, path=path, name=name, value=value,
                        expires_in_ms=expires_in_ms, secure=secure,
                        http_only="httponly" in attrs)


def read_jar(encoded: str) -> list[StoredCookie]:
    """A jar as claim.lua returns it: field and value lines alternating.

    A field is ``host path name``; a value ``expires_at|set_at|flags|value``.
    """
    lines = encoded.split("\n") if encoded else []
    jar: list[StoredCookie] = []
    for field, stored in zip(lines[::2], lines[1::2], strict=False):
        try:
            host, path, name = field.split(" ", 2)
            _expires, _set, flags, value = stored.split("|", 3)
        except ValueError:
            continue
        jar.append(StoredCookie(host, path, name, value, "s" in flags))
    return jar


def cookie_header(jar: Iterable[StoredCookie], url: str) -> tuple[str | None, int]:
    """The Cookie header ``url`` gets from ``jar``, and how many cookies it holds.

    Longer paths first, as RFC 6265 5.4 orders them.
    """
    scheme, host, path = _url_parts(url)
    chosen = [c for c in jar if c.host == host and path_matches(path, c.path)
              and (scheme == "https" or not c.secure)]
    if not chosen:
        return None, 0
    chosen.sort(key=lambda c: -len(c.path))
    return "; ".join(f"{c.name}={c.value}" for c in chosen), len(chosen)

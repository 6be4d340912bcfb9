"""Redis URLs: which ones we take, what is wrong with a bad one, and hiding their passwords.

Checked when the setting is read, before any client is built: redis-py
would raise a bare ``ValueError`` deep inside its pool (``Port could not be
cast to integer``), or quietly use ``localhost`` for a URL with no host.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")


def redact(url: str) -> str:
    """The URL with any password hidden, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        if ":" not in creds:  # a lone credential may be a password (redis://secret@host)
            return f"{scheme}://***@{host}"
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url


def url_problem(url: str) -> str | None:
    """What is wrong with ``url`` as a Redis URL, in a few words; None if nothing is."""
    if not url.startswith(REDIS_SCHEMES):
        what = f"unknown scheme {url.split('://', 1)[0]}://" if "://" in url else "no scheme"
        return f"{what}; use " + ", ".join(REDIS_SCHEMES[:-1]) + " or " + REDIS_SCHEMES[-1]
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # "Invalid IPv6 URL"
        return str(exc)[:1].lower() + str(exc)[1:]
    if parts.scheme == "unix":
        return None if parts.path else "no socket path (unix:///path/to/redis.sock)"
    if not parts.hostname:
        return "no host name"
    try:
        port = parts.port
    except ValueError:
        raw = parts.netloc.rsplit("@", 1)[-1].rsplit(":", 1)[-1]
        return f"port {raw!r} is not a number from 1 to 65535"
    if port == 0:
        return "port 0 is not a number from 1 to 65535"
    db = unquote(parts.path).strip("/")
    if db and not db.isdigit():
        return f"database {db!r} is not a number"
    return _query_problem(parts.query)


def _query_problem(query: str) -> str | None:
    """A bad value among the URL's options, as redis-py would read them."""
    from redis.connection import URL_QUERY_ARGUMENT_PARSERS

    parsers: dict[str, Callable[[str], Any]] = URL_QUERY_ARGUMENT_PARSERS  # type: ignore[assignment]
    for name, values in parse_qs(query).items():
        parser = parsers.get(name)
        if parser is None or not values:
            continue
        try:
            parser(values[0])
        except (TypeError, ValueError):
            return f"option {name}={values[0]!r} is not valid"
    return None

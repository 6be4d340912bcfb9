"""Redis URLs: which ones we take, what is wrong with a bad one, and hiding their passwords.

Checked when the setting is read, before any client is built: redis-py
would raise a bare ``ValueError`` deep inside its pool (``Port could not be
cast to integer``), or quietly use ``localhost`` for a URL with no host.

A cluster URL may name several seed nodes, comma-separated, sharing the
credentials, database and options: ``redis+cluster://user:pw@n1:7000,n2:7000/0``.
The client tries them in turn, so a command still starts when the node named
first is a master that just died (crawler.connection).
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


DEFAULT_PORT = 6379


def _split_nodes(url: str) -> tuple[str, str, list[str], str]:
    """(``scheme://``, ``userinfo@`` or "", each ``host:port`` named, the rest: path and query)."""
    scheme, _, rest = url.partition("://")
    end = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0),
              default=len(rest))
    netloc, tail = rest[:end], rest[end:]
    creds, at, hosts = netloc.rpartition("@")
    return f"{scheme}://", creds + at, hosts.split(","), tail


def node_urls(url: str) -> list[str]:
    """One URL for each node ``url`` names (one, unless it lists several seed nodes)."""
    scheme, creds, hosts, tail = _split_nodes(url)
    if len(hosts) < 2 or url.startswith("unix://"):
        return [url]
    return [f"{scheme}{creds}{host}{tail}" for host in hosts]


def seed_nodes(url: str) -> list[tuple[str, int]]:
    """(host, port) of every node ``url`` names, in the order given."""
    out = []
    for one in node_urls(url):
        parts = urlsplit(one)
        out.append((parts.hostname or "", parts.port or DEFAULT_PORT))
    return out


def names_several_nodes(url: str) -> bool:
    return len(node_urls(url)) > 1


def url_problem(url: str) -> str | None:
    """What is wrong with ``url`` as a Redis URL, in a few words; None if nothing is."""
    if url.startswith(REDIS_SCHEMES) and not url.startswith("unix://") \
            and len(_split_nodes(url)[2]) > 1:
        for i, one in enumerate(node_urls(url), 1):
            problem = url_problem(one)
            if problem:
                return f"seed node {i}: {problem}"
        return None
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

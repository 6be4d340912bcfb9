"""Fetching one URL: aiohttp, timeouts, redirects, size caps and the SSRF guard.

One attempt per call. Retrying is the frontier's job (``retry.lua``), so a
retried URL waits in Redis, not in a worker's memory, and its backoff
survives a worker crash.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from crawler import errors
from crawler.config import Settings
from crawler.urls import canonicalize, hostname

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
CHUNK = 64 * 1024


LOCAL_NXDOMAIN = (".invalid", ".onion")
"""Special-use names that fail at once, never asked of DNS (RFC 6761 6.4, RFC 7686)."""
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class _Blocked(OSError):
    """Raised inside the resolver; aiohttp wraps OSErrors from resolvers."""


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries and would reach: mapped, 6to4 or NAT64."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public(ip: IPAddress) -> bool:
    """True only for globally routable unicast addresses.

    ``is_global`` alone is False for private, loopback, link-local (cloud
    metadata), CGNAT, documentation and unspecified ranges, but True for
    multicast, and for IPv4-compatible (::a.b.c.d) and site-local IPv6.
    """
    refused = ip.is_multicast or ip.is_reserved or ip.is_unspecified
    if isinstance(ip, ipaddress.IPv6Address):
        refused |= ip.is_site_local
    return ip.is_global and not refused


class AddressPolicy:
    """Which IP addresses a fetch may connect to (the SSRF guard)."""

    def __init__(self, allow_private: bool = False, allow_cidrs: tuple[str, ...] = ()) -> None:
        self.allow_private = allow_private
        self.allowed = [ipaddress.ip_network(c, strict=False) for c in allow_cidrs]

    def permits(self, address: str) -> bool:
        if self.allow_private:
            return True
        try:
            ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address):
            ip = _embedded_ipv4(ip) or ip
        if any(ip in net for net in self.allowed):
            return True
        return is_public(ip)


def is_special_use_name(host: str) -> bool:
    name = host.rstrip(".").lower()
    return ("." + name).endswith(LOCAL_NXDOMAIN)


class GuardedResolver(AbstractResolver):
    """Resolves with the default resolver, then drops addresses the policy refuses.

    Checking what DNS actually returned (not the name) is what stops a public
    name that points at 169.254.169.254 or 127.0.0.1. Special-use names such
    as ``*.invalid`` fail here without a query leaving the machine.
    """

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self.inner = inner or DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        if is_special_use_name(host):
            raise socket.gaierror(socket.EAI_NONAME, f"{host}: special-use name, not resolved")
        results = await self.inner.resolve(host, port, family)
        allowed = [r for r in results if self.policy.permits(r["host"])]
        if not allowed:
            raise _Blocked(f"{host} resolves only to blocked addresses "
                           f"({', '.join(r['host'] for r in results)})")
        return allowed

    async def close(self) -> None:
        await self.inner.close()


@dataclass(slots=True)
class Response:
    """A fetched response, body capped and decompressed."""

    url: str
    final_url: str
    status: int
    content_type: str | None
    charset: str | None
    body: bytes
    headers: dict[str, str]
    elapsed: float

    @property
    def is_html(self) -> bool:
        if self.content_type is None:
            head = self.body[:512].lstrip().lower()
            return head.startswith((b"<!doctype html", b"<html", b"<head", b"<title"))
        return self.content_type in HTML_TYPES


def make_session(settings: Settings, *,
                 resolver: AbstractResolver | None = None) -> aiohttp.ClientSession:
    """One session a worker process: pooled connections, guarded DNS, no cookies.

    ``resolver`` replaces the system resolver under the guard (tests use a stub).
    """
    policy = AddressPolicy(settings.allow_private, settings.allow_cidrs)
    connector = aiohttp.TCPConnector(
        limit=settings.concurrency, limit_per_host=0, ttl_dns_cache=300,
        resolver=GuardedResolver(policy, resolver), ssl=ssl.create_default_context(),
    )
    timeout = aiohttp.ClientTimeout(total=settings.total_timeout,
                                    sock_connect=settings.connect_timeout,
                                    sock_read=settings.read_timeout)
    session = aiohttp.ClientSession(
        connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar(),
        headers={"User-Agent": settings.full_user_agent,
                 "Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5"},
        auto_decompress=True, trust_env=False, raise_for_status=False)
    session._crawler_policy = policy  # type: ignore[attr-defined,unused-ignore]
    return session


def _check_literal_address(url: str, policy: AddressPolicy) -> None:
    """aiohttp skips the resolver for IP literals, so check those here."""
    host = hostname(url).strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return
    if not policy.permits(host):
        raise errors.BlockedAddress(f"{host} is a blocked address")


async def _read_capped(resp: aiohttp.ClientResponse, cap: int) -> bytes:
    declared = resp.content_length
    if declared is not None and declared > cap:
        raise errors.TooLarge(f"Content-Length {declared} exceeds the {cap} byte cap")
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(CHUNK):
        size += len(chunk)
        if size > cap:
            raise errors.TooLarge(f"body exceeds the {cap} byte cap (after decompression)")
        chunks.append(chunk)
    return b"".join(chunks)


def _classify(exc: BaseException) -> errors.FetchError:
    """Map aiohttp and socket errors onto our error types."""
    if isinstance(exc, errors.FetchError):
        return exc
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        if isinstance(exc.os_error, _Blocked):
            return errors.BlockedAddress(str(exc.os_error))
        return errors.DNSError(f"DNS lookup failed: {exc.os_error}")
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return errors.TLSError(f"TLS handshake failed: {exc}")
    if isinstance(exc, TimeoutError | asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return errors.Timeout(f"timed out: {exc}" if str(exc) else "timed out")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return errors.ConnectError(f"cannot connect: {exc.os_error}")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return errors.ConnectError("server closed the connection without a full response")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return errors.ConnectError(f"body cut short: {exc}")
    if isinstance(exc, aiohttp.ClientResponseError):
        return errors.BadContent(f"malformed response: {exc.message}")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return errors.ConnectError(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, ValueError | UnicodeError):
        return errors.BadContent(f"{type(exc).__name__}: {exc}")
    raise exc


async def fetch(session: aiohttp.ClientSession, url: str, settings: Settings, *,
                allow_redirect: Callable[[str], bool] | None = None) -> Response:
    """GET one URL, following redirects itself so every hop is checked.

    Raises a FetchError subclass; any HTTP status comes back as a Response.
    """
    policy: AddressPolicy = session._crawler_policy  # type: ignore[attr-defined]
    started = time.monotonic()
    current = url
    visited = {url}
    try:
        async with asyncio.timeout(settings.total_timeout + 1):
            for _hop in range(settings.max_redirects + 1):
                _check_literal_address(current, policy)
                async with session.get(current, allow_redirects=False) as resp:
                    if resp.status in REDIRECT_STATUSES and "Location" in resp.headers:
                        current = _next_hop(current, resp.headers["Location"], visited,
                                            allow_redirect)
                        continue
                    body = await _read_capped(resp, settings.max_body_bytes)
                    return Response(
                        url=url, final_url=current, status=resp.status,
                        content_type=_mime(resp), charset=resp.charset, body=body,
                        headers=_keep_headers(resp.headers),
                        elapsed=time.monotonic() - started)
    except Exception as exc:
        raise _classify(exc) from exc
    raise errors.RedirectError(f"more than {settings.max_redirects} redirects")


def _next_hop(current: str, location: str, visited: set[str],
              allow_redirect: Callable[[str], bool] | None) -> str:
    from urllib.parse import urljoin, urlsplit

    target = urljoin(current, location.strip())
    scheme = urlsplit(target).scheme.lower()
    if scheme not in ("http", "https"):
        raise errors.RedirectError(f"redirect to a non-http scheme: {scheme or target!r}")
    try:
        target = canonicalize(target)
    except errors.InvalidURL as exc:
        raise errors.RedirectError(f"redirect to an invalid URL: {exc}") from None
    if target in visited:
        raise errors.RedirectError(f"redirect loop at {target}")
    if allow_redirect is not None and not allow_redirect(target):
        raise errors.RedirectError(f"redirect out of scope to {target}")
    visited.add(target)
    return target


def _mime(resp: aiohttp.ClientResponse) -> str | None:
    if "Content-Type" not in resp.headers:
        return None
    return resp.content_type.lower()


_KEPT_HEADERS = ("Retry-After", "X-Robots-Tag", "Content-Type")


def _keep_headers(headers: Any) -> dict[str, str]:
    return {h: headers[h] for h in _KEPT_HEADERS if h in headers}

"""Fetching one URL: aiohttp, timeouts, size caps, the SSRF guard, redirects as answers.

One attempt per call. Retrying is the frontier's job (``retry.lua``), so a
retried URL waits in Redis, not in a worker's memory, and its backoff
survives a worker crash.

A page's redirect is not followed here: it comes back as a 3xx ``Response``
whose ``redirect_to`` is the target, canonical, and the worker queues the
target as a URL of its own, which then waits for its own host's politeness
slot and robots.txt like any other (as Scrapy and Heritrix do). robots.txt
fetches follow up to five redirects themselves (RFC 9309 2.3.1.2), each hop
checked by the SSRF guard.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from crawler import errors
from crawler.config import Settings
from crawler.net import codecs
from crawler.net.dns import CachingResolver
from crawler.net.fetch_errors import classify
from crawler.net.guard import AddressPolicy, GuardedResolver, check_literal_address
from crawler.net.identity import Identity
from crawler.net.inflate import use_fast_inflate
from crawler.net.proxies import ProxyLedger, ProxyPool, Route, is_proxy_down, socks_error
from crawler.net.tls import TLSPolicy
from crawler.urls import resolve

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5"
CHUNK = 64 * 1024
REDIRECT_BODY_BYTES = 64 * 1024
"""A redirect's body is read (so its connection is reused) up to this size."""


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
    redirect_to: str | None = None  # a 3xx's canonical target, when not followed
    header_lists: dict[str, list[str]] | None = None  # repeatable headers, every value
    # Every header line as received (aiohttp's tuple, kept, not copied), and the
    # status line's reason: for extraction hooks and WARC records.
    raw_headers: tuple[tuple[bytes, bytes], ...] = ()
    reason: str = ""
    warc: tuple[str, int] | None = None  # (file, offset) once written to a WARC file
    # The request's headers exactly as aiohttp sent them, in order (Host, the
    # session's, a revisit's conditional ones, Accept-Encoding): for WARC.
    request_headers: Mapping[str, str] | None = None
    truncated: bool = False  # the body went past ``keep_first``: it holds the first bytes only

    @property
    def is_html(self) -> bool:
        if self.content_type is None:
            head = self.body[:512].lstrip().lower()
            return head.startswith((b"<!doctype html", b"<html", b"<head", b"<title"))
        return self.content_type in HTML_TYPES


def client_timeout(settings: Settings) -> aiohttp.ClientTimeout:
    """The fetch timeouts, given with each request so that a change applies to the next one."""
    return aiohttp.ClientTimeout(total=settings.total_timeout,
                                 sock_connect=settings.connect_timeout,
                                 sock_read=settings.read_timeout)


class Fetcher:
    """One worker's HTTP client: a pooled session, its SSRF guard, timeouts and caps.

    ``resolver`` replaces the DNS resolver under the guard (tests use a stub); by
    default it is ``crawler.net.dns.CachingResolver``, shared by every session
    of the fetcher (its cache outlives a policy change; the guard is per session).
    ``use`` applies changed crawl settings (``crawl config set``) from the next
    request on; every request reads ``session`` and ``timeout`` when it starts.
    """

    def __init__(self, settings: Settings, *, resolver: AbstractResolver | None = None,
                 proxy_ledger: ProxyLedger | None = None) -> None:
        self.settings = settings
        self.dns: CachingResolver | None = None
        if resolver is None:
            resolver = self.dns = CachingResolver(settings)
        self._resolver = resolver
        self._proxy_ledger = proxy_ledger
        self.inflate = use_fast_inflate()  # zlib-ng if installed: gzip is most pages' cost
        self.timeout = client_timeout(settings)
        self.tls = TLSPolicy(settings.ca_file, settings.tls_insecure_hosts)
        self.identity = Identity(settings)  # headers and credentials, per host
        self.policy, self.session = self._open(settings)
        self._retired: list[aiohttp.ClientSession] = []
        self._retired_pools: list[ProxyPool] = []
        self.proxies = self._proxy_pool(settings)

    def _open(self, settings: Settings) -> tuple[AddressPolicy, aiohttp.ClientSession]:
        policy = AddressPolicy(settings.allow_private, settings.allow_cidrs)
        self.guarded_resolver = GuardedResolver(policy, _Unclosed(self._resolver))
        self.connector_args: dict[str, Any] = {
            "limit": settings.concurrency, "limit_per_host": 0,
            "use_dns_cache": False,  # ours honours TTLs
            "ssl": self.tls.context}
        connector = aiohttp.TCPConnector(resolver=self.guarded_resolver, **self.connector_args)
        return policy, self._session(connector)

    def _session(self, connector: aiohttp.BaseConnector) -> aiohttp.ClientSession:
        settings = self.settings
        session = aiohttp.ClientSession(
            connector=connector, timeout=client_timeout(settings),
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": settings.full_user_agent,
                     "Accept": ACCEPT, "Accept-Encoding": codecs.accept_encoding()},
            middlewares=(self.identity.middleware,),
            auto_decompress=True, trust_env=False, raise_for_status=False)
        return session

    def _proxy_pool(self, settings: Settings) -> ProxyPool | None:
        """The proxies' sessions, built like the direct one (crawler.net.proxies)."""
        if not settings.proxies:
            return None
        return ProxyPool(settings.proxies, resolver=self.guarded_resolver,
                         open_session=self._session, connector_args=self.connector_args,
                         ledger=self._proxy_ledger)

    def use(self, settings: Settings) -> None:
        """Fetch with changed crawl settings from the next request on.

        A changed address policy (``allow_private``, ``allow_cidrs``) gets a new
        session: the old one's DNS cache and kept-alive connections were let
        through by the old policy, and a connection reused skips the resolver.
        The old session serves the requests already in flight; it is closed
        with the fetcher (one a policy change, an operator's act: few).
        """
        old, self.settings = self.settings, settings
        self.timeout = client_timeout(settings)
        policy_changed = (old.allow_private, old.allow_cidrs) != (settings.allow_private,
                                                                  settings.allow_cidrs)
        if policy_changed:
            self._retired.append(self.session)
            self.policy, self.session = self._open(settings)
        if old.proxies != settings.proxies or (policy_changed and self.proxies is not None):
            if self.proxies is not None:  # closed with the fetcher, as a retired session is
                self._retired_pools.append(self.proxies)
            self.proxies = self._proxy_pool(settings)
        self.session.headers["User-Agent"] = settings.full_user_agent
        self.tls.use(settings.tls_insecure_hosts)
        self.identity.use(settings)

    def ssl_for(self, url: str) -> ssl.SSLContext | bool:
        """A request's ``ssl=``: verified, unless ``tls_insecure_hosts`` names its host."""
        return self.tls.for_host(urlsplit(url).netloc.rpartition("@")[2])

    async def close(self) -> None:
        for session in (*self._retired, self.session):
            await session.close()
        self._retired.clear()
        for pool in (*self._retired_pools, *([self.proxies] if self.proxies else [])):
            await pool.close()
        self._retired_pools.clear()
        await self._resolver.close()

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def get(self, url: str, *, follow_redirects: bool = False,
                  max_redirects: int | None = None, max_body: int | None = None,
                  keep_first: int | None = None,
                  before_hop: Callable[[str], Awaitable[None]] | None = None,
                  headers: dict[str, str] | None = None) -> Response:
        """GET one URL, through its host's proxy if there are proxies (``_get``)."""
        if self.proxies is None:
            return await self._get(url, None, follow_redirects, max_redirects, max_body,
                                   keep_first, before_hop, headers)
        error: errors.FetchError = errors.ConnectError("no proxy")
        for route in self.proxies.routes(url):  # the next only while proxies are down
            try:
                return await self._get(url, route, follow_redirects, max_redirects, max_body,
                                       keep_first, before_hop, headers)
            except errors.FetchError as exc:
                if not (exc.__cause__ and is_proxy_down(exc.__cause__)):
                    raise
                error = exc
        raise error

    async def _get(self, url: str, route: Route | None, follow_redirects: bool,
                   max_redirects: int | None, max_body: int | None, keep_first: int | None,
                   before_hop: Callable[[str], Awaitable[None]] | None,
                   headers: dict[str, str] | None) -> Response:
        """GET one URL. Raises a FetchError subclass; any HTTP status is a Response.

        Without ``follow_redirects`` a redirect is an answer (``redirect_to``);
        with it, up to ``max_redirects`` hops are followed, each one checked.
        ``headers``: sent besides the session's (a revisit's conditional ones).
        ``keep_first``: instead of raising TooLarge past ``max_body``, read at
        most this many bytes (and one more, to know whether more follow), stop
        reading, close the connection, and return them with ``truncated`` set.
        ``before_hop``: awaited with each redirect target before it is
        requested (robots.txt: the target host's politeness turn), within
        the total timeout.
        """
        hops = (self.settings.max_redirects if max_redirects is None else max_redirects) \
            if follow_redirects else 0
        cap = self.settings.max_body_bytes if max_body is None else max_body
        started = time.monotonic()
        current = url
        visited = {url}
        try:
            async with asyncio.timeout(self.settings.total_timeout + 1):
                for _hop in range(hops + 1):
                    check_literal_address(current, self.policy)
                    if route is not None:
                        await route.check_target(current)
                    async with (route.session if route else self.session).get(
                            current, allow_redirects=False, headers=headers,
                            timeout=self.timeout, proxy=route.proxy_arg if route else None,
                            ssl=self.ssl_for(current)) as resp:
                        if route is not None:
                            route.answered(resp.status)
                        if resp.status in REDIRECT_STATUSES and "Location" in resp.headers:
                            target = redirect_target(current, resp.headers["Location"],
                                                     resp.status)
                            if follow_redirects:
                                if target in visited:
                                    raise errors.RedirectError(f"redirect loop at {target}")
                                visited.add(target)
                                if before_hop is not None:
                                    await before_hop(target)
                                current = target
                                continue
                            body = await _read_redirect_body(resp)
                            return _response(url, current, resp, body, started, target)
                        if keep_first is not None:
                            body, cut = await _read_first(resp, keep_first)
                            got = _response(url, current, resp, body, started)
                            got.truncated = cut
                            return got
                        body = await _read_capped(resp, cap)
                        return _response(url, current, resp, body, started)
        except Exception as exc:
            error = socks_error(exc) or classify(exc)
            if route is not None:
                route.failed(error, exc)
            raise error from exc
        raise errors.RedirectError(f"more than {hops} redirects")


class _Unclosed(AbstractResolver):
    """The fetcher's resolver as a session sees it: closing a session leaves it open.

    A policy change retires a session while the next one goes on with the same
    resolver (and its cache); ``Fetcher.close`` closes the resolver itself.
    """

    def __init__(self, inner: AbstractResolver) -> None:
        self.inner = inner

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        return await self.inner.resolve(host, port, family)

    async def close(self) -> None:
        pass


def redirect_target(current: str, location: str, status: int | None = None) -> str:
    """A Location header resolved against the URL that sent it, canonical.

    The same joining rule as links (``crawler.urls.resolve``). Raises
    RedirectError for a target that is not an http(s) URL we can crawl.
    """
    try:
        target = resolve(current, location)
    except (errors.InvalidURL, ValueError) as exc:
        raise errors.RedirectError(f"redirect to an unusable URL ({exc}): {location[:200]!r}",
                                   status=status) from None
    return target


def _response(url: str, final_url: str, resp: aiohttp.ClientResponse, body: bytes,
              started: float, redirect_to: str | None = None) -> Response:
    return Response(url=url, final_url=final_url, status=resp.status, content_type=_mime(resp),
                    charset=resp.charset, body=body, headers=_keep_headers(resp.headers),
                    elapsed=time.monotonic() - started, redirect_to=redirect_to,
                    header_lists=_keep_header_lists(resp.headers),
                    raw_headers=resp.raw_headers, reason=resp.reason or "",
                    request_headers=_as_sent_to_target(resp.request_info.headers))


def _as_sent_to_target(headers: Mapping[str, str]) -> Mapping[str, str]:
    """The request's headers without Proxy-Authorization, which aiohttp puts among them
    for a plain-http target through a proxy with credentials: it is for the proxy, and
    must not reach a WARC request record."""
    if "Proxy-Authorization" not in headers:
        return headers
    return {k: v for k, v in headers.items() if k.lower() != "proxy-authorization"}


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


async def _read_first(resp: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    """The first ``limit`` bytes of the body, and whether more followed.

    Reads ``limit + 1`` bytes at most, whatever the body's length (declared or
    endless).
    """
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await resp.content.read(min(CHUNK, limit + 1 - size))
        if not chunk:
            break
        size += len(chunk)
        chunks.append(chunk)
    if size > limit:
        resp.close()  # the rest is never read: drop the connection rather than drain it
    body = b"".join(chunks)
    return body[:limit], size > limit


async def _read_redirect_body(resp: aiohttp.ClientResponse) -> bytes:
    """A redirect's body, if small: reading it lets the connection be reused."""
    try:
        return await _read_capped(resp, REDIRECT_BODY_BYTES)
    except (errors.TooLarge, aiohttp.ClientError, ValueError):
        return b""


def _mime(resp: aiohttp.ClientResponse) -> str | None:
    if "Content-Type" not in resp.headers:
        return None
    return resp.content_type.lower()


_KEPT_HEADERS = ("Retry-After", "Content-Type", "Location", "ETag", "Last-Modified")
_KEPT_HEADER_LISTS = ("X-Robots-Tag", "Link")


def _keep_headers(headers: Any) -> dict[str, str]:
    return {h: headers[h] for h in _KEPT_HEADERS if h in headers}


def _keep_header_lists(headers: Any) -> dict[str, list[str]]:
    """Headers that may come more than once, each value kept apart (X-Robots-Tag, Link)."""
    return {h: headers.getall(h) for h in _KEPT_HEADER_LISTS if h in headers}

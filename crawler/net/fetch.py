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
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver

from crawler import errors
from crawler.config import Settings
from crawler.net.guard import AddressPolicy, Blocked, GuardedResolver, check_literal_address
from crawler.net.inflate import use_fast_inflate
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

    ``resolver`` replaces the system resolver under the guard (tests use a stub).
    ``use`` applies changed crawl settings (``crawl config set``) from the next
    request on; every request reads ``session`` and ``timeout`` when it starts.
    """

    def __init__(self, settings: Settings, *, resolver: AbstractResolver | None = None) -> None:
        self.settings = settings
        self._resolver = resolver
        self.inflate = use_fast_inflate()  # zlib-ng if installed: gzip is most pages' cost
        self.timeout = client_timeout(settings)
        self.policy, self.session = self._open(settings)
        self._retired: list[aiohttp.ClientSession] = []

    def _open(self, settings: Settings) -> tuple[AddressPolicy, aiohttp.ClientSession]:
        policy = AddressPolicy(settings.allow_private, settings.allow_cidrs)
        connector = aiohttp.TCPConnector(
            limit=settings.concurrency, limit_per_host=0, ttl_dns_cache=300,
            resolver=GuardedResolver(policy, self._resolver), ssl=ssl.create_default_context(),
        )
        session = aiohttp.ClientSession(
            connector=connector, timeout=client_timeout(settings),
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": settings.full_user_agent,
                     "Accept": ACCEPT},
            auto_decompress=True, trust_env=False, raise_for_status=False)
        return policy, session

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
        if (old.allow_private, old.allow_cidrs) != (settings.allow_private,
                                                    settings.allow_cidrs):
            self._retired.append(self.session)
            self.policy, self.session = self._open(settings)
        self.session.headers["User-Agent"] = settings.full_user_agent

    async def close(self) -> None:
        for session in (*self._retired, self.session):
            await session.close()
        self._retired.clear()

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def get(self, url: str, *, follow_redirects: bool = False,
                  max_redirects: int | None = None, max_body: int | None = None,
                  keep_first: int | None = None,
                  before_hop: Callable[[str], Awaitable[None]] | None = None,
                  headers: dict[str, str] | None = None) -> Response:
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
                    async with self.session.get(current, allow_redirects=False,
                                                headers=headers, timeout=self.timeout) as resp:
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
            raise classify(exc) from exc
        raise errors.RedirectError(f"more than {hops} redirects")


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
                    request_headers=resp.request_info.headers)


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


def classify(exc: BaseException) -> errors.FetchError:
    """Map aiohttp and socket errors onto our error types (re-raises anything else)."""
    if isinstance(exc, errors.FetchError):
        return exc
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        if isinstance(exc.os_error, Blocked):
            return errors.BlockedAddress(str(exc.os_error))
        return errors.DNSError(f"DNS lookup failed: {exc.os_error}")
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError
                  | aiohttp.ServerFingerprintMismatch):
        return errors.TLSError(f"TLS handshake failed: {exc}")
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError
                  | aiohttp.RedirectClientError):
        return errors.BadContent(f"aiohttp refused the URL: {exc}")  # retrying cannot help
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


def _mime(resp: aiohttp.ClientResponse) -> str | None:
    if "Content-Type" not in resp.headers:
        return None
    return resp.content_type.lower()


_KEPT_HEADERS = ("Retry-After", "Content-Type", "Location", "ETag", "Last-Modified")
_KEPT_HEADER_LISTS = ("X-Robots-Tag",)


def _keep_headers(headers: Any) -> dict[str, str]:
    return {h: headers[h] for h in _KEPT_HEADERS if h in headers}


def _keep_header_lists(headers: Any) -> dict[str, list[str]]:
    """Headers that may come more than once, each value kept apart (X-Robots-Tag)."""
    return {h: headers.getall(h) for h in _KEPT_HEADER_LISTS if h in headers}

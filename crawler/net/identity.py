"""The identity each request presents: configured headers and credentials, per host.

Applied as an aiohttp client middleware, so every request of the fetcher's
session gets them (pages, robots.txt, sitemaps), each decided by the URL it
goes to: the crawl's ``headers``, then the longest matching
``[hosts."pattern".headers]`` table over them, then ``Authorization`` from
the longest matching ``[auth."pattern"]``, and only for a host under that
pattern. Redirects are never followed inside aiohttp (every hop is a request
of its own), so credentials are never carried to another host by a redirect.

Credentials are secrets: never logged, and redacted (``[redacted]``) in the
request headers a WARC file keeps (``redacted_headers``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from crawler.config import Settings
from crawler.net.tls import host_matches

if TYPE_CHECKING:
    from aiohttp import ClientHandlerType, ClientRequest, ClientResponse

log = logging.getLogger("crawler.identity")

REDACTED = "[redacted]"
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization"})
"""Request headers whose values no record, log or WARC file keeps."""


def host_port(host: str | None, port: int | None) -> str:
    return f"{host}:{port}" if port is not None else str(host)


class Identity:
    """Headers and credentials for each request, from the current settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._plain_warned: set[str] = set()

    def use(self, settings: Settings) -> None:
        """Changed settings (``crawl config set headers=...``), from the next request on."""
        self.settings = settings

    def headers_for(self, host: str, scheme: str = "https") -> dict[str, str]:
        """What a request to ``host`` (``name:port``) carries besides the defaults."""
        settings = self.settings
        sent = dict(settings.headers)
        pattern = host_matches(host, settings.host_headers) if settings.host_headers else None
        if pattern is not None:
            lowered = {k.lower(): k for k in sent}
            for name, value in settings.host_headers[pattern].items():
                sent.pop(lowered.get(name.lower(), name), None)
                sent[name] = value
        credential_pattern = host_matches(host, settings.auth) if settings.auth else None
        if credential_pattern is not None:
            if scheme != "https" and host not in self._plain_warned:
                self._plain_warned.add(host)
                log.warning("credentials for %r are sent to %s over plain http",
                            credential_pattern, host)
            sent["Authorization"] = settings.auth[credential_pattern].authorization()
        return sent

    async def middleware(self, request: ClientRequest,
                         handler: ClientHandlerType) -> ClientResponse:
        """aiohttp client middleware: set this request's headers, then send it."""
        if self.settings.headers or self.settings.host_headers or self.settings.auth:
            url = request.url
            for name, value in self.headers_for(host_port(url.host, url.port),
                                                url.scheme).items():
                request.headers[name] = value
        return await handler(request)


def redacted_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """``headers`` with every credential's value replaced by ``[redacted]``."""
    return [(name, REDACTED if name.lower() in SECRET_HEADERS else value)
            for name, value in headers]

"""Errors, on one screen.

CrawlError
├── ConfigError            a setting has a bad value (names the key)
├── InvalidURL             not an absolute http(s) URL we can crawl
├── RedisUnavailable       cannot reach the Redis/Valkey server (names the URL)
├── ServerError            the embedded Valkey failed to start or stop
└── FetchError             one fetch failed; becomes a result's ``error``
    ├── Timeout            connect, read or total timeout       (retried)
    ├── ConnectError       refused, reset, DNS failure, TLS     (retried except DNS/TLS)
    │   └── TLSError         handshake failed (tls_error); its TLSCertificateError:
    │                        certificate rejected (tls_certificate: expired, wrong name,
    │                        self-signed / unknown issuer, said in the message)
    ├── HTTPStatusError    5xx, 408, 429                        (retried)
    ├── TooLarge           body over the size cap
    ├── RedirectError      loop, too many hops, non-http target
    ├── BlockedAddress     SSRF guard: private, loopback, metadata address
    ├── RenderError        the browser failed or crashed rendering a page (retried)
    ├── RobotsDisallowed   robots.txt forbids the URL
    ├── RobotsUnavailable  robots.txt unreachable for now: the host is held (retried)
    └── RobotsGaveUp       robots.txt unreachable through its retry budget; typed
                           as the underlying error (connect_error, timeout, ...)

``FetchError.type`` is the string that lands in the result record.
"""

from __future__ import annotations

import difflib


class CrawlError(Exception):
    """Base of every error the crawler raises on purpose."""


def cannot_write(path: object, exc: OSError) -> CrawlError:
    """``cannot write out/x.jsonl: its directory out does not exist``: an output file that
    could not be opened, with the reason a user can act on."""
    import errno
    import os

    parent = os.path.dirname(os.fspath(path)) if isinstance(path, str | os.PathLike) else ""
    if exc.errno == errno.ENOENT and parent and not os.path.isdir(parent):
        return CrawlError(f"cannot write {path}: its directory {parent} does not exist "
                          f"(make it, or write elsewhere)")
    return CrawlError(f"cannot write {path}: {exc.strerror}")


class ConfigError(CrawlError):
    """A setting is invalid: names it, what is wrong, and where it came from.

    ``origin``: the flag (``--concurrency``), the environment variable, or the
    file and line (``crawl.toml line 3``).
    """

    def __init__(self, key: str, message: str, origin: str = "", *,
                 show_key: bool = True) -> None:
        text = f"{key}: {message}" if show_key else message
        super().__init__(f"{origin}: {text}" if origin else text)
        self.key = key
        self.origin = origin

    @classmethod
    def unknown(cls, name: str, known: tuple[str, ...], origin: str, *,
                key: str | None = None) -> ConfigError:
        """``unknown setting 'concurrancy' (did you mean 'concurrency'?)``."""
        close = difflib.get_close_matches(name.lower(), known, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        where = f" in [{key}]" if key else ""
        return cls(key or name, f"unknown setting {name!r}{where}{hint}", origin, show_key=False)


class InvalidURL(CrawlError):
    """Not an absolute http(s) URL."""


class RedisUnavailable(CrawlError):
    """The frontier's Redis cannot be reached."""


class ServerError(CrawlError):
    """The embedded Valkey server could not be started or stopped."""


class FetchError(CrawlError):
    """A fetch failed. ``type`` goes in the result record; ``retry`` says if trying again helps.

    ``made_request``: False when the failure was decided before any request
    reached the host (blocked address, robots.txt), so the host's politeness
    delay for this URL is given back.
    """

    type = "fetch_error"
    retry = False
    made_request = True

    def __init__(self, message: str, *, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class Timeout(FetchError):
    type = "timeout"
    retry = True


class ConnectError(FetchError):
    type = "connect_error"
    retry = True


class DNSError(ConnectError):
    type = "dns_error"
    retry = False


class TLSError(ConnectError):
    type = "tls_error"
    retry = False


class TLSCertificateError(TLSError):
    """The server's certificate failed verification; the message says why in one line."""

    type = "tls_certificate"


class HTTPStatusError(FetchError):
    type = "http_status"
    retry = True


class TooLarge(FetchError):
    type = "too_large"


class RedirectError(FetchError):
    type = "redirect_error"


class BlockedAddress(FetchError):
    type = "blocked_address"
    made_request = False


class RenderError(FetchError):
    """The browser crashed, or failed to load a page it was given: another attempt,
    in a new browser if this one died, may succeed (crawler.net.browser)."""

    type = "render_error"
    retry = True


class RobotsDisallowed(FetchError):
    type = "robots_disallowed"
    made_request = False


class BadContent(FetchError):
    type = "bad_content"

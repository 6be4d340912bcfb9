"""What a failed fetch becomes: aiohttp's and the socket's exceptions as our error types.

Apart from ``fetch`` because the sitemap reader, which streams its own
bodies, maps its failures the same way, and the mapping is a table to read
on its own: each branch is an error type a record can carry (``error.type``).
"""

from __future__ import annotations

import asyncio
import re
import ssl

import aiohttp

from crawler import errors
from crawler.net import codecs
from crawler.net.dns import LookupFailed
from crawler.net.guard import Blocked
from crawler.net.tls import certificate_error


def classify(exc: BaseException) -> errors.FetchError:
    """Map aiohttp and socket errors onto our error types (re-raises anything else)."""
    if isinstance(exc, errors.FetchError):
        return exc
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        if isinstance(exc.os_error, Blocked):
            return errors.BlockedAddress(str(exc.os_error))
        failed = errors.DNSError(f"DNS lookup failed: {exc.os_error}")
        if isinstance(exc.os_error, LookupFailed):  # a timeout may pass; NXDOMAIN will not
            failed.retry = exc.os_error.retry
        return failed
    certificate = certificate_error(exc)
    if certificate is not None:
        return certificate
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError
                  | aiohttp.ServerFingerprintMismatch):
        return tls_failure(exc)
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError
                  | aiohttp.RedirectClientError):
        return errors.BadContent(f"aiohttp refused the URL: {exc}")  # retrying cannot help
    if isinstance(exc, TimeoutError | asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return errors.Timeout(f"timed out: {exc}" if str(exc) else "timed out")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return errors.ConnectError(f"cannot connect: {exc.os_error}")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return errors.ConnectError("server closed the connection without a full response")
    if isinstance(exc, aiohttp.ClientPayloadError) and codecs.is_decoding_error(exc):
        return errors.BadContent(f"body does not decode as its Content-Encoding says: {exc}"
                                 .replace("\n", " "))
    if isinstance(exc, aiohttp.ClientPayloadError):
        return errors.ConnectError(f"body cut short: {exc}")
    if isinstance(exc, aiohttp.ClientHttpProxyError):  # the proxy refused the CONNECT
        return errors.ConnectError(f"proxy answered {exc.status} {exc.message}")
    if isinstance(exc, aiohttp.ClientResponseError):
        return errors.BadContent(f"malformed response: {exc.message}")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return errors.ConnectError(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, ValueError | UnicodeError):
        return errors.BadContent(f"{type(exc).__name__}: {exc}")
    raise exc


_CONTEXT = re.compile(r" ssl:(<[^>]*>|default|True|False|None)(?= |$)")
"""aiohttp's connection key in its message: ``ssl:<ssl.SSLContext object at 0x7f...>``
or ``ssl:default`` (not ``host ssl:443``, a host named ssl)."""
PLAIN_TEXT_REPLY = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE"})
"""What OpenSSL calls a server's reply that is not TLS: 3.0 and 3.1, then 3.2 on."""


def tls_failure(exc: BaseException) -> errors.TLSError:
    """A failed handshake, without aiohttp's repr of our SSL context; a server that
    answered in plain text is said to be one (an https:// URL on an http port)."""
    inner = getattr(exc, "os_error", None)
    reason = getattr(inner, "reason", None) if isinstance(inner, ssl.SSLError) else None
    text = _CONTEXT.sub("", str(exc))
    if reason in PLAIN_TEXT_REPLY:
        text += " (the server did not answer in TLS: does this port speak plain HTTP?)"
    return errors.TLSError(f"TLS handshake failed: {text}")

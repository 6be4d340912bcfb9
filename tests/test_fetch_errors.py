"""Every exception aiohttp can raise becomes one of our error types, retried or not.

aioresponses stands in for the HTTP layer here (the one place a fake is the
right tool: no real server produces each of these exceptions on demand);
the frontier is the real Valkey, so the retry decisions are the worker's own.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Callable

import pytest
from aiohttp import client_exceptions as ce
from aiohttp.client_reqrep import ConnectionKey
from aioresponses import aioresponses
from redis.asyncio import Redis

from crawler import errors
from crawler.config import Settings
from crawler.frontier import Frontier
from crawler.net.fetch import Fetcher
from crawler.net.fetch_errors import classify
from crawler.worker import Worker

URL = "http://site.test/page"
KEY = ConnectionKey("site.test", 80, False, True, None, None, None)


def _request_info() -> None:
    return None


# (what aiohttp raises, our type, retried?)
CASES: list[tuple[Callable[[], BaseException], str, bool]] = [
    (lambda: ce.ClientConnectorDNSError(KEY, OSError(-2, "Name or service not known")),
     "dns_error", False),
    (lambda: ce.ClientConnectorCertificateError(KEY, ssl.SSLCertVerificationError("bad cert")),
     "tls_certificate", False),
    (lambda: ce.ClientConnectorSSLError(KEY, ssl.SSLError("handshake")), "tls_error", False),
    (lambda: ce.ServerFingerprintMismatch(b"a", b"b", "site.test", 443), "tls_error", False),
    (lambda: ce.ConnectionTimeoutError("connect"), "timeout", True),
    (lambda: ce.SocketTimeoutError("read"), "timeout", True),
    (lambda: ce.ServerTimeoutError("read"), "timeout", True),
    (lambda: TimeoutError(), "timeout", True),
    (lambda: ce.ClientConnectorError(KEY, ConnectionRefusedError(111, "refused")),
     "connect_error", True),
    (lambda: ce.ClientProxyConnectionError(KEY, OSError(111, "refused")), "connect_error", True),
    (lambda: ce.ClientOSError(104, "reset"), "connect_error", True),
    (lambda: ce.ClientConnectionResetError("reset"), "connect_error", True),
    (lambda: ce.ServerDisconnectedError(), "connect_error", True),
    (lambda: ce.ClientPayloadError("cut short"), "connect_error", True),
    (lambda: ce.ClientResponseError(_request_info(), (), status=400, message="bad header"),
     "bad_content", False),
    (lambda: ce.ContentTypeError(_request_info(), (), message="no"), "bad_content", False),
    (lambda: ce.InvalidURL("http://[bad"), "bad_content", False),
    (lambda: ce.NonHttpUrlClientError("ftp://x"), "bad_content", False),
    (lambda: UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"), "bad_content", False),
]
IDS = [type(make()).__name__ for make, _, _ in CASES]


@pytest.mark.parametrize(("make", "error_type", "retried"), CASES, ids=IDS)
async def test_each_aiohttp_exception_is_classified(
        settings: Settings, make: Callable[[], BaseException], error_type: str,
        retried: bool) -> None:
    with aioresponses() as mocked:
        mocked.get(URL, exception=make())
        async with Fetcher(settings) as fetcher:
            with pytest.raises(errors.FetchError) as caught:
                await fetcher.get(URL)
    assert (caught.value.type, caught.value.retry) == (error_type, retried)


def test_an_exception_we_do_not_know_is_not_swallowed() -> None:
    with pytest.raises(KeyError):
        classify(KeyError("a bug of ours"))


@pytest.mark.parametrize(("make", "error_type", "retried"), CASES, ids=IDS)
async def test_the_worker_retries_exactly_the_retryable_ones(
        redis: Redis, settings: Settings, make: Callable[[], BaseException], error_type: str,
        retried: bool) -> None:
    settings = settings.replace(obey_robots=False, max_attempts=3, backoff_base=0.01,
                                backoff_max=0.02)
    frontier = Frontier(redis, settings)
    await frontier.add([(URL, 0)])
    with aioresponses(passthrough_unmatched=False) as mocked:
        mocked.get(URL, exception=make(), repeat=True)
        worker = Worker(redis, settings)
        async with asyncio.timeout(20):
            await worker.run()
    [(_, fields)] = await redis.xrange(frontier.shards[0].results)
    record = json.loads(fields["r"])
    assert record["error"]["type"] == error_type
    assert record["attempts"] == (3 if retried else 1)
    assert worker.counters.retries == (2 if retried else 0)


@pytest.mark.parametrize("reason", ["WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE"])
def test_a_tls_failure_drops_aiohttps_context_repr_and_keeps_the_host(reason: str) -> None:
    """OpenSSL 3.0 says WRONG_VERSION_NUMBER for a reply that is not TLS, 3.2 on
    RECORD_LAYER_FAILURE; a host named "ssl" keeps its name."""
    inner = ssl.SSLError(1, f"[SSL: {reason}] ({reason.lower()})")
    inner.reason = reason  # what the ssl module sets on a real handshake failure
    key = ConnectionKey("ssl", 443, True, True, None, None, None)
    error = classify(ce.ClientConnectorSSLError(key, inner))
    assert error.type == "tls_error"
    assert "host ssl:443" in str(error) and "ssl:default" not in str(error)
    assert str(error).endswith("does this port speak plain HTTP?)")

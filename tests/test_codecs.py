"""Content codings against a real local server: each coding decoded, a server that
lies about its coding, a bomb per coding, and Accept-Encoding equal to what decodes."""

from __future__ import annotations

import functools
import gzip
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import brotli
import pytest
from aiohttp import web
from crawl_helpers import crawl
from redis.asyncio import Redis

from crawler.bench.sitegen import free_port
from crawler.config import Settings
from crawler.net.codecs import accept_encoding, decodable
from crawler.net.fetch import Fetcher

try:
    from compression import zstd  # type: ignore[import-not-found]  # Python 3.14
except ImportError:
    from backports import zstd

PAGE = b"<html><head><title>coded</title></head><body>" + b"word " * 4000 + b"</body></html>"
CAP = 1024 * 1024
BOMB_BYTES = 64 * 1024 * 1024
"""What each bomb decodes to: 64 times the cap, from a few KB on the wire."""

ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": lambda data: gzip.compress(data, compresslevel=1),
    "deflate": lambda data: zlib.compress(data, 1),  # zlib-wrapped, as HTTP's deflate is
    "br": lambda data: brotli.compress(data, quality=1),
    "zstd": lambda data: zstd.compress(data, 1),
}


@functools.cache
def bombs() -> dict[str, bytes]:
    """BOMB_BYTES of zeros in each coding, made once for the module."""
    zeros = bytes(BOMB_BYTES)
    return {"gzip": gzip.compress(zeros, compresslevel=9), "deflate": zlib.compress(zeros, 9),
            "br": brotli.compress(zeros, quality=5), "zstd": zstd.compress(zeros, 3)}


class CodingServer:
    """Serves /{coding}/page compressed, /lie/{said}/{sent} mislabelled, /bomb/{coding}."""

    def __init__(self) -> None:
        self.accept_encodings: list[str] = []
        self.bombs = bombs()
        self.base = ""

    async def page(self, request: web.Request) -> web.Response:
        coding = request.match_info["coding"]
        self.accept_encodings.append(request.headers.get("Accept-Encoding", ""))
        offered = [c.strip() for c in request.headers.get("Accept-Encoding", "").split(",")]
        if coding not in offered:  # a real server sends only what was offered
            return web.Response(body=PAGE, content_type="text/html")
        return web.Response(body=ENCODERS[coding](PAGE), content_type="text/html",
                            headers={"Content-Encoding": coding})

    async def lie(self, request: web.Request) -> web.Response:
        said, sent = request.match_info["said"], request.match_info["sent"]
        body = ENCODERS[sent](PAGE) if sent in ENCODERS else b"\x00not compressed\xff" * 50
        return web.Response(body=body, content_type="text/html",
                            headers={"Content-Encoding": said})

    async def bomb(self, request: web.Request) -> web.Response:
        coding = request.match_info["coding"]
        return web.Response(body=self.bombs[coding], content_type="text/html",
                            headers={"Content-Encoding": coding})


@pytest.fixture
async def server() -> AsyncIterator[CodingServer]:
    coding = CodingServer()
    app = web.Application()
    app.router.add_get("/lie/{said}/{sent}", coding.lie)
    app.router.add_get("/bomb/{coding}", coding.bomb)
    app.router.add_get("/{coding}/page", coding.page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port("127.0.0.2")
    await web.TCPSite(runner, "127.0.0.2", port).start()
    coding.base = f"http://127.0.0.2:{port}"
    yield coding
    await runner.cleanup()


@pytest.fixture
def coding_settings(settings: Settings) -> Settings:
    return settings.replace(obey_robots=False, max_body_bytes=CAP, max_attempts=3,
                            backoff_base=0.01, backoff_max=0.05)


def error_type(record: dict[str, Any]) -> str | None:
    return record["error"]["type"] if record["error"] else None


def test_every_coding_is_decodable_once_installed() -> None:
    assert decodable() == ("gzip", "deflate", "br", "zstd")
    assert accept_encoding() == "gzip, deflate, br, zstd"


@pytest.mark.parametrize("coding", list(ENCODERS))
async def test_each_coding_is_offered_and_decoded(
        redis: Redis, coding_settings: Settings, server: CodingServer, coding: str) -> None:
    url = f"{server.base}/{coding}/page"
    server.accept_encodings.clear()
    record = (await crawl(redis, coding_settings, [url]))[url]
    assert record["error"] is None and record["status"] == 200
    assert record["title"] == "coded"
    assert server.accept_encodings == [accept_encoding()]  # exactly what decodes, once


@pytest.mark.parametrize(("said", "sent"), [("br", "gzip"), ("zstd", "garbage"),
                                            ("gzip", "garbage"), ("deflate", "br")])
async def test_a_server_lying_about_its_coding_is_bad_content_not_retried(
        redis: Redis, coding_settings: Settings, server: CodingServer, said: str,
        sent: str) -> None:
    url = f"{server.base}/lie/{said}/{sent}"
    record = (await crawl(redis, coding_settings, [url]))[url]
    assert error_type(record) == "bad_content", record
    assert "Content-Encoding says" in record["error"]["message"]
    assert said in record["error"]["message"]
    assert record["attempts"] == 1  # the same bytes would come again


@pytest.mark.parametrize("coding", list(ENCODERS))
async def test_a_bomb_in_each_coding_is_too_large_without_being_held(
        coding_settings: Settings, server: CodingServer, coding: str) -> None:
    wire = len(server.bombs[coding])
    assert wire < CAP // 4  # small on the wire: only the decoded size can catch it
    tracemalloc.start()
    try:
        async with Fetcher(coding_settings) as fetcher:
            with pytest.raises(Exception) as caught:
                await fetcher.get(f"{server.base}/bomb/{coding}")
            control = await fetcher.get(f"{server.base}/{coding}/page")  # the same path works
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert getattr(caught.value, "type", None) == "too_large", caught.value
    assert "after decompression" in str(caught.value)
    assert peak < 8 * CAP, f"{coding}: {peak} bytes held for a {CAP} byte cap"
    assert control.status == 200 and b"coded" in control.body

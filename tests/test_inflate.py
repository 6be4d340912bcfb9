"""Inflating gzip bodies with zlib-ng (crawler.net.inflate), against a real local server.

The fetcher makes aiohttp inflate with zlib-ng; the body must come out the
same as with zlib, and the decompression-bomb cap must hold with it.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.compression_utils import ZLibBackend

from crawler import errors
from crawler.bench.sitegen import free_port
from crawler.bench.websitegen import WebSpec, web_page
from crawler.config import Settings
from crawler.net import inflate
from crawler.net.fetch import Fetcher
from crawler.pages.parse import parse_html

zlib_ng = pytest.importorskip("zlib_ng.zlib_ng", reason="zlib-ng is not installed")
SPEC = WebSpec(hosts=2, pages=4, port=8443)
PAGE, PAGE_GZ = web_page(SPEC, 1, 3)
BOMB = gzip.compress(b"\0" * 8_000_000)  # 8 MB of zeros in ~8 KB


@pytest.fixture
async def gzip_server() -> AsyncIterator[str]:
    async def page(_: web.Request) -> web.Response:
        return web.Response(body=PAGE_GZ, headers={"Content-Encoding": "gzip",
                                                   "Content-Type": "text/html; charset=utf-8"})

    async def bomb(_: web.Request) -> web.Response:
        return web.Response(body=BOMB, headers={"Content-Encoding": "gzip",
                                                "Content-Type": "text/html"})

    app = web.Application()
    app.router.add_get("/page", page)
    app.router.add_get("/bomb", bomb)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port("127.0.0.2")
    await web.TCPSite(runner, "127.0.0.2", port).start()
    try:
        yield f"http://127.0.0.2:{port}"
    finally:
        await runner.cleanup()
        inflate.use_fast_inflate()


def _settings() -> Settings:
    return Settings(allow_private=True, max_body_bytes=1_000_000)


async def test_the_fetcher_inflates_gzip_pages_with_zlib_ng_to_the_same_bytes(
        gzip_server: str) -> None:
    async with Fetcher(_settings()) as fetcher:
        assert fetcher.inflate == "zlib_ng.zlib_ng"
        assert ZLibBackend._zlib_backend is zlib_ng
        got = await fetcher.get(gzip_server + "/page")
    assert got.status == 200 and got.body == PAGE
    page = parse_html(got.body, f"{SPEC.origin(1)}/p/3.html", got.charset)
    assert (page.title, page.link_count) == ("Host 1 page 3 — «Ü»", SPEC.links)


async def test_the_decompression_bomb_cap_holds_with_zlib_ng(gzip_server: str) -> None:
    async with Fetcher(_settings()) as fetcher:
        assert ZLibBackend._zlib_backend is zlib_ng
        with pytest.raises(errors.TooLarge):
            await fetcher.get(gzip_server + "/bomb")


async def test_without_zlib_ng_the_standard_zlib_inflates(
        gzip_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inflate, "fast_zlib", lambda: None)
    import aiohttp

    aiohttp.set_zlib_backend(zlib)
    async with Fetcher(_settings()) as fetcher:
        assert fetcher.inflate == "zlib"
        got = await fetcher.get(gzip_server + "/page")
        with pytest.raises(errors.TooLarge):
            await fetcher.get(gzip_server + "/bomb")
    assert got.body == PAGE

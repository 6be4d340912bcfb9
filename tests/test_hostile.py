"""Hostile servers: each one ends as one result record, and the worker finishes.

Every test crawls a real local server on a loopback address with a real
worker against a real Valkey; ``crawl`` fails if the worker stalls.
"""

from __future__ import annotations

import io
import json
import ssl
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trustme
from aiohttp import web
from crawl_helpers import crawl
from hostile_server import PAGE_CHARSET_TITLES, HostileServer
from redis.asyncio import Redis

from crawler.bench.sitegen import free_port
from crawler.config import Settings
from crawler.net.fetch import Fetcher
from crawler.results.export import export

CAP = 1024 * 1024


@pytest.fixture
def hostile_settings(settings: Settings) -> Settings:
    return settings.replace(obey_robots=False, max_body_bytes=CAP, max_redirects=5,
                            connect_timeout=1.0, read_timeout=1.5, total_timeout=2.5)


@pytest.fixture
async def server() -> AsyncIterator[HostileServer]:
    async with HostileServer("127.0.0.2", big_bytes=4 * CAP) as s:
        yield s


async def crawl_one(redis: Redis, settings: Settings, url: str) -> dict[str, Any]:
    return (await crawl(redis, settings, [url]))[url]


def error_type(record: dict[str, Any]) -> str | None:
    return record["error"]["type"] if record["error"] else None


# -- time ----------------------------------------------------------------------


async def test_slow_drip_ends_in_total_timeout(redis: Redis, hostile_settings: Settings,
                                               server: HostileServer) -> None:
    # Each byte arrives well within read_timeout; only the total timeout can stop it.
    s = hostile_settings.replace(read_timeout=3.0, total_timeout=2.0, max_attempts=1)
    record = await crawl_one(redis, s, server.url("/drip"))
    assert error_type(record) == "timeout"
    assert record["attempts"] == 1


async def test_no_response_ends_in_timeout(redis: Redis, hostile_settings: Settings,
                                           server: HostileServer) -> None:
    s = hostile_settings.replace(max_attempts=1)
    record = await crawl_one(redis, s, server.url("/silent"))
    assert error_type(record) == "timeout"


# -- broken connections --------------------------------------------------------


async def test_reset_mid_body_is_a_connect_error_after_retries(
        redis: Redis, hostile_settings: Settings, server: HostileServer) -> None:
    record = await crawl_one(redis, hostile_settings, server.url("/reset"))
    assert error_type(record) == "connect_error"
    assert record["attempts"] == hostile_settings.max_attempts
    assert server.hits["/reset"] == hostile_settings.max_attempts


async def test_empty_reply_is_a_connect_error(redis: Redis, hostile_settings: Settings,
                                              server: HostileServer) -> None:
    record = await crawl_one(redis, hostile_settings, server.url("/empty"))
    assert error_type(record) == "connect_error"
    assert "without a full response" in record["error"]["message"]


async def test_connection_refused_is_a_connect_error(redis: Redis,
                                                     hostile_settings: Settings) -> None:
    url = f"http://127.0.0.2:{free_port('127.0.0.2')}/"
    record = await crawl_one(redis, hostile_settings, url)
    assert error_type(record) == "connect_error"
    assert record["attempts"] == hostile_settings.max_attempts


async def test_dns_failure_is_a_dns_error_without_retries(redis: Redis,
                                                          hostile_settings: Settings) -> None:
    record = await crawl_one(redis, hostile_settings, "http://no-such-host.invalid/")
    assert error_type(record) == "dns_error"
    assert record["attempts"] == 1


# -- size caps -------------------------------------------------------------------


async def test_declared_body_over_cap_is_too_large(redis: Redis, hostile_settings: Settings,
                                                   server: HostileServer) -> None:
    record = await crawl_one(redis, hostile_settings, server.url("/big-declared"))
    assert error_type(record) == "too_large"
    assert "Content-Length" in record["error"]["message"]


async def test_streamed_body_over_cap_is_too_large(redis: Redis, hostile_settings: Settings,
                                                   server: HostileServer) -> None:
    record = await crawl_one(redis, hostile_settings, server.url("/big-chunked"))
    assert error_type(record) == "too_large"


async def test_gzip_bomb_is_too_large(redis: Redis, hostile_settings: Settings,
                                      server: HostileServer) -> None:
    record = await crawl_one(redis, hostile_settings, server.url("/bomb"))
    assert error_type(record) == "too_large"
    assert "after decompression" in record["error"]["message"]


async def test_gzip_bomb_inflates_only_a_few_times_the_cap_in_memory(
        hostile_settings: Settings, server: HostileServer) -> None:
    # The bomb inflates to 128 MB; the cap (1 MB) applies while inflating.
    fetcher = Fetcher(hostile_settings)
    tracemalloc.start()
    try:
        with pytest.raises(Exception) as caught:
            await fetcher.get(server.url("/bomb"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await fetcher.close()
    assert type(caught.value).__name__ == "TooLarge"
    assert peak < 8 * CAP


# -- redirects -------------------------------------------------------------------


async def test_redirect_to_itself_is_a_loop(redis: Redis, hostile_settings: Settings,
                                            server: HostileServer) -> None:
    record = await crawl_one(redis, hostile_settings, server.url("/loop"))
    assert error_type(record) == "redirect_error"
    assert "itself" in record["error"]["message"] and record["status"] == 302


async def test_a_two_page_redirect_cycle_ends_where_it_meets_a_url_already_crawled(
        redis: Redis, hostile_settings: Settings, server: HostileServer) -> None:
    a, b = server.url("/loop-a"), server.url("/loop-b")
    records = await crawl(redis, hostile_settings, [a])
    assert (records[a]["status"], records[a]["redirect_to"]) == (302, b)
    assert (records[b]["status"], records[b]["redirect_to"]) == (302, a)
    assert records[a]["error"] is None and records[b]["error"] is None
    assert (server.hits["/loop-a"], server.hits["/loop-b"]) == (1, 1)  # each once, no loop


async def test_redirect_chain_past_the_limit_stops_at_the_limit(
        redis: Redis, hostile_settings: Settings, server: HostileServer) -> None:
    limit = hostile_settings.max_redirects
    records = await crawl(redis, hostile_settings, [server.url("/chain")])
    # /chain, /chain/1, ..., /chain/<limit>: each hop is a record of its own.
    assert len(records) == limit + 1
    last = records[server.url(f"/chain/{limit}")]
    assert error_type(last) == "redirect_error"
    assert f"more than {limit} redirects" in last["error"]["message"]
    assert last["redirect_to"] == server.url(f"/chain/{limit + 1}")
    assert all(error_type(r) is None for u, r in records.items() if r is not last)
    assert server.hits["/chain"] == limit + 1


@pytest.mark.parametrize("path", ["/to-ftp", "/to-javascript", "/to-file"])
async def test_redirect_to_non_http_scheme_is_refused(redis: Redis, hostile_settings: Settings,
                                                      server: HostileServer, path: str) -> None:
    record = await crawl_one(redis, hostile_settings, server.url(path))
    assert error_type(record) == "redirect_error"
    assert "unsupported scheme" in record["error"]["message"]


# -- content that lies -----------------------------------------------------------


async def test_binary_served_as_html_is_a_page_without_title(
        redis: Redis, hostile_settings: Settings, server: HostileServer) -> None:
    record = await crawl_one(redis, hostile_settings, server.url("/binary-as-html"))
    assert record["error"] is None
    assert record["status"] == 200 and record["content_type"] == "text/html"
    assert (record["title"], record["links"]) == (None, 0)


async def test_html_without_content_type_is_sniffed_and_parsed(
        redis: Redis, hostile_settings: Settings, server: HostileServer) -> None:
    found = await crawl(redis, hostile_settings, [server.url("/no-type-html")])
    record = found[server.url("/no-type-html")]
    assert record["content_type"] is None
    assert record["title"] == "untyped"
    assert server.url("/ok") in found  # its link was followed


async def test_binary_without_content_type_is_not_parsed(
        redis: Redis, hostile_settings: Settings, server: HostileServer) -> None:
    record = await crawl_one(redis, hostile_settings, server.url("/no-type-binary"))
    assert record["error"] is None
    assert record["title"] is None and record["links"] == 0


async def test_truncated_html_keeps_title_and_complete_links(
        redis: Redis, hostile_settings: Settings, server: HostileServer) -> None:
    found = await crawl(redis, hostile_settings, [server.url("/truncated")])
    record = found[server.url("/truncated")]
    assert record["title"] == "Half a page"
    assert found[server.url("/ok")]["title"] == "ok"


# -- titles and charsets ---------------------------------------------------------


async def test_title_keeps_rtl_marks_and_emoji_and_drops_control_characters(
        redis: Redis, hostile_settings: Settings, server: HostileServer) -> None:
    record = await crawl_one(redis, hostile_settings, server.url("/weird-title"))
    title = record["title"]
    assert "\x07" not in title and "\x1b" not in title
    assert "\u202e" in title and "\u200fשלום\u200f" in title and "🕷️🕸️" in title


async def test_export_escapes_a_hostile_title_to_plain_ascii(
        redis: Redis, hostile_settings: Settings, server: HostileServer) -> None:
    await crawl(redis, hostile_settings, [server.url("/weird-title")])
    out = io.StringIO()
    await export(redis, hostile_settings, out, progress=False)
    [line] = out.getvalue().splitlines()
    assert line.isascii() and line.isprintable()
    assert "\\u202e" in line
    assert json.loads(line)["title"].endswith("end")


@pytest.mark.parametrize("path", sorted(PAGE_CHARSET_TITLES))
async def test_title_in_declared_legacy_charset_decodes(
        redis: Redis, hostile_settings: Settings, server: HostileServer, path: str) -> None:
    record = await crawl_one(redis, hostile_settings, server.url(path))
    assert record["title"] == PAGE_CHARSET_TITLES[path][1]


async def test_undeclared_utf8_page_decodes_as_utf8(
        redis: Redis, hostile_settings: Settings, server: HostileServer) -> None:
    record = await crawl_one(redis, hostile_settings, server.url("/no-charset"))
    assert record["title"] == "Ünïcödé ✓"


async def test_undeclared_non_utf8_page_decodes_as_windows_1252(
        redis: Redis, hostile_settings: Settings, server: HostileServer) -> None:
    record = await crawl_one(redis, hostile_settings, server.url("/no-charset-latin1"))
    assert record["title"] == "Café"


# -- server errors -----------------------------------------------------------------


async def test_5xx_that_recovers_gives_one_result_on_the_third_attempt(
        redis: Redis, hostile_settings: Settings, server: HostileServer) -> None:
    found = await crawl(redis, hostile_settings, [server.url("/flaky")])
    record = found[server.url("/flaky")]
    assert record["error"] is None and record["status"] == 200
    assert record["attempts"] == 3
    assert server.hits["/flaky"] == 3


async def test_5xx_forever_is_an_error_after_max_attempts(
        redis: Redis, hostile_settings: Settings, server: HostileServer) -> None:
    record = await crawl_one(redis, hostile_settings, server.url("/down"))
    assert error_type(record) == "http_status"
    assert record["status"] == 500
    assert record["attempts"] == hostile_settings.max_attempts
    assert server.hits["/down"] == hostile_settings.max_attempts


# -- TLS -------------------------------------------------------------------------


@pytest.fixture
async def untrusted_tls_url() -> AsyncIterator[str]:
    """An https server on 127.0.0.2 whose certificate no system CA signed."""
    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.2").configure_cert(ctx)

    async def hello(_: web.Request) -> web.Response:
        return web.Response(text="<title>secret</title>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port("127.0.0.2")
    await web.TCPSite(runner, "127.0.0.2", port, ssl_context=ctx).start()
    yield f"https://127.0.0.2:{port}/"
    await runner.cleanup()


async def test_an_untrusted_certificate_is_a_tls_certificate_error(
        redis: Redis, hostile_settings: Settings, untrusted_tls_url: str) -> None:
    record = await crawl_one(redis, hostile_settings, untrusted_tls_url)
    assert error_type(record) == "tls_certificate"
    assert record["error"]["message"].startswith("unknown issuer")
    assert record["attempts"] == 1
    assert record["title"] is None


async def test_all_hostile_pages_in_one_crawl_finish_with_one_result_each(
        redis: Redis, hostile_settings: Settings, server: HostileServer) -> None:
    paths = ["/silent", "/reset", "/empty", "/big-chunked", "/bomb", "/loop", "/chain",
             "/to-ftp", "/binary-as-html", "/truncated", "/weird-title", "/down", "/ok"]
    s = hostile_settings.replace(max_per_host=16, max_attempts=1)
    found = await crawl(redis, s, [server.url(p) for p in paths])
    assert {server.url(p) for p in paths} <= set(found)
    assert found[server.url("/ok")]["title"] == "ok"

"""WARC capture of redirect chains and of revisits, as they happened on the wire.

A loopback site logs every request's headers as it received them. A crawl with
``recrawl = true`` follows a redirect chain (/ -> /a -> /b); then every URL is
revisited (``requeue``, as ``crawl recrawl --older-than 0s`` does). The WARC
files are read back with warcio: each hop of each visit has its response and
request records, each request record holds exactly the headers the server
received (a revisit's If-None-Match / If-Modified-Since among them), and a
304 is a ``revisit`` record (profile server-not-modified) that refers to the
URL's previous visit.
"""

from __future__ import annotations

import asyncio
import io
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from crawl_helpers import results
from politeness_site import Site
from redis.asyncio import Redis
from warcio.archiveiterator import ArchiveIterator

from crawler.config import Settings
from crawler.discovery.recrawl import requeue
from crawler.discovery.seeds import seed
from crawler.pages.warc import NOT_MODIFIED_PROFILE
from crawler.worker import Worker

IP = "127.0.0.2"
LAST_MODIFIED = "Sun, 01 Nov 2026 00:00:00 GMT"


class ChainSite:
    """/ -> 301 /a -> 302 /b; /b has an ETag, /c a Last-Modified, /d an ETag that changes."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[tuple[str, str]]]] = []
        self.d_version = 1

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/robots.txt":
            return web.Response(status=404)
        self.received.append((request.path, [(k.decode("latin-1"), v.decode("latin-1"))
                                             for k, v in request.raw_headers]))
        if request.path == "/":
            raise web.HTTPMovedPermanently("/a")
        if request.path == "/a":
            raise web.HTTPFound("/b")
        validators = {"/b": ("ETag", '"b1"', "If-None-Match"),
                      "/c": ("Last-Modified", LAST_MODIFIED, "If-Modified-Since"),
                      "/d": ("ETag", f'"d{self.d_version}"', "If-None-Match")}
        if request.path not in validators:
            return web.Response(status=404)
        name, value, conditional = validators[request.path]
        if request.headers.get(conditional) == value:
            return web.Response(status=304, headers={name: value})
        links = '<a href="/c">c</a><a href="/d">d</a>' if request.path == "/b" else ""
        return web.Response(text=f"<html><title>{request.path}</title>{links}</html>",
                            content_type="text/html", headers={name: value})


def warc_records(directory: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted(directory.glob("*.warc.gz")):
        with open(path, "rb") as fh:
            for record in ArchiveIterator(fh):
                if record.rec_type == "warcinfo":
                    continue
                http = record.http_headers
                out.append({"type": record.rec_type, "warc": record.rec_headers,
                            "uri": record.rec_headers.get_header("WARC-Target-URI"),
                            "status": http.get_statuscode() if record.rec_type != "request"
                            else None,
                            "headers": list(http.headers),
                            "line": f"{http.protocol} {http.statusline}",
                            "payload": record.content_stream().read()})
    return out


async def crawl_once(redis: Redis, settings: Settings) -> None:
    async with asyncio.timeout(60):
        await Worker(redis, settings).run()


async def test_redirect_hops_and_revisits_are_recorded_as_sent_and_received(
        redis: Redis, settings: Settings, tmp_path: Path) -> None:
    warc_dir = tmp_path / "warc"
    settings = settings.replace(recrawl=True, warc_dir=str(warc_dir))
    server = ChainSite()
    with Site(server, ips=(IP,)) as site:
        await seed(redis, settings, io.BytesIO(site.url(IP, "/").encode()))
        await crawl_once(redis, settings)
        first_visit = len(server.received)
        server.d_version = 2  # /d changed since
        assert await requeue(redis, settings, 0) == 5
        await crawl_once(redis, settings)
    url = {path: site.url(IP, path) for path in ("/", "/a", "/b", "/c", "/d")}
    assert sorted(p for p, _ in server.received[:first_visit]) == sorted(url)
    assert len(server.received) == 2 * first_visit == 10

    records = warc_records(warc_dir)
    captures = [r for r in records if r["type"] != "request"]
    requests = [r for r in records if r["type"] == "request"]
    assert len(captures) == len(requests) == 10  # every hop of both visits, nothing else
    by_id = {r["warc"].get_header("WARC-Record-ID"): r for r in captures}
    # Each request record: exactly the headers the server received, in order.
    for path in url:
        received = [headers for p, headers in server.received if p == path]
        recorded = [r for r in requests if r["uri"] == url[path]]
        assert [r["headers"] for r in recorded] == received, path
        assert all(r["line"] == f"GET {path} HTTP/1.1" for r in recorded)
        assert [by_id[r["warc"].get_header("WARC-Concurrent-To")]["uri"] for r in recorded] \
            == [url[path]] * 2

    def capture(path: str, visit: int) -> dict[str, Any]:
        return [r for r in captures if r["uri"] == url[path]][visit - 1]

    def sent(path: str, visit: int) -> dict[str, str]:
        return dict([r for r in requests if r["uri"] == url[path]][visit - 1]["headers"])

    for visit in (1, 2):  # the chain, hop by hop, each visit
        assert capture("/", visit)["status"] == "301" and capture("/a", visit)["status"] == "302"
        assert ("Location", "/a") in capture("/", visit)["headers"]
        assert ("Location", "/b") in capture("/a", visit)["headers"]
        assert {"If-None-Match", "If-Modified-Since"}.isdisjoint(sent("/", visit))
    first_b = capture("/b", 1)
    assert first_b["type"] == "response" and first_b["payload"].startswith(b"<html><title>/b")
    assert sent("/b", 2)["If-None-Match"] == '"b1"'
    assert sent("/c", 2)["If-Modified-Since"] == LAST_MODIFIED
    assert sent("/d", 2)["If-None-Match"] == '"d1"'
    assert "If-None-Match" not in sent("/b", 1) and "If-Modified-Since" not in sent("/c", 1)
    for path in ("/b", "/c"):  # unchanged: 304, a revisit record referring to visit 1
        revisit = capture(path, 2)
        assert (revisit["type"], revisit["status"], revisit["payload"]) == ("revisit", "304", b"")
        validator = ("ETag", '"b1"') if path == "/b" else ("Last-Modified", LAST_MODIFIED)
        assert validator in revisit["headers"]  # the 304's headers, as the server sent them
        assert "Content-Length" not in dict(revisit["headers"])  # none sent, none invented
        warc = revisit["warc"]
        assert warc.get_header("WARC-Profile") == NOT_MODIFIED_PROFILE
        assert warc.get_header("WARC-Refers-To-Target-URI") == url[path]
        refers = warc.get_header("WARC-Refers-To-Date")
        first_date = capture(path, 1)["warc"].get_header("WARC-Date")
        assert first_date[:19] <= refers[:19] <= warc.get_header("WARC-Date")[:19]
        assert datetime.fromisoformat(refers).tzinfo is not None
    changed = capture("/d", 2)
    assert (changed["type"], changed["status"]) == ("response", "200")
    assert changed["payload"].startswith(b"<html><title>/d")

    # Each result names its own record: the 304s' records are the revisits.
    for record in await results(redis, settings):
        path = record["url"].split(str(site.port), 1)[1]
        with open(warc_dir / record["warc_file"], "rb") as fh:  # noqa: ASYNC230 - a test
            fh.seek(record["warc_offset"])
            found = next(iter(ArchiveIterator(fh)))
        assert found.rec_headers.get_header("WARC-Target-URI") == url[path]
        assert found.rec_type == ("revisit" if record["status"] == 304 else "response")
        assert found.http_headers.get_statuscode() == str(record["status"])


async def test_a_304_after_a_failed_visit_refers_to_the_capture_that_holds_the_page(
        redis: Redis, settings: Settings, tmp_path: Path) -> None:
    # Visits 200 -> 503 (maintenance) -> 304: the revisit record must point at
    # the first capture, exactly, or a replay shows the maintenance page.
    warc_dir = tmp_path / "warc"
    settings = settings.replace(recrawl=True, warc_dir=str(warc_dir), max_attempts=1)
    answers = ["ok", "maintenance", "ok"]

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.path == "/robots.txt":
            return web.Response(status=404)
        if answers.pop(0) == "maintenance":
            return web.Response(status=503, text="down for maintenance",
                                headers={"Retry-After": "0"})
        if request.headers.get("If-None-Match") == '"v1"':
            return web.Response(status=304, headers={"ETag": '"v1"'})
        return web.Response(text="<html><title>page</title></html>", content_type="text/html",
                            headers={"ETag": '"v1"'})

    with Site(handle, ips=(IP,)) as site:
        await seed(redis, settings, io.BytesIO(site.url(IP, "/p").encode()))
        for _ in range(3):
            await crawl_once(redis, settings)
            await asyncio.sleep(1.1)  # each visit in a second of its own
            await requeue(redis, settings, 0)
    assert answers == []
    first, failed, revisit = [r for r in warc_records(warc_dir) if r["type"] != "request"]
    assert (first["status"], failed["status"], revisit["status"]) == ("200", "503", "304")
    assert revisit["type"] == "revisit"
    warc = revisit["warc"]
    assert warc.get_header("WARC-Refers-To") == first["warc"].get_header("WARC-Record-ID")
    assert warc.get_header("WARC-Refers-To-Date") == first["warc"].get_header("WARC-Date")
    assert warc.get_header("WARC-Refers-To-Target-URI") == site.url(IP, "/p")
    assert [r["status"] for r in await results(redis, settings)] == [200, 503, 304]

"""The extraction hook: what it sees, where its result goes, and how its failures end.

Hooks live in tests/extract_hooks.py and examples/; sites are served on loopback.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import pytest
from crawl_helpers import ROOT
from crawl_helpers import crawl as crawl_site
from redis.asyncio import Redis
from typer.testing import CliRunner

from crawler.bench.docsite import (
    description_of,
    docs_app,
    headings_of,
    page_paths,
    static_dir_app,
)
from crawler.bench.sitegen import SiteServer, SiteSpec
from crawler.cli import app
from crawler.config import Settings
from crawler.errors import ConfigError
from crawler.frontier import Frontier
from crawler.net.fetch import Response
from crawler.pages.extract import Page, load_hook

PYTHON_DOCS = Path("/usr/share/doc/python3.11/html")
DOCS_PAGES = 60


@pytest.fixture(autouse=True)
def examples_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "examples"))


async def crawl_with(redis: Redis, settings: Settings, hook: str, seeds: list[str], *,
                     name: str = "default", **more: Any) -> dict[str, dict[str, Any]]:
    return await crawl_site(redis, settings.replace(extract=hook, crawl=name, **more), seeds)


async def test_without_a_hook_records_have_no_data(redis: Redis, settings: Settings) -> None:
    with SiteServer(SiteSpec(hosts=1, pages=5)) as site:
        found = await crawl_site(redis, settings, site.spec.seeds())
    assert len(found) == 5
    assert all("data" not in record for record in found.values())


async def test_the_hook_sees_the_page_and_its_result_is_the_records_data(
        redis: Redis, settings: Settings) -> None:
    with SiteServer(SiteSpec(hosts=1, pages=5, links=4)) as site:
        found = await crawl_with(redis, settings, "extract_hooks:title_and_thread",
                                 site.spec.seeds())
    for url, record in found.items():
        i = int(url.rsplit("/", 1)[1].split(".")[0])
        assert record["data"]["h1"] == f"Page {i}"
        assert record["data"]["status"] == 200 and record["data"]["text_has_title"]
        assert record["data"]["links"] >= 1
        assert record["data"]["type"] == "text/html; charset=utf-8"
        assert record["data"]["server"]  # every header, not only those the crawler keeps
        assert record["data"]["thread"] == "MainThread"  # on the event loop by default
        assert record["error"] is None


async def test_a_sync_hook_runs_in_a_thread_pool_when_asked(
        redis: Redis, settings: Settings) -> None:
    with SiteServer(SiteSpec(hosts=1, pages=5)) as site:
        found = await crawl_with(redis, settings, "extract_hooks:title_and_thread",
                                 site.spec.seeds(), extract_in_thread=True)
    assert {r["data"]["thread"].split("_")[0] for r in found.values()} == {"extract"}
    assert all(r["data"]["h1"].startswith("Page ") for r in found.values())


async def test_an_async_hook_is_awaited(redis: Redis, settings: Settings) -> None:
    with SiteServer(SiteSpec(hosts=1, pages=5)) as site:
        found = await crawl_with(redis, settings, "extract_hooks:async_title", site.spec.seeds())
    assert sorted(r["data"]["h1"] for r in found.values()) == [f"Page {i}" for i in range(5)]


async def test_a_failing_hook_ends_its_url_with_extract_error_and_the_worker_goes_on(
        redis: Redis, settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    with SiteServer(SiteSpec(hosts=1, pages=8)) as site:
        found = await crawl_with(redis, settings, "extract_hooks:fails_on_page_3",
                                 site.spec.seeds())
    failed = [r for r in found.values() if r["error"]]
    assert len(found) == 8 and len(failed) == 1
    record = failed[0]
    assert record["url"].endswith("/p/3.html")
    assert record["error"] == {"type": "extract_error", "message": "KeyError: 'no such heading'"}
    assert record["data"] is None and record["status"] == 200 and record["title"]
    assert all(r["data"] == {"ok": True} for r in found.values() if r is not record)
    logged = [r for r in caplog.records if r.name == "crawler.extract"
              and r.levelno >= logging.ERROR]
    assert "extract_hooks:fails_on_page_3" in logged[0].getMessage()
    assert "KeyError: 'no such heading' at extract_hooks.py:" in logged[0].getMessage()
    assert logged[0].exc_info is None  # one line; the traceback is in the debug log
    assert (await Frontier(redis, settings).stats())["errors"] == 1


async def test_a_hook_returning_no_dict_is_an_extract_error(
        redis: Redis, settings: Settings) -> None:
    with SiteServer(SiteSpec(hosts=1, pages=2)) as site:
        found = await crawl_with(redis, settings, "extract_hooks:returns_a_list",
                                 site.spec.seeds())
    assert {r["error"]["message"] for r in found.values()} == {
        "TypeError: extract_hooks:returns_a_list returned list, expected a dict or None"}


async def test_followed_urls_are_scoped_and_queued(redis: Redis, settings: Settings) -> None:
    with SiteServer(SiteSpec(hosts=1, pages=3)) as site:
        found = await crawl_with(redis, settings, "extract_hooks:follows_more",
                                 site.spec.seeds())
        hidden = site.spec.origin(0) + "/p/hidden.html"
        requested = {path for _, path, _, _ in site.log.entries}
        out_of_scope = site.log.by_host().get("127.0.0.250", [])
    assert hidden in found and found[hidden]["status"] == 404
    assert "/p/hidden.html" in requested
    assert out_of_scope == []  # the followed out-of-scope URL was never fetched
    assert len(found) == 4


@pytest.mark.parametrize(("hook", "warned"), [
    ("extract_hooks:blocks_the_loop", True),
    ("extract_hooks:blocks_after_an_await", True),
    ("extract_hooks:quick", False),  # the negative control
])
async def test_a_hook_holding_the_loop_is_logged_by_name(
        redis: Redis, settings: Settings, caplog: pytest.LogCaptureFixture,
        hook: str, warned: bool) -> None:
    with SiteServer(SiteSpec(hosts=1, pages=2)) as site:
        await crawl_with(redis, settings, hook, site.spec.seeds(), extract_block_warning=0.15)
    warnings = [r.getMessage() for r in caplog.records
                if r.name == "crawler.extract" and r.levelno == logging.WARNING]
    assert bool(warnings) == warned, warnings
    if warned:
        assert f"extract hook {hook} held the event loop" in warnings[0]


def test_a_hook_that_does_not_import_is_one_clear_error() -> None:
    with pytest.raises(ConfigError, match="cannot import no_such_module: ModuleNotFoundError"):
        load_hook("no_such_module:page")
    with pytest.raises(ConfigError, match=r"expected module\.path:function"):
        load_hook("extract_hooks")
    with pytest.raises(ConfigError, match="has no function 'nope'"):
        load_hook("extract_hooks:nope")
    result = CliRunner().invoke(app, ["worker", "--extract", "no_such_module:page"])
    assert result.exit_code == 2
    assert "extract: cannot import no_such_module" in result.stderr


async def test_the_two_example_hooks_agree_on_every_page_of_a_docs_site(
        redis: Redis, settings: Settings) -> None:
    spec = SiteSpec(hosts=1, pages=DOCS_PAGES)
    with SiteServer(spec, app=docs_app(DOCS_PAGES)) as site:
        seeds = [site.spec.origin(0) + "/index.html"]
        by_lxml = await crawl_with(redis, settings, "headings_lxml:page", seeds, name="lxml")
        by_bs4 = await crawl_with(redis, settings, "headings_bs4:page", seeds, name="bs4")
    origin = site.spec.origin(0)
    for i, path in enumerate(page_paths(DOCS_PAGES)):
        data = by_lxml[origin + path]["data"]
        assert data == {"headings": headings_of(i), "description": description_of(i)}
        assert by_bs4[origin + path]["data"] == data
    assert by_lxml.keys() == by_bs4.keys() and len(by_lxml) == DOCS_PAGES + 1


@pytest.mark.skipif(not PYTHON_DOCS.is_dir(), reason="needs Debian's python3.11-doc")
async def test_the_two_example_hooks_agree_on_the_python_docs_guides(
        redis: Redis, settings: Settings) -> None:
    # Every section but the library and C API references (380 of the 530 pages, the same
    # markup again) and the generated indexes (contents and genindex: 4.9 of the other
    # 18 MB, long lists of the same link): the real docs' variety, without a minute of
    # bs4 time on the suite.
    settings = settings.replace(max_per_host=16, concurrency=64,
                                exclude=(r"/(library|c-api)/", r"/(genindex[^/]*|contents)\.html$"))
    with SiteServer(SiteSpec(hosts=1, pages=1), app=static_dir_app(PYTHON_DOCS)) as site:
        seeds = [site.spec.origin(0) + "/index.html"]
        by_lxml = await crawl_with(redis, settings, "headings_lxml:page", seeds, name="lxml")
        by_bs4 = await crawl_with(redis, settings, "headings_bs4:page", seeds, name="bs4")
    pages = {u: r for u, r in by_lxml.items() if r["status"] == 200 and u.endswith(".html")}
    assert len(pages) > 100, len(pages)
    for url, record in pages.items():
        assert record["data"]["headings"], url
        assert by_bs4[url]["data"] == record["data"], url


@pytest.mark.parametrize(("charset", "text"), [
    ("shift_jis", "日本語のテキスト、半角ｶﾅ"), ("windows-1251", "Привет, мир"),
    (None, "déjà vu, UTF-8 by the check"),
])
def test_text_of_a_non_html_page_uses_its_content_type_charset(
        charset: str | None, text: str) -> None:
    body = text.encode(charset or "utf-8")
    response = Response(url="http://127.0.0.2/a.txt", final_url="http://127.0.0.2/a.txt",
                        status=200, content_type="text/plain", charset=charset, body=body,
                        headers={}, elapsed=0.0)
    page = Page(response, None)  # not HTML: no parse, no tree
    assert page.tree is None
    assert page.text == text


def test_examples_are_importable_as_the_readme_names_them() -> None:
    sys.path.insert(0, str(ROOT))
    try:
        assert callable(load_hook("examples.headings_lxml:page"))
        assert callable(load_hook("examples.headings_bs4:page"))
    finally:
        sys.path.remove(str(ROOT))


async def test_a_changed_extract_setting_swaps_the_hook_and_a_bad_one_keeps_it(
        redis: Redis, settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    from types import SimpleNamespace
    from typing import cast

    from crawler.worker import Worker
    from crawler.worker.lease import LeaseRunner

    worker = Worker(redis, settings.replace(extract="extract_hooks:quick"))
    # Stand-ins: set_hook touches neither; the robots cache only gets its sitemap callback
    # and hands its verdicts to the renderer (crawler.worker.render).
    worker.fetcher = cast(Any, object())
    worker.robots = cast(Any, SimpleNamespace(on_sitemaps=None, allows=lambda _url: True))
    runner = LeaseRunner(worker)  # what `crawl config set extract=...` reaches (steering)
    assert runner.extractor is not None and runner.extractor.name == "extract_hooks:quick"
    runner.set_hook(settings.replace(extract="extract_hooks:async_title"))
    assert runner.extractor is not None and runner.extractor.is_async
    runner.set_hook(settings.replace(extract="no_such_module:page"))
    assert runner.extractor.name == "extract_hooks:async_title"
    assert "the extraction hook stays 'extract_hooks:async_title'" in caplog.text
    runner.set_hook(settings.replace(extract=""))
    assert runner.extractor is None


def test_page_follow_joins_as_the_pages_own_links_do() -> None:
    from crawler.net.fetch import Response
    from crawler.pages.extract import Page
    from crawler.urls import resolve

    base = "http://h.test/a/b/c"
    page = Page(Response(url=base, final_url=base, status=200, content_type="text/html",
                         charset="utf-8", body=b"", headers={}, elapsed=0.0), None)
    for href in ("x?", "a//b", "/..;x", "%2e%2e/y"):
        assert page.follow(href)
    assert page._follow == [resolve(base, h) for h in ("x?", "a//b", "/..;x", "%2e%2e/y")]
    assert page._follow[0].endswith("/x?")  # urljoin would drop the empty query
    assert not page.follow("http://[broken/")

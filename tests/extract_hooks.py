"""Extraction hooks the tests name in the ``extract`` setting (tests/ is on sys.path)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import crawler


def title_and_thread(p: crawler.Page) -> dict[str, Any]:
    assert p.tree is not None
    return {"h1": p.tree.findtext(".//h1"), "thread": threading.current_thread().name,
            "status": p.status, "text_has_title": "<title>" in p.text,
            "links": len(p.links), "type": p.headers.get("content-type"),
            "server": "Server" in p.headers}


def fails_on_page_3(p: crawler.Page) -> dict[str, Any]:
    if p.url.endswith("/p/3.html"):
        raise KeyError("no such heading")
    return {"ok": True}


def returns_a_list(p: crawler.Page) -> Any:
    return ["not", "a", "dict"]


def follows_more(p: crawler.Page) -> None:
    if p.url.endswith("/p/0.html"):
        p.follow("/p/hidden.html")  # a URL no page links to
        p.follow("http://127.0.0.250/p/0.html")  # out of scope: never fetched
        p.follow("mailto:nobody@example.com")  # not crawlable: refused


async def async_title(p: crawler.Page) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"h1": p.tree.findtext(".//h1") if p.tree is not None else None}


def blocks_the_loop(p: crawler.Page) -> None:
    time.sleep(0.3)


async def blocks_after_an_await(p: crawler.Page) -> None:
    await asyncio.sleep(0.01)
    time.sleep(0.3)  # noqa: ASYNC251 - on purpose: this hook holds the loop


def quick(p: crawler.Page) -> None:
    return None


def raises_two_links(p: crawler.Page) -> None:
    """On the start page: two of its own links raised (top, high), and one more URL at top."""
    if p.url.endswith("/"):
        p.follow("/a/4", priority=0.9)
        p.follow("/a/5", priority=0.6)
        p.follow("/b/hidden", priority=1.0)


def follows_without_priority(p: crawler.Page) -> None:
    """The same follows as raises_two_links, none raised (its negative control)."""
    if p.url.endswith("/"):
        p.follow("/a/4")
        p.follow("/a/5")
        p.follow("/b/hidden")


def always_fails(p: crawler.Page) -> None:
    raise ValueError(f"no data in {p.url}")


def renders_when_asked(p: crawler.Page) -> dict[str, Any]:
    """Asks for a render of /hidden (with a screenshot) and of /app: what each call could
    ask is in the data, and the data kept is the last call's (tests/test_render_hook.py)."""
    path = p.final_url.split("/", 3)[3] if p.final_url.count("/") >= 3 else ""
    again = p.render_again() if path in ("hidden", "app") else None
    shot = p.screenshot() if path == "hidden" else None
    return {"rendered": p.rendered, "again": again, "shot": shot, "links": len(p.links)}

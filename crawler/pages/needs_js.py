"""Does a page fetched without a browser look like it needs JavaScript? (``render = "auto"``)

``RenderNote`` is the decision for one page, as its record shows it (made by
crawler.worker.render).

Read from the plain response's HTML and its links (counted in the markup), cheaply: most
pages have no ``<script>`` worth a look and are answered by one ``find``.
Three signs, as the crawlers that render on demand use them:

- a ``<noscript>`` that asks for JavaScript ("enable JavaScript", "requires
  JavaScript");
- an application's root element (``<div id="root">``, ``id="app"``,
  ``id="__next"``, ``ng-app``, ``data-reactroot``...) on a page with few links;
- a near-empty body (little visible text, few links) that loads a script.

A page with many links or much text is left alone whatever it loads: the
plain fetch already found what a crawler wants of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

FEW_LINKS = 3
"""A page with fewer links than this may be an application's shell."""
LITTLE_TEXT = 200
"""Characters of visible text below which a body counts as near-empty."""

_NOSCRIPT = re.compile(rb"<noscript[^>]*>(.*?)</noscript", re.I | re.S)
_ASKS_FOR_JS = re.compile(rb"(enable|turn on|requires?|need|activate)\b[^<]{0,40}javascript"
                          rb"|javascript\b[^<]{0,40}(enabled|required|is disabled|to run)",
                          re.I)
_APP_ROOT = re.compile(
    rb"""<(?:div|main|section|body|app-root)\b[^>]*?(?:\bid\s*=\s*["']?(?:root|app|__next|"""
    rb"""__nuxt|svelte|main-app)["'\s>]|\bng-app\b|\bdata-reactroot\b|\bng-version\b)"""
    rb"""|<app-root\b""", re.I)
_SCRIPT = re.compile(rb"<script\b[^>]*\bsrc\s*=|<script\b", re.I)
_LINK = re.compile(rb"<a\s[^>]*?href", re.I)
_SCRIPT_BLOCK = re.compile(rb"<script\b.*?</script\s*>", re.I | re.S)
_STRIP = re.compile(rb"<(script|style|noscript|template)\b.*?</\1\s*>|<!--.*?-->|<[^>]*>",
                    re.I | re.S)


def link_count(body: bytes) -> int:
    """Anchors with an href, counted in the markup: the same measure for a plain page and
    its rendered DOM (crawler.worker.render compares the two). Not those in scripts'
    text: a script that builds links is no link yet."""
    return len(_LINK.findall(_SCRIPT_BLOCK.sub(b"", body)))


def visible_text_length(body: bytes) -> int:
    """Characters of text outside tags, scripts and styles (whitespace runs count once)."""
    return len(re.sub(rb"\s+", b" ", _STRIP.sub(b" ", body)).strip())


def needs_javascript(body: bytes) -> str | None:
    """Why the page looks like it needs rendering (the record's ``render_reason``), or None."""
    if b"<script" not in body and b"<SCRIPT" not in body and b"<noscript" not in body:
        return None
    for inner in _NOSCRIPT.findall(body):
        if _ASKS_FOR_JS.search(inner):
            return "noscript"
    if link_count(body) >= FEW_LINKS:
        return None
    if _APP_ROOT.search(body):
        return "app_root"
    if _SCRIPT.search(body) and visible_text_length(body) < LITTLE_TEXT:
        return "empty_body"
    return None


@dataclass(slots=True)
class RenderNote:
    """The render decision for one page, for its record."""

    rendered: bool
    reason: str
    subrequests: int = 0
    elsewhere: int = 0
    blocked: dict[str, int] = field(default_factory=dict)
    waited: str = "ok"
    screenshot: bytes | None = None  # render_screenshot: written to the WARC, then dropped
    screenshot_asked: bool = False  # the hook's p.screenshot() (reason "hook")

    def add_counts(self, earlier: RenderNote) -> None:
        """Count an earlier render's requests of the same page with this one's."""
        self.subrequests += earlier.subrequests
        self.elsewhere += earlier.elsewhere
        for why, count in earlier.blocked.items():
            self.blocked[why] = self.blocked.get(why, 0) + count

    def fields(self) -> dict[str, object]:
        """The record's fields: ``rendered``, ``render_reason``, and a render's counts."""
        out: dict[str, object] = {"rendered": self.rendered, "render_reason": self.reason}
        if self.rendered:
            out["render_subrequests"] = self.subrequests
            if self.elsewhere:
                out["render_other_hosts"] = self.elsewhere
            out["render_blocked"] = dict(sorted(self.blocked.items()))
            if self.waited != "ok":
                out["render_wait"] = self.waited
        return out

"""Sitemaps (sitemaps.org protocol), parsed as their bytes arrive, never whole in memory.

A sitemap is one of:

- a sitemap index (``<sitemapindex>``): more sitemaps, each ``<sitemap><loc>``;
- a urlset (``<urlset>``): pages, each ``<url><loc>`` with an optional ``<lastmod>``
  and ``<priority>`` (which can raise the page's band: ``crawler.priority``);
- a plain-text file: one URL a line;

any of them gzipped (``.xml.gz``: recognised by the gzip magic bytes, whatever
the Content-Type says). ``SitemapParser`` takes the body in chunks and hands
back the entries each chunk completes: lxml's pull parser for XML, with each
finished entry cleared from its tree, so memory stays flat however long the
file is.

Limits are the protocol's: at most ``MAX_URLS`` entries and ``MAX_BYTES``
uncompressed bytes a file. Past a limit, or at malformed XML, the parser
stops and says why in ``error``; the entries it handed back before stand (the
worker has queued them already). A sitemap index may name other indexes; the
worker follows them at most ``MAX_NESTING`` levels deep.

Only an entry whose closing tag (``</url>``, ``</sitemap>``) was in the bytes
is handed back. A file cut short (a connection reset, a size cap) must not
plant its half-read last URL in the frontier, and lxml does not promise
that: from 6.x (libxml2 2.14) a failed ``close`` reports an end event for
every element still open, so ``<loc>http://a.tes`` at the cut came out as an
entry. So entries completed by a call that fails are not taken on lxml's
word: a failed ``close`` is given no new bytes and completes none, and a
failed ``feed`` completes at most as many as there are closing tags in the
bytes it was given (``_closing_tags``).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Literal

from lxml import etree

from crawler.pages.priority import parse_priority

MAX_URLS = 50_000
"""Entries in one sitemap file (the protocol's limit)."""
MAX_BYTES = 50 * 1024 * 1024
"""Uncompressed bytes of one sitemap file (the protocol's limit)."""
MAX_NESTING = 2
"""Sitemap indexes below the first that are followed: robots.txt -> index -> index ->
sitemap is read; one level more ends as an error record, unfetched (a loop of
indexes naming each other ends here too)."""
MAX_LINE_BYTES = 8 * 1024
"""A text sitemap's longest line (URLs are under 2,048 characters by the protocol)."""
INFLATE_PIECE = 256 * 1024
"""Most bytes inflated from a gzipped sitemap at a time: a gzip bomb is stopped at
``MAX_BYTES`` without ever being inflated whole."""
CLOSING_TAG_SPAN = 256
"""Bytes of the previous feed kept to see a closing tag split between two feeds."""
GZIP_MAGIC = b"\x1f\x8b"
BOM = b"\xef\xbb\xbf"

Kind = Literal["index", "urlset", "text"]

# An entry's closing tag (any namespace prefix), or a comment or CDATA section,
# matched so that a "</url>" written inside one is not counted.
_CLOSING_TAG = re.compile(
    rb"<!--.*?-->|<!\[CDATA\[.*?\]\]>|(</(?:[^\s<>/:]+:)?(?:url|sitemap)\s*>)", re.S)


@dataclass(frozen=True, slots=True)
class SitemapEntry:
    """One ``<loc>`` (or text line), as written: not yet canonical, not yet in scope."""

    url: str
    is_sitemap: bool  # listed by a sitemap index: another sitemap, not a page
    lastmod: str | None = None
    priority: float | None = None  # 0.0..1.0 as listed; None: none, or not a number in range


def _local(tag: object) -> str:
    """``url`` for ``{http://www.sitemaps.org/schemas/sitemap/0.9}url``: namespaces vary."""
    text = tag if isinstance(tag, str) else ""
    return text.rsplit("}", 1)[-1]


class SitemapParser:
    """Feed a sitemap's body chunk by chunk; get its entries as they complete.

    After ``feed`` or ``close``, ``error`` is None while the file is fine, or
    why parsing stopped (the entries returned so far stand; later feeds do
    nothing). ``kind`` is what the file turned out to be, once known.
    """

    def __init__(self, *, max_urls: int | None = None, max_bytes: int | None = None) -> None:
        self.max_urls = MAX_URLS if max_urls is None else max_urls
        self.max_bytes = MAX_BYTES if max_bytes is None else max_bytes
        self.kind: Kind | None = None
        self.error: str | None = None
        self.count = 0  # entries handed back
        self.size = 0  # uncompressed bytes seen
        self._head = b""  # bytes held until the format is known
        self._inflate: zlib._Decompress | None = None
        self._gzip_known = False
        self._xml: etree.XMLPullParser | None = None
        self._xml_tail = b""  # the end of the bytes fed to lxml so far (CLOSING_TAG_SPAN)
        self._text_tail = b""
        self._loc: str | None = None
        self._lastmod: str | None = None
        self._priority: float | None = None

    # -- bytes in --------------------------------------------------------------

    def feed(self, chunk: bytes) -> list[SitemapEntry]:
        """The entries this chunk completes."""
        out: list[SitemapEntry] = []
        if self.error is not None or not chunk:
            return out
        if not self._gzip_known:
            self._head += chunk
            if len(self._head) < len(GZIP_MAGIC):
                return out
            chunk, self._head = self._head, b""
            self._gzip_known = True
            if chunk.startswith(GZIP_MAGIC):
                self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        if self._inflate is None:
            self._plain(chunk, out)
            return out
        try:
            data = chunk
            while data and self.error is None:
                piece = self._inflate.decompress(data, INFLATE_PIECE)
                self._plain(piece, out)
                data = self._inflate.unconsumed_tail
        except zlib.error as exc:
            self._stop(f"bad gzip data: {exc}")
        return out

    def close(self) -> list[SitemapEntry]:
        """The last entries, once the body has ended; notes a file cut short."""
        out: list[SitemapEntry] = []
        if self.error is not None:
            return out
        if not self._gzip_known and self._head:
            self._gzip_known = True
            self._plain(self._head, out)
            self._head = b""
        if self._inflate is not None and self.error is None and not self._inflate.eof:
            self._stop("gzip data cut short")
            return out
        if self.kind is None and self._xml is None and self.error is None:
            if self._head.strip():
                self._start(b"", out, final=True)
            else:
                self._stop("empty sitemap")
                return out
        if self.kind == "text" and self.error is None:
            self._text(b"\n", out)
        elif self._xml is not None and self.error is None:
            try:
                self._xml.close()
            except etree.XMLSyntaxError as exc:
                # No bytes came with this call, so no closing tag: whatever
                # entries lxml ends now are its recovery, not the file's.
                self._drain(out, closed=0)
                self._stop(f"malformed XML: {exc}")
                return out
            self._drain(out)
        return out

    def _plain(self, data: bytes, out: list[SitemapEntry]) -> None:
        """Uncompressed bytes: count them, then parse them as the format they are."""
        if not data or self.error is not None:
            return
        self.size += len(data)
        if self.size > self.max_bytes:
            self._stop(f"more than {self.max_bytes} bytes uncompressed")
            return
        if self.kind is None and self._xml is None:
            self._start(data, out)
        elif self._xml is not None:
            self._feed_xml(data, out)
        else:
            self._text(data, out)

    def _start(self, data: bytes, out: list[SitemapEntry], final: bool = False) -> None:
        """Decide XML or text at the first non-blank byte."""
        self._head += data
        head = self._head.removeprefix(BOM).lstrip()
        if not head and not final:
            return
        held, self._head = self._head, b""
        if head.startswith(b"<"):
            self._xml = etree.XMLPullParser(events=("start", "end"), resolve_entities=False,
                                            no_network=True, huge_tree=False,
                                            remove_comments=True, remove_pis=True)
            self._feed_xml(held, out)
        else:
            self.kind = "text"
            self._text(held.removeprefix(BOM), out)

    # -- XML -------------------------------------------------------------------

    def _feed_xml(self, data: bytes, out: list[SitemapEntry]) -> None:
        assert self._xml is not None
        tail = self._xml_tail
        self._xml_tail = data[-CLOSING_TAG_SPAN:] if len(data) >= CLOSING_TAG_SPAN \
            else (tail + data)[-CLOSING_TAG_SPAN:]
        try:
            self._xml.feed(data)
        except etree.XMLSyntaxError as exc:
            # What parsed before the fault stands, but only as far as these
            # bytes really closed entries.
            self._drain(out, closed=_closing_tags(tail, data))
            self._stop(f"malformed XML: {exc}")
            return
        self._drain(out)

    def _drain(self, out: list[SitemapEntry], closed: int | None = None) -> None:
        """Hand back the entries the events complete; at most ``closed`` of them if given."""
        assert self._xml is not None
        for event, element in self._xml.read_events():
            if self.error is not None:
                return
            if not isinstance(element, etree._Element):  # start-ns events: not asked for
                continue
            name = _local(element.tag)
            if event == "start":
                if self.kind is None:
                    if name == "sitemapindex":
                        self.kind = "index"
                    elif name == "urlset":
                        self.kind = "urlset"
                    else:
                        self._stop(f"not a sitemap: the root element is <{name}>")
                continue
            if name == "loc":
                self._loc = (element.text or "").strip()
            elif name == "lastmod":
                self._lastmod = (element.text or "").strip() or None
            elif name == "priority":
                self._priority = parse_priority((element.text or "").strip())
            elif name in ("url", "sitemap"):
                if closed is not None:
                    if closed <= 0:
                        return  # an end lxml reported without its closing tag
                    closed -= 1
                if self._loc:
                    self._emit(SitemapEntry(self._loc, name == "sitemap", self._lastmod,
                                            self._priority), out)
                self._loc = self._lastmod = self._priority = None
                # Finished entries leave the tree: memory stays flat over the file.
                element.clear()
                parent = element.getparent()
                if parent is not None:
                    while element.getprevious() is not None:
                        del parent[0]

    # -- text ------------------------------------------------------------------

    def _text(self, data: bytes, out: list[SitemapEntry]) -> None:
        lines = (self._text_tail + data).split(b"\n")
        self._text_tail = lines.pop()
        if len(self._text_tail) > MAX_LINE_BYTES:
            self._stop(f"a line longer than {MAX_LINE_BYTES} bytes")
            return
        for raw in lines:
            if len(raw) > MAX_LINE_BYTES:
                self._stop(f"a line longer than {MAX_LINE_BYTES} bytes")
                return
            line = raw.decode("utf-8", "replace").strip()
            if line:
                self._emit(SitemapEntry(line, False), out)
            if self.error is not None:
                return

    # -- both ------------------------------------------------------------------

    def _emit(self, entry: SitemapEntry, out: list[SitemapEntry]) -> None:
        if self.count >= self.max_urls:
            self._stop(f"more than {self.max_urls} URLs")
            return
        self.count += 1
        out.append(entry)

    def _stop(self, why: str) -> None:
        if self.error is None:
            self.error = why


def _closing_tags(before: bytes, data: bytes) -> int:
    """Entry closing tags that end within ``data`` (``before``: the bytes fed before it)."""
    return sum(1 for m in _CLOSING_TAG.finditer(before + data)
               if m.group(1) is not None and m.end() > len(before))

"""The web-shaped benchmark site: HTTPS, pre-compressed gzip pages of ~80 KB, many hosts.

``WebSpec`` is the generated site of ``crawler.bench.sitegen`` (same titles,
same links, same truth for the completeness check) served over https, with
pages padded by text that compresses about as real HTML does (~5:1, so
~80 KB pages are ~15-17 KB on the wire) instead of one repeated paragraph
(which compresses 100:1 and would make inflating free).

Pages are written pre-compressed (``<dir>/<ip>/p/<i>.html`` holds gzip bytes;
the server adds ``Content-Encoding: gzip``), as a site with ``gzip_static``
serves them. Compressing 6,000 pages of 80 KB one by one would take minutes
on a loaded 2-core machine, so each page's gzip stream is assembled: its
head and links compressed with a sync flush, one of a few padding blocks
compressed once (a sync-flushed raw deflate block is byte-aligned and
refers to nothing before it, so it can follow any other), then the tail.
"""

from __future__ import annotations

import random
import struct
import zlib
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from crawler.bench.sitegen import SiteSpec, page_html

PADDING_VARIANTS = 4
"""Distinct padding blocks: pages pick one by number, so neighbours differ."""
_TAIL = b"\n</ul>\n</body></html>\n"


@dataclass(frozen=True)
class WebSpec(SiteSpec):
    """The generated site on https: 100 hosts x 60 pages of ~80 KB, 60 links each."""

    hosts: int = 100
    pages: int = 60
    links: int = 60
    page_bytes: int = 80_000

    def origin(self, h: int) -> str:
        return f"https://127.0.0.{self.first_ip + h}:{self.port}"


@lru_cache(maxsize=2 * PADDING_VARIANTS)
def _padding(seed: int, size: int) -> tuple[bytes, bytes]:
    """(text, its raw deflate stream sync-flushed): markup-rich words, ~4.5-5:1 under gzip."""
    rnd = random.Random(seed)
    syllables = ["ka", "lo", "mi", "ne", "ra", "to", "su", "vi", "de", "ba", "po", "shi",
                 "gen", "tar", "mon", "el", "ur", "is", "an", "qu"]
    vocab = ["".join(rnd.choice(syllables) for _ in range(rnd.randint(1, 4)))
             for _ in range(1200)]
    weights = [1 / (k + 1) for k in range(len(vocab))]  # Zipf, as words in text are
    out: list[str] = []
    length = 0
    while length < size:
        words = rnd.choices(vocab, weights, k=rnd.randint(20, 80))
        for k in range(len(words)):
            if rnd.random() < 0.15:
                words[k] = f'<span class="t{rnd.randrange(8)}">{words[k]}</span>'
        block = (f'\n<div class="row"><div class="col-md-{rnd.randrange(1, 13)}">'
                 f'<p class="text">{" ".join(words)}</p></div></div>')
        out.append(block)
        length += len(block)
    text = "".join(out)[:size]
    text = text[:text.rfind("\n")]  # whole blocks only: the page stays well formed
    raw = text.encode()
    packer = zlib.compressobj(6, zlib.DEFLATED, -15)
    return raw, packer.compress(raw) + packer.flush(zlib.Z_SYNC_FLUSH)


def web_page(spec: WebSpec, h: int, i: int) -> tuple[bytes, bytes]:
    """(the page's HTML, its gzip file): sitegen's page with realistic padding."""
    bare = page_html.__wrapped__(replace(spec, page_bytes=0), h, i)  # links on https
    head = bare[:len(bare) - len(_TAIL)]
    # One padding size for the whole site (pages differ by a few bytes of links),
    # so that the few padding blocks are compressed once.
    size = spec.page_bytes - len(page_html.__wrapped__(replace(spec, page_bytes=0), 0, 0))
    pad_text, pad_deflate = _padding((h * spec.pages + i) % PADDING_VARIANTS, max(0, size))
    html = head + pad_text + _TAIL
    packer = zlib.compressobj(6, zlib.DEFLATED, -15)
    first = packer.compress(head) + packer.flush(zlib.Z_SYNC_FLUSH)
    ender = zlib.compressobj(6, zlib.DEFLATED, -15)
    last = ender.compress(_TAIL) + ender.flush(zlib.Z_FINISH)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # gzip, deflate, no name, mtime 0
    trailer = struct.pack("<II", zlib.crc32(html), len(html) & 0xFFFFFFFF)
    return html, header + first + pad_deflate + last + trailer


def write_web_site(spec: WebSpec, root: Path) -> tuple[int, int]:
    """Render every page gzipped, and robots.txt, under ``root/<ip>/``.

    Returns (HTML bytes, gzip bytes) over all pages.
    """
    raw = wire = 0
    for h, ip in enumerate(spec.host_ips()):
        pages = root / ip / "p"
        pages.mkdir(parents=True, exist_ok=True)
        (root / ip / "robots.txt").write_text(spec.robots)
        for i in range(spec.pages):
            html, gz = web_page(spec, h, i)
            (pages / f"{i}.html").write_bytes(gz)
            raw, wire = raw + len(html), wire + len(gz)
    return raw, wire

"""A 64-bit SimHash of a page's visible text, for near-duplicate detection.

Features are the lower-cased words of the visible text (``SHINGLE_WORDS``
= 1; measured: one word changed in 800 keeps 99% of pages within 3 bits with
single words, 94% with 2-word and 89% with 3-word shingles, and unrelated
texts stay 18+ bits apart with each; ``<script>``, ``<style>``,
``<noscript>``, ``<template>`` and ``<head>`` left out), each hashed to 64 bits with BLAKE2b (``digest_size=8``, in the standard
library, the same on every machine and Python). Bit ``b`` of the SimHash is
set when more shingles have bit ``b`` set than not (Charikar 2002).

Why it is fast enough for every page without a C extension: the shingle
digests are joined into one bytes object, and each of the 64 bit columns is
counted in C (``bytes.translate`` to 0/1, then ``count``), so Python does 64
small steps a page, not 64 a shingle. ``crawl bench waste`` times it
against the ``xxhash`` package's digests, when that is installed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from hashlib import blake2b
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lxml import etree

SHINGLE_WORDS = 1
MAX_WORDS = 20_000
"""Words of a page that count: a huge page's tail would cost CPU and change little."""
_WORD = re.compile(r"\w+")
# A byte -> 1 if its bit b is set, else 0: one translation table per bit.
_BIT_TABLES = [bytes((value >> bit) & 1 for value in range(256)) for bit in range(8)]
_VISIBLE_TEXT: Callable[..., list[str]] | None = None


def _blake2b_digest(shingle: bytes) -> bytes:
    return blake2b(shingle, digest_size=8).digest()


def words_of(text: str) -> list[str]:
    """The lower-cased words of a text (Unicode word characters), at most MAX_WORDS."""
    return _WORD.findall(text.lower(), 0)[:MAX_WORDS]


def simhash_words(words: list[str],
                  digest: Callable[[bytes], bytes] = _blake2b_digest) -> int:
    """The SimHash of a list of words: its SHINGLE_WORDS-word shingles (all words if fewer).

    ``digest``: an 8-byte hash of a shingle's UTF-8 bytes (the benchmark
    passes xxhash's to compare).
    """
    if not words:
        return 0
    encoded = [w.encode("utf-8") for w in words]
    if SHINGLE_WORDS == 1:
        shingles: Iterable[bytes] = encoded
    elif len(encoded) < SHINGLE_WORDS:
        shingles = [b" ".join(encoded)]
    else:
        shingles = map(b" ".join, zip(*(encoded[k:] for k in range(SHINGLE_WORDS)),
                                      strict=False))
    return simhash_digests(b"".join(map(digest, shingles)))


def simhash_digests(joined: bytes) -> int:
    """The SimHash of features whose 8-byte big-endian digests are joined in ``joined``."""
    total = len(joined) // 8
    if not total:
        return 0
    value = 0
    for byte_no in range(8):
        column = joined[byte_no::8]
        for bit in range(8):
            ones = column.translate(_BIT_TABLES[bit]).count(1)
            if 2 * ones > total:
                value |= 1 << (8 * (7 - byte_no) + bit)
    return value


def visible_text(root: etree._Element) -> list[str]:
    """The text nodes a reader sees: none inside script, style, noscript or template."""
    global _VISIBLE_TEXT
    if _VISIBLE_TEXT is None:
        from lxml import etree

        # Compiled once; XPath walks the tree in C. Comments and processing
        # instructions are not text() nodes.
        _VISIBLE_TEXT = etree.XPath(
            "//text()[not(ancestor::script or ancestor::style or ancestor::noscript"
            " or ancestor::template or ancestor::head)]")
    return [str(t) for t in _VISIBLE_TEXT(root)]


def page_simhash(root: etree._Element) -> int:
    """The SimHash of the visible text of a parsed page (``root`` from lxml's HTML parser)."""
    return simhash_words(words_of(" ".join(visible_text(root))))


def hamming(a: int, b: int) -> int:
    """Bits in which two 64-bit hashes differ."""
    return (a ^ b).bit_count()


def to_hex(value: int) -> str:
    """A SimHash as records and the Redis index keep it: 16 lower-case hex digits."""
    return f"{value:016x}"

"""A 64-bit SimHash of a page's visible text, for near-duplicate detection.

Features are the lower-cased words of the visible text (``SHINGLE_WORDS``
= 1; measured: one word changed in 800 keeps 99% of pages within 3 bits with
single words, 94% with 2-word and 89% with 3-word shingles, and unrelated
texts stay 18+ bits apart with each; ``<script>``, ``<style>``,
``<noscript>``, ``<template>`` and ``<head>`` left out). Each distinct word
is hashed to 64 bits (``word_hash``: FNV-1a over its UTF-8 bytes 8 at a
time, then its length, then MurmurHash3's 64-bit finalizer; the same on every machine, and on
every Python but for the rare letters whose lower case a newer Unicode
changed). Bit
``b`` of the SimHash is set when more of the page's distinct words have bit
``b`` set than not (Charikar 2002).

Two implementations give the same value on every input
(tests/test_simhash_accel.py):
- ``crawler.pages._simhash``, a small C module built on install when a
  compiler is at hand: one pass over the text's bytes, no Python object a
  word. The crawler uses it when it is there (and ``CRAWLER_NO_EXTENSIONS``
  is not set);
- this module's Python, for installs without it: each word's hash is
  "spread" once into one big int, a 16-bit lane a bit, and kept in a bounded
  per-process cache (a site's words repeat); a page's bit counts are then
  one ``sum`` of cached ints in C, and Python does 64 small steps a page, not
  64 a word. It costs about 4x the C module's instructions a page (README,
  Near-duplicates).

A page's words are found in UTF-8 bytes, not str (``text_simhash``): the
parsers serialize the text to UTF-8 in C, and splitting bytes skips a decode.
A text where bytes and str split or lower-case differently (any non-ASCII
byte, or the separators 0x1c-0x1f, which ``str.split`` splits at) takes the
str path, so every page gets the same hash either way.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from lxml import etree

SHINGLE_WORDS = 1
WEAK_BITS = 12
"""Weak bits (``weak_bits``) a page sends with its SimHash: a copy of an earlier page
that differs from it only in these is its near-duplicate (lua/_traps.lua). Pages
of 400 words have 5.4 on average; 12 hold all the bits that differ in each of the
benchmark's 3,000 one-word copies (README, Near-duplicates)."""
MAX_WORDS = 20_000  # below 0x8000: a 16-bit lane's count never reaches its top bit
"""Words of a page that count: a huge page's tail would cost CPU and change little."""
# A byte's 8 bits, each at the bottom of its own 16-bit lane (see _spread).
_EVERY_LANE = sum(1 << (16 * lane) for lane in range(64))
_TOP_BITS = 0x8000 * _EVERY_LANE
_BINARY_DIGIT = bytes(ord("1") if value == 0x80 else ord("0") for value in range(256))
_SPREAD_BYTE = [sum(((value >> bit) & 1) << (16 * bit) for bit in range(8)) for value in range(256)]
_TO_TEXT: Callable[..., bytes] | None = None
_HIDDEN = ("script", "style", "noscript", "template")
_STR_ONLY_SEPARATORS = (b"\x1c", b"\x1d", b"\x1e", b"\x1f")
"""ASCII bytes str.split splits at and bytes.split does not."""


def _splits_as_str(text: bytes) -> bool:
    """Whether bytes.lower().split() gives str.lower().split()'s words: ASCII
    (str.lower and str.split know more letters and spaces) without the
    separators only str.split knows. memchr-fast scans, not a regex."""
    return text.isascii() and not any(sep in text for sep in _STR_ONLY_SEPARATORS)


_MASK64 = (1 << 64) - 1
_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3


def word_hash(word: bytes) -> int:
    """A word's 64-bit feature: FNV-1a 64 over its UTF-8 bytes taken 8 at a time
    (little-endian, the last chunk padded with zeros), then its length, then fmix64.

    Eight bytes a step lets the C module hash a word as it finds it, a load
    and a multiply per 8 bytes; MurmurHash3's finalizer then mixes every bit
    into every other, which FNV alone does not do for its low bits, and a
    SimHash needs each bit to be a fair coin."""
    value = _FNV_OFFSET
    for start in range(0, len(word), 8):
        chunk = int.from_bytes(word[start:start + 8], "little")
        value = ((value ^ chunk) * _FNV_PRIME) & _MASK64
    value ^= len(word)
    value ^= value >> 33
    value = (value * 0xFF51AFD7ED558CCD) & _MASK64
    value ^= value >> 33
    value = (value * 0xC4CEB9FE1A85EC53) & _MASK64
    return value ^ (value >> 33)


def _spread_int(value: int) -> int:
    """A 64-bit value's bits, bit i moved to the bottom of a 16-bit lane i of one big int.

    Summing spreads counts every bit position at once, in C (``sum``); a lane
    holds up to 65535 features (MAX_WORDS is less)."""
    return sum(_SPREAD_BYTE[(value >> (8 * k)) & 0xFF] << (128 * k) for k in range(8))


def _spread(digest: bytes) -> int:
    """``_spread_int`` of an 8-byte big-endian digest."""
    return _spread_int(int.from_bytes(digest, "big"))


class _SpreadCache(dict[bytes, int]):
    """Shingle (UTF-8) -> the spread of its ``word_hash``. A site's words repeat
    from page to page, so most lookups hit and cost a dict probe in C; a miss
    fills it in."""

    def __missing__(self, shingle: bytes) -> int:
        if len(self) >= SPREADS_KEPT:
            self.clear()  # bounded: start again rather than track recency
        spread = self[shingle] = _spread_int(word_hash(shingle))
        return spread


SPREADS_KEPT = 30_000
"""Shingles whose spreads a process keeps: about 200 bytes each, 6 MB at most."""
_SPREADS = _SpreadCache()


def words_of(text: str) -> list[str]:
    """The lower-cased words of a text, split at white space, at most MAX_WORDS.

    ``str.split`` in C, 4-5x faster than a word pattern; punctuation stays on
    its word ("end." and "end" differ), the same on every page, so it costs
    near-duplicates nothing."""
    words = text.lower().split()
    return words if len(words) <= MAX_WORDS else words[:MAX_WORDS]


def shingles_of(words: list[str]) -> set[bytes]:
    """A list of words' distinct SHINGLE_WORDS-word shingles (all words if fewer), UTF-8."""
    # A set: each feature counts once however often it repeats (binary
    # features). A long page repeats its words: the benchmark's 27 KB pages
    # hold 2177 words, 20 distinct, and summing every occurrence was most of
    # the SimHash's time on them.
    if not words:
        return set()
    if SHINGLE_WORDS == 1:
        shingles = set(words)
    elif len(words) < SHINGLE_WORDS:
        shingles = {" ".join(words)}
    else:
        shingles = set(map(" ".join, zip(*(words[k:] for k in range(SHINGLE_WORDS)),
                                         strict=False)))
    return {s.encode("utf-8") for s in shingles}


def simhash_words(words: list[str]) -> int:
    """The SimHash of a list of words: its shingles, each ``word_hash``ed and spread
    through the process's cache."""
    return simhash_shingles(shingles_of(words))


def simhash_shingles(shingles: set[bytes]) -> int:
    """The SimHash of distinct UTF-8 shingles, through the process's cache of spreads."""
    if not shingles:
        return 0
    return _majority(sum(map(_SPREADS.__getitem__, shingles)), len(shingles))


def weak_bits(counts: list[int], total: int, cap: int = WEAK_BITS) -> int:
    """The bits of a SimHash that one word more, fewer or changed could flip, at most ``cap``.

    ``counts[b]``: how many of the ``total`` features have bit ``b``. Bit b is
    set when its margin, ``2 * counts[b] - total``, is over 0; one feature
    added or removed moves the margin by 1, one changed by 2. So margins 0
    and 1 flip with any one-word change, -1 and 2 with a changed word; those
    come next. From bit 0 up in each group, so the same text always gives the
    same mask. A copy of a page with a word changed differs from it only in
    such bits, and for about 1 copy in 20 of a 400-word page in 4 or more of
    them: the index takes a page that differs from an earlier one only in its
    own weak bits for a near-duplicate too (lua/_traps.lua; README,
    Near-duplicates)."""
    if total <= 0 or cap <= 0:
        return 0
    mask = taken = 0
    for group in ((0, 1), (-1, 2)):
        for bit, count in enumerate(counts):
            if taken == cap:
                return mask
            if 2 * count - total in group:
                mask |= 1 << bit
                taken += 1
    return mask


def _lane_counts(lanes: int) -> list[int]:
    """The 64 counts of summed spreads (``_spread_int``), bit 0's first."""
    raw = lanes.to_bytes(128, "little")
    return [raw[2 * b] | raw[2 * b + 1] << 8 for b in range(64)]


def simhash_digests(joined: bytes) -> int:
    """The SimHash of features whose 8-byte big-endian digests are joined in ``joined``."""
    total = len(joined) // 8
    return _majority(sum(_spread(joined[k:k + 8]) for k in range(0, 8 * total, 8)), total)


def _majority(lanes: int, total: int) -> int:
    """Bit i set where lane i of summed spreads counts more than half of ``total``.

    In C, not 64 Python steps: adding 0x8000 - t to every lane (t the least
    count that wins) sets a lane's top bit exactly when it won, and carries
    into no other lane (counts stay below 0x8000); those top bits, read as
    bytes, translate to the digits of a binary number.
    """
    least = total // 2 + 1
    marked = (lanes + (0x8000 - least) * _EVERY_LANE) & _TOP_BITS
    return int(marked.to_bytes(128, "little")[1::2].translate(_BINARY_DIGIT)[::-1], 2)


def visible_text_utf8(root: etree._Element) -> bytes:
    """The text a reader sees in the body, UTF-8: without script, style, noscript or template.

    lxml's text serializer joins the body's text in C (faster than XPath's
    ``string()``, and with no decode); the few hidden elements' text is then
    cut out of it. Text of adjacent elements with no space between them runs
    together, as in ``string()``: a word or two a page, against hundreds.
    """
    global _TO_TEXT
    to_text = _TO_TEXT
    if to_text is None:
        from functools import partial

        from lxml import etree

        # bytes with an encoding given (lxml-stubs says str for method="text")
        to_text = _TO_TEXT = cast("Callable[..., bytes]", partial(
            etree.tostring, method="text", encoding="utf-8", with_tail=False))
    body = root.find("body") if root.tag == "html" else None
    if body is None:
        body = next(root.iter("body"), None)
        if body is None:
            return b""
    text = to_text(body)
    for hidden in body.iter(*_HIDDEN):
        part = to_text(hidden)
        if part:
            text = text.replace(part, b" ", 1)
    return text


def visible_text(root: etree._Element) -> str:
    """``visible_text_utf8`` as str."""
    return visible_text_utf8(root).decode("utf-8", "replace")


def page_simhash(root: etree._Element) -> int:
    """The SimHash of the visible text of a parsed page (``root`` from lxml's HTML parser)."""
    return text_simhash(visible_text_utf8(root))


def page_simhash_weak(root: etree._Element) -> tuple[int, int]:
    """``page_simhash`` and its weak bits (``text_simhash_weak``)."""
    return text_simhash_weak(visible_text_utf8(root))


def _load_accelerator() -> ModuleType | None:
    """``crawler.pages._simhash`` when it was built and not turned off, else None."""
    if os.environ.get("CRAWLER_NO_EXTENSIONS"):
        return None
    try:
        from crawler.pages import _simhash  # type: ignore[attr-defined]
    except ImportError:
        return None
    return cast("ModuleType", _simhash)


ACCELERATOR = _load_accelerator()
"""The C module computing ``text_simhash``, or None: the Python below does it."""


def text_simhash(text: bytes) -> int:
    """The SimHash of a visible text in UTF-8 (lxml's or lexbor's, crawler.pages.parse_lexbor).

    The same as ``simhash_words(words_of(text.decode("utf-8", "replace")))``:
    in C when the module is built, else split in bytes where that gives the
    same words."""
    if ACCELERATOR is not None:
        return cast(int, ACCELERATOR.simhash_text(text, MAX_WORDS))
    return python_text_simhash(text)


def python_text_simhash(text: bytes) -> int:
    """``text_simhash`` without the C module (what installs without it run)."""
    return simhash_shingles(_text_shingles(text))


def text_simhash_weak(text: bytes) -> tuple[int, int]:
    """``text_simhash`` and up to WEAK_BITS of its weak bits (``weak_bits``)."""
    if ACCELERATOR is not None:
        return cast("tuple[int, int]", ACCELERATOR.simhash_text(text, MAX_WORDS, WEAK_BITS))
    return python_text_simhash_weak(text)


def python_text_simhash_weak(text: bytes) -> tuple[int, int]:
    """``text_simhash_weak`` without the C module."""
    shingles = _text_shingles(text)
    if not shingles:
        return 0, 0
    lanes = sum(map(_SPREADS.__getitem__, shingles))
    return (_majority(lanes, len(shingles)),
            weak_bits(_lane_counts(lanes), len(shingles)))


def _text_shingles(text: bytes) -> set[bytes]:
    """A visible text's distinct shingles, split in bytes where that gives str's words."""
    if SHINGLE_WORDS != 1 or not _splits_as_str(text):
        return shingles_of(words_of(text.decode("utf-8", "replace")))
    words = text.lower().split()
    return set(words if len(words) <= MAX_WORDS else words[:MAX_WORDS])


def hamming(a: int, b: int) -> int:
    """Bits in which two 64-bit hashes differ."""
    return (a ^ b).bit_count()


def to_hex(value: int) -> str:
    """A SimHash as records and the Redis index keep it: 16 lower-case hex digits."""
    return f"{value:016x}"

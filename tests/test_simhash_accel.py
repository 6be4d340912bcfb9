"""The SimHash's C module (crawler/pages/_simhash.c) and its Python twin agree on every input.

Installs without a compiler run the Python; a crawl whose workers mix the two
must still find each other's near-duplicates, so the two give the same hash,
word for word, on text of any kind: ASCII, Unicode white space and letters,
invalid UTF-8, control characters, words longer than 8 bytes, pages past
MAX_WORDS.
"""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crawler.pages import simhash
from crawler.pages.simhash import (
    MAX_WORDS,
    WEAK_BITS,
    python_text_simhash,
    python_text_simhash_weak,
    word_hash,
)

accel = simhash.ACCELERATOR

needs_accel = pytest.mark.skipif(accel is None, reason="the C module is not built")

# Pieces where a byte scanner could part from str.lower().split(): ASCII and
# Unicode white space, the separators only str.split knows, letters whose
# lower case is longer or context-dependent, invalid and truncated UTF-8.
PIECES = [b"a", b"Z", b"word", b"LongerThanEight", b"0123456789abcdefXYZ", b" ", b"\t", b"\n",
          b"\r\n", b"\x0b\x0c", b"\x1c", b"\x1f", b"\x00", b"\x01", b"\x7f", b".", b"-",
          "\u00a0".encode(), "\u0085".encode(), "\u2003".encode(), "\u2028".encode(),
          "\u3000".encode(), "\u1680".encode(), "\u205f".encode(), "\u200b".encode(),
          "\u00c9t\u00c9".encode(), "\u03a3\u039f\u03a3".encode(), "\u0130".encode(),
          "Stra\u00dfe".encode(), "\U0001f600".encode(), b"\xff", b"\xe2", b"\xe2\x80",
          b"\xc2", b"\xed\xa0\x80", b"\xf0\x9f"]


def python_words(text: bytes) -> list[bytes]:
    return [w.encode() for w in text.decode("utf-8", "replace").lower().split()]


def test_the_c_module_is_built() -> None:
    """The suite's installs build it (gcc is there): a silent build failure would
    quietly cost every page 4x the SimHash's instructions."""
    if os.environ.get("CRAWLER_NO_EXTENSIONS"):
        pytest.skip("CRAWLER_NO_EXTENSIONS is set: the Python runs on purpose")
    assert accel is not None, (
        "crawler.pages._simhash did not build: install a C compiler and Python's headers "
        "(Debian: gcc python3-dev), then pip install -c requirements/lock.txt -e '.[test]' "
        "again; or set "
        "CRAWLER_NO_EXTENSIONS=1 to run the suite on the Python SimHash")


@needs_accel
@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=60))
def test_c_and_python_agree_on_tricky_pieces(pieces: list[bytes]) -> None:
    text = b"".join(pieces)
    assert [h for _, h in accel.words_and_hashes(text)] == list(map(word_hash, python_words(text)))
    assert accel.simhash_text(text, MAX_WORDS) == python_text_simhash(text)


@needs_accel
@settings(max_examples=600, deadline=None)
@given(st.one_of(st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
                 st.binary(max_size=300)))
def test_c_and_python_agree_on_any_text_and_any_bytes(text: bytes) -> None:
    assert accel.simhash_text(text, MAX_WORDS) == python_text_simhash(text)
    assert accel.simhash_text(text, MAX_WORDS, WEAK_BITS) == python_text_simhash_weak(text)


@needs_accel
def test_every_code_point_splits_as_str_split_does() -> None:
    """Each code point between two letters: a space to str.split is a space to C."""
    text = " ".join(f"x{chr(c)}y" for c in range(0x110000)
                    if not 0xD800 <= c <= 0xDFFF).encode()
    found = [word for word, _ in accel.words_and_hashes(text)]
    assert found == [w.encode() for w in text.decode().split()]


@needs_accel
def test_words_past_max_words_do_not_count_in_either() -> None:
    head = " ".join(f"w{i}" for i in range(MAX_WORDS)).encode()
    tail = " ".join(f"other{i}" for i in range(MAX_WORDS)).encode()
    assert accel.simhash_text(head + b" " + tail, MAX_WORDS) == accel.simhash_text(head, MAX_WORDS)
    assert python_text_simhash(head + b" " + tail) == accel.simhash_text(head + b" " + tail,
                                                                         MAX_WORDS)


@needs_accel
def test_a_large_page_of_distinct_words_agrees() -> None:
    """Past the C set's first table (many growths) and long words."""
    rnd = random.Random(7)
    text = " ".join(f"{rnd.getrandbits(64):x}{'Q' * rnd.randrange(20)}"
                    for _ in range(MAX_WORDS)).encode()
    assert accel.simhash_text(text, MAX_WORDS) == python_text_simhash(text)
    assert accel.simhash_text(text, -1) != 0
    assert accel.simhash_text(text, MAX_WORDS, WEAK_BITS) == python_text_simhash_weak(text)


@needs_accel
@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 40), max_size=80), st.integers(0, 64))
def test_c_and_python_pick_the_same_weak_bits_at_any_cap(words: list[int], cap: int) -> None:
    """Few distinct words: many margins sit at -1..2, so the cap and the order decide."""
    text = " ".join(f"w{w}" for w in words).encode()
    assert accel.simhash_text(text, MAX_WORDS, cap) == \
        (python_text_simhash(text), simhash.weak_bits(*_counts(text), cap))


def _counts(text: bytes) -> tuple[list[int], int]:
    """Per bit, how many of a text's distinct words have it; and how many words.
    Counted plainly (not through the module's lanes) where the texts are small."""
    words = set(python_words(text)[:MAX_WORDS])
    if len(words) > 100:  # the module's lanes, checked against the plain count below
        lanes = sum(simhash._spread_int(word_hash(w)) for w in words)
        return simhash._lane_counts(lanes), len(words)
    return [sum(word_hash(w) >> b & 1 for w in words) for b in range(64)], len(words)


def test_the_lane_counts_are_the_plain_counts() -> None:
    words = [f"w{i}".encode() for i in range(300)]
    lanes = sum(simhash._spread_int(word_hash(w)) for w in words)
    assert simhash._lane_counts(lanes) == [sum(word_hash(w) >> b & 1 for w in words)
                                           for b in range(64)]


@settings(max_examples=150, deadline=None)
@given(st.integers(20, 1200), st.integers(0, 2**32), st.sampled_from(["replace", "add", "drop"]))
def test_one_word_changed_flips_only_weak_bits(words: int, seed: int, change: str) -> None:
    """What the index relies on: a copy with one word more, fewer or changed differs
    from the page only in bits that are weak in the copy (uncapped; the worker
    sends at most WEAK_BITS of them)."""
    rnd = random.Random(seed)
    page = [f"w{rnd.getrandbits(40)}" for _ in range(words)]
    copy = list(page)
    if change == "replace":
        copy[rnd.randrange(words)] = "changed"
    elif change == "add":
        copy.insert(rnd.randrange(words + 1), "added")
    else:
        del copy[rnd.randrange(words)]
    a = python_text_simhash(" ".join(page).encode())
    copy_text = " ".join(copy).encode()
    b = python_text_simhash(copy_text)
    weak = simhash.weak_bits(*_counts(copy_text), cap=64)
    assert (a ^ b) & ~weak == 0
    # Capped, the bits kept are among the weakest, never outside the weak set.
    capped = python_text_simhash_weak(copy_text)[1]
    assert capped & ~weak == 0 and capped.bit_count() == min(WEAK_BITS, weak.bit_count())


def test_no_text_has_weak_bits() -> None:
    assert python_text_simhash_weak(b"") == (0, 0)
    assert python_text_simhash_weak(b" \n\t ") == (0, 0)
    if accel is not None:
        assert accel.simhash_text(b"", MAX_WORDS, WEAK_BITS) == (0, 0)


def test_each_bit_of_the_word_hash_is_a_fair_coin() -> None:
    """A SimHash needs every bit of a feature to be set half the time, for
    short, similar words too (FNV-1a alone is weak in its low bits)."""
    hashes = [word_hash(f"w{i}".encode()) for i in range(20_000)]
    for bit in range(64):
        share = sum((h >> bit) & 1 for h in hashes) / len(hashes)
        assert 0.48 < share < 0.52, (bit, share)


def test_the_word_hash_and_the_simhash_are_fixed() -> None:
    """Workers of one crawl on other machines or versions file comparable
    hashes: these values change only with the definition (and the README)."""
    assert word_hash(b"near") == 0x68D19010A9E2C3A0
    assert word_hash(b"abcdefghij") == 0x8F50EEC30424318B  # two 8-byte chunks
    assert word_hash(b"abcdefgh") != word_hash(b"abcdefgh\x00")  # the length counts
    assert python_text_simhash(b"Near duplicates are found here") == 0xC8C5884029E3CF38
    # 5 words: every margin is odd; the 12 weak bits are those of margin 1, from bit 3 up
    assert python_text_simhash_weak(b"Near duplicates are found here") == \
        (0xC8C5884029E3CF38, 0x4021E0CC18)
    if accel is not None:
        assert accel.simhash_text(b"Near duplicates are found here", MAX_WORDS) == \
            0xC8C5884029E3CF38
        assert accel.simhash_text(b"Near duplicates are found here", MAX_WORDS, WEAK_BITS) == \
            (0xC8C5884029E3CF38, 0x4021E0CC18)

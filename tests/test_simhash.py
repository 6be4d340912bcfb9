"""SimHash of a page's visible text (crawler.pages.simhash): distances behave as promised."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from crawler.pages.parse import parse_html
from crawler.pages.simhash import hamming, simhash_digests, simhash_words, to_hex, words_of

VOCABULARY = [f"word{i}" for i in range(3000)]


def text(seed: int, n: int = 600) -> list[str]:
    rnd = random.Random(seed)
    return [rnd.choice(VOCABULARY) for _ in range(n)]


def html(body: str) -> bytes:
    return f"<html><head><title>t</title></head><body>{body}</body></html>".encode()


def test_identical_texts_are_zero_bits_apart() -> None:
    assert hamming(simhash_words(text(1)), simhash_words(text(1))) == 0


def test_a_small_edit_moves_few_bits() -> None:
    words = text(2)
    edited = list(words)
    edited[300] = "changed"
    assert hamming(simhash_words(words), simhash_words(edited)) <= 3


def test_different_texts_are_many_bits_apart() -> None:
    assert hamming(simhash_words(text(3)), simhash_words(text(4))) >= 16


def test_a_bit_is_set_by_a_strict_majority_of_features() -> None:
    one = bytes.fromhex("8000000000000001")
    zero = bytes(8)
    assert simhash_digests(one + zero) == 0  # a tie is not a majority
    assert simhash_digests(one * 2 + zero) == 0x8000000000000001
    assert simhash_digests(one * 5000 + zero * 4999) == 0x8000000000000001


def test_bit_columns_are_counted_per_position() -> None:
    # Two features: a majority needs both, so only bits set in both survive.
    a, b = bytes.fromhex("ff00000000000001"), bytes.fromhex("f000000000000003")
    assert simhash_digests(a + b + a) == 0xFF00000000000001
    assert simhash_digests(a) == 0xFF00000000000001
    assert simhash_digests(b"") == 0


def test_hex_is_sixteen_digits() -> None:
    assert to_hex(5) == "0000000000000005"
    assert len(to_hex(simhash_words(text(5)))) == 16


def test_script_style_and_head_are_not_visible_text() -> None:
    body = " ".join(text(6, 300))
    plain = parse_html(html(f"<p>{body}</p>"), "http://a.test/", simhash=True)
    noisy = parse_html(html(f"<script>var x = {text(7, 200)};</script><p>{body}</p>"
                            f"<style>p {{ color: red }}</style><!-- a comment -->"),
                       "http://a.test/", simhash=True)
    assert plain.simhash and plain.simhash == noisy.simhash
    assert parse_html(html("<p>x</p>"), "http://a.test/").simhash is None  # not asked


def test_words_are_lower_case_and_split_at_white_space() -> None:
    assert words_of("Straße,\u00a0ÉTÉ!\n 3-4") == ["straße,", "été!", "3-4"]


def test_one_changed_word_in_800_keeps_95_percent_within_three_bits() -> None:
    near = 0
    for seed in range(200):
        words = text(seed, 800)
        edited = list(words)
        edited[random.Random(seed).randrange(800)] = "replacement"
        near += hamming(simhash_words(words), simhash_words(edited)) <= 3
    assert near >= 190


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10**6), at=st.integers(0, 799))
def test_one_changed_word_moves_fewer_bits_than_a_different_text(seed: int, at: int) -> None:
    words = text(seed, 800)
    edited = list(words)
    edited[at] = "replacement"
    assert hamming(simhash_words(words), simhash_words(edited)) <= 6


@settings(max_examples=40, deadline=None)
@given(a=st.integers(0, 10**6), b=st.integers(0, 10**6))
def test_unrelated_texts_are_never_within_three_bits(a: int, b: int) -> None:
    if a != b:
        assert hamming(simhash_words(text(a, 300)), simhash_words(text(b, 300))) > 3


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from(
    "aZ09 .,\t\n\x0b\x0c\x1c\x1d\x1e\x1f\u00a0\u0085ÉßẞİΣ\u2003é-"), max_size=12), max_size=30))
def test_the_bytes_fast_path_gives_the_str_path_hash(parts: list[str]) -> None:
    # page_simhash splits UTF-8 bytes where that gives str's words: every page
    # must get the hash the plain definition gives, whatever its characters.
    from html import escape

    from lxml import etree

    from crawler.pages.simhash import page_simhash, visible_text
    body = "".join(f"<p>{escape(p)}</p>" if i % 2 else f"<span>{escape(p)}</span>"
                   for i, p in enumerate(parts))
    root = etree.fromstring(html(body), etree.HTMLParser(encoding="utf-8"))
    assert page_simhash(root) == simhash_words(words_of(visible_text(root)))

"""URL canonicalization, fingerprints and host keys.

Canonical form (RFC 3986 section 6 normalizations a crawler can apply safely):
lower-case scheme and host, IDNA (punycode) hosts, no default port, no
fragment, dot segments resolved, an empty path made ``/``, percent-escapes of
unreserved characters decoded and the rest written in upper-case hex,
characters that may not appear raw percent-encoded as UTF-8. Query parameter
order is kept: reordering changes meaning on too many real sites.

This is the hot path of a crawl (every link of every page goes through it),
so, measured in ``bench/urls_bench.py`` against yarl and w3lib on our pages:

- ``resolve`` drops the fragment first and joins the common link shapes
  (absolute, ``//host/...``, ``/path``) by string concatenation, leaving only
  truly relative links to ``urljoin`` (3 µs a call);
- ``canonicalize`` has a bounded cache (links repeat across pages, and without
  their fragments far more often) and returns URLs that are already canonical
  after one regex match, before the full ``urlsplit`` path.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from functools import lru_cache
from urllib.parse import SplitResult, urljoin, urlsplit

from crawler.errors import InvalidURL

SCHEMES = frozenset({"http", "https"})
DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_URL_LENGTH = 2048

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
# Characters allowed raw in a path or query besides unreserved ones and '%'.
_PATH_SAFE = "!$&'()*+,;=:@/"
_QUERY_SAFE = _PATH_SAFE + "?"
_NEEDS_QUOTING_PATH = re.compile(r"[^A-Za-z0-9\-._~!$&'()*+,;=:@/%]")
_NEEDS_QUOTING_QUERY = re.compile(r"[^A-Za-z0-9\-._~!$&'()*+,;=:@/?%]")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_HOST_OK = re.compile(r"^[a-z0-9\-._~!$&'()*+,;=]+$")


def _fix_escape(match: re.Match[str]) -> str:
    code = int(match.group(1), 16)
    if code in _UNRESERVED:
        return chr(code)
    return "%" + match.group(1).upper()


def _quote_char(match: re.Match[str]) -> str:
    return "".join(f"%{b:02X}" for b in match.group(0).encode("utf-8"))


def _normalize_component(text: str, needs_quoting: re.Pattern[str]) -> str:
    if "%" in text:
        text = _BAD_PERCENT.sub("%25", text)
        text = _ESCAPE.sub(_fix_escape, text)
    return needs_quoting.sub(_quote_char, text)


def remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4."""
    if "." not in path:
        return path
    segments = path.split("/")
    out: list[str] = []
    for seg in segments[1:] if path.startswith("/") else segments:
        if seg == "..":
            if out:
                out.pop()
        elif seg != ".":
            out.append(seg)
    result = "/" + "/".join(out)
    if segments[-1] in (".", "..") and not result.endswith("/"):
        result += "/"
    return result


def _canonical_host(parts: SplitResult) -> str:
    host = parts.hostname
    if not host:
        raise InvalidURL("no host")
    if ":" in host:  # IPv6 literal; urlsplit strips the brackets
        try:
            return "[" + ipaddress.IPv6Address(host).compressed + "]"
        except ValueError as exc:
            raise InvalidURL(f"bad IPv6 address {host!r}") from exc
    host = host.rstrip(".")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise InvalidURL(f"bad international host name {host!r}") from exc
    host = host.lower()
    if not host or not _HOST_OK.match(host):
        raise InvalidURL(f"bad host {host!r}")
    return host


# An http(s) URL with nothing to normalize: lower-case host, only characters
# that stay raw, no escapes. Port and dot segments are checked after the match.
_ALREADY_CANONICAL = re.compile(
    r"(https?)://([a-z0-9\-_~!$&'()*+,;=]+(?:\.[a-z0-9\-_~!$&'()*+,;=]+)*)(?::([1-9][0-9]{0,4}))?"
    r"(/[A-Za-z0-9\-._~!$&'()*+,;=:@/]*)(\?[A-Za-z0-9\-._~!$&'()*+,;=:@/?]*)?")
_DEFAULT_PORT_TEXT = {"http": "80", "https": "443"}
_TAB_NEWLINE = str.maketrans("", "", "\t\n\r")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")


def _is_canonical(url: str) -> bool:
    match = _ALREADY_CANONICAL.fullmatch(url)
    if match is None:
        return False
    scheme, _, port, path, _ = match.groups()
    if port is not None and (port == _DEFAULT_PORT_TEXT[scheme] or int(port) > 65535):
        return False
    return "/." not in path


@lru_cache(maxsize=65536)
def canonicalize(url: str) -> str:
    """Return the canonical form of an absolute http(s) URL.

    Raises InvalidURL for anything that is not a usable absolute http(s) URL.
    """
    if len(url) <= MAX_URL_LENGTH * 2 and _is_canonical(url):
        return url
    return _canonicalize(url)


def _split_error(message: str) -> str:
    """urllib's ValueError text (``Invalid IPv6 URL``) in the crawler's own words."""
    if message.startswith("Invalid IPv6 URL"):
        return "unbalanced [ or ] (brackets enclose an IPv6 address)"
    if message.startswith("Port out of range"):
        return "port out of range (1 to 65535)"
    if message.startswith("Port could not be cast"):
        return f"port {message.rpartition(' as ')[2]} is not a number"
    if "NFKC" in message:
        return "host has characters that change under Unicode normalization"
    return f"not a URL ({message[:1].lower()}{message[1:]})"


def _canonicalize(url: str) -> str:
    url = url.strip()
    if len(url) > MAX_URL_LENGTH * 2:
        raise InvalidURL("URL too long")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidURL(_split_error(str(exc))) from exc
    scheme = parts.scheme.lower()
    if not scheme:
        raise InvalidURL("no scheme (expected http:// or https://)")
    if scheme not in SCHEMES:
        raise InvalidURL(f"unsupported scheme {scheme!r}")
    host = _canonical_host(parts)
    netloc = host if port is None or port == DEFAULT_PORTS[scheme] else f"{host}:{port}"
    try:
        path = remove_dot_segments(_normalize_component(parts.path, _NEEDS_QUOTING_PATH)) or "/"
        query = _normalize_component(parts.query, _NEEDS_QUOTING_QUERY) if parts.query else ""
    except UnicodeEncodeError:  # a lone surrogate, e.g. from an undecodable Location header
        raise InvalidURL("contains characters that are not valid Unicode") from None
    out = f"{scheme}://{netloc}{path}"
    if query or url.partition("#")[0].endswith("?"):  # "a?" is not "a" to every server
        out += "?" + query
    return out


def resolve(base: str, href: str) -> str:
    """Resolve a link against its page's base URL (absolute, canonical) and canonicalize it.

    ``canonicalize(urljoin(base, href))``, faster: the fragment never matters,
    and joining is string slicing (RFC 3986 section 5.2) with ``canonicalize``
    removing the dot segments. Where urljoin follows the older RFC 1808 this
    follows RFC 3986 and browsers: an empty query (``a?``) and empty segments
    (``a//b``) are kept, ``%2e`` is a dot, and ``;`` does not split off
    "params" (``/..;x`` is a plain segment).
    """
    href = href.strip()
    if "\t" in href or "\n" in href or "\r" in href:
        href = href.translate(_TAB_NEWLINE)  # removed before parsing (WHATWG): "/\t/x" is "//x"
    cut = href.find("#")
    head = href if cut < 0 else href[:cut]
    if head[-1:].isspace():
        # Rare: white space that only the fragment kept from being stripped.
        return canonicalize(urljoin(base, href))
    if head.startswith(("http://", "https://")):
        return canonicalize(head)
    if head.startswith("//"):
        return canonicalize(base[:base.index(":") + 1] + head)
    if head.startswith("/"):
        end = base.find("/", base.index("//") + 2)
        return canonicalize((base if end < 0 else base[:end]) + head)
    if _SCHEME.match(head):
        return canonicalize(urljoin(base, head))  # "HTTP://...", "http:x": rare
    if not head:
        return canonicalize(base)  # the page itself, query and all
    without_query = base.partition("?")[0]
    if head.startswith("?"):
        return canonicalize(without_query + head)
    # RFC 3986 5.2.3 merge: the base path up to its last "/", then the link;
    # canonicalize removes the dot segments.
    return canonicalize(without_query[:without_query.rfind("/") + 1] + head)


def host_key(url: str) -> str:
    """The politeness key of a canonical URL: its host, with the port if not default."""
    start = url.index("//") + 2
    end = url.find("/", start)
    return url[start:end if end >= 0 else None]


def prefix_length(url: str) -> int:
    """Length of a canonical URL's prefix: up to the last '/' of its path (not its query)."""
    query = url.find("?")
    return url.rfind("/", 0, query if query >= 0 else len(url)) + 1


def hostname(url: str) -> str:
    """The bare host name of a canonical URL (no port)."""
    key = host_key(url)
    if key.startswith("["):
        return key[: key.index("]") + 1]
    return key.rsplit(":", 1)[0] if ":" in key else key


@lru_cache(maxsize=65536)  # every link is fingerprinted, most are links seen before
def fingerprint(canonical_url: str) -> int:
    """Signed 64-bit fingerprint of a canonical URL (stable across runs and versions)."""
    digest = hashlib.blake2b(canonical_url.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def fingerprint_bucket(fp: int, bits: int) -> int:
    """Which dedup set a fingerprint goes in: its top ``bits`` bits."""
    return (fp & 0xFFFFFFFFFFFFFFFF) >> (64 - bits)

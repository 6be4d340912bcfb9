"""Content codings: the crawler advertises exactly the ones it can decode.

aiohttp decodes the body (gzip, deflate, and br / zstd when its optional
modules import: Brotli or brotlicffi, and ``compression.zstd`` or its
backport ``backports.zstd`` before Python 3.14). ``Accept-Encoding`` is
computed here from aiohttp's own flags for those modules, so a server is
never offered a coding the crawler would then fail to read. Brotli and
backports.zstd are dependencies, so on a normal install all four are offered.

The decoded size is capped by the fetcher (``max_body_bytes``, counted after
decoding, chunk by chunk): aiohttp inflates at most a bounded amount per
read for every coding, so a bomb (a few KB on the wire, gigabytes decoded)
ends as ``too_large`` without being held in memory.
"""

from __future__ import annotations

import functools


@functools.cache
def decodable() -> tuple[str, ...]:
    """The content codings aiohttp decodes in this process, most preferred last."""
    from aiohttp import compression_utils

    codings = ["gzip", "deflate"]
    if compression_utils.HAS_BROTLI:
        codings.append("br")
    if compression_utils.HAS_ZSTD:
        codings.append("zstd")
    return tuple(codings)


def accept_encoding() -> str:
    """The ``Accept-Encoding`` value every request sends: ``gzip, deflate, br, zstd``."""
    return ", ".join(decodable())


def is_decoding_error(exc: BaseException) -> bool:
    """Whether ``exc`` (aiohttp's payload error) comes from a body that does not decode.

    A server that says ``br`` and sends gzip, or garbage: that is the
    server's content, not a broken connection, and retrying cannot help.
    """
    from aiohttp.http_exceptions import ContentEncodingError

    cause: BaseException | None = exc
    for _ in range(5):  # bounded walk down the causes aiohttp chains
        if cause is None:
            return False
        if isinstance(cause, ContentEncodingError):
            return True
        cause = cause.__cause__
    return False

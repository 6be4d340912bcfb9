"""Which zlib inflates response bodies: zlib-ng when it is installed.

Most pages come gzipped, and inflating them is a fixed cost of every page.
zlib-ng (the ``zlib-ng`` package, a dependency) is a drop-in zlib with the
same API, ``max_length`` and ``unconsumed_tail`` included, which aiohttp's
decompression-bomb cap relies on; it inflated the web benchmark's ~80 KB
pages in 0.07 ms instead of zlib's 0.17 (README, Performance). aiohttp
takes it through ``aiohttp.set_zlib_backend``, which is process-wide; if
the package is missing, the standard zlib stays.
"""

from __future__ import annotations

from types import ModuleType


def fast_zlib() -> ModuleType | None:
    """zlib-ng's zlib module, or None if it is not installed."""
    try:
        from zlib_ng import zlib_ng
    except ImportError:
        return None
    return zlib_ng


def use_fast_inflate() -> str:
    """Make aiohttp inflate with zlib-ng if installed; return the module aiohttp uses."""
    import aiohttp

    backend = fast_zlib()
    if backend is not None:
        aiohttp.set_zlib_backend(backend)
    from aiohttp.compression_utils import ZLibBackend

    return ZLibBackend.name

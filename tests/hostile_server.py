"""A misbehaving HTTP server on a loopback address, for hostile-server tests.

It speaks raw HTTP/1.1 over asyncio streams, so it can do what a polite
framework will not: drip a byte a second, never answer, reset the connection
mid-body, close without a word, lie about the Content-Type, inflate a tiny
gzip body past any cap. Each path is one misbehaviour (``ROUTES``). Every
response closes its connection, so each request is one connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable
from functools import lru_cache

Handler = Callable[["HostileServer", asyncio.StreamReader, asyncio.StreamWriter],
                   Awaitable[None]]

BOMB_INFLATED = 128 * 1024 * 1024
"""Bytes the gzip bomb inflates to (from about 130 KB on the wire)."""
PAGE_CHARSET_TITLES = {
    "/cp1251-header": ("windows-1251", "Привет, мир"),
    "/cp1251-meta": ("windows-1251", "Привет, мир"),
    "/sjis-meta": ("shift_jis", "こんにちは世界"),
    "/latin1-header": ("iso-8859-1", "Café déjà vu"),
    "/latin1-meta": ("iso-8859-1", "Café déjà vu"),
}
WEIRD_TITLE_RAW = "Bell\x07 esc\x1b[31m red \u202eevil\u202c \u200fשלום\u200f 🕷️🕸️ end"
"""A title with control characters, right-to-left marks and emoji, as served."""


def http_response(status: int, body: bytes = b"", headers: dict[str, str] | None = None,
                  *, content_length: bool = True) -> bytes:
    lines = [f"HTTP/1.1 {status} X"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if content_length:
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@lru_cache(maxsize=1)
def gzip_bomb() -> bytes:
    """gzip of BOMB_INFLATED zero bytes: about 130 KB that inflate 1000-fold."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    parts = [comp.compress(block) for _ in range(BOMB_INFLATED >> 20)]
    parts.append(comp.flush())
    return b"".join(parts)


def binary_noise(size: int = 4096) -> bytes:
    """Deterministic bytes that are not text: NULs, high bytes, everything."""
    return bytes((i * 7919 + (i >> 3)) % 256 for i in range(size))


def charset_page(path: str) -> tuple[bytes, dict[str, str]]:
    charset, title = PAGE_CHARSET_TITLES[path]
    if path.endswith("-meta"):
        meta = (f'<meta http-equiv="Content-Type" content="text/html; charset={charset}">'
                if "latin1" in path else f'<meta charset="{charset}">')
        html = f"<html><head>{meta}<title>{title}</title></head><body>x</body></html>"
        return html.encode(charset), {"Content-Type": "text/html"}
    html = f"<html><head><title>{title}</title></head><body>x</body></html>"
    return html.encode(charset), {"Content-Type": f"text/html; charset={charset}"}


async def _send(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(data)
    await writer.drain()


# -- the misbehaviours -------------------------------------------------------


async def drip(_: HostileServer, __: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    """Headers, then one byte of body a second, for ever."""
    await _send(w, b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100000\r\n\r\n")
    while True:
        await _send(w, b"x")
        await asyncio.sleep(1.0)


async def silent(_: HostileServer, r: asyncio.StreamReader, __: asyncio.StreamWriter) -> None:
    """Accept, read the request, never answer; wait until the client gives up."""
    await r.read()


async def reset_mid_body(_: HostileServer, __: asyncio.StreamReader,
                         w: asyncio.StreamWriter) -> None:
    await _send(w, b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100000\r\n\r\n"
                + b"<html><head><title>cut</title>" + b"x" * 2000)
    await asyncio.sleep(0.05)
    sock = w.get_extra_info("socket")
    # SO_LINGER 0: close() sends RST instead of FIN.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    w.transport.abort()


async def empty_reply(_: HostileServer, __: asyncio.StreamReader,
                      w: asyncio.StreamWriter) -> None:
    """Close without sending a single byte."""
    w.close()


async def big_declared(s: HostileServer, _: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    await _send(w, f"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                   f"Content-Length: {s.big_bytes}\r\n\r\n".encode())
    block = b"<p>" + b"x" * 65533
    for _ in range(s.big_bytes // len(block) + 1):
        await _send(w, block)


async def big_chunked(s: HostileServer, _: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    """No Content-Length: the cap must stop the read itself."""
    await _send(w, b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n")
    block = b"<p>" + b"x" * 65533
    for _ in range(s.big_bytes // len(block) + 1):
        await _send(w, f"{len(block):x}\r\n".encode() + block + b"\r\n")
    await _send(w, b"0\r\n\r\n")


async def bomb(_: HostileServer, __: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    await _send(w, http_response(200, gzip_bomb(), {"Content-Type": "text/html",
                                                    "Content-Encoding": "gzip"}))


def redirect_to(location: str | Callable[[str], str]) -> Handler:
    async def handler(s: HostileServer, _: asyncio.StreamReader,
                      w: asyncio.StreamWriter) -> None:
        target = location(s.last_path) if callable(location) else location
        await _send(w, http_response(302, b"", {"Location": target}))
    return handler


def _next_in_chain(path: str) -> str:
    n = int(path.rsplit("/", 1)[1]) if path.count("/") > 1 else 0
    return f"/chain/{n + 1}"


def fixed(status: int, body: bytes, headers: dict[str, str] | None = None) -> Handler:
    async def handler(_: HostileServer, __: asyncio.StreamReader,
                      w: asyncio.StreamWriter) -> None:
        await _send(w, http_response(status, body, headers))
    return handler


async def charset(s: HostileServer, _: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    body, headers = charset_page(s.last_path)
    await _send(w, http_response(200, body, headers))


async def flaky(s: HostileServer, _: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    """500 on the first two requests, then a page."""
    if s.hits["/flaky"] <= 2:
        await _send(w, http_response(500, b"try again", {"Content-Type": "text/plain"}))
    else:
        await _send(w, http_response(200, b"<title>recovered</title>",
                                     {"Content-Type": "text/html"}))


HTML = {"Content-Type": "text/html"}
ROUTES: dict[str, Handler] = {
    "/drip": drip,
    "/silent": silent,
    "/reset": reset_mid_body,
    "/empty": empty_reply,
    "/big-declared": big_declared,
    "/big-chunked": big_chunked,
    "/bomb": bomb,
    "/loop": redirect_to("/loop"),
    "/loop-a": redirect_to("/loop-b"),
    "/loop-b": redirect_to("/loop-a"),
    "/chain": redirect_to(_next_in_chain),
    "/to-ftp": redirect_to("ftp://127.0.0.1/file.txt"),
    "/to-javascript": redirect_to("javascript:alert(1)"),
    "/to-file": redirect_to("file:///etc/passwd"),
    "/binary-as-html": fixed(200, binary_noise(), HTML),
    "/no-type-html": fixed(200, b"<!DOCTYPE html><html><head><title>untyped</title></head>"
                                b"<body><a href='/ok'>ok</a></body></html>"),
    "/no-type-binary": fixed(200, binary_noise()),
    "/truncated": fixed(200, b"<html><head><title>Half a page</title></head><body><div><p>"
                             b"unclosed <a href='/ok'>ok</a><table><tr><td><a href=\"/tr", HTML),
    "/weird-title": fixed(200, f"<html><head><meta charset=utf-8><title>{WEIRD_TITLE_RAW}"
                               f"</title></head></html>".encode(), HTML),
    "/cp1251-header": charset,
    "/cp1251-meta": charset,
    "/sjis-meta": charset,
    "/latin1-header": charset,
    "/latin1-meta": charset,
    "/no-charset": fixed(200, "<html><head><title>Ünïcödé ✓</title></head></html>".encode(),
                         HTML),
    "/no-charset-latin1": fixed(200, "<html><head><title>Café</title></head></html>"
                                .encode("latin-1"), HTML),
    "/flaky": flaky,
    "/down": fixed(500, b"down for good", {"Content-Type": "text/plain"}),
    "/ok": fixed(200, b"<html><head><title>ok</title></head></html>", HTML),
    "/robots.txt": fixed(404, b"", {"Content-Type": "text/plain"}),
}


class HostileServer:
    """Serve ``ROUTES`` on ``host``; use as ``async with HostileServer() as s``."""

    def __init__(self, host: str = "127.0.0.2", *, big_bytes: int = 4 * 1024 * 1024) -> None:
        self.host = host
        self.port = 0
        self.big_bytes = big_bytes
        self.hits: Counter[str] = Counter()
        self.last_path = ""
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    async def __aenter__(self) -> HostileServer:
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._conns):
            task.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].decode("latin-1").split("?", 1)[0]
            route = "/chain" if path.startswith("/chain") else path
            self.hits[route] += 1
            self.last_path = path
            handler = ROUTES.get(route, fixed(404, b"not here", {"Content-Type": "text/plain"}))
            await handler(self, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._conns.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

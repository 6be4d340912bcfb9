"""The web benchmark's server when nginx is not installed: TLS, gzip files, keep-alive 100.

``python -m crawler.bench.webserver ROOT CERT KEY PORT IP...`` serves
``ROOT/<local ip>/<path>`` over TLS on each IP, in its own process (its CPU
is read from /proc and reported apart from the crawler's). Files under
``/p/`` are pre-compressed gzip and go out with ``Content-Encoding: gzip``.
Like nginx's ``keepalive_requests 100``, a connection's 100th response says
``Connection: close`` and the connection is closed after it: the client
must open a new connection, and shake hands again, every 100 requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import sys
from pathlib import Path

KEEPALIVE_REQUESTS = 100
_NOT_FOUND = (b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n"
              b"\r\nnot found")


class GzipFiles(asyncio.Protocol):
    """HTTP/1.1 GETs of files under ``root/<local ip>/``, at most 100 a connection."""

    def __init__(self, root: Path, keepalive_requests: int = KEEPALIVE_REQUESTS) -> None:
        self.root = root
        self.keepalive_requests = keepalive_requests
        self.buffer = b""
        self.served = 0
        self.transport: asyncio.Transport | None = None
        self.ip = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        self.ip = transport.get_extra_info("sockname")[0]

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        while self.served < self.keepalive_requests:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buffer = self.buffer[:end], self.buffer[end + 4:]
            self.served += 1
            last = self.served >= self.keepalive_requests
            self.transport.write(self._response(head.split(b"\r\n", 1)[0], last))
            if last:
                self.transport.close()  # after the response is written

    def _response(self, request_line: bytes, last: bool) -> bytes:
        parts = request_line.split(b" ")
        if len(parts) != 3 or parts[0] != b"GET" or b".." in parts[1]:
            return _NOT_FOUND
        path = parts[1].split(b"?", 1)[0]
        try:
            body = (self.root / self.ip / path.decode().lstrip("/")).read_bytes()
        except (OSError, UnicodeDecodeError):
            return _NOT_FOUND
        if path.startswith(b"/p/"):
            kind = b"text/html; charset=utf-8\r\nContent-Encoding: gzip"
        else:
            kind = b"text/plain; charset=utf-8"
        close = b"Connection: close\r\n" if last else b""
        return b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n%s" % (
            kind, len(body), close, body)


def server_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def serve(root: Path, context: ssl.SSLContext, port: int,
                ips: list[str]) -> list[asyncio.Server]:
    loop = asyncio.get_running_loop()
    return [await loop.create_server(lambda: GzipFiles(root), ip, port, ssl=context,
                                     backlog=2048) for ip in ips]


def main() -> None:
    import uvloop

    root, cert, key, port, *ips = sys.argv[1:]

    async def run() -> None:
        servers = await serve(Path(root), server_context(cert, key), int(port), ips)
        print("ready", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            for server in servers:
                server.close()

    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(run())


if __name__ == "__main__":
    main()

"""Small real proxies on loopback for the proxy tests: HTTP (CONNECT and absolute-form) and SOCKS5.

Each runs its own event loop in a background thread, logs the target of
every request (``targets``: ``host:port`` per plain request, per CONNECT
tunnel, per SOCKS connection), and can be killed mid-crawl: ``kill`` closes the
listening socket and every connection it carries, so new connections are
refused and requests in flight are cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
import struct
import threading

from crawler.bench.sitegen import free_port


class ForwardProxy:
    """An HTTP forward proxy (``kind = "http"``) or a SOCKS5 one (``"socks5"``)."""

    def __init__(self, host: str = "127.0.0.1", kind: str = "http",
                 tls: ssl.SSLContext | None = None) -> None:
        """``tls``: the proxy itself speaks TLS (an ``https://`` proxy)."""
        self.host, self.kind, self.port, self.tls = host, kind, free_port(), tls
        self.targets: list[str] = []
        self.heads: list[bytes] = []  # every HTTP request head (CONNECT or absolute form)
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        # Killed: a connection accepted just before, whose handler had not yet run
        # when kill() aborted the open ones, is dropped too (it once carried 3 more
        # requests after the kill, on a busy machine).
        self._dead = False

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else self.kind
        return f"{scheme}://{self.host}:{self.port}"

    def seen(self) -> list[str]:
        with self._lock:
            return list(self.targets)

    def __enter__(self) -> ForwardProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def kill(self) -> None:
        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)

    async def _start(self) -> None:
        serve = self._socks if self.kind == "socks5" else self._http
        self._server = await asyncio.start_server(serve, self.host, self.port, ssl=self.tls)

    async def _stop(self) -> None:
        self._dead = True
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()

    def _log(self, target: str) -> None:
        with self._lock:
            self.targets.append(target)

    async def _http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._dead:
            writer.transport.abort()
            return
        self._writers.add(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            with self._lock:
                self.heads.append(head)
            method, target, version = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
            if method == "CONNECT":
                host, port = target.rsplit(":", 1)
                self._log(target)
                up_reader, up_writer = await asyncio.open_connection(host, int(port))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await self._pipe(reader, writer, up_reader, up_writer)
                return
            # Absolute form: http://host:port/path -> origin form to that host.
            rest = target.split("://", 1)[1]
            authority, _, path = rest.partition("/")
            host, _, port = authority.rpartition(":")
            self._log(authority)
            up_reader, up_writer = await asyncio.open_connection(host, int(port or 80))
            lines = [f"{method} /{path} {version}".encode()] + [
                line for line in head.split(b"\r\n")[1:]
                if line and not line.lower().startswith(b"proxy-")]
            # One request a connection keeps the log exact: the target closes after it.
            lines = [line for line in lines if not line.lower().startswith(b"connection:")]
            up_writer.write(b"\r\n".join([*lines, b"Connection: close", b"", b""]))
            await self._pipe(reader, writer, up_reader, up_writer)
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    async def _socks(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._dead:
            writer.transport.abort()
            return
        self._writers.add(writer)
        try:
            _version, methods = await reader.readexactly(2)
            await reader.readexactly(methods)
            writer.write(b"\x05\x00")  # no authentication
            _v, command, _r, kind = await reader.readexactly(4)
            if kind == 1:
                host = str(ipaddress.IPv4Address(await reader.readexactly(4)))
            elif kind == 3:
                host = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
            else:
                raise ValueError("address type")
            [port] = struct.unpack("!H", await reader.readexactly(2))
            if command != 1:
                raise ValueError("only CONNECT")
            self._log(f"{host}:{port}")
            up_reader, up_writer = await asyncio.open_connection(host, port)
            writer.write(b"\x05\x00\x00\x01" + bytes(4) + b"\x00\x00")
            await self._pipe(reader, writer, up_reader, up_writer)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    up_reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter) -> None:
        self._writers.add(up_writer)

        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(OSError):
                dst.write_eof()

        try:
            await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))
        finally:
            self._writers.discard(up_writer)
            up_writer.transport.abort()

"""A deterministic generated web site on loopback hosts, for tests and the benchmark.

``SiteSpec(hosts=H, pages=P)`` describes H hosts (127.0.0.2, 127.0.0.3, ...)
of P pages each. Every page's title and ``<a href>`` count are known in
advance (``expected``), so a crawl can be checked page by page. Each page
links to the next page of its host (so everything is reachable from the
seeds), to a few other pages of its host and of other hosts, and to one host
that is never seeded (127.0.0.250), which an in-scope crawl must never touch.

``SiteServer`` serves the site from a thread (for tests that inspect its
request log). For the benchmark, ``write_site`` renders every page to files
(``<dir>/<ip>/p/<i>.html`` and ``<dir>/<ip>/robots.txt``) for nginx, and
``python -m crawler.bench.sitegen --static DIR`` serves those files from its own
process when nginx is not installed: pre-rendered bytes, no framework, so the
server costs little CPU beside the crawler it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

OUT_OF_SCOPE_HOST = "127.0.0.250"


@dataclass(frozen=True)
class SiteSpec:
    hosts: int = 5
    pages: int = 100
    links: int = 12  # <a href> per page
    page_bytes: int = 2000  # approximate page size
    port: int = 0
    robots: str = "User-agent: *\nDisallow: /private/\n"
    first_ip: int = 2

    def host_ips(self) -> list[str]:
        return [f"127.0.0.{self.first_ip + h}" for h in range(self.hosts)]

    def origin(self, h: int) -> str:
        return f"http://127.0.0.{self.first_ip + h}:{self.port}"

    def seeds(self) -> list[str]:
        return [self.origin(h) + "/p/0.html" for h in range(self.hosts)]


def title_of(spec: SiteSpec, h: int, i: int) -> str:
    # Non-ASCII on purpose: titles must survive encoding and export.
    return f"Host {h} page {i} — «Ü»"


def _link_targets(spec: SiteSpec, h: int, i: int) -> list[str]:
    rnd = random.Random(h * 1_000_003 + i)
    targets = [f"/p/{(i + 1) % spec.pages}.html"]
    for k in range(1, spec.links - 1):
        if k % 4 == 0 and spec.hosts > 1:
            other = rnd.randrange(spec.hosts)
            targets.append(f"{spec.origin(other)}/p/{rnd.randrange(spec.pages)}.html")
        else:
            targets.append(f"/p/{rnd.randrange(spec.pages)}.html#frag{k}")
    targets.append(f"http://{OUT_OF_SCOPE_HOST}:{spec.port}/p/0.html")
    return targets[:max(1, spec.links)]


@lru_cache(maxsize=4096)
def page_html(spec: SiteSpec, h: int, i: int) -> bytes:
    links = "\n".join(f'<li><a href="{t}">link {n}</a></li>'
                      for n, t in enumerate(_link_targets(spec, h, i)))
    head = (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{title_of(spec, h, i)}</title></head>\n<body><h1>Page {i}</h1>\n<ul>\n")
    tail = "\n</ul>\n</body></html>\n"
    filler_len = max(0, spec.page_bytes - len(head) - len(links) - len(tail))
    return (head + links + _filler(filler_len, h * 1_000_003 + i) + tail).encode("utf-8")


# Paragraphs with inline markup, as real pages have: the parser must walk
# elements, not just one long text node. Each paragraph names one word of its
# own page (of a vocabulary of 4096, 8 letters each, so every paragraph keeps
# its length): pages of a site share their template, as real ones do, but not
# their text, so near-duplicate detection finds none among them.
_PARAGRAPH = ('\n<p class="text">Lorem <b>ipsum</b> dolor {word} amet, <span class="x">'
              'consectetur</span> adipiscing elit, <em>sed do</em> eiusmod tempor incididunt.</p>')
_LETTERS = "abcdefghijklmnop"
_WORDS = ["".join(_LETTERS[(n >> shift) & 15] for shift in (0, 4, 8, 12)) * 2
          for n in range(4096)]
_PARAGRAPH_BYTES = len(_PARAGRAPH.format(word=_WORDS[0]))


def _filler(size: int, salt: int = 0) -> str:
    if size <= 0:
        return ""
    count = size // _PARAGRAPH_BYTES
    text = "".join(_PARAGRAPH.format(word=_WORDS[(salt * 2654435761 + k * 40503) % 4096])
                   for k in range(count))
    rest = size - len(text)
    return text + (f"\n<p>{'x' * (rest - 8)}</p>" if rest > 8 else "")


def expected(spec: SiteSpec) -> dict[str, tuple[str, int]]:
    """Canonical URL -> (title, link count) of every page a full crawl must find."""
    return {f"{spec.origin(h)}/p/{i}.html": (title_of(spec, h, i), len(_link_targets(spec, h, i)))
            for h in range(spec.hosts) for i in range(spec.pages)}


def write_site(spec: SiteSpec, root: Path) -> int:
    """Render every page and robots.txt under ``root/<ip>/``. Returns the bytes written."""
    total = 0
    for h, ip in enumerate(spec.host_ips()):
        pages = root / ip / "p"
        pages.mkdir(parents=True, exist_ok=True)
        (root / ip / "robots.txt").write_text(spec.robots)
        for i in range(spec.pages):
            # Not page_html: its cache would hold a whole benchmark site in memory.
            body = page_html.__wrapped__(spec, h, i)
            (pages / f"{i}.html").write_bytes(body)
            total += len(body)
    return total


STALL_TICK = 0.002
"""Seconds between the server loop's stall probes (``SiteServer(watch_stalls=True)``)."""


@dataclass
class RequestLog:
    """Start and end of every request, per host, as the server saw them; with
    ``SiteServer(watch_stalls=True)``, also how late the server's own loop ran."""

    entries: list[tuple[str, str, float, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ticks: list[tuple[float, float]] = field(default_factory=list)  # (fired at, seconds late)

    def add(self, host: str, path: str, start: float, end: float) -> None:
        with self.lock:
            self.entries.append((host, path, start, end))

    def stall_at(self, stamp: float, window: float = 0.005) -> float:
        """How long the server's loop may have been stalled just before ``stamp``:
        the latest probe that fired within ``window`` of it. A request that
        arrived during a stall is stamped when the loop runs again, so its start
        may be late by up to this much; 0 without probes. A measured gap after
        that start may be short by as much, through no fault of the client."""
        late = 0.0
        with self.lock:  # probes are appended in time order: a bisect finds the window
            i = bisect.bisect_left(self.ticks, (stamp - window, -1.0))
            while i < len(self.ticks) and self.ticks[i][0] <= stamp + window:
                late = max(late, self.ticks[i][1])
                i += 1
        return late

    def by_host(self) -> dict[str, list[tuple[float, float, str]]]:
        out: dict[str, list[tuple[float, float, str]]] = {}
        with self.lock:
            for host, path, start, end in self.entries:
                out.setdefault(host, []).append((start, end, path))
        for spans in out.values():
            spans.sort()
        return out


def make_app(spec: SiteSpec, log: RequestLog | None = None,
             slow: dict[str, float] | None = None) -> web.Application:
    """The site as an aiohttp app. ``slow`` maps host IPs to seconds added per response."""
    index = {ip: h for h, ip in enumerate(spec.host_ips())}

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.monotonic()
        try:
            ip = request.transport.get_extra_info("sockname")[0] if request.transport else ""
            if slow and ip in slow:
                await asyncio.sleep(slow[ip])
            return await handler(request)
        finally:
            if log is not None:
                ip = request.transport.get_extra_info("sockname")[0] if request.transport else ""
                log.add(ip, request.path, start, time.monotonic())

    async def page(request: web.Request) -> web.Response:
        ip = request.transport.get_extra_info("sockname")[0] if request.transport else ""
        h = index.get(ip)
        try:
            i = int(request.match_info["i"])
        except ValueError:
            raise web.HTTPNotFound() from None
        if h is None or not 0 <= i < spec.pages:
            raise web.HTTPNotFound()
        return web.Response(body=page_html(spec, h, i), content_type="text/html",
                            charset="utf-8")

    async def robots(_: web.Request) -> web.Response:
        return web.Response(text=spec.robots, content_type="text/plain")

    app = web.Application(middlewares=[record])
    app.router.add_get("/p/{i}.html", page)
    app.router.add_get("/robots.txt", robots)
    return app


def free_port(ip: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET) as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


class SiteServer:
    """Serve a site on all its hosts (plus the out-of-scope host) from a background thread."""

    def __init__(self, spec: SiteSpec, *, slow: dict[str, float] | None = None,
                 app: web.Application | None = None, watch_stalls: bool = False) -> None:
        self.spec = spec if spec.port else _with_port(spec, free_port())
        self.log = RequestLog()
        self.app = app or make_app(self.spec, self.log, slow)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None
        self.watch_stalls = watch_stalls
        self._probe: asyncio.Task[None] | None = None

    def __enter__(self) -> SiteServer:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    async def _start(self) -> None:
        self.runner = web.AppRunner(self.app, access_log=None, handler_cancellation=True)
        await self.runner.setup()
        for ip in [*self.spec.host_ips(), OUT_OF_SCOPE_HOST]:
            await web.TCPSite(self.runner, ip, self.spec.port, backlog=1024).start()
        if self.watch_stalls:
            self._probe = asyncio.create_task(self._probe_stalls())

    async def _probe_stalls(self) -> None:
        """Wake every STALL_TICK and log how late: when the machine is busy, this
        thread (or the process's GIL) can be held off for tens of ms, and every
        request that arrives meanwhile is stamped late (``RequestLog.stall_at``)."""
        while True:
            due = time.monotonic() + STALL_TICK
            await asyncio.sleep(STALL_TICK)
            now = time.monotonic()
            with self.log.lock:
                self.log.ticks.append((now, max(0.0, now - due)))

    async def _stop(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
        if self.runner is not None:
            await self.runner.cleanup()


def _with_port(spec: SiteSpec, port: int) -> SiteSpec:
    from dataclasses import replace

    return replace(spec, port=port)


_TYPES = {b"html": b"text/html; charset=utf-8", b"txt": b"text/plain; charset=utf-8"}
_NOT_FOUND = (b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n"
              b"\r\nnot found")


class _StaticFiles(asyncio.Protocol):
    """HTTP/1.1 keep-alive GETs of files under ``root/<local ip>/``; nothing else.

    Enough HTTP for a crawler on loopback: one request line, headers ignored,
    responses in order. Paths with ``..`` are refused.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.buffer = b""
        self.transport: asyncio.WriteTransport | None = None
        self.ip = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        self.ip = transport.get_extra_info("sockname")[0]

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buffer = self.buffer[:end], self.buffer[end + 4:]
            self.transport.write(self._response(head.split(b"\r\n", 1)[0]))

    def _response(self, request_line: bytes) -> bytes:
        parts = request_line.split(b" ")
        if len(parts) != 3 or parts[0] not in (b"GET", b"HEAD") or b".." in parts[1]:
            return _NOT_FOUND
        path = parts[1].split(b"?", 1)[0]
        try:
            body = (self.root / self.ip / path.decode().lstrip("/")).read_bytes()
        except (OSError, UnicodeDecodeError):
            return _NOT_FOUND
        kind = _TYPES.get(path.rsplit(b".", 1)[-1], b"application/octet-stream")
        head = b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (
            kind, len(body))
        return head if parts[0] == b"HEAD" else head + body


async def serve_static(root: Path, ips: list[str], port: int) -> list[asyncio.Server]:
    loop = asyncio.get_running_loop()
    return [await loop.create_server(lambda: _StaticFiles(root), ip, port, backlog=2048)
            for ip in ips]


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve a generated site on 127.0.0.x")
    parser.add_argument("--hosts", type=int, default=5)
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--links", type=int, default=12)
    parser.add_argument("--page-bytes", type=int, default=2000)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--static", type=Path, default=None,
                        help="serve the files write_site rendered in this directory")
    args = parser.parse_args()
    spec = SiteSpec(hosts=args.hosts, pages=args.pages, links=args.links,
                    page_bytes=args.page_bytes, port=args.port)
    ips = [*spec.host_ips(), OUT_OF_SCOPE_HOST]

    async def serve() -> None:
        keep: list[object] = []  # the servers stay open while referenced
        if args.static is not None:
            keep += await serve_static(args.static, ips, spec.port)
        else:
            runner = web.AppRunner(make_app(spec), access_log=None)
            await runner.setup()
            for ip in ips:
                await web.TCPSite(runner, ip, spec.port, backlog=2048).start()
        print("ready", flush=True)
        await asyncio.Event().wait()

    try:
        import uvloop

        uvloop.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

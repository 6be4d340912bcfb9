"""crawl demo-site start on a port another program holds: an error, not seeds that crawl it."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from crawler.bench import demo
from crawler.bench.sitegen import free_port
from crawler.errors import CrawlError


@contextmanager
def serving(body: bytes) -> Iterator[int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    port = free_port("127.0.0.2")
    server = http.server.ThreadingHTTPServer(("127.0.0.2", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        server.shutdown()
        server.server_close()


def test_another_program_on_the_port_is_an_error(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    with serving(b"<html><title>Someone else's app</title></html>") as port:
        monkeypatch.setattr(demo, "DEMO_PORT", port)
        with pytest.raises(CrawlError, match=f"127.0.0.2:{port} is taken by another program"):
            demo.start_demo_site(str(tmp_path))
    assert not (tmp_path / "demo-site.pid").exists()  # nothing was started


def test_a_demo_site_already_running_gives_its_seeds(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    page = b"<!DOCTYPE html>\n<html><head><title>Host 0 page 0 \xe2\x80\x94</title></head></html>"
    with serving(page) as port:
        monkeypatch.setattr(demo, "DEMO_PORT", port)
        seeds = demo.start_demo_site(str(tmp_path))
    assert seeds[0] == f"http://127.0.0.2:{port}/p/0.html"
    assert not (tmp_path / "demo-site.pid").exists()  # reused, not started again

"""crawl demo-site: on a port another program holds, an error, not seeds that crawl it;
stopped from any directory; a stale pid file kills nothing."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
import time
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
            demo.start_demo_site()
        assert not demo._pidfile().exists()  # nothing was started


def test_a_demo_site_already_running_gives_its_seeds(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    page = b"<!DOCTYPE html>\n<html><head><title>Host 0 page 0 \xe2\x80\x94</title></head></html>"
    with serving(page) as port:
        monkeypatch.setattr(demo, "DEMO_PORT", port)
        seeds = demo.start_demo_site()
        assert not demo._pidfile().exists()  # reused, not started again
    assert seeds[0] == f"http://127.0.0.2:{port}/p/0.html"


def test_the_demo_site_stops_from_a_directory_other_than_the_one_it_started_in(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWL_")}
    port = free_port("127.0.0.2")
    # The port is a constant; this runs the command's own code with another one.
    run = ["-c", "import sys; from crawler.bench import demo; from crawler.cli import main; "
           f"demo.DEMO_PORT = {port}; sys.argv = ['crawl', 'demo-site', sys.argv[1]]; main()"]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    started = subprocess.run([sys.executable, *run, "start"], cwd=tmp_path / "a", env=env,
                             capture_output=True, text=True, timeout=60, check=False)
    monkeypatch.setattr(demo, "DEMO_PORT", port)
    try:
        assert started.returncode == 0, started.stderr
        assert f"http://127.0.0.2:{port}/p/0.html" in started.stdout
        stopped = subprocess.run([sys.executable, *run, "stop"], cwd=tmp_path / "b", env=env,
                                 capture_output=True, text=True, timeout=60, check=False)
        assert stopped.stdout.strip() == "stopped", stopped.stderr
        deadline = time.monotonic() + 15
        while demo._answers("127.0.0.2", port) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not demo._answers("127.0.0.2", port)
    finally:
        demo.stop_demo_site()


def test_a_stale_pid_file_stops_no_other_program(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "DEMO_PORT", free_port("127.0.0.2"))
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        demo._pidfile().write_text(str(other.pid))  # the demo site died; its pid was reused
        assert demo.stop_demo_site() is False
        assert other.poll() is None  # not signalled
        assert not demo._pidfile().exists()
    finally:
        other.kill()
        other.wait()


def test_a_site_started_by_an_earlier_version_stops_by_its_pid_file_in_the_home(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(demo, "DEMO_PORT", free_port("127.0.0.2"))
    # Stands in for the site: what /proc says it runs is all that stop checks.
    stand_in = "import time; print(flush=True); time.sleep(60)"
    site = subprocess.Popen([sys.executable, "-c", stand_in, "crawler.bench.sitegen"],
                            stdout=subprocess.PIPE)
    try:
        assert site.stdout is not None
        site.stdout.readline()  # it runs: /proc no longer shows the forked parent's command
        (tmp_path / "demo-site.pid").write_text(str(site.pid))  # where it used to be
        assert demo.stop_demo_site(str(tmp_path)) is True
        assert site.wait(10) == -15  # SIGTERM
        assert not (tmp_path / "demo-site.pid").exists()
    finally:
        site.kill()
        site.wait()

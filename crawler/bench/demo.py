"""``crawl demo-site start|stop``: a generated site on loopback to try the crawler on.

The demo site is the benchmark's generator (crawler.bench.sitegen) served in a
background process on 127.0.0.2-127.0.0.4, port 8765, so the README's first
command can show a whole crawl on any machine, with no network at all.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from crawler.errors import CrawlError
from crawler.store.server import home_dir

DEMO_PORT = 8765
DEMO_HOSTS = 3
DEMO_PAGES = 40
START_TIMEOUT = 15.0


def _pidfile() -> Path:
    """Where the demo site's pid is kept: one place a user, as its port is one a
    machine, so that ``crawl demo-site stop`` finds it from any directory. In a
    directory only this user may write (mode 0700): in a shared /tmp another user
    could plant the name first."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    directory = (Path(runtime) if runtime else Path.home() / ".cache") / "crawl"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return directory / f"demo-site-{DEMO_PORT}.pid"


def _is_demo_process(pid: int) -> bool:
    """Whether ``pid`` runs the demo site: a pid file outlives its process, and the
    pid may since belong to another program, which must not get the SIGTERM."""
    if not Path("/proc/self").is_dir():  # no /proc to ask (not Linux): trust the pid file
        return True
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # no such process
        return False
    return b"crawler.bench.sitegen" in cmdline


def _answers(ip: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((ip, port)) == 0


def _is_demo_site(ip: str, port: int) -> bool:
    """Whether what answers there serves the demo site's first page (its title says so)."""
    import http.client

    conn = http.client.HTTPConnection(ip, port, timeout=2.0)
    try:
        conn.request("GET", "/p/0.html")
        resp = conn.getresponse()
        return resp.status == 200 and b"<title>Host 0 page 0 " in resp.read(4096)
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def start_demo_site() -> list[str]:
    """Start the demo site in the background (if not running); return its seed URLs.

    Already running (started from any directory): its seeds again. Another
    program on the port: an error that says so, not seeds that crawl it."""
    seeds = [f"http://127.0.0.{2 + h}:{DEMO_PORT}/p/0.html" for h in range(DEMO_HOSTS)]
    if _answers("127.0.0.2", DEMO_PORT):
        if _is_demo_site("127.0.0.2", DEMO_PORT):
            return seeds
        raise CrawlError(f"127.0.0.2:{DEMO_PORT} is taken by another program, not the demo "
                         f"site; stop it (e.g. `ss -ltnp 'sport = :{DEMO_PORT}'` shows which) "
                         "and run crawl demo-site start again")
    pidfile = _pidfile()
    proc = subprocess.Popen(
        [sys.executable, "-m", "crawler.bench.sitegen", "--hosts", str(DEMO_HOSTS),
         "--pages", str(DEMO_PAGES), "--port", str(DEMO_PORT)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        pidfile.write_text(str(proc.pid))
    except OSError:
        proc.kill()  # a site no stop could find
        raise
    deadline = time.monotonic() + START_TIMEOUT
    while not all(_answers(f"127.0.0.{2 + h}", DEMO_PORT) for h in range(DEMO_HOSTS)):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise CrawlError(f"the demo site did not start on port {DEMO_PORT}")
        time.sleep(0.05)
    return seeds


def stop_demo_site(home: str | None = None) -> bool:
    """Stop the demo site this user started, from whatever directory; False if none runs.

    ``home``: where versions before this one kept the pid file (``demo-site.pid`` in
    the embedded Valkey's home), looked at when the new place has none."""
    pidfile = _pidfile()
    if not pidfile.exists():
        pidfile = home_dir(home) / "demo-site.pid"
    if not pidfile.exists():
        return False
    try:
        pid = int(pidfile.read_text())
        if not _is_demo_process(pid):
            return False
        os.kill(pid, signal.SIGTERM)
    except (ValueError, ProcessLookupError):
        return False
    finally:
        pidfile.unlink(missing_ok=True)
    return True

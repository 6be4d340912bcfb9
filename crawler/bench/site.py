"""The benchmark's web server: the generated site as static files, in its own process.

nginx when it is installed (``which nginx``): one server block listening on
every 127.0.0.x of the site, ``root <dir>/$server_addr``. Otherwise
``python -m crawler.bench.sitegen --static``, a pre-rendered file server on uvloop.
Either way the server runs in separate processes whose CPU time is read from
/proc, so it is reported apart from the crawler's.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from crawler.bench.sitegen import OUT_OF_SCOPE_HOST, SiteSpec
from crawler.bench.worker import cpu_seconds

READY_TIMEOUT = 15.0

NGINX_CONF = """\
{user}worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_body_temp_path {dir}/tmp;
    proxy_temp_path {dir}/tmp;
    fastcgi_temp_path {dir}/tmp;
    uwsgi_temp_path {dir}/tmp;
    scgi_temp_path {dir}/tmp;
    types {{ text/html html; text/plain txt; }}
    charset utf-8;
    server {{
{listen}
        root {root}/$server_addr;
    }}
}}
"""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None)


def nginx_config(spec: SiteSpec, root: Path, work: Path) -> str:
    listen = "\n".join(f"        listen {ip}:{spec.port};"
                       for ip in [*spec.host_ips(), OUT_OF_SCOPE_HOST])
    # As root, nginx would drop to "nobody", who cannot read our private temp dir.
    user = "user root root;\n" if os.geteuid() == 0 else ""
    return NGINX_CONF.format(user=user, dir=work, listen=listen, root=root)


class SiteProcess:
    """The site's server processes; a context manager that starts and stops them."""

    def __init__(self, spec: SiteSpec, root: Path, work: Path, kind: str = "auto") -> None:
        self.spec = spec
        self.root = root
        self.work = work
        nginx = nginx_binary()
        if kind == "auto":
            kind = "nginx" if nginx else "python"
        if kind == "nginx" and nginx is None:
            raise RuntimeError("nginx is not installed (apt-get install nginx-light)")
        self.kind = kind
        self.nginx = nginx
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> SiteProcess:
        self.work.mkdir(parents=True, exist_ok=True)
        log = open(self.work / f"{self.kind}.log", "wb")
        if self.kind == "nginx":
            assert self.nginx is not None
            (self.work / "tmp").mkdir(exist_ok=True)
            conf = self.work / "nginx.conf"
            conf.write_text(nginx_config(self.spec, self.root, self.work))
            # -e: a non-root user cannot open the default /var/log/nginx/error.log.
            argv = [self.nginx, "-c", str(conf), "-p", str(self.work),
                    "-e", str(self.work / "nginx-error.log")]
        else:
            s = self.spec
            argv = [sys.executable, "-m", "crawler.bench.sitegen", "--static", str(self.root),
                    "--hosts", str(s.hosts), "--pages", str(s.pages), "--port", str(s.port)]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + READY_TIMEOUT
        for ip in self.spec.host_ips():
            while True:
                try:
                    socket.create_connection((ip, self.spec.port), timeout=1).close()
                    break
                except OSError:
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        self.__exit__()
                        text = (self.work / f"{self.kind}.log").read_text(errors="replace")
                        raise RuntimeError(f"{self.kind} did not start: {text[-2000:]}") from None
                    time.sleep(0.02)

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def pids(self) -> list[int]:
        """The server's processes: the one we started and its children (nginx workers)."""
        assert self.proc is not None
        out = [self.proc.pid]
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == self.proc.pid:
                out.append(int(entry.name))
        return out

    def cpu_seconds(self) -> float:
        """CPU time of the server's processes so far (exited children not included)."""
        total = 0.0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                total += cpu_seconds(pid)
        return total

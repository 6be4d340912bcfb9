"""The web benchmark's server process and its throwaway CA.

nginx when installed (``keepalive_requests 100``, TLS from a trustme CA,
``Content-Encoding: gzip`` on the pre-compressed pages), otherwise
``python -m crawler.bench.webserver`` with the same behaviour. Start-up,
stop and CPU accounting are ``SiteProcess``'s.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from crawler.bench.site import SiteProcess
from crawler.bench.sitegen import OUT_OF_SCOPE_HOST
from crawler.bench.webserver import KEEPALIVE_REQUESTS
from crawler.bench.websitegen import WebSpec

WEB_NGINX_CONF = """\
{user}worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests {keepalive};
    keepalive_timeout 60s;
    client_body_temp_path {dir}/tmp;
    proxy_temp_path {dir}/tmp;
    fastcgi_temp_path {dir}/tmp;
    uwsgi_temp_path {dir}/tmp;
    scgi_temp_path {dir}/tmp;
    types {{ text/html html; text/plain txt; }}
    charset utf-8;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_session_cache shared:bench:10m;
    server {{
{listen}
        root {root}/$server_addr;
        location /p/ {{ add_header Content-Encoding gzip; }}
    }}
}}
"""


@dataclass(frozen=True)
class Certs:
    ca: Path  # the CA the crawler is told to trust (PEM)
    cert: Path  # the servers' chain, valid for every host IP
    key: Path


def make_certs(spec: WebSpec, where: Path) -> Certs:
    """A throwaway CA and one certificate for every host IP of the site."""
    try:
        import trustme
    except ImportError:
        raise RuntimeError("crawl bench --web needs trustme: pip install 'crawler[bench]'") \
            from None
    where.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    issued = ca.issue_cert(*spec.host_ips(), OUT_OF_SCOPE_HOST)
    certs = Certs(where / "ca.pem", where / "server.pem", where / "server.key")
    ca.cert_pem.write_to_path(str(certs.ca))
    issued.private_key_pem.write_to_path(str(certs.key))
    with open(certs.cert, "wb") as chain:
        for blob in issued.cert_chain_pems:
            chain.write(blob.bytes())
    return certs


def web_nginx_config(spec: WebSpec, root: Path, work: Path, certs: Certs) -> str:
    listen = "\n".join(f"        listen {ip}:{spec.port} ssl;"
                       for ip in [*spec.host_ips(), OUT_OF_SCOPE_HOST])
    user = "user root root;\n" if os.geteuid() == 0 else ""
    return WEB_NGINX_CONF.format(user=user, dir=work, listen=listen, root=root,
                                 keepalive=KEEPALIVE_REQUESTS, cert=certs.cert, key=certs.key)


class WebSiteProcess(SiteProcess):
    """The site's TLS server processes; a context manager that starts and stops them."""

    def __init__(self, spec: WebSpec, root: Path, work: Path, certs: Certs,
                 kind: str = "auto") -> None:
        super().__init__(spec, root, work, kind)
        self.certs = certs

    def __enter__(self) -> WebSiteProcess:
        self.work.mkdir(parents=True, exist_ok=True)
        log = open(self.work / f"{self.kind}.log", "wb")
        assert isinstance(self.spec, WebSpec)
        if self.kind == "nginx":
            assert self.nginx is not None
            (self.work / "tmp").mkdir(exist_ok=True)
            conf = self.work / "nginx.conf"
            conf.write_text(web_nginx_config(self.spec, self.root, self.work, self.certs))
            argv = [self.nginx, "-c", str(conf), "-p", str(self.work),
                    "-e", str(self.work / "nginx-error.log")]
        else:
            argv = [sys.executable, "-m", "crawler.bench.webserver", str(self.root),
                    str(self.certs.cert), str(self.certs.key), str(self.spec.port),
                    *self.spec.host_ips(), OUT_OF_SCOPE_HOST]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        self._wait_ready()
        return self

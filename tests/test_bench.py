"""The benchmark harness, small: it must crawl its site completely and report every figure.

Speed is not asserted here (CI machines vary); ``crawl bench`` prints it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from fault_helpers import wait_for

from crawler.bench.cli import site_size
from crawler.bench.dedup import run_dedup
from crawler.bench.report import split_warnings
from crawler.bench.run import BenchConfig, check_results, format_table, run_bench
from crawler.bench.site import SiteProcess, nginx_binary, nginx_config
from crawler.bench.sitegen import SiteSpec, expected, free_port, write_site

SMALL = BenchConfig(hosts=3, pages=30, links=12, page_bytes=3000, processes=(2,),
                    server="python", out=None)


def _get(ip: str, port: int, path: str) -> bytes:
    with socket.create_connection((ip, port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while data := s.recv(65536):
            chunks.append(data)
    return b"".join(chunks)


def test_small_benchmark_crawls_every_page_once_and_reports_all_figures(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    report = run_bench(BenchConfig(**{**SMALL.__dict__, "out": str(out)}), echo=lambda _: None)
    run = report["runs"]["2"]
    assert run["complete"], run["problems"]
    assert run["pages"] == 90
    assert report["ceiling"]["complete"] and report["ceiling"]["pages"] == 90
    assert run["robots_fetches"] == 3  # once per host, shared by both processes
    assert run["round_trips_per_page"] > 0
    cpu = run["cpu_ms_per_page"]
    # Workers and Valkey are measured to the microsecond (getrusage, INFO cpu);
    # a crawl costs Valkey about 0.05 ms a page (bench/README.md), the INFO
    # calls that measure it about 0.001: a figure read off an idle server fails.
    assert cpu["workers"] > 0 and cpu["redis"] >= 0.005, cpu
    # The web server is read from /proc in 10 ms ticks: a 90-page site may cost
    # it less than one, but never more than the crawler.
    assert 0 <= cpu["server"] < cpu["workers"], cpu
    assert len(run["peak_rss_mb"]) == 2
    assert json.loads(out.read_text())["runs"]["2"]["pages"] == 90
    table = format_table(report)
    assert "ours / ceiling" in table and "CPU ms/page: Valkey" in table


def test_valkey_cpu_is_measured_below_a_clock_tick(tmp_path: Path) -> None:
    from crawler.bench.servers import BenchRedis

    with BenchRedis(tmp_path) as valkey:
        client = valkey._nodes[0]
        before = valkey.cpu()[0]
        for i in range(200):  # about 2 ms of CPU: under one 10 ms tick of /proc/<pid>/stat
            client.set(f"k{i}", "x" * 100)
        used = valkey.cpu()[0] - before
    assert 0 < used < 1.0, used


def test_cluster_benchmark_runs_beside_the_single_server_and_reports_each_master() -> None:
    cfg = BenchConfig(**{**SMALL.__dict__, "hosts": 12, "processes": (1,), "ceiling": False,
                         "cluster": 3, "shards": (1, 8)})
    report = run_bench(cfg, echo=lambda _: None)
    assert set(report["runs"]) == {"1", "1p 8sh", "1p 3m"}
    assert all(run["complete"] for run in report["runs"].values()), report["runs"]
    on_cluster = report["runs"]["1p 3m"]
    assert on_cluster["shards"] == 12 and len(on_cluster["redis_cpu_ms_per_page_by_master"]) == 3
    assert report["runs"]["1p 8sh"]["shards"] == 8
    assert "each master" in format_table(report)


@pytest.mark.skipif(nginx_binary() is None, reason="nginx is not installed")
def test_nginx_serves_the_generated_site(tmp_path: Path) -> None:
    spec = SiteSpec(hosts=2, pages=3, port=free_port("127.0.0.2"))
    write_site(spec, tmp_path / "site")
    with SiteProcess(spec, tmp_path / "site", tmp_path / "nginx", "nginx") as site:
        body = _get("127.0.0.3", spec.port, "/p/2.html")
        assert site.kind == "nginx"
        # The CPU the benchmark charges to the web server is nginx's, and it moves as it
        # serves (at clock-tick resolution: a few hundred requests).
        assert {Path(f"/proc/{pid}/comm").read_text().strip() for pid in site.pids()} == {"nginx"}
        served = 0
        while site.cpu_seconds() == 0 and served < 20_000:
            _get("127.0.0.2", spec.port, "/p/1.html")
            served += 1
        assert site.cpu_seconds() > 0, f"no CPU time after {served} requests"
    assert b"200 OK" in body and b"Host 1 page 2" in body


def test_static_file_server_serves_pages_robots_and_refuses_the_rest(tmp_path: Path) -> None:
    spec = SiteSpec(hosts=2, pages=3, port=free_port("127.0.0.2"))
    write_site(spec, tmp_path / "site")
    with SiteProcess(spec, tmp_path / "site", tmp_path / "srv", "python"):
        page = _get("127.0.0.2", spec.port, "/p/1.html")
        robots = _get("127.0.0.3", spec.port, "/robots.txt")
        missing = _get("127.0.0.2", spec.port, "/p/99.html")
        escape = _get("127.0.0.2", spec.port, "/../127.0.0.3/p/1.html")
    assert b"text/html" in page and b"Host 0 page 1" in page
    assert b"Disallow: /private/" in robots
    assert b"404" in missing.split(b"\r\n", 1)[0] and b"404" in escape.split(b"\r\n", 1)[0]


def test_nginx_config_listens_on_every_host_and_serves_from_its_directory(tmp_path: Path) -> None:
    spec = SiteSpec(hosts=3, port=18080)
    conf = nginx_config(spec, tmp_path / "site", tmp_path)
    for ip in spec.host_ips():
        assert f"listen {ip}:18080;" in conf
    assert f"root {tmp_path / 'site'}/$server_addr;" in conf
    assert "access_log off;" in conf


def test_completeness_check_finds_missing_duplicate_and_wrong_pages() -> None:
    spec = SiteSpec(hosts=1, pages=3, links=5, port=8080)
    truth = expected(spec)
    urls = sorted(truth)
    records = [{"url": u, "status": 200, "title": truth[u][0], "links": truth[u][1],
                "error": None} for u in urls]
    assert check_results(spec, records) == []
    records[1] = {**records[1], "title": "wrong"}
    records.append(dict(records[0]))
    records.pop(2)
    records.append({"url": "http://127.0.0.250:8080/p/0.html", "status": 200, "title": "x",
                    "links": 0, "error": None})
    problems = "\n".join(check_results(spec, records))
    assert f"{urls[0]}: 2 results" in problems
    assert f"{urls[2]}: missing" in problems
    assert "'wrong'" in problems
    assert "127.0.0.250:8080/p/0.html: not in the site" in problems


def test_dedup_benchmark_keeps_fingerprints_in_intsets() -> None:
    report = run_dedup(20_000, echo=lambda _: None)
    assert set(report["set_encodings"]) == {"intset"}
    assert report["dedup_bytes_per_url"] > 0


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of running processes that contain ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(cmdline)
    return found


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_benchmark_stops_everything_it_started(signum: int) -> None:
    # Short: the embedded Valkey's socket path must fit in 108 bytes.
    tmp = Path(tempfile.mkdtemp(prefix="crawlt"))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CRAWL_")},
           "TMPDIR": str(tmp)}
    bench = subprocess.Popen(
        # 6,000 pages: a crawl of many seconds, interrupted once its worker runs;
        # a bigger site only took longer to write first.
        [sys.executable, "-m", "crawler", "bench", "--hosts", "2", "--pages", "3000",
         "--page-bytes", "600", "--links", "5",
         "--processes", "1", "--no-ceiling", "--server", "python", "--out", ""],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: any("crawler.bench.worker" in c for c in _processes_mentioning(str(tmp)))
                 and any("valkey" in c for c in _processes_mentioning(str(tmp))),
                 60, "the benchmark's Valkey and worker")
        bench.send_signal(signum)
        assert bench.wait(60) == 130
    finally:
        if bench.poll() is None:
            bench.kill()
    wait_for(lambda: not _processes_mentioning(str(tmp)), 15, "every child to be gone")
    assert b"interrupted" in (bench.stderr.read() if bench.stderr else b"")
    shutil.rmtree(tmp, ignore_errors=True)


def test_a_small_soak_drains_every_result_once_and_memory_comes_back() -> None:
    from crawler.bench.soak import run_soak

    report = run_soak(urls=6000, hosts=4, pages=500, processes=2, kill_drain=0,
                      kill_workers=0, report_every=60, server="python", echo=lambda _: None)
    assert (report["records"], report["missing"], report["duplicated"]) == (6000, 0, 0)
    assert report["results_left_in_redis"] == 0
    assert report["final_memory"]["bytes"]["hosts"] == 0  # finished hosts compacted
    assert report["ok"], report


def test_the_cluster_bench_warns_when_a_master_is_over_an_even_split_by_20_percent() -> None:
    def run(over: float) -> dict[str, Any]:
        return {"redis_split_max_over_mean": over, "redis_cpu_ms_per_page_by_master": [1, 1, 1]}

    report = {"site": {"hosts": 12}, "runs": {
        "2": {"redis_split_max_over_mean": 0.0, "redis_cpu_ms_per_page_by_master": [1.0]},
        "2p 3m": run(0.27), "1p 3m": run(0.19)}}
    warnings = split_warnings(report)
    assert warnings == ["WARNING: 2p 3m: the busiest master did +27% over an even split "
                        "(tolerance +20%); work splits by host and this site has 12 hosts: "
                        "use --hosts 200 or more"]


def test_the_cluster_bench_defaults_to_a_site_of_many_hosts_and_the_same_pages() -> None:
    assert site_size(None, None, 0) == (20, 500)  # the single-server default is unchanged
    assert site_size(None, None, 3) == (200, 50)
    assert site_size(None, 20, 3) == (200, 20)
    assert site_size(6, None, 3) == (6, 500)


# -- crawl bench --web: TLS, gzip, keep-alive 100 ---------------------------------------


def _other_cas() -> str:
    """A CA bundle that is not the benchmark's (SSL_CERT_FILE may be pointed at it)."""
    import certifi

    return certifi.where()


def _web_spec(**kw: Any) -> Any:
    from crawler.bench.websitegen import WebSpec

    return WebSpec(**{"hosts": 3, "pages": 10, "links": 12, "page_bytes": 20_000,
                      "port": free_port("127.0.0.2"), **kw})


def test_web_pages_are_gzip_of_the_sites_pages_with_its_titles_and_links() -> None:
    import gzip

    import lxml.html

    from crawler.bench.websitegen import web_page

    spec = _web_spec(pages=8, links=60, page_bytes=80_000)
    truth = expected(spec)
    for h, i in [(0, 0), (2, 7), (1, 3)]:
        html, gz = web_page(spec, h, i)
        assert gzip.decompress(gz) == html  # one valid gzip member, CRC and size right
        assert 70_000 < len(html) < 90_000 and len(gz) < len(html) / 3.5
        doc = lxml.html.fromstring(html)
        url = f"{spec.origin(h)}/p/{i}.html"
        assert url.startswith("https://")
        assert (doc.findtext(".//title"), len(doc.xpath("//a[@href]"))) == truth[url]


@pytest.mark.parametrize("kind", ["python", pytest.param("nginx", marks=pytest.mark.skipif(
    nginx_binary() is None, reason="nginx is not installed (apt-get install nginx-light)"))])
def test_web_server_speaks_tls_sends_gzip_and_closes_after_100_requests(
        tmp_path: Path, kind: str) -> None:
    import gzip
    import ssl

    from crawler.bench.website import WebSiteProcess, make_certs
    from crawler.bench.websitegen import web_page, write_web_site

    spec = _web_spec(hosts=2, pages=3)
    write_web_site(spec, tmp_path / "site")
    certs = make_certs(spec, tmp_path / "tls")
    trusting = ssl.create_default_context(cafile=str(certs.ca))
    with WebSiteProcess(spec, tmp_path / "site", tmp_path / "srv", certs, kind):
        # Negative control: with the system's CAs only, the certificate is refused.
        with pytest.raises(ssl.SSLCertVerificationError), \
                socket.create_connection(("127.0.0.3", spec.port), timeout=5) as raw:
            ssl.create_default_context(cafile=_other_cas()).wrap_socket(
                raw, server_hostname="127.0.0.3")
        with socket.create_connection(("127.0.0.3", spec.port), timeout=5) as raw, \
                trusting.wrap_socket(raw, server_hostname="127.0.0.3") as tls:
            request = b"GET /p/2.html HTTP/1.1\r\nHost: 127.0.0.3\r\n\r\n"
            tls.sendall(request * 101)  # one more than a connection may carry
            data = b""
            while chunk := tls.recv(1 << 16):  # until the server closes
                data += chunk
    responses = data.split(b"HTTP/1.1 200 OK\r\n")[1:]
    assert len(responses) == 100
    head, _, body = responses[0].partition(b"\r\n\r\n")
    assert b"content-encoding: gzip" in head.lower()
    assert gzip.decompress(body) == web_page(spec, 1, 2)[0]
    assert b"connection: close" in responses[-1].lower().partition(b"\r\n\r\n")[0]
    assert not any(b"connection: close" in r.lower().partition(b"\r\n\r\n")[0]
                   for r in responses[:-1])


def test_small_web_benchmark_crawls_every_page_once_over_tls_and_gzip(tmp_path: Path) -> None:
    from crawler.bench.web import WebBench, run_web

    out = tmp_path / "web.json"
    trusted_before = os.environ.get("SSL_CERT_FILE")
    cfg = BenchConfig(hosts=3, pages=10, links=12, page_bytes=20_000, processes=(1, 2),
                      server="python", out=str(out))
    report = run_web(WebBench(cfg=cfg), echo=lambda _: None)
    assert report["site"]["gzip_bytes_per_page"] * 3 < report["site"]["bytes_per_page"]
    for label in ("1", "2"):
        run = report["runs"][label]
        # Every page exactly once, status 200, the right title and link count
        # (check_results against the site's truth, on https:// URLs).
        assert run["complete"] and run["pages"] == 30, run["problems"]
        assert run["pages_per_s"] > 0 and run["cpu_ms_per_page"]["workers"] > 0
    assert report["ceiling"]["complete"] and report["ceiling"]["pages"] == 30
    profiled = report["profile"]
    assert profiled["complete"] and profiled["pages"] == 30
    # The profile saw the TLS, the inflating, the parsing and the frontier.
    for part in ("tls", "inflate", "parse", "links", "frontier"):
        assert profiled["ms_per_page"][part] > 0, profiled
    assert profiled["tls_handshakes_per_page"] > 0
    assert set(report["goals"]) == {"one_over_ceiling", "one_over_ceiling_by_cpu",
                                    "two_over_one"}
    assert report["goals"]["one_over_ceiling"]["ratio"] > 0
    saved = json.loads(out.read_text())
    assert saved["runs"]["1"]["pages"] == 30 and saved["profile"]["ms_per_page"]
    # The CA was trusted by the children only: the variable is as it was.
    assert os.environ.get("SSL_CERT_FILE") == trusted_before


def test_small_web_benchmark_with_the_lexbor_parser_crawls_every_page_once() -> None:
    pytest.importorskip("selectolax.lexbor", reason="selectolax is not installed")
    from crawler.bench.web import WebBench, run_web

    cfg = BenchConfig(hosts=3, pages=10, links=12, page_bytes=20_000, processes=(1,),
                      server="python", ceiling=False, out=None)
    report = run_web(WebBench(cfg=cfg, profile_run=False, settings={"html_parser": "lexbor"}),
                     echo=lambda _: None)
    run = report["runs"]["1"]
    assert run["complete"] and run["pages"] == 30, run["problems"]
    assert report["settings"] == {"html_parser": "lexbor"}


def test_memory_shapes_have_their_properties_and_the_same_urls_every_run() -> None:
    from crawler.bench.shapes import SHAPES, shape_urls

    for shape in SHAPES:
        urls = shape_urls(shape, 3000)
        assert len(set(urls)) == 3000 and urls == shape_urls(shape, 3000), shape
        by_host: dict[str, list[str]] = {}
        for url in urls:
            by_host.setdefault(url.split("/", 3)[2], []).append(url)
        if shape == "broad":  # a few big hosts, most with 1-3 URLs
            sizes = sorted(len(v) for v in by_host.values())
            assert sizes[-1] >= 30 and sizes[len(sizes) * 9 // 10] <= 3
        else:
            assert {len(v) for v in by_host.values()} == {100}
        if shape == "own-directory":  # every URL of a host in its own directory
            dirs = {url.rsplit("/", 1)[0] for url in urls}
            assert len(dirs) == len(urls)


@pytest.mark.parametrize("shape", ["own-directory", "broad"])
def test_memory_by_shape_reports_each_key_kind_and_they_sum_to_the_total(shape: str) -> None:
    from crawler.bench.memory_shapes import PARTS, run_shapes, table

    [report] = run_shapes([shape], 3000, 100, None, echo=lambda *_: None)
    assert report["shape"] == shape and report["queued"] == 3000
    assert set(report["bytes"]) == set(PARTS)
    assert sum(report["bytes"].values()) == report["bytes_total"] > 0
    assert report["bytes_per_url"] == round(report["bytes_total"] / 3000, 1)
    for part in ("dedup", "queue", "host_state", "ready", "scope"):
        assert report["bytes"][part] > 0, part
    solo = report["solo_host"]
    assert abs(sum(solo["by_part"].values()) - solo["bytes"]) < 1
    assert solo["by_part"]["ready"] > 0 and solo["by_part"]["scope"] > 0
    assert report["seed"]["add_calls"] > 0
    assert shape in table([report])


def test_seeding_in_growing_windows_stores_no_more_than_in_whole_windows(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A first window smaller than the rest splits a host's URLs over more add calls,
    and a query's prefix joins the host's table only when two URLs of one call use it.
    60,000 paged URLs (100 a host, half with a query): a first window of 5,000 stored
    0.3% more than whole windows; the first window of today stores no more."""
    from crawler.bench.memory_shapes import run_shapes
    from crawler.discovery import seeds

    [growing] = run_shapes(["paged"], 60_000, 100, None, echo=lambda *_: None)
    monkeypatch.setattr(seeds, "FIRST_WINDOW", seeds.WINDOW)
    [whole] = run_shapes(["paged"], 60_000, 100, None, echo=lambda *_: None)
    assert growing["queued"] == whole["queued"] == 60_000
    assert growing["bytes_total"] <= whole["bytes_total"] * 1.001


def test_small_host_layouts_are_measured_and_a_shared_hash_costs_least() -> None:
    from crawler.bench.small_hosts import run_small_hosts

    report = run_small_hosts(None, hosts=2000, echo=lambda *_: None)
    per_host = report["per_host"]
    assert per_host["now"] > per_host["inline"] > per_host["shared_hash"] > 0
    assert all(v > 0 for v in report["parts"].values())

"""The second hour (issue 21): a crawl that explains itself, true states, no silent traps.

Each test runs the ``crawl`` command as a user does (a child process, or
typer's runner) and checks what it says and its exit status.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis as sync_redis
from cli_runner import crawl, fresh_dir  # noqa: F401 (fresh_dir: an autouse fixture)

from crawler.store import keys

SITE_HOST = "127.0.0.55"




def run_crawl(*args: str, stdin: str | None = None, timeout: float = 60,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real command in a child process, to see exactly what a user sees."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CRAWL_")}
    return subprocess.run([sys.executable, "-m", "crawler", *args], capture_output=True,
                          text=True, timeout=timeout, input=stdin, env=clean | (env or {}))


class Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/robots.txt":
            self.send_response(404)
            self.end_headers()
            return
        body = b"<html><head><title>Home</title></head><body>hello</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def site() -> Iterator[str]:
    """One page on a loopback address: refused without --allow-private."""
    server = ThreadingHTTPServer((SITE_HOST, 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{SITE_HOST}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def make_crawl(redis_url: str, name: str, *urls: str) -> None:
    result = crawl("seed", "--redis", redis_url, "--crawl", name, "-", stdin="\n".join(urls))
    assert result.exit_code == 0, result.output


def worker(redis_url: str, name: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_crawl("worker", "--redis", redis_url, "--crawl", name, "--delay", "0", *extra)


def records(redis_url: str, name: str) -> list[dict[str, object]]:
    result = crawl("export", "-", "--redis", redis_url, "--crawl", name)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- 1. a blocked seed names its cause and fix; crawl retry queues it again -----------


def test_a_blocked_seed_says_why_and_crawl_retry_fetches_it_again(clean_redis: str,
                                                                  site: str) -> None:
    make_crawl(clean_redis, "priv", site)
    first = worker(clean_redis, "priv")
    assert first.returncode == 0, first.stderr
    assert f"crawl: 1 URL refused: {SITE_HOST} is a blocked address; pass --allow-private" \
        in first.stderr
    assert "`crawl retry --errors blocked_address` queues them again" in first.stderr
    # 8: the crawl is finished: a worker says so, and with how many pages.
    again = worker(clean_redis, "priv", "--allow-private")
    assert again.returncode == 0, again.stderr
    assert "crawl 'priv' is finished: 1 pages done (1 errors)" in again.stderr
    retried = run_crawl("retry", "--errors", "blocked_address,timeout", "--redis", clean_redis,
                        "--crawl", "priv")
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout.strip() == "queued 1 URLs again (errors: blocked_address, timeout)"
    fetched = worker(clean_redis, "priv", "--allow-private")
    assert fetched.returncode == 0, fetched.stderr
    assert "done: pages 1 " in fetched.stderr and "errors 0" in fetched.stderr
    old, new = records(clean_redis, "priv")
    assert old["url"] == new["url"] == site
    assert old["error"]["type"] == "blocked_address" and "retry" not in old  # type: ignore[index]
    assert new["status"] == 200 and new["error"] is None and new["retry"] == 1
    # Nothing is left to retry: said, with exit 1.
    nothing = run_crawl("retry", "--errors", "blocked_address", "--redis", clean_redis,
                        "--crawl", "priv")
    assert nothing.returncode == 1
    assert "no done URL failed with blocked_address; none failed here" in nothing.stderr


def test_with_recrawl_a_retry_is_a_visit_and_a_revisit_that_works_is_no_longer_failed(
        clean_redis: str, site: str) -> None:
    on = {"CRAWL_RECRAWL": "true"}
    seeded = run_crawl("seed", "--redis", clean_redis, "--crawl", "rc", "-", stdin=site,
                       env=on)
    assert seeded.returncode == 0, seeded.stderr
    assert "1 URL refused" in worker(clean_redis, "rc").stderr
    retried = run_crawl("retry", "--errors", "blocked_address", "--redis", clean_redis,
                        "--crawl", "rc")
    assert retried.returncode == 0, retried.stderr
    assert worker(clean_redis, "rc", "--allow-private").returncode == 0
    first, second = records(clean_redis, "rc")
    assert (first["visit"], second["visit"], second["retry"]) == (1, 2, 1)
    # A failed URL revisited by crawl recrawl, and fetched: no longer a failed URL.
    assert worker(clean_redis, "rc").returncode == 0  # nothing queued
    assert crawl("config", "set", "allow_private=false", "--redis", clean_redis,
                 "--crawl", "rc").exit_code == 0
    revisit = crawl("recrawl", "--older-than", "0s", "--redis", clean_redis, "--crawl", "rc")
    assert "queued 1 URLs for a revisit" in revisit.stdout
    assert "1 URL refused" in worker(clean_redis, "rc").stderr  # failed again: filed
    assert crawl("config", "set", "allow_private=true", "--redis", clean_redis,
                 "--crawl", "rc").exit_code == 0
    crawl("recrawl", "--older-than", "0s", "--redis", clean_redis, "--crawl", "rc")
    assert worker(clean_redis, "rc").returncode == 0
    assert [r["error"] is None for r in records(clean_redis, "rc")] == [False, True, False,
                                                                         True]
    nothing = crawl("retry", "--errors", "blocked_address", "--redis", clean_redis,
                    "--crawl", "rc")
    assert nothing.exit_code == 1 and "none failed here" in nothing.stderr


def test_crawl_retry_names_the_error_types_there_are(clean_redis: str, site: str) -> None:
    make_crawl(clean_redis, "priv", site)
    assert worker(clean_redis, "priv").returncode == 0
    result = crawl("retry", "--errors", "timeout", "--redis", clean_redis, "--crawl", "priv")
    assert result.exit_code == 1
    assert "queued 0 URLs again" in result.stdout
    assert "no done URL failed with timeout; the failed ones here: blocked_address 1" \
        in result.stderr
    # crawl status counts trap records with the errors; they are no failed fetches.
    trap = crawl("retry", "--errors", "trap", "--redis", clean_redis, "--crawl", "priv")
    assert trap.exit_code == 2 and "was never queued" in trap.stderr
    assert "crawl seed queues them" in trap.stderr and "stays marked seen" in trap.stderr


def test_a_name_that_does_not_resolve_says_so_and_what_to_check(clean_redis: str) -> None:
    make_crawl(clean_redis, "typo", "http://docs.pyhton.invalid/")  # never leaves the machine
    result = worker(clean_redis, "typo")
    assert result.returncode == 0, result.stderr
    assert "crawl: 1 URL not resolved: " in result.stderr
    assert "check the host names (a typo in the seeds?)" in result.stderr
    assert "`crawl retry --errors dns_error` queues them again" in result.stderr


def test_the_progress_line_carries_the_hint_while_errors_dominate() -> None:
    from crawler.worker.progress import Counters, progress_line

    c = Counters(pages=4, errors=3)
    for _ in range(3):
        c.by_error.add("timeout", "read timed out after 10s")
    line = progress_line(c, 1.0, 0)
    # Crawl-wide settings: the fix is config set (a worker's differing flag is refused).
    assert line.endswith("| 3 URLs timed out: read timed out after 10s; raise the timeouts "
                         "(crawl config set read_timeout=N total_timeout=N), or lower "
                         "max_per_host for a slow site; then "
                         "`crawl retry --errors timeout` queues them again")
    c.pages = 7  # 3 of 7: no longer most of the results
    assert "|" not in progress_line(c, 1.0, 0)


def test_no_hint_when_errors_do_not_dominate(clean_redis: str, site: str) -> None:
    make_crawl(clean_redis, "ok", site)
    result = worker(clean_redis, "ok", "--allow-private")
    assert result.returncode == 0, result.stderr
    assert "done: pages 1 " in result.stderr
    assert "refused" not in result.stderr and "crawl retry" not in result.stderr


async def test_a_failed_url_costs_about_a_hundred_bytes_to_keep(redis: object,
                                                                settings: object) -> None:
    """Measures what complete.lua keeps a failed URL for crawl retry (``failed``)."""
    from redis.asyncio import Redis

    from crawler.config import Settings
    from crawler.frontier import Frontier
    from crawler.results import dumps, make_record
    from crawler.store.layout import crawl_layout
    from tests.crawl_helpers import seed_urls

    assert isinstance(redis, Redis) and isinstance(settings, Settings)
    s = await crawl_layout(redis, settings.model_copy(update={"delay": 0.0,
                                                                 "max_per_host": 1000}))
    n = 1000
    urls = [f"http://127.0.0.2/section/page-{i:05d}.html" for i in range(n)]
    await seed_urls(redis, s, urls)
    frontier = Frontier(redis, s)
    leases = []
    for _ in range(20):
        leases += (await frontier.claim(n - len(leases), "w")).leases
        if len(leases) == n:
            break
    assert len(leases) == n
    for lease in leases:
        record = make_record(url=lease.url, depth=0, attempts=1, worker="w",
                             error=("timeout", "read timed out"))
        assert await frontier.complete(lease, dumps(record), is_error=True, tally="e:timeout")
    shard = keys.all_shards(s.crawl, s.shards, s.shard_tags)[0]
    assert await redis.hlen(shard.failed) == n
    used = int(await redis.memory_usage(shard.failed) or 0)
    per_url = used / n
    url_bytes = sum(len(u) for u in urls) / n
    print(f"failed costs {per_url:.0f} B a failed URL ({url_bytes:.0f} B of it the URL)")
    assert per_url < url_bytes + 120


# -- 2. only seed creates a crawl ------------------------------------------------------


@pytest.mark.parametrize("command", [
    ["worker"], ["config", "set", "delay=2"], ["config", "show"], ["pause"], ["resume"],
    ["stop"], ["recrawl", "--older-than", "1s"], ["retry", "--errors", "timeout"],
    ["dashboard", "--port", "0"], ["metrics", "--port", "0"], ["export", "-"], ["status"],
    ["delete", "nosuch", "--yes"],
])
def test_no_command_but_seed_creates_a_crawl(clean_redis: str, command: list[str]) -> None:
    make_crawl(clean_redis, "demo", "http://127.0.0.2/")
    before = sorted(sync_redis.Redis.from_url(clean_redis).keys())
    result = run_crawl("--redis", clean_redis, "--crawl", "nosuch", *command, timeout=30)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == ("crawl: error: there is no crawl 'nosuch'; the crawls "
                                     "here are: demo (see crawl list)")
    assert sorted(sync_redis.Redis.from_url(clean_redis).keys()) == before
    assert crawl("list", "--redis", clean_redis).stdout.split().count("nosuch") == 0


def test_a_seed_file_of_only_bad_lines_leaves_no_crawl(clean_redis: str) -> None:
    result = crawl("seed", "--redis", clean_redis, "--crawl", "junk", "-",
                   stdin="mailto:a@example.com\nftp://example.com/x\n")
    assert result.exit_code == 1
    assert "added 0, already seen 0, invalid 2" in result.stdout
    assert sync_redis.Redis.from_url(clean_redis).keys("crawl:{junk*") == []
    listed = crawl("list", "--redis", clean_redis)
    assert "junk" not in listed.stdout


# -- 3. a finished state ---------------------------------------------------------------


def test_a_finished_crawl_is_shown_finished_everywhere(clean_redis: str, site: str) -> None:
    make_crawl(clean_redis, "fin", site)
    make_crawl(clean_redis, "todo", "http://127.0.0.2/")  # queued: running
    assert worker(clean_redis, "fin", "--allow-private").returncode == 0
    status = json.loads(crawl("status", "--redis", clean_redis, "--crawl", "fin").stdout)
    assert status["crawl"]["state"] == "finished"
    assert json.loads(crawl("status", "--redis", clean_redis, "--crawl", "todo").stdout
                      )["crawl"]["state"] == "running"
    header, *rows = [line.split() for line in
                     crawl("list", "--redis", clean_redis).stdout.splitlines()]
    assert header[-1] == "STATE"
    assert {row[0]: row[-1] for row in rows} == {"fin": "finished", "todo": "running"}
    assert crawl("pause", "--redis", clean_redis, "--crawl", "fin").exit_code == 0
    status = json.loads(crawl("status", "--redis", clean_redis, "--crawl", "fin").stdout)
    assert status["crawl"]["state"] == "paused"  # an operator's state is kept as it is
    crawl("resume", "--redis", clean_redis, "--crawl", "fin")
    metrics = served(clean_redis, ["metrics", "--crawl", "fin"], "/metrics")
    assert 'crawl_state{state="finished"} 1.0' in metrics
    assert 'crawl_state{state="running"} 0.0' in metrics
    badge = json.loads(served(clean_redis, ["dashboard", "--crawl", "fin"], "/api/status"))
    assert badge["status"]["crawl"]["state"] == "finished"  # app.js shows it as the badge


def served(redis_url: str, command: list[str], path: str) -> str:
    """What ``crawl metrics`` or ``crawl dashboard`` serves at ``path``, once it is up."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "crawler", *command, "--redis",
                               redis_url, "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}",
                                            timeout=5) as resp:
                    return str(resp.read().decode())
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"{command[0]} did not serve {path} within 30 s")
    finally:
        server.terminate()
        server.wait(timeout=10)


# -- 4. recrawl needs recrawl = true from the start ------------------------------------


def test_recrawl_on_a_crawl_without_recrawl_is_refused_with_the_reason(
        clean_redis: str, site: str) -> None:
    make_crawl(clean_redis, "plain", site)
    assert worker(clean_redis, "plain", "--allow-private").returncode == 0
    result = crawl("recrawl", "--older-than", "0s", "--redis", clean_redis, "--crawl", "plain")
    assert result.exit_code == 2
    assert "crawl 'plain' was made without recrawl = true: it kept no fetch times" \
        in result.stderr
    result = crawl("config", "set", "recrawl=true", "delay=3", "--redis", clean_redis,
                   "--crawl", "plain")
    assert result.exit_code == 2
    assert "recrawl = true refused" in result.stderr
    assert "kept no fetch times for its 1 done URLs" in result.stderr
    shown = crawl("config", "show", "--json", "--redis", clean_redis, "--crawl", "plain")
    values = json.loads(shown.stdout)
    assert values["recrawl"] is False and values["delay"] == 0.0  # nothing stored


def test_recrawl_true_is_accepted_on_a_crawl_with_nothing_done(clean_redis: str) -> None:
    make_crawl(clean_redis, "fresh", "http://127.0.0.2/")
    result = crawl("config", "set", "recrawl=true", "--redis", clean_redis, "--crawl", "fresh")
    assert result.exit_code == 0, result.output
    assert "recrawl = true" in result.stdout


# -- 5. another directory is another world ---------------------------------------------


@pytest.mark.parametrize("command", [["status"], ["list"], ["export", "-"],
                                     ["config", "show"], ["metrics", "--port", "0"],
                                     ["dashboard", "--port", "0"], ["worker"], ["pause"],
                                     ["config", "set", "delay=2"],
                                     ["retry", "--errors", "timeout"]])
def test_a_command_with_no_store_starts_no_server(tmp_path: Path,
                                                            command: list[str]) -> None:
    result = run_crawl(*command, timeout=30)
    assert result.returncode == 2, result.stderr
    home = tmp_path / ".crawl"
    assert result.stderr.strip() == (
        f"crawl: error: no crawl store in {home}: nothing was crawled from here (crawl seed "
        "creates one); point at another with --home DIR or CRAWL_HOME=DIR, or at a server "
        "with --redis URL")
    assert not home.exists()  # no directory made, so no server started in it


def test_no_such_crawl_says_which_store_it_looked_in(tmp_path: Path) -> None:
    home = tmp_path / "store"
    try:
        seeded = run_crawl("--home", str(home), "--crawl", "pydocs", "seed", "-",
                           stdin="http://127.0.0.2/\n")
        assert seeded.returncode == 0, seeded.stderr
        result = run_crawl("--crawl", "pydocs", "status", env={"CRAWL_HOME": str(home)})
        assert result.returncode == 0, result.stderr
        other = run_crawl("--home", str(home), "--crawl", "pydoc", "status")
        assert other.returncode == 2
        assert other.stderr.strip() == (
            "crawl: error: there is no crawl 'pydoc'; the crawls here are: pydocs (see crawl "
            f"list); looked in the embedded store in {home} (--home DIR or CRAWL_HOME=DIR for "
            "another; --redis URL for a server)")
        listed = run_crawl("--home", str(home), "list")
        assert f"crawls in the embedded store in {home}" in listed.stderr
        assert listed.stdout.split()[8] == "pydocs"
    finally:
        run_crawl("server", "stop", "--home", str(home), "--force")


# -- 8. seeding a stopped crawl warns ---------------------------------------------------


def test_seeding_a_stopped_crawl_warns_and_says_how_to_resume(clean_redis: str) -> None:
    make_crawl(clean_redis, "halted", "http://127.0.0.2/a")
    assert crawl("stop", "--redis", clean_redis, "--crawl", "halted").exit_code == 0
    result = crawl("seed", "--redis", clean_redis, "--crawl", "halted", "-",
                   stdin="http://127.0.0.2/b\n")
    assert result.exit_code == 0
    assert "added 1" in result.stdout
    assert ("crawl: warning: crawl 'halted' is stopped (operator): workers refuse it until "
            "`crawl --crawl halted resume`") in result.stderr
    crawl("resume", "--redis", clean_redis, "--crawl", "halted")
    quiet = crawl("seed", "--redis", clean_redis, "--crawl", "halted", "-",
                  stdin="http://127.0.0.2/c\n")
    assert "warning" not in quiet.stderr


def test_crawl_retry_on_a_cluster(cluster: object, site: str) -> None:
    """retry_errors.lua runs in each shard's slot: the failed URL is found and queued."""
    url = str(cluster.url)  # type: ignore[attr-defined]
    name = f"retry{os.getpid()}"
    seeded = run_crawl("seed", "--redis", url, "--crawl", name, "-", stdin=f"{site}\n")
    assert seeded.returncode == 0, seeded.stderr
    assert "1 URL refused" in worker(url, name).stderr
    retried = run_crawl("retry", "--errors", "blocked_address", "--redis", url, "--crawl", name)
    assert retried.returncode == 0 and "queued 1 URLs again" in retried.stdout, retried.stderr
    assert worker(url, name, "--allow-private").returncode == 0
    exported = run_crawl("export", "-", "--redis", url, "--crawl", name)
    found = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [(r["status"], r.get("retry")) for r in found] == [(None, None), (200, 1)]

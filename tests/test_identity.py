"""Headers and credentials, against real local servers that echo what they received.

Each "never" of the credentials is its own test: not sent to another host,
not carried by a redirect, not in a record, a log line, a WARC file, the
crawl's stored settings in Redis, or `crawl config show`.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from crawl_helpers import ROOT, crawl, results
from redis.asyncio import Redis

from crawler.bench.sitegen import free_port
from crawler.config import Settings, load_settings
from crawler.errors import ConfigError
from crawler.store import keys

TOKEN = "s3cret-T0KEN-never-shown"
PASSWORD = "pa ss:w0rd-never-shown"


class EchoServer:
    """Records every request's headers by path; /to/<ip:port>/<path> redirects there."""

    def __init__(self, ip: str) -> None:
        self.ip = ip
        self.seen: dict[str, list[dict[str, str]]] = {}
        self.base = ""
        self.robots = ""
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.setdefault(request.path, []).append(dict(request.headers))
        if request.path.startswith("/to/"):
            target = request.path.removeprefix("/to/")
            raise web.HTTPFound(f"http://{target}")
        if request.path == "/robots.txt":
            if self.robots.startswith("redirect "):
                raise web.HTTPFound(self.robots.removeprefix("redirect "))
            return web.Response(text=self.robots)
        if request.path == "/sitemap.xml":
            return web.Response(text="<urlset xmlns='http://www.sitemaps.org/schemas/sitemap/"
                                     "0.9'></urlset>", content_type="application/xml")
        return web.Response(text="<title>echo</title>", content_type="text/html")

    async def __aenter__(self) -> EchoServer:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port(self.ip)
        await web.TCPSite(self._runner, self.ip, port).start()
        self.base = f"http://{self.ip}:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    def all_headers(self) -> list[dict[str, str]]:
        return [h for hs in self.seen.values() for h in hs]


@pytest.fixture
async def two() -> AsyncIterator[tuple[EchoServer, EchoServer]]:
    async with EchoServer("127.0.0.2") as a, EchoServer("127.0.0.3") as b:
        yield a, b


# -- headers ---------------------------------------------------------------------------------


async def test_headers_go_on_pages_robots_and_sitemaps_per_host_pattern(
        redis: Redis, settings: Settings, two: tuple[EchoServer, EchoServer]) -> None:
    a, b = two
    a.robots = f"User-agent: *\nAllow: /\nSitemap: {a.base}/sitemap.xml\n"
    s = settings.replace(headers={"Accept-Language": "fr", "X-Crawl": "all"},
                         host_headers={"127.0.0.2": {"x-crawl": "two", "X-Api-Key": "k2"}})
    found = await crawl(redis, s, [f"{a.base}/page", f"{b.base}/page"])
    assert found[f"{a.base}/page"]["title"] == "echo"
    for path in ("/page", "/robots.txt", "/sitemap.xml"):
        got = a.seen[path][0]
        assert got["Accept-Language"] == "fr", path
        assert got["x-crawl"] == "two" and got["X-Api-Key"] == "k2", path  # the host's wins
        assert got["User-Agent"] == s.full_user_agent
    other = b.seen["/page"][0]
    assert other["Accept-Language"] == "fr" and other["X-Crawl"] == "all"
    assert "X-Api-Key" not in other  # another host's headers stay with it


@pytest.mark.parametrize("text", ['[fetch.headers]\nUser-Agent = "me"\n',
                                  '[hosts."a.test".headers]\nuser-agent = "me"\n'])
def test_a_user_agent_in_headers_is_refused_pointing_at_user_agent(
        tmp_path: Path, text: str) -> None:
    path = tmp_path / "crawl.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"line \d.*use user_agent"):
        load_settings(path, env={})


def test_authorization_in_headers_is_refused_pointing_at_auth(tmp_path: Path) -> None:
    path = tmp_path / "crawl.toml"
    path.write_text('[fetch]\nheaders = {Authorization = "Bearer x"}\n')
    with pytest.raises(ConfigError, match=r"\[auth"):
        load_settings(path, env={})


def test_a_host_table_holding_only_headers_changes_no_politeness(tmp_path: Path) -> None:
    path = tmp_path / "crawl.toml"
    path.write_text('[hosts."a.test".headers]\nX-A = "1"\n[hosts."b.test"]\ndelay = 3\n'
                    '[hosts."b.test".headers]\nX-B = "2"\n')
    s = load_settings(path, env={})
    assert s.host_headers == {"a.test": {"X-A": "1"}, "b.test": {"X-B": "2"}}
    assert set(s.host_overrides) == {"b.test"} and s.host_overrides["b.test"].delay == 3


# -- credentials -----------------------------------------------------------------------------


def test_credentials_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "crawl.toml"
    path.write_text('[auth."a.test"]\nbearer = "from-file"\n')
    s = load_settings(path, env={"CRAWL_AUTH_INTRANET": f"b.test basic u:{PASSWORD}",
                                 "CRAWL_AUTH_API": f"a.test bearer {TOKEN}"})
    assert s.auth["a.test"].authorization() == f"Bearer {TOKEN}"  # the variable wins
    assert s.auth["b.test"].authorization() == \
        "Basic " + base64.b64encode(f"u:{PASSWORD}".encode()).decode()
    assert TOKEN not in repr(s) and PASSWORD not in repr(s)
    with pytest.raises(ConfigError, match="CRAWL_AUTH_BAD") as caught:
        load_settings(None, env={"CRAWL_AUTH_BAD": f"a.test token {TOKEN}"})
    assert TOKEN not in str(caught.value)  # a bad variable is named, its secret not shown


async def test_credentials_go_to_matching_hosts_only_and_not_through_redirects(
        redis: Redis, settings: Settings, two: tuple[EchoServer, EchoServer]) -> None:
    a, b = two
    b_hostport = b.base.removeprefix("http://")
    a.robots = f"redirect {b.base}/robots.txt"  # robots.txt hops follow inside one fetch
    s = settings.replace(auth={"127.0.0.2": {"bearer": TOKEN}})
    found = await crawl(redis, s, [f"{a.base}/to/{b_hostport}/landing", f"{b.base}/page"])
    assert found[f"{b.base}/landing"]["title"] == "echo"  # the redirect was followed
    for headers in a.all_headers():
        assert headers.get("Authorization") == f"Bearer {TOKEN}"
    assert a.seen["/robots.txt"] and b.seen["/robots.txt"] and b.seen["/landing"]
    assert all("Authorization" not in h for h in b.all_headers()), b.seen


async def test_credentials_are_in_no_record_log_or_warc_file(
        redis: Redis, settings: Settings, two: tuple[EchoServer, EchoServer], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    a, _ = two
    caplog.set_level(logging.DEBUG)
    warc_dir = tmp_path / "warc"
    s = settings.replace(auth={"127.0.0.2": {"basic": f"u:{PASSWORD}"}, "x.test":
                               {"bearer": TOKEN}}, warc_dir=str(warc_dir))
    await crawl(redis, s, [f"{a.base}/page", f"{a.base}/missing-too"])
    basic = base64.b64encode(f"u:{PASSWORD}".encode()).decode()
    assert a.seen["/page"][0]["Authorization"] == f"Basic {basic}"  # it was sent
    secrets = (TOKEN, PASSWORD, basic)
    records = json.dumps(await results(redis, s))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    archived = b""
    for path in sorted(warc_dir.glob("*.warc.gz")):
        with gzip.open(path) as fh:
            archived += fh.read()
    assert b"Authorization: [redacted]" in archived  # the request record names it, hidden
    stored = json.dumps(await redis.hgetall(keys.settings_key(s.crawl)), default=repr)
    for secret in secrets:
        assert secret not in records and secret not in logged and secret not in stored
        assert secret.encode() not in archived


def test_credentials_are_not_in_config_show_or_the_stored_settings(
        clean_redis: str, tmp_path: Path) -> None:
    config = tmp_path / "crawl.toml"
    config.write_text(f'[auth."a.test"]\nbasic = "u:{PASSWORD}"\n[fetch]\nheaders = '
                      '{"Accept-Language" = "fr"}\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWL_")}
    env.update(CRAWL_AUTH_API=f"b.test bearer {TOKEN}", CRAWL_HOME=str(tmp_path / "home"))
    base = ["--redis", clean_redis, "--crawl", "secrets", "--config", str(config)]

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "crawler", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60, input=stdin)

    seeded = run("seed", *base, "-", stdin="http://a.test/\n")
    assert seeded.returncode == 0, seeded.stderr
    shown = run("config", "show", *base, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["headers"] == {"Accept-Language": "fr"}  # control
    everything = shown.stdout + shown.stderr + seeded.stdout + seeded.stderr
    for secret in (TOKEN, PASSWORD):
        assert secret not in everything
    assert "auth" not in json.loads(shown.stdout)
    stored = subprocess.run([sys.executable, "-c", (
        "import redis, sys; r = redis.Redis.from_url(sys.argv[1]); "
        "print(r.hgetall(sys.argv[2]))"), clean_redis, keys.settings_key("secrets")],
        capture_output=True, text=True, timeout=30)
    assert "Accept-Language" in stored.stdout  # control: the crawl's settings are there
    for secret in (TOKEN, PASSWORD, "a.test", "b.test"):
        assert secret not in stored.stdout  # not even the patterns: the node keeps them

"""Every crawl-wide setting reaches a running worker (``crawl config set``).

- The issue's case, with real processes: a loopback URL seeded, the crawl
  paused, a worker started, ``allow_private=true`` set, the crawl resumed:
  the page is fetched, not ended as ``blocked_address``.
- For each crawl-wide setting, read from the settings model (a new one is
  tested without anyone listing it): changed while a worker runs, then no
  object of the worker holds the old value (a stale ``Settings``, or an
  attribute of the setting's name), and what is made from it (the address
  policy, the timeouts, the product token, WAIT's replicas...) changed.
- The fetch timeouts and the address policy, on a real slow server: the
  next request takes the new value, a kept-alive connection included.
- A worker's /metrics with a token (a node setting, beside these): 401 without it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, get_args, get_origin

import pytest
from aiohttp import web
from crawl_helpers import ROOT
from fault_helpers import read_results, seed_sync, wait_exit, wait_for
from redis.asyncio import Redis

from crawler import errors
from crawler.bench.sitegen import SiteServer, SiteSpec, free_port
from crawler.config import Settings
from crawler.net.fetch import Fetcher
from crawler.observe import control
from crawler.store.crawl_settings import NOT_LIVE, adopt, crawl_wide, set_values
from crawler.store.layout import crawl_layout
from crawler.worker import Worker

README = Path(__file__).resolve().parent.parent / "README.md"


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CRAWL_")}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crawler", *args], cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=60)


# -- the case, end to end ----------------------------------------------------------


def test_allow_private_set_while_a_worker_waits_reaches_it(clean_redis: str,
                                                           tmp_path: Path) -> None:
    spec = SiteSpec(hosts=1, pages=3, links=2, port=free_port())
    crawl, log = "liveprivate", tmp_path / "worker.log"
    base = ["--redis", clean_redis, "--crawl", crawl]
    with SiteServer(spec) as site:
        seed_sync(clean_redis, crawl, spec.seeds()[:1])
        assert cli("pause", *base).returncode == 0
        with open(log, "wb") as err:
            proc = subprocess.Popen([sys.executable, "-m", "crawler", "worker", *base,
                                     "--forever", "--quiet", "--delay", "0"], cwd=ROOT, env=env(),
                                    stdout=subprocess.DEVNULL, stderr=err)
        try:
            def registered() -> bool:
                done = cli("status", *base)
                return done.returncode == 0 and json.loads(done.stdout)["workers"] >= 1

            wait_for(registered, 30, "the worker to register")  # it runs with the old value
            changed = cli("config", "set", *base, "allow_private=true")
            assert changed.returncode == 0, changed.stderr
            assert cli("resume", *base).returncode == 0
            wait_for(lambda: len(read_results(clean_redis, crawl)) >= 3, 30, "3 results")
            assert cli("stop", *base).returncode == 0
            assert wait_exit([proc], 30) == [0], log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
        fetched = len(site.log.entries)
    records = read_results(clean_redis, crawl)
    assert [r["error"] for r in records] == [None] * len(records), records
    assert {r["status"] for r in records} == {200} and fetched >= 3
    assert "crawl settings changed" in log.read_text()


def test_a_robots_verdict_stored_under_the_old_policy_is_forgotten(clean_redis: str) -> None:
    """A host refused once (its robots.txt verdict: blocked address, kept 10 minutes)
    is fetched after ``allow_private=true``: the verdict made under the old
    policy goes with it."""
    spec = SiteSpec(hosts=1, pages=3, links=2, port=free_port())
    crawl = "liverobots"
    base = ["--redis", clean_redis, "--crawl", crawl]
    first = spec.seeds()[0]
    second = first.replace("/p/0.html", "/p/1.html")
    with SiteServer(spec):
        seed_sync(clean_redis, crawl, [first])
        ran = cli("worker", *base, "--quiet", "--delay", "0")
        assert ran.returncode == 0, ran.stderr
        assert [r["error"]["type"] for r in read_results(clean_redis, crawl)] == ["blocked_address"]
        changed = cli("config", "set", *base, "allow_private=true", "max_depth=0")
        assert changed.returncode == 0, changed.stderr
        assert "forgot 1 stored robots.txt verdicts" in changed.stdout, changed.stdout
        seed_sync(clean_redis, crawl, [second])
        again = cli("worker", *base, "--quiet", "--max-depth", "0")
        assert again.returncode == 0, again.stderr
    records = {r["url"]: r for r in read_results(clean_redis, crawl)}
    assert records[second]["error"] is None and records[second]["status"] == 200, records
    unchanged = cli("config", "set", *base, "delay=0.5")  # control: nothing to forget
    assert unchanged.returncode == 0 and "forgot" not in unchanged.stdout


# -- every crawl-wide setting, in a running worker -------------------------------------------

SPECIAL_VALUES: dict[str, Any] = {
    "extract": "extract_hooks:title_and_thread",
    "user_agent": "otherbot/2.0",
    "contact_url": "https://example.org/bot",
    "allow_cidrs": ("10.0.0.0/8",),
    "proxies": ("http://127.0.0.1:9",),
    "include": ("example",),
    "exclude": ("never-matches",),
    "host_overrides": {"a.example": {"max_per_host": 3, "delay": 0.5}},
    "headers": {"Accept-Language": "fr"},
    "host_headers": {"a.example": {"X-Api-Key": "k"}},
    "tls_insecure_hosts": ("a.example",),
    "drop_params": ("ref_*",),
    "keep_params": ("utm_id",),
    "host_render": {"a.example": "always"},
    "render_wait": "#content",
}
"""Values of settings whose type alone does not give a valid different one."""


def different_value(name: str, current: Any) -> Any:
    """A valid value of the setting ``name`` other than ``current``."""
    if name in SPECIAL_VALUES:
        return SPECIAL_VALUES[name]
    field = Settings.model_fields[name]
    annotation = field.annotation
    if annotation is bool:
        return not current
    if annotation is int:
        le = next((m.le for m in field.metadata if getattr(m, "le", None) is not None), None)
        return current - 1 if le is not None and current + 1 > le else current + 1
    if annotation is float:
        return current + 1.5
    if get_origin(annotation) is not None and str(get_origin(annotation)).endswith("Literal"):
        return next(option for option in get_args(annotation) if option != current)
    raise AssertionError(f"no different value for {name}: add one to SPECIAL_VALUES")


EFFECTS: dict[str, Callable[[Worker], Any]] = {
    "allow_private": lambda w: w.fetcher.policy.permits("127.0.0.1"),  # type: ignore[union-attr]
    "allow_cidrs": lambda w: w.fetcher.policy.allowed,  # type: ignore[union-attr]
    "connect_timeout": lambda w: w.fetcher.timeout.sock_connect,  # type: ignore[union-attr]
    "read_timeout": lambda w: w.fetcher.timeout.sock_read,  # type: ignore[union-attr]
    "total_timeout": lambda w: (w.fetcher.timeout.total,  # type: ignore[union-attr]
                                w.robots.lock_ttl),  # type: ignore[union-attr]
    "user_agent": lambda w: (w.fetcher.session.headers["User-Agent"],  # type: ignore[union-attr]
                             w.robots.agent, w.steering.runner.agent),  # type: ignore[union-attr]
    "contact_url": lambda w: w.fetcher.session.headers["User-Agent"],  # type: ignore[union-attr]
    "wait_replicas": lambda w: w.frontier.scripts.wait_replicas,
    "wait_timeout": lambda w: w.frontier.scripts.wait_timeout_ms,
    "politeness_key": lambda w: w.frontier.keyer.by_ip,
    "delay": lambda w: w.frontier._policies.policy("b.example"),
    "max_per_host": lambda w: w.frontier._policies.policy("b.example"),
    "host_overrides": lambda w: w.frontier._policies.policy("a.example"),
    "sitemaps": lambda w: w.robots.on_sitemaps is None,  # type: ignore[union-attr]
    "extract": lambda w: w.steering.runner.extractor is None,  # type: ignore[union-attr]
    "include": lambda w: len(w.steering.runner.scope.include),  # type: ignore[union-attr]
    "scope": lambda w: w.steering.runner.scope.mode,  # type: ignore[union-attr]
    "exclude": lambda w: len(w.scope.exclude),
    "max_depth": lambda w: w.steering.runner.scope.max_depth,  # type: ignore[union-attr]
    "headers": lambda w: w.fetcher.identity.headers_for("b.example"),  # type: ignore[union-attr]
    "host_headers": lambda w: w.fetcher.identity.headers_for(  # type: ignore[union-attr]
        "a.example"),
    "tls_insecure_hosts": lambda w: w.fetcher.tls.for_host("a.example"),  # type: ignore[union-attr]
    "clean_query": lambda w: w.frontier.cleaner.clean("http://a.example/?utm_source=x"),
    "drop_params": lambda w: w.frontier.cleaner.clean("http://a.example/?ref_x=1"),
    "keep_params": lambda w: w.frontier.cleaner.clean("http://a.example/?utm_id=1"),
    "sort_query": lambda w: w.frontier.cleaner.key("http://a.example/?b=1&a=2"),
    "render": lambda w: w.steering.runner.rendering.mode_for("b.example"),  # type: ignore[union-attr]
    "host_render": lambda w: w.steering.runner.rendering.mode_for(  # type: ignore[union-attr]
        "a.example"),
}
"""What a running worker makes of a setting besides keeping it: must change with it."""

DESCEND = (dict, list, tuple, set, frozenset, deque, OrderedDict)


def reachable(root: object, depth: int = 6) -> Iterator[tuple[str, object]]:
    """(path, object) for the crawler's objects reachable from ``root`` (not Redis,
    aiohttp or asyncio internals: only into containers and crawler classes)."""
    seen: set[int] = set()
    stack: list[tuple[str, object, int]] = [("worker", root, 0)]
    while stack:
        path, obj, level = stack.pop()
        if id(obj) in seen or level > depth:
            continue
        seen.add(id(obj))
        yield path, obj
        if isinstance(obj, Settings):
            continue
        if isinstance(obj, dict):
            if len(obj) < 1000:
                stack += [(f"{path}[{k!r}]", v, level + 1) for k, v in obj.items()]
        elif isinstance(obj, DESCEND):
            if len(obj) < 1000:
                stack += [(f"{path}[{i}]", v, level + 1) for i, v in enumerate(obj)]
        elif type(obj).__module__.startswith("crawler."):
            names = list(getattr(obj, "__dict__", {}))
            names += [n for c in type(obj).__mro__ for n in getattr(c, "__slots__", ())]
            for attr in names:
                if hasattr(obj, attr):
                    stack.append((f"{path}.{attr}", getattr(obj, attr), level + 1))
            for attr, value in vars(type(obj)).items():  # properties: settings read through
                if isinstance(value, property) and attr == "settings":
                    stack.append((f"{path}.{attr}", getattr(obj, attr), level + 1))


def stale(worker: Worker, name: str, old: Any) -> list[str]:
    """Where the worker still keeps the old value of ``name``."""
    found = []
    for path, obj in reachable(worker):
        if isinstance(obj, Settings):
            if getattr(obj, name) == old:
                found.append(path)
        elif type(obj).__module__.startswith("crawler.") and \
                getattr(obj, name, None) == old and not isinstance(old, bool | None):
            found.append(f"{path}.{name}")
    return found


async def running_worker(redis: Redis, settings: Settings) -> tuple[Worker, asyncio.Task[None]]:
    """A worker running on a paused crawl (it claims nothing, it follows the crawl)."""
    s = await adopt(redis, await crawl_layout(redis, settings), {}, strict=False)
    await control.pause(redis, s)
    worker = Worker(redis, s, forever=True, quiet=True)
    task = asyncio.create_task(worker.run())
    for _ in range(500):
        if worker.steering.runner is not None and worker.steering.paused:
            return worker, task
        await asyncio.sleep(0.01)
    raise AssertionError("the worker did not start")


def test_a_setting_not_live_is_in_the_readme() -> None:
    assert set(NOT_LIVE) <= set(crawl_wide())
    section = README.read_text().split("## The crawl's own settings")[1].split("\n## ")[0]
    assert "`NOT_LIVE`" in section or "NOT_LIVE" in section
    for name in NOT_LIVE:  # none today; one added must be listed there
        assert f"`{name}`" in section, name


async def test_config_set_of_a_setting_not_live_names_the_running_workers(
        redis: Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from crawler.store import crawl_settings

    worker, task = await running_worker(redis, settings.replace(crawl="notlive"))
    try:
        monkeypatch.setitem(crawl_settings.NOT_LIVE, "delay", "a test's pretence")
        warnings: list[str] = []
        for _ in range(200):  # until its first heartbeat puts it in the workers hash
            warnings = await control.still_old(redis, "notlive", {"delay", "scope"})
            if warnings:
                break
            await asyncio.sleep(0.02)
        assert len(warnings) == 1 and warnings[0].startswith("delay: ") and worker.id in warnings[0]
        assert await control.still_old(redis, "notlive", {"scope"}) == []
    finally:
        worker.abort()
        await asyncio.wait_for(task, 30)


@pytest.mark.parametrize("name", [n for n in crawl_wide() if n not in NOT_LIVE])
async def test_a_crawl_wide_setting_changed_reaches_a_running_worker(
        redis: Redis, settings: Settings, name: str) -> None:
    worker, task = await running_worker(redis, settings.replace(crawl=f"live-{name}"))
    try:
        old = getattr(worker.settings, name)
        assert not stale(worker, name, different_value(name, old))  # the check can pass
        assert stale(worker, name, old)  # ... and can fail: the value is there to find
        effect = EFFECTS.get(name, lambda w: None)
        before = effect(worker)
        await set_values(redis, worker.settings, {name: different_value(name, old)})
        await worker.steering.check()  # what the worker's poll runs about once a second
        new = getattr(worker.settings, name)
        assert new != old
        assert not stale(worker, name, old), f"{name}: old value kept"
        if name in EFFECTS:
            assert effect(worker) != before, f"{name}: what the worker makes of it is unchanged"
    finally:
        worker.abort()
        await asyncio.wait_for(task, 30)


# -- the fetch timeouts and the address policy, on a real server ------------------------------


@pytest.fixture
async def slow_server() -> Any:
    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(0.6)
        return web.Response(text="late")

    app = web.Application()
    app.router.add_get("/", slow)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield port
    await runner.cleanup()


async def test_a_shorter_read_timeout_applies_to_the_next_request(
        settings: Settings, slow_server: int) -> None:
    url = f"http://127.0.0.1:{slow_server}/"
    fetcher = Fetcher(settings.replace(read_timeout=5))
    try:
        assert (await fetcher.get(url)).body == b"late"  # control: 0.6 s is within 5 s
        fetcher.use(fetcher.settings.replace(read_timeout=0.2))
        with pytest.raises(errors.Timeout):
            await fetcher.get(url)
        fetcher.use(fetcher.settings.replace(read_timeout=5, total_timeout=0.2))
        with pytest.raises(errors.Timeout):
            await fetcher.get(url)
    finally:
        await fetcher.close()


async def test_allow_private_turned_off_holds_for_a_kept_alive_connection(
        settings: Settings, slow_server: int) -> None:
    url = f"http://localhost:{slow_server}/"  # a name: reused connections skip the resolver
    fetcher = Fetcher(settings.replace(allow_private=False))
    try:
        with pytest.raises(errors.BlockedAddress):
            await fetcher.get(url)
        fetcher.use(fetcher.settings.replace(allow_private=True))
        assert (await fetcher.get(url)).status == 200  # and its connection is kept alive
        fetcher.use(fetcher.settings.replace(allow_private=False))
        with pytest.raises(errors.BlockedAddress):
            await fetcher.get(url)
    finally:
        await fetcher.close()


async def test_a_workers_metrics_with_a_token_answer_only_scrapes_that_send_it(
        redis: Redis, settings: Settings) -> None:
    import urllib.error
    import urllib.request

    port = free_port()

    def scrape(headers: dict[str, str]) -> int:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    worker, task = await running_worker(redis, settings.replace(
        crawl="metricstoken", metrics_port=port, metrics_token="w0rker-t0ken"))
    try:
        for _ in range(500):  # /metrics starts just after the worker's other tasks
            try:
                first = await asyncio.to_thread(scrape, {})
                break
            except urllib.error.URLError:
                await asyncio.sleep(0.02)
        assert first == 401
        assert await asyncio.to_thread(scrape, {"Authorization": "Bearer w0rker-t0ken"}) == 200
    finally:
        worker.abort()
        await asyncio.wait_for(task, 30)

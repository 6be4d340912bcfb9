"""What a new user meets first: messages for bad input, seeding, and finding their crawls."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis as sync_redis
from cli_runner import crawl, fresh_dir  # noqa: F401 (fresh_dir: an autouse fixture)

from crawler.config import Settings
from crawler.frontier import Frontier
from crawler.store import keys
from crawler.store.connection import make_client
from crawler.store.layout import crawl_layout


def run_crawl(*args: str, env: dict[str, str] | None = None,
              stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The real command in a child process, to see exactly what a user sees."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CRAWL_")}
    return subprocess.run([sys.executable, "-m", "crawler", *args], capture_output=True,
                          text=True, timeout=60, env=clean | (env or {}), input=stdin)


# -- a bad --redis URL ----------------------------------------------------------------


@pytest.mark.parametrize(("url", "shown", "problem"), [
    ("redis://127.0.0.1:notaport", "redis://127.0.0.1:notaport", "port 'notaport'"),
    ("redis://127.0.0.1:99999", "redis://127.0.0.1:99999", "port '99999'"),
    ("http://user:hunter2@127.0.0.1", "http://user:***@127.0.0.1", "unknown scheme http://"),
    ("localhost:6379", "localhost:6379", "no scheme"),
    ("redis://", "redis://", "no host name"),
    ("redis://:hunter2@:6379", "redis://:***@:6379", "no host name"),
    ("redis+cluster://127.0.0.1:abc", "redis+cluster://127.0.0.1:abc", "port 'abc'"),
    ("unix://", "unix://", "no socket path"),
    ("redis://127.0.0.1:6379/notadb", "redis://127.0.0.1:6379/notadb", "database 'notadb'"),
    ("redis://[::1", "redis://[::1", "invalid IPv6 URL"),
    ("redis://127.0.0.1?socket_timeout=x", "redis://127.0.0.1?socket_timeout=x",
     "socket_timeout='x'"),
])
def test_a_bad_redis_url_is_one_line_naming_it_and_what_is_wrong(
        url: str, shown: str, problem: str) -> None:
    result = crawl("--redis", url, "status")
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)  # not a traceback
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"crawl: error: --redis: bad Redis URL {shown}: ")
    assert problem in line
    assert "hunter2" not in result.output


def test_a_bad_redis_url_from_the_environment_names_the_variable() -> None:
    result = run_crawl("status", env={"CRAWL_REDIS_URL": "redis://u:hunter2@127.0.0.1:x"})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "crawl: error: environment variable CRAWL_REDIS_URL: bad Redis URL "
        "redis://u:***@127.0.0.1:x: port 'x' is not a number from 1 to 65535"]


def test_an_unreachable_cluster_url_is_one_line_with_its_password_hidden() -> None:
    result = run_crawl("--redis", "redis+cluster://u:hunter2@127.0.0.1:1", "status")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "cannot reach Redis at redis+cluster://u:***@127.0.0.1:1" in line


# -- seeding -------------------------------------------------------------------------------


def test_an_empty_seed_file_says_there_are_no_urls_in_it(clean_redis: str,
                                                          tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("# nothing yet\n\n")
    result = crawl("seed", "--redis", clean_redis, "empty.txt")
    assert result.exit_code == 1
    assert result.stderr.strip() == "no URLs in empty.txt"


def test_a_seed_file_of_bad_lines_says_no_crawl_was_made(clean_redis: str,
                                                         tmp_path: Path) -> None:
    (tmp_path / "bad.txt").write_text("http://[::1/\nhttp://a.test:99999/\n")
    result = crawl("seed", "--redis", clean_redis, "bad.txt")
    assert result.exit_code == 1
    assert "invalid 2" in result.stdout
    assert "no valid URL in bad.txt: crawl 'default' was not created" in result.stderr
    assert "no crawls yet" in crawl("list", "--redis", clean_redis).stderr
    crawl("seed", "--redis", clean_redis, "-", stdin="http://127.0.0.2/\n")
    again = crawl("seed", "--redis", clean_redis, "bad.txt")  # the crawl exists now: kept
    assert again.exit_code == 1
    assert again.stderr.strip().endswith("no valid URL in bad.txt")


def test_an_empty_standard_input_says_so_too(clean_redis: str) -> None:
    result = crawl("seed", "--redis", clean_redis, "-", stdin="")
    assert result.exit_code == 1
    assert "no URLs in standard input" in result.stderr


def seeded(redis_url: str, crawl_name: str = "default") -> list[str]:
    """The URLs queued in the crawl, claimed to read them."""
    async def main() -> list[str]:
        client = make_client(redis_url)
        try:
            frontier = Frontier(client, await crawl_layout(
                client, Settings(redis_url=redis_url, crawl=crawl_name, max_per_host=100)))
            return sorted(lease.url for lease in (await frontier.claim(100, "test")).leases)
        finally:
            await client.aclose()

    return asyncio.run(main())


def test_a_bare_host_is_seeded_as_https_and_the_assumption_printed_once(
        clean_redis: str, tmp_path: Path) -> None:
    (tmp_path / "s.txt").write_text("example.com\nexample.org/a?b=1\nlocalhost:8080/x\n"
                                    "mailto:someone@example.com\n")
    result = crawl("seed", "--redis", clean_redis, "s.txt")
    assert result.exit_code == 0, result.output
    assert "added 3, already seen 0, invalid 1" in result.stdout
    notes = [line for line in result.stderr.splitlines() if "assuming" in line]
    assert notes == ["assuming https:// for lines without a scheme: line 1 'example.com' is "
                     "https://example.com/ (--default-scheme to change)"]
    assert "line 4: unsupported scheme 'mailto'" in result.stderr
    assert seeded(clean_redis) == ["https://example.com/", "https://example.org/a?b=1",
                                   "https://localhost:8080/x"]


def test_default_scheme_http_is_allowed(clean_redis: str, tmp_path: Path) -> None:
    (tmp_path / "s.txt").write_text("example.com\n")
    result = crawl("seed", "--redis", clean_redis, "--default-scheme", "http", "s.txt")
    assert result.exit_code == 0
    assert "assuming http://" in result.stderr
    assert seeded(clean_redis) == ["http://example.com/"]


def test_a_default_scheme_other_than_http_or_https_is_refused(clean_redis: str,
                                                               tmp_path: Path) -> None:
    (tmp_path / "s.txt").write_text("example.com\n")
    result = crawl("seed", "--redis", clean_redis, "--default-scheme", "ftp", "s.txt")
    assert result.exit_code == 2
    assert "--default-scheme: expected https or http, got 'ftp'" in result.stderr
    assert sync_redis.Redis.from_url(clean_redis).dbsize() == 0


def test_a_url_with_a_scheme_is_seeded_as_it_is(clean_redis: str, tmp_path: Path) -> None:
    (tmp_path / "s.txt").write_text("http://127.0.0.2/a\n")
    result = crawl("seed", "--redis", clean_redis, "s.txt")
    assert "assuming" not in result.stderr
    assert seeded(clean_redis) == ["http://127.0.0.2/a"]


# -- which crawls there are ---------------------------------------------------------------


def make_crawl(redis_url: str, name: str, *urls: str) -> None:
    result = crawl("seed", "--redis", redis_url, "--crawl", name, "-", stdin="\n".join(urls))
    assert result.exit_code == 0, result.output


def beat(redis_url: str, name: str, worker: str = "w1") -> None:
    """A live heartbeat of a worker of crawl ``name``, at the server's time now."""
    client = sync_redis.Redis.from_url(redis_url)
    seconds, micros = client.time()
    client.zadd(keys.workers_key(name), {worker: seconds * 1000 + micros // 1000})


@pytest.mark.parametrize("command", [["status"], ["export", "out.jsonl"], ["export", "-"]])
def test_a_crawl_that_does_not_exist_is_named_with_the_crawls_that_do(
        clean_redis: str, tmp_path: Path, command: list[str]) -> None:
    make_crawl(clean_redis, "demo1", "http://127.0.0.2/")
    make_crawl(clean_redis, "demo2", "http://127.0.0.3/")
    before = sorted(sync_redis.Redis.from_url(clean_redis).keys())
    result = crawl("--redis", clean_redis, "--crawl", "nosuchcrawl", *command)
    assert result.exit_code == 2
    assert result.stderr.strip() == ("crawl: error: there is no crawl 'nosuchcrawl'; the "
                                     "crawls here are: demo1, demo2 (see crawl list)")
    assert result.stdout == ""
    assert not (tmp_path / "out.jsonl").exists()
    assert sorted(sync_redis.Redis.from_url(clean_redis).keys()) == before  # nothing created


def test_with_no_crawl_at_all_status_says_how_to_make_one(clean_redis: str) -> None:
    result = crawl("--redis", clean_redis, "status")
    assert result.exit_code == 2
    assert "there is no crawl 'default', nor any other yet (crawl seed creates one)" \
        in result.stderr


def test_crawl_list_shows_each_crawls_counts_and_age(clean_redis: str) -> None:
    make_crawl(clean_redis, "alpha", "http://127.0.0.2/a", "http://127.0.0.2/b")
    make_crawl(clean_redis, "beta", "http://127.0.0.3/a")
    beat(clean_redis, "beta")
    result = crawl("list", "--redis", clean_redis)
    assert result.exit_code == 0, result.output
    header, *rows = [line.split() for line in result.stdout.splitlines()]
    assert header == ["NAME", "QUEUED", "LEASED", "DONE", "ERRORS", "WORKERS", "AGE", "STATE"]
    assert [row[:6] for row in rows] == [["alpha", "2", "0", "0", "0", "0"],
                                         ["beta", "1", "0", "0", "0", "1"]]
    assert all(row[6].endswith("s") for row in rows)  # seconds old


def test_crawl_list_json_has_one_object_a_crawl(clean_redis: str) -> None:
    make_crawl(clean_redis, "alpha", "http://127.0.0.2/a")
    result = crawl("--redis", clean_redis, "list", "--json")
    [record] = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["name"] == "alpha" and record["queued"] == 1
    assert time.time() - 60 < record["created"] <= time.time()


def test_crawl_list_with_no_crawls_says_so(clean_redis: str) -> None:
    result = crawl("list", "--redis", clean_redis)
    assert result.exit_code == 0
    assert "no crawls yet" in result.stderr


def test_crawl_delete_asks_first_and_keeps_the_crawl_on_no(clean_redis: str) -> None:
    make_crawl(clean_redis, "demo", "http://127.0.0.2/a")
    before = sync_redis.Redis.from_url(clean_redis).dbsize()
    result = crawl("--redis", clean_redis, "delete", "demo", stdin="n\n")
    assert result.exit_code == 1
    assert "Delete crawl 'demo' (1 queued, 0 done, 0 errors)" in result.stderr
    assert sync_redis.Redis.from_url(clean_redis).dbsize() == before


def test_crawl_delete_removes_every_key_of_the_crawl_and_only_those(clean_redis: str) -> None:
    make_crawl(clean_redis, "demo2", "http://127.0.0.3/a")  # a name demo is a prefix of
    client = sync_redis.Redis.from_url(clean_redis)
    others = sorted(client.keys())
    result = crawl("--redis", clean_redis, "--crawl", "demo", "seed", "--shards", "3", "-",
                   stdin="http://127.0.0.2/a\nhttp://127.0.0.4/b\nhttp://127.0.0.5/c\n")
    assert result.exit_code == 0
    beat(clean_redis, "demo")
    client.zadd(keys.workers_key("demo"), {"w1": 0})  # a dead worker: no objection
    assert len(client.keys("crawl:{demo:*")) > 3
    result = crawl("--redis", clean_redis, "delete", "demo", "--yes")
    assert result.exit_code == 0, result.output
    assert sorted(client.keys()) == others
    assert "demo" not in crawl("--redis", clean_redis, "list").stdout.split()


def test_crawl_delete_refuses_while_workers_are_alive_unless_forced(clean_redis: str) -> None:
    make_crawl(clean_redis, "demo", "http://127.0.0.2/a")
    beat(clean_redis, "demo")
    result = crawl("--redis", clean_redis, "delete", "demo", "--yes")
    assert result.exit_code == 2
    assert "crawl 'demo' has 1 live worker(s)" in result.stderr
    assert sync_redis.Redis.from_url(clean_redis).exists(keys.meta_key("demo"))
    result = crawl("--redis", clean_redis, "delete", "demo", "--yes", "--force")
    assert result.exit_code == 0
    assert sync_redis.Redis.from_url(clean_redis).dbsize() == 0


def test_crawl_delete_of_a_crawl_that_is_not_there_lists_those_that_are(
        clean_redis: str) -> None:
    make_crawl(clean_redis, "demo", "http://127.0.0.2/a")
    result = crawl("--redis", clean_redis, "delete", "dmeo", "--yes")
    assert result.exit_code == 2
    assert "there is no crawl 'dmeo'; the crawls here are: demo" in result.stderr


# -- one rule and one message for a bad value, wherever it came from -------------------


@pytest.mark.parametrize(("args", "env", "where"), [
    (["--concurrency", "0"], {}, "--concurrency"),
    (["--concurrency", "-5"], {}, "--concurrency"),
    (["--concurrency=-5"], {}, "--concurrency"),
    (["--concurrency", "abc"], {}, "--concurrency"),  # does not parse: the same words
    (["--concurrency", "1.5"], {}, "--concurrency"),
    ([], {"CRAWL_CONCURRENCY": "abc"}, "environment variable CRAWL_CONCURRENCY"),
    ([], {"CRAWL_CONCURRENCY": "-5"}, "environment variable CRAWL_CONCURRENCY"),
])
def test_a_bad_concurrency_is_one_line_naming_where_it_came_from(
        args: list[str], env: dict[str, str], where: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    done = crawl("worker", "--redis", "redis://127.0.0.1:1", *args)
    lines = done.stderr.strip().splitlines()
    assert done.exit_code == 2 and len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert where in lines[0] and "concurrency" in lines[0]
    # One rule: the same words whichever way the value came in.
    assert ">= 1" in lines[0] or "greater than or equal to 1" in lines[0], lines[0]


@pytest.mark.parametrize(("flag", "setting", "value"), [
    ("--concurrency", "concurrency", "abc"), ("--delay", "delay", "soon"),
    ("--max-depth", "max_depth", "-"),
])
def test_a_flag_value_that_does_not_parse_reads_as_the_same_value_from_the_environment(
        flag: str, setting: str, value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not typer's validator's words ("Input should be a valid integer"): the setting,
    what it must be, what it got, as for a value out of range."""
    by_flag = crawl("worker", "--redis", "redis://127.0.0.1:1", flag, value)
    monkeypatch.setenv(f"CRAWL_{setting.upper()}", value)
    by_env = crawl("worker", "--redis", "redis://127.0.0.1:1")
    assert by_flag.exit_code == by_env.exit_code == 2
    assert by_flag.stderr.strip() == f"crawl: error: {flag}: {setting}: expected " \
        + by_env.stderr.strip().split(f"{setting}: expected ", 1)[1], by_flag.stderr
    assert f"got {value!r}" in by_flag.stderr


def test_a_bad_config_file_and_an_unknown_key_name_the_file_and_line(fresh_dir: Path) -> None:  # noqa: F811 (the imported fixture)
    (fresh_dir / "bad.toml").write_text("concurrency = = 3\n")
    bad = run_crawl("--config", "bad.toml", "worker", "--redis", "redis://127.0.0.1:1")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert "bad.toml line 1" in bad.stderr
    (fresh_dir / "typo.toml").write_text("[worker]\nconcurrancy = 3\n")
    typo = run_crawl("--config", "typo.toml", "worker", "--redis", "redis://127.0.0.1:1")
    assert typo.returncode == 2, typo.stderr
    assert "typo.toml line 2" in typo.stderr
    assert "unknown setting 'concurrancy' (did you mean 'concurrency'?)" in typo.stderr


def test_an_unknown_crawl_variable_warns_with_a_suggestion_and_the_command_goes_on() -> None:
    done = run_crawl("config", "show", "--redis", "redis://127.0.0.1:1",
                     env={"CRAWL_CONCURENCY": "5"})
    assert "CRAWL_CONCURENCY" in done.stderr and "did you mean CRAWL_CONCURRENCY" in done.stderr


def test_a_bad_pattern_is_shown_as_typed_not_as_the_settings_tuple() -> None:
    done = crawl("worker", "--redis", "redis://127.0.0.1:1", "--include", "ok", "--include", "(")
    assert done.exit_code == 2
    assert done.stderr.strip().endswith(
        "include: expected regular expressions (Python re syntax), got 'ok', '('"), done.stderr

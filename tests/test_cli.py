"""The ``crawl`` command line: seed, export, status, and how it reports trouble."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis as sync_redis
from cli_runner import crawl, fresh_dir  # noqa: F401 (fresh_dir: an autouse fixture)

from crawler.config import Settings
from crawler.frontier import Frontier
from crawler.results import dumps, make_record
from crawler.store import keys
from crawler.store.connection import make_client
from crawler.store.layout import crawl_layout

TRICKY_TITLE = 'He said "hi"\nthen\ttabbed \x00\x07\x1b[31m \u202eevil\u202c \u200f שלום 🕷️🎉 \\ end'




def seeds_file(path: Path, *lines: str) -> str:
    path.write_text("\n".join(lines) + "\n")
    return str(path)


# -- seed -------------------------------------------------------------------------


def test_seed_prints_added_seen_and_invalid_counts(clean_redis: str, tmp_path: Path) -> None:
    f = seeds_file(tmp_path / "s.txt", "http://127.0.0.2/a", "http://127.0.0.2/b",
                   "HTTP://127.0.0.2:80/a#x", "mailto:someone@example.com")
    result = crawl("seed", "--redis", clean_redis, f)
    assert result.exit_code == 0, result.output
    assert "added 2, already seen 1, invalid 1" in result.stdout


def test_seeding_again_counts_urls_as_already_seen(clean_redis: str, tmp_path: Path) -> None:
    f = seeds_file(tmp_path / "s.txt", "http://127.0.0.2/a", "http://127.0.0.2/b")
    crawl("seed", "--redis", clean_redis, f)
    result = crawl("seed", "--redis", clean_redis, f)
    assert result.exit_code == 0
    assert "added 0, already seen 2, invalid 0" in result.stdout


def test_seed_reports_a_bad_line_by_number_and_seeds_the_rest(
        clean_redis: str, tmp_path: Path) -> None:
    f = seeds_file(tmp_path / "s.txt", "# a comment", "http://127.0.0.2/a", "",
                   "not a url", "http://127.0.0.3/")
    result = crawl("seed", "--redis", clean_redis, f)
    assert result.exit_code == 0
    assert "line 4:" in result.stderr and "not a url" in result.stderr
    assert "added 2, already seen 0, invalid 1" in result.stdout


def test_seed_reads_standard_input_for_a_dash(clean_redis: str) -> None:
    result = crawl("seed", "--redis", clean_redis, "-",
                   stdin="http://127.0.0.2/a\nhttp://127.0.0.2/b\n")
    assert result.exit_code == 0
    assert "added 2" in result.stdout


def test_seed_fails_when_nothing_valid_was_given(clean_redis: str, tmp_path: Path) -> None:
    f = seeds_file(tmp_path / "s.txt", "not a url", "ftp://127.0.0.2/file")
    result = crawl("seed", "--redis", clean_redis, f)
    assert result.exit_code != 0
    assert "invalid 2" in result.stdout


def test_seed_fails_on_an_empty_file(clean_redis: str, tmp_path: Path) -> None:
    f = seeds_file(tmp_path / "s.txt", "# only a comment")
    assert crawl("seed", "--redis", clean_redis, f).exit_code != 0


def test_seed_reads_a_windows_file_with_a_bom_and_crlf(clean_redis: str, tmp_path: Path) -> None:
    path = tmp_path / "s.txt"
    path.write_bytes(b"\xef\xbb\xbfhttp://127.0.0.2/a\r\nhttp://127.0.0.2/b\r\n")
    result = crawl("seed", "--redis", clean_redis, str(path))
    assert "added 2, already seen 0, invalid 0" in result.stdout


def test_seed_names_a_missing_file(clean_redis: str) -> None:
    result = crawl("seed", "--redis", clean_redis, "nowhere.txt")
    assert result.exit_code != 0
    assert "nowhere.txt" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_options_before_the_command_apply_to_it(clean_redis: str, tmp_path: Path) -> None:
    f = seeds_file(tmp_path / "s.txt", "http://127.0.0.2/a")
    assert crawl("--redis", clean_redis, "--crawl", "early", "seed", f).exit_code == 0
    status = json.loads(crawl("status", "--redis", clean_redis, "--crawl", "early").stdout)
    assert status["queued"] == 1


# -- export -----------------------------------------------------------------------


def store_results(redis_url: str, titles: list[str | None]) -> None:
    """Complete one leased URL per title, as a worker would."""

    async def main() -> None:
        client = make_client(redis_url)
        frontier = Frontier(client, await crawl_layout(
            client, Settings(redis_url=redis_url, max_per_host=100, delay=0)))
        await frontier.add([(f"http://127.0.0.2/{i}", 0) for i in range(len(titles))])
        leases = (await frontier.claim(len(titles), "w")).leases
        for lease in sorted(leases, key=lambda lease: lease.url):
            title = titles[int(lease.url.rsplit("/", 1)[1])]
            record = make_record(url=lease.url, depth=0, attempts=1, worker="w", status=200,
                                 title=title, links=3)
            await frontier.complete(lease, dumps(record))
        await client.aclose()

    asyncio.run(main())


def read_jsonl(text: str) -> list[dict[str, object]]:
    lines = text.splitlines()
    assert all(line.strip() for line in lines)
    return [json.loads(line) for line in lines]


def test_export_writes_every_result_as_a_json_line(clean_redis: str, tmp_path: Path) -> None:
    store_results(clean_redis, [f"page {i}" for i in range(25)])
    result = crawl("export", "--redis", clean_redis, str(tmp_path / "out.jsonl"))
    assert result.exit_code == 0
    records = read_jsonl((tmp_path / "out.jsonl").read_text(encoding="utf-8"))
    assert sorted(str(r["title"]) for r in records) == sorted(f"page {i}" for i in range(25))
    assert "exported 25 results" in result.stderr


def test_export_round_trips_a_hostile_title(clean_redis: str, tmp_path: Path) -> None:
    store_results(clean_redis, [TRICKY_TITLE, None, ""])
    crawl("export", "--redis", clean_redis, "out.jsonl")
    records = read_jsonl((tmp_path / "out.jsonl").read_text(encoding="utf-8"))
    assert [r["title"] for r in sorted(records, key=lambda r: str(r["url"]))] == [
        TRICKY_TITLE, None, ""]


def test_export_to_standard_output_for_a_dash(clean_redis: str) -> None:
    store_results(clean_redis, [TRICKY_TITLE, "second"])
    result = crawl("export", "--redis", clean_redis, "-")
    assert result.exit_code == 0
    titles = [str(r["title"]) for r in read_jsonl(result.stdout)]
    assert sorted(titles) == sorted([TRICKY_TITLE, "second"])


def test_export_pages_through_every_shard(clean_redis: str, tmp_path: Path) -> None:
    client = sync_redis.Redis.from_url(clean_redis)
    client.hset(keys.meta_key("big"), "layout",
                json.dumps({"shards": 3, "dedup_bucket_bits": 4, "expected_urls": 100}))
    pipe = client.pipeline(transaction=False)
    for i in range(2500):  # more than one export page in shard 0
        pipe.xadd(keys.ShardKeys("big", 0).results, {"r": json.dumps({"n": i})})
    for shard in (1, 2):
        pipe.xadd(keys.ShardKeys("big", shard).results, {"r": json.dumps({"n": -shard})})
    pipe.execute()
    result = crawl("export", "--redis", clean_redis, "--crawl", "big", "-")
    numbers = [r["n"] for r in read_jsonl(result.stdout)]
    assert numbers == [*range(2500), -1, -2]


@pytest.mark.parametrize("drain", [[], ["--drain"]])
def test_export_to_an_unwritable_path_is_one_clear_line(clean_redis: str,
                                                       drain: list[str]) -> None:
    store_results(clean_redis, ["a page"])
    result = crawl("export", "--redis", clean_redis, *drain, "no/such/dir/out.jsonl")
    assert result.exit_code == 2
    assert ("cannot write no/such/dir/out.jsonl: its directory no/such/dir does not exist"
            in result.stderr)
    assert isinstance(result.exception, SystemExit)


def test_export_of_a_crawl_without_results_writes_nothing(clean_redis: str,
                                                         tmp_path: Path) -> None:
    crawl("seed", "--redis", clean_redis, seeds_file(tmp_path / "s.txt", "http://127.0.0.2/"))
    result = crawl("export", "--redis", clean_redis, "-")
    assert result.exit_code == 0
    assert result.stdout == ""


# -- status -----------------------------------------------------------------------


def test_status_prints_the_crawls_counters(clean_redis: str, tmp_path: Path) -> None:
    store_results(clean_redis, ["done"])
    crawl("seed", "--redis", clean_redis, seeds_file(tmp_path / "s.txt", "http://127.0.0.2/a",
                                                     "http://127.0.0.3/a"))
    result = crawl("status", "--redis", clean_redis)
    assert result.exit_code == 0
    status = json.loads(result.stdout)
    assert (status["queued"], status["done"], status["seen"]) == (2, 1, 3)
    assert (status["leased"], status["workers"], status["shards"]) == (0, 0, 1)


# -- trouble ------------------------------------------------------------------------


def run_crawl(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real command in a child process, to see exactly what a user sees."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CRAWL_")}
    return subprocess.run([sys.executable, "-m", "crawler", *args], capture_output=True,
                          text=True, timeout=60, env=clean | (env or {}))


def test_unreachable_redis_is_one_clear_line_and_a_failure(tmp_path: Path) -> None:
    f = seeds_file(tmp_path / "s.txt", "http://127.0.0.2/a")
    result = run_crawl("--redis", "redis://127.0.0.1:1", "seed", f)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "redis://127.0.0.1:1" in lines[0]


def test_a_bad_setting_is_one_clear_line_and_a_failure(clean_redis: str, tmp_path: Path) -> None:
    f = seeds_file(tmp_path / "s.txt", "http://127.0.0.2/a")
    result = run_crawl("seed", "--redis", clean_redis, f, env={"CRAWL_CONCURRENCY": "abc"})
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "crawl: error: environment variable CRAWL_CONCURRENCY: concurrency: expected a whole "
        "number >= 1, got 'abc'"]
    assert sync_redis.Redis.from_url(clean_redis).dbsize() == 0

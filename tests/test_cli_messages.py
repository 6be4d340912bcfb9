"""What ``crawl`` tells its user: setting names, seed lines, hooks, paused crawls (issue 21)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runner import crawl, fresh_dir  # noqa: F401 (fresh_dir: an autouse fixture)
from typer.testing import Result

from crawler.bench.sitegen import SiteServer, SiteSpec


def seeded(redis_url: str, tmp_path: Path, *lines: str) -> None:
    (tmp_path / "seeds.txt").write_text("\n".join(lines or ("http://127.0.0.2/",)) + "\n")
    result = crawl("seed", "--redis", redis_url, str(tmp_path / "seeds.txt"))
    assert result.exit_code == 0, result.output


# -- setting names (10) ---------------------------------------------------------------------


def test_config_set_takes_the_dotted_name_the_readme_uses(clean_redis: str,
                                                          tmp_path: Path) -> None:
    seeded(clean_redis, tmp_path)
    result = crawl("config", "set", "--redis", clean_redis, "politeness.delay=2",
                   "scope.max_depth=3")
    assert result.exit_code == 0, result.output
    assert "delay = 2.0" in result.stdout and "max_depth = 3" in result.stdout
    shown = crawl("config", "show", "--redis", clean_redis).stdout
    assert "delay = 2.0" in shown


def test_config_set_names_the_right_section_for_a_wrong_one(clean_redis: str,
                                                            tmp_path: Path) -> None:
    seeded(clean_redis, tmp_path)
    result = crawl("config", "set", "--redis", clean_redis, "fetch.delay=2")
    assert result.exit_code == 2
    assert "delay is in [politeness], not [fetch]" in result.stderr


@pytest.mark.parametrize(("word", "meant"), [
    ("timeout", "'total_timeout', 'connect_timeout'"),
    ("ua", "'user_agent'"),
    ("threads", "'concurrency'"),
    ("workers", "'concurrency'"),
    ("retries", "'max_attempts'"),
])
def test_config_set_suggests_settings_by_meaning(clean_redis: str, tmp_path: Path,
                                                 word: str, meant: str) -> None:
    seeded(clean_redis, tmp_path)
    result = crawl("config", "set", "--redis", clean_redis, f"{word}=1")
    assert result.exit_code == 2
    assert f"unknown setting {word!r} (did you mean {meant}" in result.stderr


def test_config_set_points_proxy_at_proxies(clean_redis: str, tmp_path: Path) -> None:
    seeded(clean_redis, tmp_path)
    result = crawl("config", "set", "--redis", clean_redis, "proxy=http://127.0.0.9:1")
    assert result.exit_code == 2
    assert "did you mean 'proxies'" in result.stderr


# -- seed messages (11) ---------------------------------------------------------------------


def seed_lines(redis_url: str, tmp_path: Path, *lines: str, flags: tuple[str, ...] = ()
               ) -> Result:
    (tmp_path / "lines.txt").write_text("\n".join(lines) + "\n")
    return crawl("seed", "--redis", redis_url, *flags, str(tmp_path / "lines.txt"))


def test_a_bad_seed_line_is_quoted_once(clean_redis: str, tmp_path: Path) -> None:
    result = seed_lines(clean_redis, tmp_path, "http://127.0.0.2/", "not a url at all")
    assert "line 2: not a URL or host name: 'not a url at all'\n" in result.stderr
    assert result.stderr.count("not a url at all") == 1


def test_python_url_errors_are_said_in_our_words(clean_redis: str, tmp_path: Path) -> None:
    result = seed_lines(clean_redis, tmp_path, "http://127.0.0.2/", "http://[::1/",
                        "http://127.0.0.2:99999/", "http://127.0.0.2:xx/")
    assert "line 2: unbalanced [ or ] (brackets enclose an IPv6 address): 'http://[::1/'" \
        in result.stderr
    assert "line 3: port out of range (1 to 65535)" in result.stderr
    assert "line 4: port 'xx' is not a number" in result.stderr
    assert "Invalid IPv6 URL" not in result.stderr and "Port" not in result.stderr
    assert "added 1, already seen 0, invalid 3" in result.stdout


def test_a_bare_word_is_not_a_host_unless_asked(clean_redis: str, tmp_path: Path) -> None:
    result = seed_lines(clean_redis, tmp_path, "garbage", "localhost:8080/a",
                        "http://intranet/", "example.com")
    assert result.exit_code == 0, result.output
    assert ("line 1: 'garbage' is not a host name (no dot): write https://garbage/ to mean "
            "it, or pass --allow-bare-hosts") in result.stderr
    assert "added 3, already seen 0, invalid 1" in result.stdout
    asked = seed_lines(clean_redis, tmp_path, "garbage", flags=("--allow-bare-hosts",))
    assert asked.exit_code == 0, asked.output
    assert "added 1, already seen 0, invalid 0" in asked.stdout


# -- hook errors (6) ------------------------------------------------------------------------

TESTS = Path(__file__).resolve().parent


def run_crawl(*args: str, cwd: Path, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """``crawl`` in a process of its own, as a user runs it (its stderr is the real one)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWL_")}
    env["PYTHONPATH"] = str(TESTS)  # tests/extract_hooks.py
    return subprocess.run([sys.executable, "-m", "crawler", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_config_set_refuses_a_hook_that_does_not_import(clean_redis: str,
                                                        tmp_path: Path) -> None:
    seeded(clean_redis, tmp_path)
    result = crawl("config", "set", "--redis", clean_redis, "extract=h2hok:page")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "crawl: error: extract: cannot import h2hok: ModuleNotFoundError: "
        "No module named 'h2hok'"]
    assert 'extract = ""' in crawl("config", "show", "--redis", clean_redis).stdout


def test_a_worker_whose_stored_hook_does_not_import_fails_before_any_change(
        clean_redis: str, tmp_path: Path) -> None:
    seeded(clean_redis, tmp_path)
    (tmp_path / "gone_hook_21.py").write_text("def page(p):\n    return None\n")
    assert crawl("config", "set", "--redis", clean_redis,
                 "extract=gone_hook_21:page").exit_code == 0
    (tmp_path / "gone_hook_21.py").unlink()  # a node without the hook's module
    result = run_crawl("worker", "--redis", clean_redis, "--delay", "0.5", "--quiet",
                       cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "cannot import gone_hook_21" in lines[0], lines
    assert "Unclosed" not in result.stderr
    shown = crawl("config", "show", "--redis", clean_redis).stdout
    assert "delay = 1.0" in shown  # the worker's --delay did not become the crawl's


def test_a_failing_hook_gives_one_line_not_a_traceback_a_page(clean_redis: str,
                                                              tmp_path: Path) -> None:
    with SiteServer(SiteSpec(hosts=1, pages=12, links=4)) as site:
        seeded(clean_redis, tmp_path, *site.spec.seeds())
        result = run_crawl("worker", "--redis", clean_redis, "--quiet", "--allow-private",
                           "--delay", "0", "--max-per-host", "4",
                           "--extract", "extract_hooks:always_fails", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    failures = [line for line in result.stderr.splitlines() if "extract hook" in line]
    assert "Traceback" not in result.stderr
    assert 1 <= len(failures) <= 3, failures  # the first, then counts of the rest
    assert "ValueError: no data in http://" in failures[0]
    assert "at extract_hooks.py:" in failures[0]
    if len(failures) == 2:  # all within FAIL_LOG_EVERY: the rest counted at the end
        assert "failed on 11 more pages" in failures[1]
    exported = crawl("export", "--redis", clean_redis, "-").stdout.splitlines()
    assert len(exported) == 12


# -- a paused crawl (7) ---------------------------------------------------------------------


def test_a_paused_crawl_says_paused_on_the_progress_line(clean_redis: str,
                                                         tmp_path: Path) -> None:
    with SiteServer(SiteSpec(hosts=1, pages=5, links=3)) as site:
        seeded(clean_redis, tmp_path, *site.spec.seeds())
        assert crawl("pause", "--redis", clean_redis).exit_code == 0
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWL_")}
        worker = subprocess.Popen(
            [sys.executable, "-m", "crawler", "worker", "--redis", clean_redis,
             "--allow-private", "--delay", "0.2"], cwd=tmp_path, env=env,
            stderr=subprocess.PIPE, text=True)
        try:
            assert worker.stderr is not None
            lines: list[str] = []
            for _ in range(20):  # a line every 2 s once two samples are in: the 2nd or 3rd
                lines.append(worker.stderr.readline())
                if "paused" in lines[-1]:
                    break
            paused_line = lines[-1]
            assert paused_line.startswith("pages 0  paused (operator)  "), lines
            assert "pages/s" not in paused_line and "politeness-bound" not in paused_line
            assert crawl("resume", "--redis", clean_redis).exit_code == 0
            rest = worker.communicate(timeout=60)[1]
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    assert worker.returncode == 0, rest
    assert "done: pages 5" in rest


# -- small ones (12) ------------------------------------------------------------------------


def test_processes_print_one_total_done_line(clean_redis: str, tmp_path: Path) -> None:
    with SiteServer(SiteSpec(hosts=2, pages=10, links=4)) as site:
        seeded(clean_redis, tmp_path, *site.spec.seeds())
        result = run_crawl("worker", "--redis", clean_redis, "--processes", "2",
                           "--allow-private", "--delay", "0", "--max-per-host", "4",
                           cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    done = [line for line in result.stderr.splitlines() if line.startswith("done:")]
    assert len(done) == 1, done
    assert done[0].startswith("done: pages 20  ") and done[0].endswith("(2 processes)")


def test_an_unknown_export_extension_is_refused_without_format(clean_redis: str,
                                                               tmp_path: Path) -> None:
    seeded(clean_redis, tmp_path)
    result = crawl("export", "--redis", clean_redis, "out.xlsx")
    assert result.exit_code == 2
    assert result.stderr.startswith("crawl: error: out.xlsx: unknown extension '.xlsx': "
                                    "export writes jsonl, jsonl.gz, csv, parquet")
    assert "--format" in result.stderr and not (tmp_path / "out.xlsx").exists()
    named = crawl("export", "--redis", clean_redis, "--format", "jsonl", "out.xlsx")
    assert named.exit_code == 0, named.output
    assert (tmp_path / "out.xlsx").exists()


def test_delete_honours_crawl_given_before_the_command(clean_redis: str,
                                                      tmp_path: Path) -> None:
    (tmp_path / "s.txt").write_text("http://127.0.0.2/\n")
    assert crawl("--crawl", "gone", "seed", "--redis", clean_redis,
                 str(tmp_path / "s.txt")).exit_code == 0
    assert crawl("--crawl", "kept", "seed", "--redis", clean_redis,
                 str(tmp_path / "s.txt")).exit_code == 0
    result = crawl("--crawl", "gone", "delete", "--redis", clean_redis, "--yes")
    assert result.exit_code == 0, result.output
    assert "deleted crawl 'gone'" in result.stdout
    names = crawl("list", "--redis", clean_redis, "--json").stdout
    assert '"name": "kept"' in names and '"name": "gone"' not in names
    both = crawl("--crawl", "kept", "delete", "other", "--redis", clean_redis, "--yes")
    assert both.exit_code == 2 and "give one name" in both.stderr
    neither = crawl("delete", "--redis", clean_redis, "--yes")
    assert neither.exit_code == 2 and "name the crawl to delete" in neither.stderr


def test_export_append_adds_only_what_the_file_lacks(clean_redis: str, tmp_path: Path) -> None:
    with SiteServer(SiteSpec(hosts=1, pages=6, links=3)) as site:
        seeded(clean_redis, tmp_path, site.spec.seeds()[0])
        args = ("--redis", clean_redis, "--quiet", "--allow-private", "--delay", "0")
        assert crawl("config", "set", "--redis", clean_redis, "max_pages=3").exit_code == 0
        assert run_crawl("worker", *args, cwd=tmp_path).returncode == 0
        for name in ("out.jsonl", "out.csv", "out.jsonl.gz"):
            assert crawl("export", "--redis", clean_redis, name).exit_code == 0
        first = (tmp_path / "out.jsonl").read_text().splitlines()
        assert crawl("config", "set", "--redis", clean_redis, "max_pages=0").exit_code == 0
        assert crawl("resume", "--redis", clean_redis).exit_code == 0
        assert run_crawl("worker", *args, cwd=tmp_path).returncode == 0
    for name in ("out.jsonl", "out.csv", "out.jsonl.gz"):
        result = crawl("export", "--redis", clean_redis, "--append", name)
        assert result.exit_code == 0, result.output
        assert (f"appended {6 - len(first)} results to {name}; skipped {len(first)} it "
                "already holds" in result.stderr), result.stderr
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    ids = [line.split('"')[3] for line in lines]
    assert 0 < len(first) < 6
    assert len(lines) == 6 and len(set(ids)) == 6 and lines[:len(first)] == first
    assert len((tmp_path / "out.csv").read_text().splitlines()) == 7  # header + 6
    again = crawl("export", "--redis", clean_redis, "--append", "out.jsonl")
    assert "appended 0 results to out.jsonl; skipped 6" in again.stderr


# -- Parquet in the default install (13) ----------------------------------------------------


def test_pyarrow_is_a_default_dependency_pinned_in_the_lock() -> None:
    import tomllib

    project = tomllib.loads((TESTS.parent / "pyproject.toml").read_text())["project"]
    assert any(d.startswith("pyarrow") for d in project["dependencies"])
    assert project["optional-dependencies"]["parquet"] == []  # kept for old install lines
    lock = (TESTS.parent / "requirements" / "lock.txt").read_text().splitlines()
    assert any(line.startswith("pyarrow==") for line in lock)


def test_the_parquet_hint_names_this_interpreters_pip(clean_redis: str, tmp_path: Path) -> None:
    seeded(clean_redis, tmp_path)
    blocked = tmp_path / "no_pyarrow"
    (blocked / "pyarrow").mkdir(parents=True)  # a pyarrow that will not import
    (blocked / "pyarrow" / "__init__.py").write_text("raise ImportError('not here')\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWL_")}
    env["PYTHONPATH"] = str(blocked)
    result = subprocess.run([sys.executable, "-m", "crawler", "export", "--redis", clean_redis,
                             "out.parquet"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert f"{sys.executable} -m pip install 'pyarrow>=14'" in result.stderr
    assert "crawler[parquet]" not in result.stderr

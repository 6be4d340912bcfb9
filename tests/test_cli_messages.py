"""What ``crawl`` tells its user: setting names, seed lines, hooks, paused crawls (issue 21)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from crawler.cli import app


@pytest.fixture(autouse=True)
def fresh_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run every command in an empty directory with no CRAWL_* settings around."""
    for name in list(os.environ):
        if name.startswith("CRAWL_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def crawl(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(app, list(args), input=stdin)


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


def test_config_set_says_there_is_no_proxy_setting(clean_redis: str, tmp_path: Path) -> None:
    seeded(clean_redis, tmp_path)
    result = crawl("config", "set", "--redis", clean_redis, "proxy=http://127.0.0.9:1")
    assert result.exit_code == 2
    assert "no proxy setting" in result.stderr


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

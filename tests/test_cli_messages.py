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

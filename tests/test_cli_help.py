"""crawl --help and crawl worker --help are enough to run a crawl with the right flags."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from crawl_helpers import ROOT
from typer.testing import CliRunner, Result

from crawler.bench.sitegen import SiteServer, SiteSpec
from crawler.cli import app
from crawler.config import Settings


@pytest.fixture(autouse=True)
def fresh_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name in list(os.environ):
        if name.startswith("CRAWL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "200")  # one line an option in help
    monkeypatch.chdir(tmp_path)
    level = logging.getLogger().level
    yield tmp_path
    logging.getLogger().setLevel(level)


def crawl(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def help_lines(*command: str) -> dict[str, str]:
    """Option -> its help row, from ``crawl COMMAND --help``."""
    result = crawl(*command, "--help")
    assert result.exit_code == 0
    rows: dict[str, str] = {}
    current = ""
    for line in result.stdout.splitlines():
        match = re.match(r"^│ (--[a-z-]+)", line)
        if match:
            current = match.group(1)
            rows[current] = ""
        elif not line.startswith("│ "):
            current = ""
        if current:  # wrapped help continues on the next lines
            rows[current] += " " + line.strip("│ ")
    return {flag: " ".join(row.split()) for flag, row in rows.items()}


def test_boolean_flags_show_no_value_placeholder() -> None:
    for command in ([], ["worker"], ["seed"], ["export"], ["server", "stop"], ["delete"]):
        result = crawl(*command, "--help")
        assert "<bool>" not in result.stdout, command
    rows = help_lines("worker")
    assert "--no-allow-private" in rows["--allow-private"]
    assert "--ignore-robots" in rows["--obey-robots"]


def test_a_flag_takes_no_value() -> None:
    result = crawl("worker", "--allow-private", "yes")
    assert result.exit_code == 2
    assert "unexpected extra argument" in result.output


@pytest.mark.parametrize(("flag", "default", "setting"), [
    ("--concurrency", "200", "worker.concurrency"),
    ("--delay", "1.0", "politeness.delay"),
    ("--scope", "host", "scope.scope"),
    ("--allow-private", "false", "fetch.allow_private"),
    ("--max-pages-per-host", "0", "scope.max_pages_per_host"),
    ("--include", "none", "scope.include"),
    ("--connect-timeout", "10.0", "fetch.connect_timeout"),
    ("--total-timeout", "30.0", "fetch.total_timeout"),
    ("--crawl", "default", "frontier.crawl"),
])
def test_worker_help_shows_each_default_and_setting(flag: str, default: str,
                                                    setting: str) -> None:
    row = help_lines("worker")[flag]
    name = setting.split(".")[1]
    assert f"[default: {default}; setting {setting}, env CRAWL_{name.upper()}]" in row
    assert default == str(Settings.model_fields[name].default).replace("False", "false") \
        .replace("()", "none")


def test_every_option_of_every_command_shows_its_default() -> None:
    root = typer.main.get_command(app)
    assert isinstance(root, typer.core.TyperGroup)

    def check(command: object, path: str) -> None:
        for param in getattr(command, "params", ()):
            if param.param_type_name != "option" or param.name == "help":
                continue
            shown = param.help or ""
            if param.show_default and param.default is not None:
                shown += f" [default: {param.default}]"  # typer adds it
            assert "default" in shown, f"{path} {param.opts[0]}"
        for name, sub in (getattr(command, "commands", None) or {}).items():
            if name != "bench":  # its own options are the benchmark's, not a crawl's
                check(sub, f"{path} {name}")

    check(root, "crawl")


def test_crawl_help_lists_the_commands_a_new_user_needs() -> None:
    result = crawl("--help")
    for command in ("seed", "worker", "export", "status", "list", "delete", "server"):
        assert re.search(rf"│ {command} ", result.stdout), command


# -- options on the wrong side of the command ------------------------------------------------


def test_a_command_option_before_the_command_says_where_it_goes() -> None:
    result = crawl("--crawl", "demo1", "--delay", "1", "worker")
    assert result.exit_code == 2
    text = " ".join(result.output.replace("│", " ").split())
    assert ("--delay is an option of 'crawl worker': put it after the command, as in crawl "
            "--crawl demo1 worker --delay 1") in text


def test_a_root_option_after_the_command_says_where_it_goes() -> None:
    result = crawl("seed", "-v", "urls.txt")
    assert result.exit_code == 2
    text = " ".join(result.output.replace("│", " ").split())
    assert ("-v is an option of crawl itself: put it before the command, as in "
            "crawl -v seed urls.txt") in text


@pytest.mark.parametrize(("argv", "fixed"), [
    (["export", "out.jsonl", "-vv", "--force"], "crawl -vv export out.jsonl --force"),
    (["status", "--json", "--log-level", "debug"], "crawl --log-level debug status --json"),
    (["status", "--log-level=info"], "crawl --log-level=info status"),
    (["--home", "status", "status", "-v"], "crawl --home status -v status"),  # a value
    (["status", "-v", "--json", "-v"], "crawl -v -v status --json"),  # given twice
    (["config", "set", "--log-level", "debug", "x", "y"],
     "crawl --log-level debug config set x y"),  # before the root's command
    (["export", "out.jsonl", "--log-level"], "crawl --log-level ... export"),  # no value
])
def test_the_corrected_command_line_moves_the_option_and_its_value(
        argv: list[str], fixed: str) -> None:
    result = crawl(*argv)
    assert result.exit_code == 2
    assert f"as in {fixed}" in " ".join(result.output.replace("│", " ").split())


def test_an_unknown_option_is_still_unknown() -> None:
    result = crawl("--crawl", "demo1", "--bogus", "worker")
    assert result.exit_code == 2
    assert "no such option --bogus" in result.output


def test_common_options_work_on_either_side(clean_redis: str) -> None:
    for args in (["--redis", clean_redis, "--crawl", "x", "list"],
                 ["list", "--redis", clean_redis]):
        assert crawl(*args).exit_code == 0, args


# -- the flags that used to be config-only ---------------------------------------------------


def test_log_level_and_verbose_set_the_log_level(clean_redis: str) -> None:
    assert crawl("--log-level", "debug", "list", "--redis", clean_redis).exit_code == 0
    assert logging.getLogger().level == logging.DEBUG
    assert crawl("-v", "list", "--redis", clean_redis).exit_code == 0
    assert logging.getLogger().level == logging.INFO
    result = crawl("--log-level", "loud", "list", "--redis", clean_redis)
    assert result.exit_code == 2
    assert "--log-level: expected debug, info, warning or error, got 'loud'" in result.stderr


@pytest.mark.parametrize(("flag", "value", "setting"), [
    ("--connect-timeout", "-1", "connect_timeout"),
    ("--read-timeout", "-3", "read_timeout"),
    ("--total-timeout", "-2", "total_timeout"),
    ("--max-pages-per-host", "-1", "max_pages_per_host"),
])
def test_new_worker_flags_reach_their_setting(clean_redis: str, flag: str, value: str,
                                              setting: str) -> None:
    result = crawl("worker", "--redis", clean_redis, flag, value)
    assert result.exit_code == 2
    assert f"crawl: error: {flag}: {setting}: expected" in result.stderr


def test_include_exclude_and_max_pages_per_host_flags_shape_the_crawl(
        clean_redis: str, tmp_path: Path) -> None:
    with SiteServer(SiteSpec(hosts=2, pages=30, links=6)) as site:
        seeds = tmp_path / "seeds.txt"
        seeds.write_text("\n".join(site.spec.seeds()) + "\n")
        assert crawl("seed", "--redis", clean_redis, str(seeds)).exit_code == 0
        # Host 0 only (include), never /p/1.html (exclude), 5 pages a host at most.
        first = site.spec.origin(0)
        worker = subprocess.run(
            [sys.executable, "-m", "crawler", "worker", "--redis", clean_redis, "--quiet",
             "--allow-private", "--delay", "0", "--max-per-host", "4",
             "--include", re.escape(first), "--exclude", r"/p/1\.html$",
             "--max-pages-per-host", "5"], cwd=ROOT, capture_output=True, text=True,
            timeout=90, env={k: v for k, v in os.environ.items() if not k.startswith("CRAWL_")})
        assert worker.returncode == 0, worker.stderr
    result = crawl("export", "--redis", clean_redis, "-")
    urls = [json.loads(line)["url"] for line in result.stdout.splitlines()]
    followed = [u for u in urls if u not in site.spec.seeds()]
    assert followed and all(u.startswith(first) for u in followed)
    assert not any(u.endswith("/p/1.html") for u in urls)
    # 5 pages of host 0 in all, the seed included, though it was queued before
    # the worker's flag set the cap (each host once got the seed and 5 more).
    assert len(followed) == 4


def test_a_bad_include_pattern_is_one_line_not_a_traceback(clean_redis: str) -> None:
    result = crawl("worker", "--redis", clean_redis, "--include", "(")
    assert result.exit_code == 2
    assert "crawl: error: --include: include: expected regular expressions" in result.stderr


# -- one error style -----------------------------------------------------------------------


def run_crawl(*args: str) -> subprocess.CompletedProcess[str]:
    """``crawl`` as a user runs it: its real stderr, not CliRunner's."""
    return subprocess.run([sys.executable, "-m", "crawler", *args], capture_output=True,
                          text=True, timeout=60, check=False)


def test_a_mistyped_option_is_one_error_line_with_did_you_mean() -> None:
    result = run_crawl("worker", "--dealy", "2")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "crawl: error: crawl worker: no such option --dealy; did you mean --delay? "
        "(crawl worker --help)"]
    assert "╭" not in result.stderr and "Usage:" not in result.stderr


def test_another_commands_option_names_that_command_not_a_near_spelling() -> None:
    """crawl seed --allow-private once said "did you mean --allow-bare-hosts?" (a new
    user's trial): the flag is right, the command is not."""
    result = run_crawl("seed", "--crawl", "x", "seeds.txt", "--allow-private")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "crawl: error: crawl seed: no such option --allow-private: it is an option of "
        "crawl worker (crawl seed --help)"]


def test_every_usage_error_is_one_crawl_error_line() -> None:
    for args in (["wroker"], ["seed", "a", "b"], ["export"], ["worker", "--concurrency", "x"]):
        result = run_crawl(*args)
        assert result.returncode == 2, args
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("crawl: error: "), (args, lines)
    assert "did you mean 'worker'" in run_crawl("wroker").stderr.lower()
    assert run_crawl("worker", "--delay").stderr.startswith(
        "crawl: error: crawl worker: option '--delay' requires an argument")


def test_the_command_listing_is_what_the_commands_say(monkeypatch: pytest.MonkeyPatch) -> None:
    """``crawl --help`` lists the commands from a table, none imported
    (crawler.cli.commands); it reads as it would with every command imported."""
    from typer.core import TyperGroup

    from crawler.cli.app import CrawlGroup
    from crawler.cli.commands import COMMANDS

    listed = crawl("--help")
    assert listed.exit_code == 0
    monkeypatch.setattr(CrawlGroup, "format_help", TyperGroup.format_help)  # each one made
    assert crawl("--help").stdout == listed.stdout
    group = typer.main.get_command(app)
    assert isinstance(group, CrawlGroup)
    assert [group.commands[name].name for name in COMMANDS] == list(COMMANDS)


@pytest.mark.parametrize("text", [
    "[default: 200; setting worker.concurrency, env CRAWL_CONCURRENCY]", "a \\[b] c",
    "x [/y] [#z] [@w] [A] [] [b", "ends in \\", "ends in \\\\", "\\\\[default: x]", "plain"])
def test_help_text_is_escaped_as_rich_escapes_it(text: str) -> None:
    """Option help is escaped without importing rich (crawler.cli.markup), the same way."""
    from rich.markup import escape as rich_escape

    from crawler.cli.markup import escape

    assert escape(text) == rich_escape(text)


@pytest.mark.parametrize("argv", [["--help"], ["worker", "--help"], ["list", "--help"],
                                  ["dashboard", "--help"], ["bench", "waste", "--help"]])
def test_help_paragraphs_are_not_broken_mid_sentence_at_80_columns(argv: list[str]) -> None:
    """Docstrings are wrapped by hand; rich wraps again at the terminal's width,
    so a hand break left a short line in mid-sentence ("robots.txt" / "obeyed")."""
    import os
    import subprocess
    import sys
    from itertools import pairwise

    out = subprocess.run([sys.executable, "-m", "crawler", *argv], capture_output=True,
                         text=True, timeout=60, env={**os.environ, "COLUMNS": "80"}).stdout
    # The text above the option panels (rich), or above click's plain "Options:"
    # (a command's help at 80 columns, crawler.cli.markup.plain_help).
    description = out.split("╭")[0].split("\nOptions:")[0]
    lines = [line.strip() for line in description.splitlines()]
    for before, after in pairwise(lines):
        # A line that ends mid-sentence is followed by one that starts in lower
        # case; it must be long (wrapped by rich at the width), not a hand break.
        if before and after and after[0].islower():
            assert len(before) > 60, (before, after)


@pytest.mark.parametrize("columns", [80, 99])
def test_a_commands_help_on_a_narrow_terminal_cuts_nothing_and_fits(columns: int) -> None:
    """Rich's panels gave an option's help ~18 characters at 80 columns and cut long
    option and setting names with "..."; below 100 columns a command's help is
    click's plain layout: every name whole, every line within the width."""
    import os
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "crawler", "worker", "--help"],
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "COLUMNS": str(columns)}).stdout
    assert "--max-pages-per-host" in out and "--no-extract-in-thread" in out
    assert "redis+cluster://n1:7000,n2:7000,n3:7000" in out  # an example URL is not split
    assert "CRAWL_MAX_PAGES_PER_HOST" in out and "worker.concurrency" in out
    assert "\u2026" not in out and "\\[" not in out  # nothing cut, no markup escapes
    assert max(map(len, out.splitlines())) <= columns
    assert len(out.splitlines()) < 160  # it was 297 lines at 80 columns


@pytest.mark.parametrize("columns", [80, 99])
def test_crawls_own_help_on_a_narrow_terminal_keeps_its_options_whole_and_fits(
        columns: int) -> None:
    """The root group's help had kept rich's panels at 80 columns and cut the --redis
    example to "n3:700…". (The command list still shortens each summary to its
    first words, with "...", as click does.)"""
    import os
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "crawler", "--help"],
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "COLUMNS": str(columns)}).stdout
    assert "redis+cluster://n1:7000,n2:7000,n3:7000" in out  # whole, on one line
    assert "\u2026" not in out.split("Commands:")[0] and "\\[" not in out
    assert "seed" in out and "worker" in out
    assert max(map(len, out.splitlines())) <= columns


def test_a_wide_terminal_keeps_the_option_panels() -> None:
    import os
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "crawler", "worker", "--help"],
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "COLUMNS": "100"}).stdout
    assert "╭─ Options" in out


def test_crawl_version_prints_the_packages_version() -> None:
    import os
    import subprocess
    import sys
    import tomllib

    import crawler

    root = Path(crawler.__file__).resolve().parent.parent
    declared = tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
    assert crawler.__version__ == declared  # one version, said in two places
    out = subprocess.run([sys.executable, "-m", "crawler", "--version"], capture_output=True,
                         text=True, timeout=60, env=os.environ.copy())
    assert (out.returncode, out.stdout) == (0, f"crawl {declared}\n")

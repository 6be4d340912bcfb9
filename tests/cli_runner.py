"""The CLI tests' shared set-up: each command in an empty directory, run in-process.

A test module imports ``fresh_dir`` (autouse: pytest finds a fixture by its
name in the module) and ``crawl``.
"""

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

"""Usage errors (an unknown option, a missing argument) as one ``crawl: error:`` line.

Click prints them as a usage block and typer as a boxed panel; every other
error of ``crawl`` is one line on stderr. ``one_line`` gives them that style,
with a did-you-mean over the command's own option names (difflib), and the
``--help`` to read.
"""

from __future__ import annotations

import difflib
from typing import Any

from typer._click.exceptions import NoSuchOption, UsageError  # typer vendors click


def option_names(command: Any) -> list[str]:
    """Every spelling of every option of ``command``: ``--delay``, ``--no-quiet``, ``-v``."""
    names: list[str] = []
    for param in getattr(command, "params", ()):
        if getattr(param, "param_type_name", "") == "option":
            names += [*param.opts, *getattr(param, "secondary_opts", ())]
    return names


def suggest_option(command: Any, given: str) -> list[str]:
    """The options of ``command`` spelled closest to ``given`` (at most three)."""
    name = given.split("=", 1)[0]
    return difflib.get_close_matches(name, option_names(command), n=3, cutoff=0.6)


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text


def one_line(exc: UsageError) -> str:
    """``crawl worker: no such option --dealy; did you mean --delay? (crawl worker --help)``."""
    ctx = exc.ctx
    where = ctx.command_path if ctx is not None else getattr(exc, "where", "crawl")
    if isinstance(exc, NoSuchOption) and exc.message.startswith("No such option"):
        name = exc.option_name.split("=", 1)[0]
        close = suggest_option(exc.cmd, name) if exc.cmd is not None else []
        text = f"no such option {name}"
        if close:
            text += f"; did you mean {' or '.join(close)}?"
    else:
        text = _lower_first(" ".join(exc.format_message().split())).rstrip(".")
    return f"{where}: {text} ({where} --help)"

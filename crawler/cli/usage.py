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


def commands_with_option(option: str, exclude: str | None = None) -> list[str]:
    """The ``crawl`` commands that take ``option`` as spelled (at most two); only
    on an unknown option, so building the others' options costs an error, not a
    start-up."""
    if not option.startswith("--"):
        return []  # a short flag or a typo of one: too little to name a command by
    from crawler.cli.commands import COMMANDS, LazyCommands

    found = []
    for command in COMMANDS:
        if command != exclude and option in option_names(LazyCommands.make(command)):
            found.append(command)
            if len(found) == 2:
                break
    return found


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text


def unparsed_setting(exc: UsageError) -> str | None:
    """``--concurrency: concurrency: expected a whole number >= 1, got 'x'``: a setting's
    flag whose value does not parse, checked by ``check_value`` as a value out of
    range is, not said in the words of typer's validator ("Input should be a valid
    integer"). None when ``exc`` is not that."""
    param, cause = getattr(exc, "param", None), exc.__cause__
    errors = getattr(cause, "errors", None)
    name = getattr(param, "name", None)
    if not name or not callable(errors):
        return None
    from crawler.config.settings import Settings, check_value
    from crawler.errors import ConfigError

    if name not in Settings.model_fields:
        return None
    try:
        got = errors()[0]["input"]
    except (IndexError, KeyError, TypeError):
        return None
    opts = list(getattr(param, "opts", ())) or [name]
    try:
        check_value(name, got, next((opt for opt in opts if opt.startswith("--")), opts[0]))
    except ConfigError as error:
        return str(error)
    return None  # the settings take what typer refused: its own words stand


def one_line(exc: UsageError) -> str:
    """``crawl worker: no such option --dealy; did you mean --delay? (crawl worker --help)``."""
    setting = unparsed_setting(exc)
    if setting is not None:
        return setting
    ctx = exc.ctx
    where = ctx.command_path if ctx is not None else getattr(exc, "where", "crawl")
    if isinstance(exc, NoSuchOption) and exc.message.startswith("No such option"):
        name = exc.option_name.split("=", 1)[0]
        text = f"no such option {name}"
        owners = commands_with_option(name, exclude=getattr(exc.cmd, "name", None))
        close = suggest_option(exc.cmd, name) if exc.cmd is not None and not owners else []
        if owners:  # seed --allow-private: not a typo, a flag of another command
            text += f": it is an option of {' and '.join(f'crawl {c}' for c in owners)}"
        elif close:
            text += f"; did you mean {' or '.join(close)}?"
    else:
        text = _lower_first(" ".join(exc.format_message().split())).rstrip(".")
    return f"{where}: {text} ({where} --help)"

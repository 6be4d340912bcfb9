"""Help for options on the wrong side of the command, and flags shown without a value.

``crawl --delay 1 worker`` and ``crawl worker -v`` are usage errors that
say where the option goes. These run on the root group (crawler.cli.app)
before any command's module is imported, so they need typer only.
"""

from __future__ import annotations

import re
from typing import Any

from typer._click.core import Context as ClickContext  # typer vendors click


def quiet_flag_metavars(command: Any) -> None:
    """No ``<bool>`` after a flag in help: a flag takes no value (typer shows one anyway)."""
    for param in getattr(command, "params", ()):
        if getattr(param, "is_flag", False) or getattr(param, "count", False):
            param.metavar = ""
    help_option = command.get_help_option(ClickContext(command))  # made once, then cached
    if help_option is not None:
        help_option.metavar = ""
    for sub in (getattr(command, "commands", None) or {}).values():
        quiet_flag_metavars(sub)


def takes_value(command: Any, option: str) -> bool | None:
    """Whether ``option`` of ``command`` takes a value; None if the command has no such option."""
    for param in getattr(command, "params", ()):
        if option in (*param.opts, *getattr(param, "secondary_opts", ())):
            return not (getattr(param, "is_flag", False) or getattr(param, "count", False))
    return None


def root_options(group: Any) -> dict[str, bool | None]:
    """Each of ``crawl``'s own option names, and whether it takes a value."""
    return {o: takes_value(group, o) for p in group.params for o in p.opts}


def misplaced_before(group: Any, ctx: ClickContext, args: list[str], option: str) -> str | None:
    """For ``crawl --delay 1 worker``: where ``--delay`` goes, as a corrected command line."""
    name = option.split("=", 1)[0]
    root_opts = root_options(group)
    i, before, moved = 0, [], []
    while i < len(args):
        arg = args[i]
        if root_opts.get(arg):
            before += args[i:i + 2]
            i += 2
        elif arg.split("=", 1)[0] in root_opts or re.fullmatch(r"-v+", arg):
            before.append(arg)
            i += 1
        elif arg.startswith("-"):
            moved.append(arg)
            i += 1
        elif arg in group.commands:
            command = group.commands[arg]
            if takes_value(command, name) is None:
                return None
            fixed = [*before, arg, *moved, *args[i + 1:]]
            return (f"{name} is an option of 'crawl {arg}': put it after the command, as in "
                    f"crawl {' '.join(fixed)}")
        else:  # the value of an option that is not the root's
            moved.append(arg)
            i += 1
    return None


def misplaced_after(group: Any, command_name: str, option: str,
                    args: list[str] | None = None) -> str | None:
    """For ``crawl worker -v``: an option of ``crawl`` itself goes before the command,
    said as the corrected command line when ``args`` (the command line) are known."""
    name = option.split("=", 1)[0]
    if not any(name in p.opts for p in group.params):
        return None
    fixed = _moved_before(group, command_name, option, args or [])
    example = " ".join(fixed) if fixed else f"{name} ... {command_name}"
    return f"{name} is an option of crawl itself: put it before the command, as in crawl {example}"


def _moved_before(group: Any, command_name: str, option: str, args: list[str]) -> list[str]:
    """``args`` with every ``option`` after the command (and its value) moved before
    it; [] if that cannot be said (the option lacks its value, or is not there)."""
    root_opts = root_options(group)
    at = 0
    while at < len(args) and args[at].startswith("-"):  # crawl's own options first
        at += 2 if root_opts.get(args[at]) else 1
    if at >= len(args) or args[at] != command_name:
        return []
    moved: list[str] = []
    kept: list[str] = []
    i = at + 1
    while i < len(args):
        arg = args[i]
        if arg == "--":
            kept += args[i:]
            break
        # Click reads "-vv" as "-v" twice, and names the option "-v".
        short_run = len(option) == 2 and re.fullmatch(f"{re.escape(option)}+", arg)
        if arg.split("=", 1)[0] == option or short_run:
            if takes_value(group, option) and "=" not in arg:
                if i + 1 >= len(args):
                    return []  # "--log-level" at the end: no value to move with it
                moved += args[i:i + 2]
                i += 2
            else:
                moved.append(arg)
                i += 1
            continue
        kept.append(arg)
        i += 1
    return [*args[:at], *moved, command_name, *kept] if moved else []

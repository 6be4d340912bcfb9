"""``escape``: help text that rich prints as written, without importing rich.

Typer renders help with rich markup, so a ``[default: ...]`` in an option's
help would be read as a tag. The help strings are built when a command's
module is imported, which every run of the command does; rich itself is
needed only when help is printed (typer imports it then).
"""

from __future__ import annotations

import re

_TAG = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])")
"""What rich reads as a markup tag (rich.markup.escape's own pattern)."""


def escape(text: str) -> str:
    """``text`` with every tag-like ``[...]`` escaped, as ``rich.markup.escape`` does."""
    text = _TAG.sub(lambda m: f"{m[1]}{m[1]}\\{m[2]}", text)
    if text.endswith("\\") and not text.endswith("\\\\"):
        return text + "\\"
    return text


_ESCAPED_TAG = re.compile(r"(?<!\\)\\(\[[a-z#/@][^[]*?])")


def unescape(text: str) -> str:
    """``escape`` undone, for help that click prints plainly (no markup to guard)."""
    return _ESCAPED_TAG.sub(r"\1", text)


NARROW_COLUMNS = 100
"""Below this width a command's help is click's plain list, not rich's option panels.
The panels give an option's names, its metavar and its help a column each; at 80
columns the names of a ``--x/--no-x`` pair take half the width, the help got ~18
characters, and long names and setting names were cut with "..."."""


def narrow_terminal() -> bool:
    """Whether help prints narrower than ``NARROW_COLUMNS`` (``COLUMNS`` counts, as for rich)."""
    import shutil

    # Not a terminal (a pipe, a file): 80, as rich assumes there.
    return shutil.get_terminal_size((80, 24)).columns < NARROW_COLUMNS


def plain_help(command: object, *, subcommands: bool = True) -> None:
    """Print a made command's help (and its subcommands') plainly: click's layout,
    which puts an option's help under a long name instead of squeezing it.
    ``subcommands=False``: the root group, whose commands are imported only when run."""
    if hasattr(command, "rich_markup_mode"):
        command.rich_markup_mode = None
    for param in getattr(command, "params", ()):
        if isinstance(getattr(param, "help", None), str):
            param.help = unescape(param.help)
    if subcommands:
        for sub in (getattr(command, "commands", None) or {}).values():
            plain_help(sub)


_PARAGRAPHS = re.compile(r"\n[ \t]*\n")


def unwrap(text: str) -> str:
    """Help text with each paragraph's hand-wrapped lines joined into one.

    Typer keeps a docstring's single line breaks, and rich wraps each line
    again at the terminal's width: at 80 columns a 78-character line broke
    mid-sentence ("robots.txt\\n obeyed"). A paragraph whose lines are indented
    or start as a list or table (``-``, ``*``, ``|``) keeps its breaks."""
    out = []
    for paragraph in _PARAGRAPHS.split(text.strip("\n")):
        lines = paragraph.split("\n")
        if any(line[:1] in (" ", "\t", "-", "*", "|", "\b") for line in lines[1:]):
            out.append(paragraph)
        else:
            out.append(" ".join(line.strip() for line in lines))
    return "\n\n".join(out)


def unwrap_command_help(command: object) -> None:
    """``unwrap`` a command's help, and its subcommands' (a made click command)."""
    help_text = getattr(command, "help", None)
    if isinstance(help_text, str):
        command.help = unwrap(help_text)  # type: ignore[attr-defined]
    for sub in (getattr(command, "commands", None) or {}).values():
        unwrap_command_help(sub)

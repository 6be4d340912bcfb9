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

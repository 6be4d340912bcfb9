"""Top of a py-spy profile: ``python bench/profile_top.py PROFILE.txt [N]``.

Reads py-spy's raw (collapsed stacks) output, as ``crawl bench --profile DIR``
writes it, and prints the functions with the most samples: by self time (where
the CPU is spent) and by total time (what the time is spent under).
"""

from __future__ import annotations

import re
import sys
from collections import Counter

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _name(frame: str) -> str:
    match = _FRAME.match(frame)
    if not match:
        return frame
    path = match["file"]
    for marker in ("site-packages/", "/crawler/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['func']} ({path})"


def top(path: str, n: int = 25) -> str:
    own: Counter[str] = Counter()
    under: Counter[str] = Counter()
    total = 0
    with open(path) as fh:
        for line in fh:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            count = int(count_text)
            frames = [_name(f) for f in stack.split(";")]
            total += count
            own[frames[-1]] += count
            for name in set(frames):
                under[name] += count
    out = [f"{path}: {total} samples", "", "self %  function"]
    out += [f"{100 * c / total:6.1f}  {name}" for name, c in own.most_common(n)]
    out += ["", "total %  function"]
    out += [f"{100 * c / total:7.1f}  {name}" for name, c in under.most_common(n)]
    return "\n".join(out)


if __name__ == "__main__":
    print(top(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 25))

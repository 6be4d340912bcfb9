"""How much memory a worker's browser holds: the Playwright driver's and Chromium's
processes, for ``render_max_rss`` (crawler.net.browser) and ``crawl bench render``."""

from __future__ import annotations

import os


def browser_rss(root: int | None = None) -> int:
    """Bytes resident in this process's descendants that are the Playwright driver or the
    browser's processes, each shared page counted once in all (their PSS: summed RSS
    counts Chromium's shared pages once a process, several times too much). Linux
    /proc; 0 elsewhere."""
    root = os.getpid() if root is None else root
    children: dict[int, list[int]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return 0
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                parent = int(fh.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(name))
    total, stack = 0, list(children.get(root, []))
    while stack:
        pid = stack.pop()
        if _is_browser(pid):
            total += _pss(pid)
        stack += children.get(pid, [])
    return total


def _is_browser(pid: int) -> bool:
    """Playwright's driver (node) or one of Chromium's processes, not another child of the
    worker (an embedded Valkey)."""
    try:
        with open(f"/proc/{pid}/comm", "rb") as fh:
            name = fh.read().strip().lower()
    except OSError:
        return False
    return name == b"node" or b"chrom" in name or b"headless" in name


def _pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            for line in fh:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0

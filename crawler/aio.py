"""asyncio helpers that stay correct on Python 3.11.

On 3.11, ``asyncio.wait_for`` loses a cancellation that arrives in the loop
tick in which its inner future completes (CPython gh-86296, fixed in 3.12 by
rebuilding ``wait_for`` on ``asyncio.timeout``). redis-py wraps every command's
send in ``wait_for`` when a socket timeout is set, so one ``task.cancel()`` of
a task busy with Redis can be silently dropped, and a ``gather`` waiting for
that task then waits forever. So:

- ``cancel_and_wait`` cancels again until the tasks are done, within a bound;
- ``wait_event`` waits with ``asyncio.timeout``, never ``wait_for``;
- ``dump_tasks`` prints every task's stack (``kill -USR1`` on a worker).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable
from typing import Any, TextIO

RECANCEL_EVERY = 0.05
"""Seconds between repeated cancels of a task that has not stopped yet."""


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]], *, within: float
                          ) -> list[asyncio.Future[Any]]:
    """Cancel ``tasks`` and wait until they are done, cancelling again while they run.

    Returns the tasks still running after ``within`` seconds (empty when all
    stopped). Never raises the tasks' own exceptions; a cancellation of the
    caller propagates as usual.
    """
    tasks = list(tasks)
    pending = {t for t in tasks if not t.done()}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while pending:
        for task in pending:
            task.cancel()
        left = deadline - loop.time()
        if left <= 0:
            break
        _, pending = await asyncio.wait(pending, timeout=min(RECANCEL_EVERY, left))
    for task in tasks:  # retrieve exceptions, so none is reported as "never retrieved"
        if task.done() and not task.cancelled():
            task.exception()
    return [t for t in tasks if not t.done()]


async def wait_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait until ``event`` is set or ``seconds`` pass; True if it was set."""
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


def dump_tasks(out: TextIO | None = None) -> int:
    """Print the stack of every task of the running loop; returns how many there were."""
    out = out or sys.stderr
    tasks = asyncio.all_tasks()
    print(f"--- {len(tasks)} asyncio tasks ---", file=out)
    for task in sorted(tasks, key=lambda t: t.get_name()):
        task.print_stack(file=out)
    print("--- end of tasks ---", file=out, flush=True)
    return len(tasks)

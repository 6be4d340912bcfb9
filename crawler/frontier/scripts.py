"""Running the frontier's Lua scripts: loading, NOSCRIPT recovery, pipelines, group commit.

Every script is ``lua/_lib.lua`` (shared helpers) followed by ``lua/<name>.lua``
(and by ``lua/_revisit.lua`` before it, in those that handle revisit state).
Scripts run with EVALSHA in pipelines: redis-py's Script objects would send
SCRIPT EXISTS before every pipeline, doubling the round trips. A server that
lost its script cache (restarted, or a replica promoted) answers NOSCRIPT;
the runner loads every script and sends the pipeline again, which is safe
because every script is safe to repeat (add dedups, claims carry a request
id, a stale lease makes complete/retry no-ops, robots, reread and hop keep
their reply under their call id; see ``lua/_lib.lua``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

log = logging.getLogger("crawler.frontier")

SHORT_OF_REPLICAS_FOR = 5.0
"""Seconds a server that let WAIT time out is asked only for the replicas it had.

A master whose replica died (or that was just promoted and has none yet)
would otherwise hold every pipeline for the whole ``wait_timeout``."""

SCRIPT_NAMES = ("add", "claim", "complete", "retry", "reclaim", "robots", "robots_peek",
                "unlock", "heartbeat",
                "drain", "drop", "recrawl", "lastmod", "due", "reread", "recap", "hop",
                "forget_robots", "cookies", "proxy", "retry_errors")
REVISIT_SCRIPTS = frozenset({"claim", "complete", "drop", "recrawl", "lastmod", "due",
                             "reread", "retry_errors"})
"""Scripts that read or write revisit state: ``lua/_revisit.lua`` follows ``_lib.lua`` in them."""
TRAP_SCRIPTS = frozenset({"add", "complete"})
"""Scripts that keep near-duplicates and trap budgets: ``lua/_traps.lua`` comes after the libs."""

Call = tuple[str, list[str], list[Any]]
"""One script call: (script name, keys, args)."""


def load_source(name: str) -> str:
    lua = resources.files("crawler.frontier") / "lua"
    libs = ["_lib", "_revisit"] if name in REVISIT_SCRIPTS else ["_lib"]
    if name in TRAP_SCRIPTS:
        libs.append("_traps")
    return "\n".join((lua / f"{part}.lua").read_text() for part in [*libs, name])


class ScriptRunner:
    """Runs script calls against one Redis, in pipelines, sharing them between callers.

    ``on_failure`` is called when a call may not have reached Redis (an error
    reply or a dropped connection): the frontier forgets what it believed
    Redis already had.
    """

    def __init__(self, redis: Redis, on_failure: Callable[[], None] = lambda: None, *,
                 wait_replicas: int = 0, wait_timeout: float = 1.0) -> None:
        self.redis = redis
        self.on_failure = on_failure
        self.wait_replicas = wait_replicas
        self.wait_timeout_ms = int(wait_timeout * 1000)
        self.replica_shortfalls = 0  # pipelines whose WAIT saw fewer replicas than asked
        self._short: dict[str, tuple[int, float]] = {}  # server -> (replicas it had, until)
        self.sources = {name: load_source(name) for name in SCRIPT_NAMES}
        self.shas = {name: hashlib.sha1(src.encode()).hexdigest()
                     for name, src in self.sources.items()}
        self.round_trips = 0  # Redis round trips this runner made, for the benchmark
        self._queued: list[tuple[list[Call], asyncio.Future[list[Any]]]] = []
        self._sender: asyncio.Task[None] | None = None  # sends the queued calls (run_shared)

    async def run(self, calls: list[Call]) -> list[Any]:
        """Run script calls in one pipelined round trip; replies in order.

        Raises the first error reply (after ``on_failure``).
        """
        if not calls:
            return []
        replies = await self._execute(calls)
        for reply in replies:
            if isinstance(reply, Exception):
                self.on_failure()
                raise reply
        return replies

    async def _execute(self, calls: list[Call]) -> list[Any]:
        """Run calls; replies in order, error replies as exceptions.

        With ``wait_replicas``, each pipeline ends with WAIT, and a batch's
        completions go only after its other calls (link adds first) have
        reached the replicas: a failover can then lose neither, and never a
        page's links while keeping its result.
        """
        try:
            if not self.wait_replicas:
                return await self._send(calls)
            later = [i for i, call in enumerate(calls) if call[0] == "complete"]
            first = [i for i in range(len(calls)) if i not in set(later)]
            replies: list[Any] = [None] * len(calls)
            for part in (first, later):
                if part:
                    for i, reply in zip(part, await self._send([calls[i] for i in part]),
                                        strict=True):
                        replies[i] = reply
            return replies
        except BaseException:
            self.on_failure()
            raise

    def _add_calls(self, pipe: Any, calls: list[Call], server: str = "") -> int:
        """Queue the calls on a pipeline, then WAIT if asked; returns the replicas waited for."""
        for name, script_keys, args in calls:
            pipe.evalsha(self.shas[name], len(script_keys), *script_keys, *args)
        wanted = self.wait_replicas
        had, until = self._short.get(server, (wanted, 0.0))
        if time.monotonic() < until:
            wanted = had
        if wanted:
            pipe.execute_command("WAIT", wanted, self.wait_timeout_ms)
        return wanted

    def _replies(self, replies: list[Any], waited: int, server: str = "") -> list[Any]:
        """Replies to the calls, without WAIT's (which counts how many replicas kept up)."""
        if waited:
            acked = replies.pop()
            acked = acked if isinstance(acked, int) else 0
            if acked < waited:
                self.replica_shortfalls += 1
                if server not in self._short or time.monotonic() >= self._short[server][1]:
                    log.warning("%s: %d of %d replicas acknowledged within %d ms; for %.0f s "
                                "its writes wait for %d", server or "redis", acked,
                                self.wait_replicas, self.wait_timeout_ms,
                                SHORT_OF_REPLICAS_FOR, acked)
                self._short[server] = (acked, time.monotonic() + SHORT_OF_REPLICAS_FOR)
        return replies

    async def _send(self, calls: list[Call]) -> list[Any]:
        """One pipeline of script calls (loading the scripts once on NOSCRIPT).

        Only the calls answered NOSCRIPT go again: in one pipeline some can run
        and some not, when another connection loads the scripts between them
        (two seeding windows in flight on a fresh server). Sending the ones that
        ran again was safe, but their second replies replaced the first: seeding
        through ``seed()`` reported 38% of a fresh crawl's URLs as "already seen"."""
        replies: list[Any] = [None] * len(calls)
        pending = list(range(len(calls)))
        for attempt in range(2):
            pipe = self.redis.pipeline(transaction=False)
            waited = self._add_calls(pipe, [calls[i] for i in pending])
            self.round_trips += 1
            answers = self._replies(list(await pipe.execute(raise_on_error=False)), waited)
            again = []
            for i, answer in zip(pending, answers, strict=True):
                replies[i] = answer
                if isinstance(answer, NoScriptError):
                    again.append(i)
            if not again or attempt:
                break
            for src in self.sources.values():
                await self.redis.script_load(src)
            pending = again
        return replies

    async def close(self) -> None:
        """Close what the runner opened itself (a cluster runner's node clients)."""

    async def run_shared(self, calls: list[Call]) -> list[Any]:
        """``run``, with the calls of concurrent callers sharing pipelines (group commit).

        While one pipeline is on the wire, callers queue their calls; the next
        pipeline carries all of them. Each caller's calls stay together and in
        order, and each caller gets its own replies, or the error of its own
        calls, or the error that stopped the whole pipeline. A page's result
        and links thus cost well under one round trip, and the writes of 200
        fetches in flight hold one connection, not 200.
        """
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._queued.append((calls, future))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_queued())
        return await future

    async def _send_queued(self) -> None:
        while self._queued:
            batch, self._queued = self._queued, []
            try:
                replies = await self._execute([call for calls, _ in batch for call in calls])
            except asyncio.CancelledError:
                for _, future in batch:
                    future.cancel()
                raise
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            start = 0
            for calls, future in batch:
                mine, start = replies[start:start + len(calls)], start + len(calls)
                error = next((r for r in mine if isinstance(r, Exception)), None)
                if error is not None:
                    self.on_failure()
                if future.done():
                    continue
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(mine)

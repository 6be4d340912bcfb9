"""The worker reaches Redis only through the frontier: no module of ``crawler/worker/``,
nor its robots.txt cache, calls a method of a Redis client (or of a pipeline made from
one) itself.

Every write a worker makes is then one frontier script (atomic, safe to send
twice) and every read rides on a frontier call: nothing costs a round trip of
its own, and nothing escapes the frontier's group commit.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

WORKER = Path(__file__).resolve().parent.parent / "crawler" / "worker"
ROBOTS_CACHE = WORKER.parent / "net" / "robots.py"
"""The worker's robots.txt cache, which every lease consults: through the frontier too."""


def _name(node: ast.expr) -> str:
    """The last name of ``a.b.c`` (``c``), of ``c`` itself, or '' for anything else."""
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""


def direct_redis_calls(source: str) -> list[str]:
    """``line: receiver.method`` of each call on something named like a Redis client.

    A client is anything whose name says redis (``redis``, ``self.redis``,
    ``self.worker.redis``, ``w.redis``); a pipeline is a name bound to a call of
    ``.pipeline()`` on one. Only calls count: handing the client on is not
    a round trip made here.
    """
    tree = ast.parse(source)
    pipelines: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) \
                and isinstance(node.value.func, ast.Attribute) \
                and node.value.func.attr == "pipeline":
            pipelines.update(_name(target) for target in node.targets)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            receiver = _name(node.func.value)
            if "redis" in receiver.lower() or receiver in pipelines - {""}:
                found.append(f"{node.lineno}: {receiver}.{node.func.attr}")
    return found


@pytest.mark.parametrize("snippet", [
    "async def f(self):\n    await self.worker.redis.hincrbyfloat('k', 'u', 1.0)",
    "async def f(w):\n    return await w.redis.hget('k', 'f')",
    "async def f(redis):\n    pipe = redis.pipeline()\n    pipe.hmget('k', 'a')",
    "async def f(self):\n    p = self.redis.pipeline(transaction=False)\n    await p.execute()",
])
def test_the_check_sees_a_direct_call(snippet: str) -> None:
    assert direct_redis_calls(snippet)


def test_handing_the_client_on_is_not_a_call() -> None:
    assert not direct_redis_calls("async def f(self):\n    await g(self.redis, 1)\n"
                                  "    await self.frontier.claim(3, 'w')")


def test_no_module_of_the_worker_calls_redis_itself() -> None:
    modules = [*sorted(WORKER.glob("*.py")), ROBOTS_CACHE]
    assert len(modules) >= 5 and ROBOTS_CACHE.exists()  # where this test thinks they are
    calls = {path.name: found for path in modules
             if (found := direct_redis_calls(path.read_text()))}
    assert calls == {}

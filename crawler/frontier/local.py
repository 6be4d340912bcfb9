"""What one process remembers to spare Redis work: recent fingerprints, host policies sent.

Both are bounded, and both are forgotten after a failed call: what they say
Redis already has may never have reached it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from crawler.config import Settings

LOCAL_SEEN_CAPACITY = 200_000
"""Fingerprints a process remembers to drop repeated links before they cost a
Redis argument. Bounded: memory stays flat on long crawls."""
LOCAL_POLICY_CAPACITY = 100_000
"""Hosts whose first-add policy a process remembers (computed, and sent)."""


class RecentFingerprints:
    """A bounded FIFO set of fingerprints this process sent to Redis recently."""

    def __init__(self, capacity: int = LOCAL_SEEN_CAPACITY) -> None:
        self.capacity = capacity
        self._items: OrderedDict[int, None] = OrderedDict()

    def clear(self) -> None:
        self._items.clear()

    def __contains__(self, fp: int) -> bool:
        return fp in self._items

    def check_and_add(self, fp: int) -> bool:
        """True if fp was seen here before; records it otherwise."""
        if fp in self._items:
            return True
        self._items[fp] = None
        if len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return False


class HostPolicies:
    """Each host's first-add policy (limit, delay ms), and which hosts this process sent.

    A host's first-add policy only matters the first time Redis sees the host
    (add.lua stores it with HSETNX), so each process sends it once per host,
    not with every page's links.
    """

    def __init__(self, settings: Settings, capacity: int = LOCAL_POLICY_CAPACITY) -> None:
        self.settings = settings
        self.capacity = capacity
        self._computed: dict[str, tuple[int, int]] = {}
        self._sent: set[str] = set()

    def policy(self, host: str) -> tuple[int, int]:
        cached = self._computed.get(host)
        if cached is None:
            policy = self.settings.policy_for(host)
            cached = (policy.max_per_host, int(policy.delay * 1000))
            if len(self._computed) < self.capacity:
                self._computed[host] = cached
        return cached

    def unsent(self, hosts: Iterable[str]) -> set[str]:
        """The hosts among ``hosts`` not sent yet, now counted as sent."""
        new = set(hosts) - self._sent
        if len(self._sent) > self.capacity:
            self._sent.clear()
        self._sent |= new
        return new

    def forget_sent(self) -> None:
        self._sent.clear()

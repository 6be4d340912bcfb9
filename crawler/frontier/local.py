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
        self._sent: set[tuple[str, str]] = set()

    def use(self, settings: Settings) -> None:
        """Changed crawl settings: hosts' policies computed again from them."""
        self.settings = settings
        self._computed.clear()

    def policy(self, host: str) -> tuple[int, int]:
        cached = self._computed.get(host)
        if cached is None:
            policy = self.settings.policy_for(host)
            cached = (policy.max_per_host, int(policy.delay * 1000))
            if len(self._computed) < self.capacity:
                self._computed[host] = cached
        return cached

    def strictest(self, names: Iterable[str]) -> tuple[int, int]:
        """The strictest policy of these host names: fewest in flight, longest delay."""
        policies = [self.policy(name) for name in names]
        return min(p[0] for p in policies), max(p[1] for p in policies)

    def unsent(self, pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
        """Of (politeness key, host name) pairs, those not sent yet, now counted as sent.

        Returns key -> its new names. In host mode the name is the key itself;
        in ip mode the key is an address and the names are the hosts on it.
        """
        new: dict[str, list[str]] = {}
        for key, name in pairs:
            if (key, name) not in self._sent:
                self._sent.add((key, name))
                new.setdefault(key, []).append(name)
        if len(self._sent) > self.capacity:
            self._sent.clear()
        return new

    def forget_sent(self) -> None:
        self._sent.clear()

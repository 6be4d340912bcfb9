"""robots.txt: fetched once per origin per TTL, shared through Redis, parsed by protego.

What a fetch of ``<origin>/robots.txt`` means (RFC 9309, section 2.3.1):

==========================================  =========================================
outcome                                     verdict
==========================================  =========================================
2xx                                         ``R``: obey its rules (its first 512 KiB)
4xx except 429 ("unavailable")              ``A``: allow everything
more than 5 redirects, a loop (2.3.1.2)     ``A``: unavailable, allow everything
the SSRF guard refuses the address          ``B``: blocked; the host's URLs end now
5xx, 429, timeout (DNS too), unreachable    ``D``: disallow everything for now
the same, ``max_attempts`` times in a row   ``U``: the host's URLs end now
DNS answer (NXDOMAIN...) or TLS failure     ``U`` at once (trying again won't help)
==========================================  =========================================

``R`` keeps only the rules our product token obeys, and the Sitemap lines
(``crawler.robots_rules``), at most 64 KiB. ``R`` and ``A`` are kept
``robots_ttl`` (24 h). A ``D`` holds the host for a
backoff (``backoff_delay`` of the failures so far) and then expires, so the
next URL of the host tries robots.txt again: robots.txt has a retry budget of
``max_attempts`` fetches in a row, as Heritrix gives its robots precondition
(the count is kept a day from the last failure, whatever ``robots_error_ttl``
is, so it outlasts the hold and the next try). Spent,
the verdict becomes ``U`` for ``robots_error_ttl``: every URL of the origin
ends at once with a record of the underlying error (``connect_error``,
``timeout``, ``dns_error``, or ``robots_unavailable`` for a 5xx or 429)
instead of waiting for a server that does not answer. A ``B`` ends the URLs
as ``blocked_address`` without any request: a refused address is a decision,
not an outage. 429 is read as "overloaded" (as Google does), not as "no rules".

Only one worker fetches: the one that takes ``robots_lock:<origin>`` (a
token, with a TTL in case it dies). The others wait for the stored verdict,
then decide from it. The fetch is made in the place of a page fetch, in a
lease's politeness slot; ``robots.lua`` then stores the verdict, releases the
lock, sets the host's Crawl-delay and gives the lease back, so the page is
fetched in a later slot, spaced from the robots.txt request like any two
requests to the host (for ``U`` and ``B`` the lease is kept, and its URL ends).
Up to 5 redirects are followed, each checked by the SSRF guard. A hop on the
origin's own host goes on in the lease's slot; a hop to another host first
waits for that host's politeness turn (``hop.lua``: its delay or Crawl-delay
since its last request, a free slot), within the fetch's total timeout.

Crawl-delay raises the host's delay to at most ``crawl_delay_cap``; a host
asking for more is crawled at the cap, and ``stats`` counts it
(``robots_capped``). A lease claimed before its host's Crawl-delay was known
(unspaced, with the one that fetched robots.txt) goes back and is claimed
again, spaced. Rules are matched against the product token of
``user_agent`` (``mybot`` in ``mybot/1.0``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from protego import Protego

from crawler import errors
from crawler.config import Settings
from crawler.frontier.politeness import SlotMissed
from crawler.net.fetch import Fetcher
from crawler.net.robots_rules import rules_for_agent
from crawler.store.keys import ShardKeys, shard_of

if TYPE_CHECKING:
    from crawler.frontier import Call, Frontier, Lease

LOCK_TTL = 60.0
"""Seconds the fetch lock is held at most (a dead fetcher's lock frees itself)."""
ROBOTS_PARSE_BYTES = 512 * 1024
"""RFC 9309 (2.5) asks crawlers to parse at least 500 KiB. We read this much of a
robots.txt and no more, whatever its size, and obey what it says; a line cut
at the limit is dropped (a cut ``Disallow: /private`` would read ``/pr``)."""
ROBOTS_MAX_REDIRECTS = 5
HOP_TRIES = 1000
"""Looks at a redirect target's politeness turn at most (the total timeout comes first)."""
LOCAL_CACHE_SIZE = 10_000
RECHECK_MARGIN = 0.05
"""Seconds past a "D" verdict's expiry before its host's URLs come back, so that
the verdict has surely expired in Redis too (clocks of two machines differ)."""
WAIT_POLL = 0.05
"""Seconds between looks at Redis while another worker fetches the same robots.txt."""
LOCKED = -3
"""``RobotsCache._read``'s second value when it took the fetch lock (a PTTL is >= -2)."""


class RobotsUnavailable(errors.FetchError):
    """robots.txt cannot be fetched for now: the host is held until ``retry_after``."""

    type = "robots_unavailable"
    retry = True


class RobotsGaveUp(errors.FetchError):
    """robots.txt stayed unreachable through its retry budget: the URL ends.

    ``type`` is the underlying failure's (connect_error, timeout, dns_error,
    or robots_unavailable for an HTTP 5xx or 429).
    """

    retry = False
    made_request = False  # True when this URL's own slot made the last robots.txt try

    def __init__(self, message: str, error_type: str) -> None:
        super().__init__(message)
        self.type = error_type


class RobotsFetched(Exception):
    """This lease was spent fetching robots.txt and is already back in its queue."""


@dataclasses.dataclass(slots=True)
class Verdict:
    kind: str  # "A" allow all, "R" rules, "D" disallow for now, "U" gave up, "B" blocked
    rules: Protego | None
    expires: float  # time.time() when this process stops trusting it
    detail: str = ""  # D, U, B: "<error type>|<message>"
    crawl_delay: float = 0.0  # R: its Crawl-delay for us, capped
    learnt: float = 0.0  # time.monotonic() when this process got it

    def error(self) -> tuple[str, str]:
        error_type, _, message = self.detail.partition("|")
        return error_type or "robots_unavailable", message


@dataclasses.dataclass(slots=True)
class Fetched:
    """A robots.txt fetch, ready for robots.lua."""

    value: str  # kind + body (R), or kind + "<error type>|<message>" (D, U, B)
    ttl: float
    crawl_delay_ms: str  # "" keep the host's, "-1" clear it, else ms (capped)
    capped: bool
    failed: bool = False  # counts against the retry budget (robots.lua decides D or U)


def origin_of(url: str) -> str:
    scheme_end = url.index("//") + 2
    path_start = url.find("/", scheme_end)
    return url[:path_start] if path_start >= 0 else url


def product_token(user_agent: str) -> str:
    """``mybot`` from ``mybot/1.0 (+https://...)``: what robots.txt groups name."""
    return user_agent.split("/", 1)[0].split(" ", 1)[0].strip() or "*"


def _whole_lines(body: bytes, truncated: bool) -> str:
    """The body as text; when it was cut short, without its last (cut) line."""
    if truncated:
        body = body[:body.rfind(b"\n") + 1]
    return body.decode("utf-8", "replace")


class RobotsCache:
    """Answers "may this URL be fetched?" for one worker process."""

    def __init__(self, frontier: Frontier, fetcher: Fetcher, settings: Settings) -> None:
        self.frontier = frontier
        self.fetcher = fetcher
        self.settings = settings
        self.agent = product_token(settings.user_agent)
        self.local: OrderedDict[str, Verdict] = OrderedDict()
        self.fetches = 0  # robots.txt requests this process made
        # Given a 2xx robots.txt (reduced), the add calls queueing its sitemaps
        # (crawler.worker.sitemap): run in the verdict's round trip.
        self.on_sitemaps: Callable[[str], Awaitable[list[Call]]] | None = None
        self.waits = 0  # times it waited for another worker's fetch

    @property
    def lock_ttl(self) -> float:
        # The holder's fetch ends within total_timeout (Fetcher.get enforces it); a
        # longer lock only stalls the host when the holder was killed mid-fetch.
        return min(LOCK_TTL, self.settings.total_timeout + 5)

    def use(self, settings: Settings) -> None:
        """Changed crawl settings (``crawl config set``): from the next verdict on.

        Verdicts this process keeps were read for the old product token or
        address policy: forgotten when those change.
        """
        old, self.settings = self.settings, settings
        self.agent = product_token(settings.user_agent)
        if (old.user_agent, old.allow_private, old.allow_cidrs) != (
                settings.user_agent, settings.allow_private, settings.allow_cidrs):
            self.local.clear()

    async def check(self, lease: Lease, deadline: float = math.inf) -> None:
        """Return if the lease's URL may be fetched, else raise.

        RobotsDisallowed: the rules forbid it. RobotsUnavailable: robots.txt
        is unreachable for now (``retry_after`` says for how long the host is
        held). RobotsGaveUp, BlockedAddress: the URL ends with that error.
        RobotsFetched: this lease's slot went to fetching robots.txt.
        SlotMissed: robots.txt must be fetched, but the slot's start deadline
        (``time.monotonic()``, see crawler.politeness) has passed; or its
        Crawl-delay became known after the lease was claimed unspaced.
        """
        if not self.settings.obey_robots:
            return
        verdict = await self._verdict(lease, deadline)
        if verdict.kind == "R" and verdict.rules is not None and \
                not verdict.rules.can_fetch(lease.url, self.agent):
            raise errors.RobotsDisallowed(f"robots.txt disallows {lease.url}")
        if verdict.crawl_delay > 0 and not lease.spaced and verdict.learnt > lease.claim_sent:
            # Claimed before the Crawl-delay was known (with the lease that fetched
            # robots.txt, say), so not spaced by it: sent now, it could start right
            # after another request. Claimed again, it is spaced (robots.lua stored
            # the Crawl-delay with the verdict). Once a verdict is known here, a
            # lease claimed later never comes back this way: no loop.
            raise SlotMissed(lease.url)
        if verdict.kind in "DUB":
            raise self._error(verdict, origin_of(lease.url))

    def allows(self, url: str) -> bool:
        """What the rules this process holds say of ``url``, without a round trip: False
        only when its origin's robots.txt is known here and disallows it. A rendered
        page's subrequests ask this (crawler.net.browser): the page's own origin was
        checked just before, so its rules are here."""
        if not self.settings.obey_robots:
            return True
        verdict = self.local.get(origin_of(url))
        return verdict is None or verdict.kind != "R" or verdict.rules is None or \
            verdict.rules.can_fetch(url, self.agent)

    def _error(self, verdict: Verdict, origin: str) -> errors.FetchError:
        error_type, message = verdict.error()
        if verdict.kind == "B":
            return errors.BlockedAddress(message)
        if verdict.kind == "U":
            return RobotsGaveUp(f"{origin}/robots.txt unreachable after "
                                f"{self.settings.max_attempts} tries: {message}", error_type)
        return RobotsUnavailable(f"{origin}/robots.txt unreachable for now: {message}",
                                 retry_after=max(0.0, verdict.expires - time.time())
                                 + RECHECK_MARGIN)

    async def _verdict(self, lease: Lease, deadline: float) -> Verdict:
        origin = origin_of(lease.url)
        cached = self.local.get(origin)
        if cached is not None and cached.expires > time.time():
            return cached
        shard = self.frontier.shards[lease.shard]
        token = secrets.token_hex(8)
        give_up = time.monotonic() + self.lock_ttl
        waited = False
        while True:
            # Past the slot's deadline only a stored verdict helps: no lock, no fetch.
            raw, ttl_ms = await self._read(shard, origin, token,
                                           lock=time.monotonic() <= deadline)
            if raw is not None:
                return self._remember(origin, raw, ttl_ms)
            if ttl_ms == LOCKED:
                break
            if time.monotonic() > deadline:
                raise SlotMissed(origin)
            if not waited:
                waited = True
                self.waits += 1
            if time.monotonic() > give_up:
                raise RobotsUnavailable("timed out waiting for another worker's robots.txt fetch")
            await asyncio.sleep(WAIT_POLL)
        try:
            got = await self._fetch(origin, lease.host)
            # Sitemaps first: a worker dying between the two fetches robots.txt again.
            calls = await self.on_sitemaps(got.value[1:]) \
                if self.on_sitemaps is not None and got.value.startswith("R") else []
            calls.append(("robots", shard.script_keys, [
                shard.base, lease.id, lease.host, origin, got.value, int(got.ttl * 1000),
                got.crawl_delay_ms, int(got.capped), token, int(got.failed),
                self.settings.max_attempts, int(self.settings.backoff_base * 1000),
                int(self.settings.backoff_max * 1000), random.random()]))
            *_, (status, stored, ttl_ms) = await self.frontier.run(calls)
        except BaseException:
            await self._unlock(shard, origin, token)
            raise
        verdict = self._remember(origin, stored, int(ttl_ms))
        if int(status) == 2:  # U or B: the lease stays ours, and its URL ends
            error = self._error(verdict, origin)
            error.made_request = verdict.kind == "U"  # this slot tried robots.txt
            raise error
        raise RobotsFetched(origin)

    async def _unlock(self, shard: ShardKeys, origin: str, token: str) -> None:
        """Release the fetch lock only if it is still ours (compare and delete, atomically)."""
        await self.frontier.run([("unlock", shard.script_keys,
                                  [shard.base, shard.robots_lock(origin), token])])

    async def _read(self, shard: ShardKeys, origin: str, token: str,
                    lock: bool) -> tuple[str | None, int]:
        """The stored verdict and its PTTL in ms; else, with ``lock``, the fetch lock:
        (None, LOCKED) if this caller now holds it; (None, 0) if another worker does,
        or nothing is stored and no lock was asked for. One script
        (``robots_peek.lua``): no verdict lands between the read and the lock."""
        [reply] = await self.frontier.run([("robots_peek", shard.script_keys, [
            shard.base, shard.robots(origin), shard.robots_lock(origin), token,
            int(self.lock_ttl * 1000) if lock else 0])])
        if int(reply[0]) == 1:
            return str(reply[1]), int(reply[2])
        return None, LOCKED if int(reply[0]) == 2 else 0

    def _remember(self, origin: str, raw: str, ttl_ms: int) -> Verdict:
        """Keep a verdict here for what is left of its life in Redis (``ttl_ms``, a PTTL).

        Only -1 (no expiry) means robots_ttl. A verdict read in its last
        millisecond has a PTTL of 0 (and, when a GET and a PTTL were sent apart,
        one that expired between them had -2): it is over now. Taken for "no
        expiry", a "robots.txt unavailable for now" verdict of 50 ms held its host
        for a day.
        """
        kind, body = raw[:1], raw[1:]
        rules = Protego.parse(body) if kind == "R" else None
        ttl = self.settings.robots_ttl if ttl_ms == -1 else \
            min(max(ttl_ms, 0) / 1000, self.settings.robots_ttl)
        verdict = Verdict(kind, rules, time.time() + ttl, "" if kind in "RA" else body,
                          learnt=time.monotonic())
        if rules is not None:
            verdict.crawl_delay = min(float(rules.crawl_delay(self.agent) or 0),
                                      self.settings.crawl_delay_cap)
        self.local[origin] = verdict
        self.local.move_to_end(origin)
        if len(self.local) > LOCAL_CACHE_SIZE:
            self.local.popitem(last=False)
        return verdict

    async def _fetch(self, origin: str, host: str) -> Fetched:
        """Fetch and classify one robots.txt, in a lease's slot of ``host``."""
        self.fetches += 1
        ok_ttl, error_ttl = self.settings.robots_ttl, self.settings.robots_error_ttl

        async def take_turn(target: str) -> None:
            await self._take_turn(target, host)

        try:
            resp = await self.fetcher.get(origin + "/robots.txt", follow_redirects=True,
                                          max_redirects=ROBOTS_MAX_REDIRECTS,
                                          keep_first=ROBOTS_PARSE_BYTES, before_hop=take_turn)
        except errors.RedirectError:
            return Fetched("A", ok_ttl, "-1", False)
        except errors.BlockedAddress as exc:
            return Fetched(f"B{exc.type}|{exc}", error_ttl, "", False)
        except (errors.DNSError, errors.TLSError) as exc:
            if exc.retry:  # a DNS timeout: robots.txt's retry budget, as for a connect error
                return Fetched(f"D{exc.type}|{exc}", error_ttl, "", False, failed=True)
            return Fetched(f"U{exc.type}|{exc}", error_ttl, "", False)  # trying again won't help
        except errors.FetchError as exc:
            return Fetched(f"D{exc.type}|{exc}", error_ttl, "", False, failed=True)
        if 200 <= resp.status < 300:
            # Redis keeps the rules we obey, not the file (crawler.robots_rules).
            rules = rules_for_agent(_whole_lines(resp.body, resp.truncated), self.agent)
            delay, capped = self._crawl_delay(rules)
            return Fetched("R" + rules, ok_ttl, delay, capped)
        if 400 <= resp.status < 500 and resp.status != 429:
            return Fetched("A", ok_ttl, "-1", False)
        return Fetched(f"Drobots_unavailable|HTTP {resp.status}", error_ttl, "", False,
                       failed=True)

    async def _take_turn(self, target: str, origin_host: str) -> None:
        """Wait for the politeness turn of a redirect target's host (``hop.lua``).

        A hop on the origin's own host goes on in the lease's slot, as the
        first request did. Bounded in time by the fetch's total timeout (a
        target that stays busy makes this robots.txt fetch a ``timeout``).
        """
        keyer = self.frontier.keyer
        await keyer.prime([target])
        host = keyer.key(target)
        if host == origin_host:
            return
        shard = self.frontier.shards[shard_of(host, len(self.frontier.shards))]
        policy = self.settings.policy_for(host)
        args = [shard.base, host, policy.max_per_host, int(policy.delay * 1000),
                int(self.settings.politeness_slack * 1000)]
        for _ in range(HOP_TRIES):
            [wait_ms] = await self.frontier.run([("hop", shard.script_keys,
                                                  [*args, secrets.token_hex(8)])])
            if int(wait_ms) <= 0:
                return
            await asyncio.sleep(int(wait_ms) / 1000)
        raise errors.Timeout(f"{host} gave no politeness turn for a robots.txt redirect")

    def _crawl_delay(self, body: str) -> tuple[str, bool]:
        delay = Protego.parse(body).crawl_delay(self.agent)
        if delay is None:
            return "-1", False
        cap = self.settings.crawl_delay_cap
        return str(int(min(float(delay), cap) * 1000)), float(delay) > cap

"""The shared URL frontier's state transitions, one Lua script each.

A URL that passed dedup is always in exactly one place::

    queued (host queue or delayed) --claim--> leased --complete--> done (one result)
          ^                                      |
          +-------- retry / reclaim -------------+

Each transition runs atomically in Redis (``crawler/frontier/lua/<name>.lua``) and
touches the keys of one shard only (see ``crawler.keys``). Politeness is
decided inside ``claim``, on the server's clock, so it holds across every
worker on every node.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from redis.asyncio import Redis

from crawler.config import Settings
from crawler.frontier.cluster import runner_for
from crawler.frontier.leases import (
    SITEMAP_DEDUP,
    SITEMAP_HOPS,
    AddCounts,
    AddItem,
    ClaimResult,
    Lease,
    leases_of_claim,
    text,
)
from crawler.frontier.local import HostPolicies, RecentFingerprints
from crawler.frontier.politeness import PolitenessKeys
from crawler.frontier.query_clean import QueryCleaner
from crawler.frontier.scripts import Call
from crawler.store import keys
from crawler.urls import fingerprint, fingerprint_bucket, host_key, prefix_length

log = logging.getLogger("crawler.frontier")

__all__ = ["ADD_CHUNK", "SITEMAP_DEDUP", "SITEMAP_HOPS", "AddCounts", "ClaimResult", "Frontier",
           "Lease"]

ADD_CHUNK = 50
"""URLs in one add.lua call, so that no one call holds the server for long (``crawl
bench memory`` counts the calls over 2 ms). A URL takes 6-10 µs of server time on a
fast machine and 15 µs on a slow 2-core one (more in a directory its host's prefix
table has not seen). At 100 a call the slow machine's calls averaged 1.5 ms and
8-16% of them went over 2 ms; at 50, 0.8 ms and 0.25%, seeding at 46-51k URLs/s
against 50-53k. add.lua steps its Lua GC after a call this big (its last lines)."""
RECLAIM_BATCH = 500
COMPACT_BATCH = 500
"""Most leases reclaimed, and idle hosts compacted, by one call per shard."""
BUSY_POLL = 0.1
"""Longest wait hint while other workers hold leases, in seconds."""
RESULTS_KEPT_WARN_EVERY = 60.0
"""Seconds between two warnings that results past results_maxlen are being kept."""


class Frontier:
    """Client of one crawl's frontier.

    Keys touched (per shard, see ``crawler.keys``): ``ready``, ``delayed``,
    ``leases``, ``lease``, ``seq``, ``results``, ``stats``, ``q:<host>`` and
    its raised bands ``q1:``, ``q2:``, ``px:<host>``, ``h:<host>``, ``idle``,
    ``held``, ``seen:<bucket>``.
    """

    def __init__(self, redis: Redis, settings: Settings, *, local_dedup: bool = True) -> None:
        if not settings.dedup_bucket_bits:
            # Every process must bucket fingerprints alike: the crawl's layout says how.
            raise ValueError("settings without dedup_bucket_bits: open the crawl with "
                             "crawler.crawls.crawl_layout first")
        self.redis = redis
        self.settings = settings
        self.shards = keys.all_shards(settings.crawl, settings.shards, settings.shard_tags)
        self.scripts = runner_for(redis, on_failure=self._forget_recent,
                                  wait_replicas=settings.wait_replicas,
                                  wait_timeout=settings.wait_timeout)
        self._recent = RecentFingerprints() if local_dedup else None
        self._policies = HostPolicies(settings)
        self.keyer = PolitenessKeys(settings)  # host[:port], or the server's IP
        self.cleaner = QueryCleaner.from_settings(settings)  # a URL's dedup key
        self._next_shard = 0  # which shard gets the remainder of the next claim
        self._last_request = ""  # the last claim's request id, and its shares per shard
        self._last_shares: list[int] = []
        self._results_kept_warned = -RESULTS_KEPT_WARN_EVERY

    def use(self, settings: Settings) -> None:
        """Changed crawl settings (``crawl config set``): from the next call on.

        Politeness limits and delays need nothing more: ``crawl config set``
        publishes them to the frontier, where claims decide them.
        """
        self.settings = settings
        self.scripts.wait_replicas = settings.wait_replicas
        self.scripts.wait_timeout_ms = int(settings.wait_timeout * 1000)
        self._policies.use(settings)
        self.keyer.by_ip = settings.politeness_key == "ip"
        self.cleaner = QueryCleaner.from_settings(settings)

    @property
    def round_trips(self) -> int:
        """Redis round trips this frontier made, for the benchmark."""
        return self.scripts.round_trips

    # -- add ---------------------------------------------------------------

    def _add_args(self, shard: keys.ShardKeys, items: Sequence[AddItem], hops: int,
                  seeded: bool = False) -> list[Any]:
        """ARGV for add.lua; items are (url, depth, host, fingerprint, band). ``seeded``:
        no query budget or parameter count (traps are for URLs a crawl finds)."""
        by_ip = self.keyer.by_ip
        hosts = self._policies.unsent(
            (host, host_key(url) if by_ip else host) for url, _, host, _, _ in items)
        s = self.settings
        args: list[Any] = [shard.base, s.max_pages_per_host,
                           0 if seeded else s.trap_query_budget,
                           0 if seeded else s.trap_max_params, s.trap_host_pages or -1,
                           len(hosts)]
        for host, names in hosts.items():
            limit, delay_ms = self._policies.strictest(names)
            args += [host, limit, delay_ms, " ".join(names) if by_ip else ""]
        bits = self.settings.dedup_bucket_bits
        groups: dict[tuple[str, int, int], list[Any]] = {}
        for url, depth, host, fp, band in items:
            group = groups.get((host, depth, band))
            if group is None:
                group = groups[host, depth, band] = []
            group += (f"{fingerprint_bucket(fp, bits):x}", fp, url, prefix_length(url))
        for (host, depth, band), group in groups.items():
            args += (host, len(group) // 4, depth, hops, band)
            args += group
        return args

    def _group_by_shard(self, urls: Iterable[tuple[str, int]], hosts: Iterable[str] | None,
                        dedup_as: str = "", bands: Mapping[str, int] | None = None
                        ) -> tuple[dict[int, list[AddItem]], int]:
        """Split canonical (url, depth) pairs by shard, dropping local repeats.

        ``hosts``: each URL's politeness key, if the caller has them already.
        ``dedup_as``: prefixed to each URL for its fingerprint (``SITEMAP_DEDUP``).
        ``bands``: URL -> its raised priority band; other URLs are normal.
        """
        groups: dict[int, list[AddItem]] = defaultdict(list)
        repeats = 0
        n = len(self.shards)
        recent = self._recent
        # Without the local cache (seeding), URLs rarely repeat: skip the LRU too.
        fp_of = fingerprint if recent is not None else fingerprint.__wrapped__
        key_of = self.cleaner.key if recent is not None else self.cleaner.key.__wrapped__
        pairs = list(urls)
        keyed = hosts if hosts is not None else [self.keyer.key(url) for url, _ in pairs]
        for (url, depth), host in zip(pairs, keyed, strict=True):
            key = key_of(url)
            fp = fp_of(dedup_as + key if dedup_as else key)
            if recent is not None and recent.check_and_add(fp):
                repeats += 1
                continue
            band = bands.get(url, 0) if bands else 0
            groups[keys.shard_of(host, n)].append((url, depth, host, fp, band))
        return groups, repeats

    def sent_recently(self, url: str) -> bool:
        """True if this process gave Redis this canonical URL lately: adding it is a no-op."""
        return self._recent is not None and fingerprint(self.cleaner.key(url)) in self._recent

    def dedup_key(self, url: str) -> str:
        """The URL a canonical URL is deduplicated as: without tracking or session parameters
        (``crawler.frontier.query_clean``)."""
        return self.cleaner.key(url)

    def add_calls(self, urls: Iterable[tuple[str, int]], hops: int = 0,
                  hosts: Iterable[str] | None = None, sitemap_level: int | None = None,
                  bands: Mapping[str, int] | None = None, seeded: bool = False
                  ) -> tuple[list[Call], int]:
        """add.lua calls for these URLs (one per shard). Also returns local repeats dropped.

        ``hops``: the redirects that led to these URLs (a redirect's target is
        added with its source's hops + 1). ``hosts``: their politeness keys,
        when known. ``sitemap_level``: these URLs are sitemaps to read, this
        many indexes below robots.txt or the seed that named them. ``bands``:
        URL -> the priority band it is queued in if it is new
        (``crawler.priority``); a URL not named there is normal. ``seeded``: the
        user's seeds, which no trap budget counts or drops (a shop's 10,000
        ``/item?id=`` pages seeded are meant; found by links, the budget stops
        a calendar), and which cost no trap bookkeeping (a SHA-1 of the path and
        a set insert a URL with a query: a third of an add call's server time).
        """
        dedup_as = ""
        if sitemap_level is not None:
            hops += SITEMAP_HOPS * (1 + sitemap_level)
            dedup_as = SITEMAP_DEDUP
        if bands and not all(0 <= band < keys.BANDS for band in bands.values()):
            raise ValueError(f"priority bands are 0..{keys.BANDS - 1}: {dict(bands)}")
        groups, repeats = self._group_by_shard(urls, hosts, dedup_as, bands)
        calls: list[Call] = []
        for shard_no, items in groups.items():
            shard = self.shards[shard_no]
            # Bounded calls: no one add may hold the server for long (see ADD_CHUNK).
            for start in range(0, len(items), ADD_CHUNK):
                chunk = items[start:start + ADD_CHUNK]
                calls.append(("add", shard.script_keys,
                              self._add_args(shard, chunk, hops, seeded)))
        return calls, repeats

    async def add(self, urls: Iterable[tuple[str, int]], hops: int = 0,
                  sitemap_level: int | None = None, bands: Mapping[str, int] | None = None
                  ) -> AddCounts:
        """Add canonical (url, depth) pairs; only unseen ones are queued (``bands``: see
        ``add_calls``)."""
        urls = list(urls)
        await self.keyer.prime(url for url, _ in urls)
        calls, repeats = self.add_calls(urls, hops, sitemap_level=sitemap_level, bands=bands)
        counts = AddCounts(seen=repeats)
        for added, seen, capped in await self.run(calls):
            counts += AddCounts(int(added), int(seen), int(capped))
        return counts

    async def run(self, calls: list[Call]) -> list[Any]:
        """Run script calls in one round trip (``ScriptRunner.run``)."""
        return await self.scripts.run(calls)

    def _forget_recent(self) -> None:
        """After a failed call, assume nothing this process sent reached Redis."""
        self._policies.forget_sent()
        if self._recent is not None:
            self._recent.clear()

    # -- claim ---------------------------------------------------------------

    async def claim(self, n: int, worker: str, *, slack: float = 0.0,
                    request_id: str = "") -> ClaimResult:
        """Lease up to n URLs, spread over the shards, within every host's limits.

        ``slack``: seconds added to the delay of each host claimed from; the
        caller promises to start each request within that long of sending
        this call, or to give the lease back (see crawler.politeness).
        ``request_id``: the same id sent again by the same worker (a retry
        after a lost reply) returns the leases of the first run, not new ones.
        Callers that retry must therefore compute the shares once: pass the
        same id only with the same ``n``.
        """
        slack_ms = int(slack * 1000)
        lease_ms = int(self.settings.lease_time * 1000)
        shares = self._shares(n) if not request_id or request_id != self._last_request \
            else self._last_shares
        self._last_request, self._last_shares = request_id, shares
        sent = time.monotonic()
        recrawl = int(self.settings.recrawl)
        replies = await self.run([("claim", s.script_keys, [s.base, share, lease_ms, worker,
                                                         slack_ms, request_id, recrawl,
                                                         int(self.settings.cookies)])
                                  for s, share in zip(self.shards, shares, strict=True)])
        leases: list[Lease] = []
        waits: list[float] = []
        queued = leased = 0
        for shard, reply in zip(self.shards, replies, strict=True):
            wait, q, ld = int(reply[0]), int(reply[1]), int(reply[2])
            queued += q
            leased += ld
            if wait >= 0:
                waits.append(wait / 1000)
            leases += leases_of_claim(shard.shard, reply, sent)
        hint = min(waits) if waits else -1.0
        if not leases and leased > 0:
            # Work appears when a lease completes: its links are queued and its
            # host slot frees up. No score predicts that moment, so ask again
            # soon; else one worker re-claiming every freed slot starves the rest.
            hint = min(hint, BUSY_POLL) if hint >= 0 else BUSY_POLL
        return ClaimResult(leases, hint, queued, leased)

    def _shares(self, n: int) -> list[int]:
        """Split n over the shards so the total is n, not more: a worker's claim
        must not exceed its free slots. The remainder goes to a rotating shard,
        so with n < shards every shard still gets its turn."""
        count = len(self.shards)
        base, extra = divmod(n, count)
        start = self._next_shard
        self._next_shard = (start + max(1, extra)) % count
        return [base + ((i - start) % count < extra) for i in range(count)]

    # -- complete / retry / reclaim -------------------------------------------

    def complete_call(self, lease: Lease, record_json: str, *, is_error: bool,
                      not_before: float = 0.0, no_request: bool = False,
                      tally: str = "", revisit: tuple[str, str] | None = None,
                      simhash: str | None = None, simhash_weak: str = "") -> Call:
        shard = self.shards[lease.shard]
        s = self.settings
        args = [shard.base, lease.id, record_json, int(is_error), int(not_before * 1000),
                s.results_maxlen, int(no_request), tally]
        if revisit is not None:  # recrawl = true: the URL's state, kept with its result
            args += revisit
        if simhash is not None and s.near_duplicates:  # looked up and filed with the result
            args += ("", "") if revisit is None else ()
            args += [simhash, s.simhash_distance, s.near_duplicate_window,
                     s.trap_host_pages or -1, simhash_weak]
        return ("complete", shard.script_keys, args)

    async def complete(self, lease: Lease, record_json: str, *, is_error: bool = False,
                       links: Iterable[tuple[str, int]] = (), redirect_to: str | None = None,
                       not_before: float = 0.0, no_request: bool = False,
                       tally: str = "", revisit: tuple[str, str] | None = None,
                       link_bands: Mapping[str, int] | None = None,
                       simhash: str | None = None, simhash_weak: str = "",
                       cookies: Sequence[Any] = ()) -> bool:
        """Record the lease's result and add its links, in one (shared) round trip.

        Links are added before the completion: if this process dies between
        the two, the lease expires, the page is fetched again and its links
        are deduplicated; the reverse order could lose the links.
        ``redirect_to``: a redirect's target, added at the lease's depth with
        one more hop, in the lease's band. ``link_bands``: link -> its raised
        priority band (``crawler.priority``). ``no_request``: the lease made no request (robots.txt
        disallowed it), so the host's delay for it is given back. ``tally``:
        a counter for crawl status (``s:2xx``, ``e:timeout``). ``revisit``:
        its field and the URL's recrawl state (``crawler.recrawl``), stored with the
        result. ``cookies``: cookie jar updates (``cookies_call``). Returns
        False if the lease was no longer ours (nothing was recorded).
        """
        links = list(links)
        if redirect_to is not None:
            links.append((redirect_to, lease.depth))
        await self.keyer.prime(url for url, _ in links)
        calls: list[Call] = []
        if redirect_to is not None:  # a sitemap's target is still a sitemap to read
            calls, _ = self.add_calls(links[-1:], lease.hops + 1,
                                      sitemap_level=lease.sitemap_level,
                                      bands={redirect_to: lease.band} if lease.band else None)
            links.pop()
        calls += self.add_calls(links, bands=link_bands)[0]
        if cookies:
            calls.append(self.cookies_call(lease, cookies))
        calls.append(self.complete_call(lease, record_json, is_error=is_error,
                                        not_before=not_before, no_request=no_request,
                                        tally=tally, revisit=revisit, simhash=simhash,
                                        simhash_weak=simhash_weak))
        replies = await self.scripts.run_shared(calls)
        recorded = int(replies[-1])
        if recorded == 2:
            self._warn_results_kept()
        return bool(recorded)

    def _warn_results_kept(self) -> None:
        """Loudly, but once a minute: every completion past the bound says so."""
        now = time.monotonic()
        if now - self._results_kept_warned < RESULTS_KEPT_WARN_EVERY:
            return
        self._results_kept_warned = now
        log.warning("the results stream is past results_maxlen = %d and no consumer has "
                    "acknowledged the oldest results: they are kept, not deleted; run "
                    "`crawl export --drain` to take them out of Redis",
                    self.settings.results_maxlen)

    def cookies_call(self, lease: Lease, cookies: Sequence[Any]) -> Call:
        """cookies.lua: store cookies a response of the lease's host set.

        ``cookies``: max cookies, max bytes, then (field, age, flags, value) per
        cookie (``crawler.net.cookies``).
        """
        shard = self.shards[lease.shard]
        return ("cookies", shard.script_keys, [shard.base, lease.host, *cookies])

    async def retry(self, lease: Lease, delay: float, *, count_attempt: bool = True,
                    host_backoff: bool = False, reason: str = "backoff",
                    elapsed: float = 0.0, cookies: Sequence[Any] = ()) -> bool:
        """Give the lease back to be fetched again after ``delay`` seconds.

        ``host_backoff``: hold the whole host that long, listed as held for
        ``reason`` (``backoff``, ``retry-after``, ``robots``). ``elapsed``: the
        seconds a counted attempt took, kept for the URL's later ``earlier_ms``.
        ``cookies``: what the response set, stored in the same round trip
        (``cookies_call``).
        """
        shard = self.shards[lease.shard]
        calls: list[Call] = [self.cookies_call(lease, cookies)] if cookies else []
        calls.append(("retry", shard.script_keys,
                      [shard.base, lease.id, int(delay * 1000), int(count_attempt),
                       int(host_backoff), reason, round(elapsed * 1000, 1)]))
        reply = (await self.run(calls))[-1]
        return bool(int(reply))

    async def reclaim(self) -> int:
        """Put expired leases back in their host queues, compact idle hosts.

        Returns how many leases came back.
        """
        replies = await self.run([("reclaim", s.script_keys,
                                   [s.base, RECLAIM_BATCH, COMPACT_BATCH])
                                  for s in self.shards])
        return sum(int(reclaimed) for reclaimed, _ in replies)

    # -- reading -------------------------------------------------------------

    async def stats(self, *, ready_hosts: bool = False) -> dict[str, int]:
        """Counters summed over shards: queued, leased, done, seen, errors, ...
        (``ready_hosts``: and the hosts with queued URLs and a free slot)."""
        pipe = self.redis.pipeline(transaction=False)
        for shard in self.shards:
            pipe.hgetall(shard.stats)
            if ready_hosts:
                pipe.zcard(shard.ready)
        total: dict[str, int] = defaultdict(int)
        for reply in await pipe.execute():
            for k, v in reply.items() if isinstance(reply, dict) else [("ready_hosts", reply)]:
                total[text(k)] += int(v)
        for name in ("queued", "leased", "done", "seen", "errors"):
            total.setdefault(name, 0)
        return dict(total)

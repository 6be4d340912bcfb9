"""Every Redis key the crawler uses, in one place.

A crawl named ``NAME`` with ``S`` shards owns these keys. Every per-shard key
carries the hash tag ``{NAME:s}``, so all keys one Lua script touches hash to
one Redis Cluster slot, and a cluster can spread the shards over its nodes
without any script changing. A host always maps to the same shard.

Per shard ``crawl:{NAME:s}:``

==================  ======  ==================================================
suffix              type    what it holds
==================  ======  ==================================================
``ready``           ZSET    host -> ms when the host may start its next request;
                            a host is here only while it has queued URLs and a
                            free concurrency slot
``q:<host>``        LIST    the host's queued entries in the normal band (band
                            0, breadth-first), from its 4th until it empties
                            (up to 3 wait in the host state, ``u``...):
                            a header byte (depth; or attempts, depth and
                            redirect hops), a prefix id
                            and the rest of the URL, or the URL plainly
                            (without ``https://<host>``: lua/_lib.lua ``entry``);
                            a sitemap's hops carry its mark (leases.py
                            ``SITEMAP_HOPS``)
``q<b>:<host>``     LIST    the same for raised band b: ``q1`` high, ``q2`` top
                            (crawler.priority); claimed before any lower band,
                            present only while it holds URLs
``px:<host>``       HASH    the host's URL prefixes (scheme, authority,
                            directory; or path and the query's first name)
                            used by two URLs or more, without
                            ``https://<host>`` (lua/_lib.lua
                            ``strip_origin``): ``<id>`` -> prefix,
                            ``=<prefix>`` -> id, ``n`` last id; ``~1`` ..
                            ``~4``: 2-byte digests of prefixes one URL used,
                            packed 30 a field; only on a host past 8 queued
                            URLs; deleted when the queue empties
``h:<host>``        HASH    host state: ``inflight``, ``limit``, ``delay`` (ms),
                            ``next`` (ms), ``last`` (ms, last request start),
                            ``crawl_delay`` (ms), ``pages`` (only with a
                            per-host cap), ``pv`` (the ``policy`` version
                            limit/delay came from), ``hold`` (why it was last
                            held), ``dl`` (its URLs in ``delayed``), ``names``
                            (ip mode: host names on this address), ``b1``,
                            ``b2`` (set while raised band 1, 2 may hold URLs);
                            ``u``, ``u2``, ``u3``: the normal band's entries
                            while it holds at most 3 and ``q:<host>`` does
                            not exist (lua/_lib.lua ``enqueue``: no list key
                            for a small host);
                            traps (lua/_traps.lua): ``tcap`` (a throttled
                            host's URLs still to queue), ``trap`` (why),
                            ``ttold`` (its trap record was written),
                            ``tw``/``to`` (recent new URLs, over the query
                            budget), ``ndn``/``ndd`` (recent pages, near-dups)
``policy``          HASH    the published politeness table (crawler.politeness):
                            ``v`` version, ``d`` default, ``x:<host>`` exact and
                            ``s:<suffix>`` domain overrides, each ``limit|ms``
``ctl``             HASH    what claims obey (crawler.control): ``state``
                            (``paused``, ``stopped``; absent: running);
                            ``cap``, the most done + leased this shard may
                            reach; ``errcap``, the errors that stop its claims
``caps_lock``       STRING  shard 0 only: token of the one process re-dividing
                            ``cap`` and ``errcap`` among the shards, expiring
``delayed``         ZSET    ``host|attempts,depth,hops[,band]|url`` -> ms:
                            URL-level retries waiting for their not-before
                            time (a band only when raised)
``idle``            ZSET    host -> ms: hosts with nothing queued, leased or
                            delayed, compacted by reclaim once that time passed
``held``            ZSET    host -> ms its hold ends: hosts held back by a
                            robots.txt backoff, 429/503 or Retry-After (the
                            reason is ``hold`` in its host state)
``leases``          ZSET    lease id -> expiry (ms)
``lease``           HASH    lease id -> ``host|worker|claimed|prev|mine|``
                            ``attempts|depth|hops[,band]|url``: claim time, the
                            host's ``next`` before the claim and the one it set
``seq``             STRING  counter that makes lease ids unique, never reused
``claimreq:<wrk>``  STRING  the worker's last claim: ``request_id|lease ids``,
                            expiring with the leases; a repeated request
                            returns these leases (claims are idempotent)
``seen:<bucket>``   SET     64-bit fingerprints whose top bits are ``bucket``;
                            small integer sets (intset encoding), ~8 B a URL
``results``         STREAM  one entry a finished URL, field ``r`` = JSON record
``stats``           HASH    ``queued``, ``leased``, ``done``, ``seen``,
                            ``errors``, ``robots_capped``, ``dropped``;
                            ``s:<2xx..5xx>`` results by status class and
                            ``e:<type>`` errors by type
``attempt_ms``      HASH    URL -> ms its earlier attempts took, while it is
                            retried; deleted when it completes
``scope:<bucket>``  SET     scope anchors ``host:<host>``, ``domain:<domain>``
                            whose shard this is (by the anchor, like a host),
                            as 64-bit fingerprints bucketed like ``seen``
                            (crawler.pages.scope): intsets, ~8 B an anchor
``scope``           SET     the anchors as strings, in crawls created before
                            the buckets (~45 B an anchor): still read, never
                            written
``robots:<orig>``   STRING  cached robots.txt verdict (kind + body), with TTL
``robots_lock:<o>`` STRING  token of the one worker fetching that robots.txt
``robots_fails:<o>``STRING  failed robots.txt fetches in a row (retry budget), kept a day
``done:<call id>``  STRING  the reply of a script call that is not idempotent
                            by itself (``robots``: the lock token; ``reread``),
                            kept 5 minutes: the same call sent again returns
                            it and changes nothing (lua/_lib.lua)
``ck:<host>``       HASH    ``cookies = true`` only: the host's cookie jar,
                            ``<url host> <path> <name>`` -> ``expires_ms|``
                            ``set_ms|flags|value`` (Redis clock; expires 0: a
                            session cookie); bounded by lua/cookies.lua
``v:<host>``        HASH    ``recrawl = true`` only: done URL -> its revisit
                            state (crawler.recrawl), ``*``-prefixed while queued
                            for a revisit; a URL a sitemap listed with a lastmod
                            before its first result -> that lastmod (visit 0)
``recrawl_hosts``   SET     hosts with a ``v:<host>`` hash
``due:<host>``      ZSET    ``revisit_adaptive = true`` only: a done URL's field
                            in ``v:<host>`` -> unix second its revisit is due
``due_hosts``       ZSET    host -> unix second of its earliest ``due:<host>``
``nd:<host>``       HASH    the host's SimHash index (lua/_traps.lua):
                            ``<block><4 hex>`` -> the 16-hex SimHashes whose
                            16-bit block 0-3 has that value, concatenated
                            (the newest 16);
                            ``u<16 hex>`` -> the first URL with that SimHash
``ndo:<host>``      LIST    the SimHashes in ``nd:<host>``, oldest first: at
                            ``near_duplicate_window`` the oldest leaves
``tq:<host>``       HASH    12 hex digits of the SHA-1 of a path (its first
                            200 characters, scheme and host included) -> its
                            distinct URLs with a query string queued
                            (trap_query_budget), once it has two
``tp:<bucket>``     SET     paths with one such URL: 52 bits of the SHA-1 as
                            an integer (intset), in 4096 buckets a shard by
                            the next 12 bits (lua/_traps.lua)
``failed``          HASH    done URL whose last result was an error ->
                            ``type|host|depth|hops|retries`` (at most
                            ``FAILED_KEPT``; past it ``stats`` counts
                            ``failed_unkept``), ``*|host|depth|hops|retry``
                            while ``crawl retry`` has it queued again
                            (retry_errors.lua); a result that is not an error
                            takes it out
==================  ======  ==================================================

Per crawl ``crawl:{NAME}:`` (its own hash tag, one slot):

==================  ======  ==================================================
``meta``            HASH    ``layout``: JSON of what the crawl's creation fixed
                            (shards, dedup bucket bits, expected_urls);
                            ``state``, ``reason``, ``since``: running, paused or
                            stopped, and why (crawler.control)
``settings``        HASH    ``json``: the crawl-wide settings; ``v``: their
                            version, bumped by ``crawl config set``
``rate``            LIST    ``<unix time>:<done>`` samples, newest first, an
                            hour's worth (crawler.overview)
``rate_lock``       STRING  held for one sample interval by the worker sampling
``workers``         ZSET    worker id -> ms of its last heartbeat (server
                            clock); ids silent for an hour are dropped, the
                            set itself an hour after the last beat
``worker:<id>``     HASH    what a worker reports (node, pid, counters),
                            expiring an hour after its last heartbeat
``proxies``         HASH    ``proxies = [...]`` only: per proxy (URL, password
                            hidden) ``<p>|requests``, ``|failures``, ``|row``,
                            ``|rests``, ``|rested``, ``|until`` (ms it rests
                            until); ``w:<worker>`` last report applied
                            (lua/proxy.lua)
==================  ======  ==================================================

Every key of a crawl starts with ``crawl:{NAME:`` or ``crawl:{NAME}:``, so one
ACL key pattern (``~crawl:{NAME*``) covers a tenant's crawl.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

PREFIX = "crawl"
BANDS = 3
"""Priority bands of a host queue: 0 normal (``q:``), 1 high (``q1:``), 2 top (``q2:``).
The Lua scripts know the same number (``RAISED_BANDS`` in lua/_lib.lua)."""


FAILED_KEPT = 100_000
"""Failed URLs a shard keeps in ``failed`` for ``crawl retry`` (complete.lua's
``FAILED_KEPT`` is the same number)."""


INLINE_ENTRIES = ("u", "u2", "u3")
"""The host state fields holding a small host's normal-band queue entries, in
order, while ``q:<host>`` does not exist (lua/_lib.lua ``INLINE``)."""


def queue_name(band: int) -> str:
    """The key name of a band's host queues, before ``:<host>``: ``q``, ``q1``, ``q2``."""
    if not 0 <= band < BANDS:
        raise ValueError(f"no priority band {band}: bands are 0..{BANDS - 1}")
    return f"q{band}" if band else "q"


@dataclass(frozen=True, slots=True)
class ShardKeys:
    """Key names of one shard of one crawl.

    ``tag``: the shard's hash tag, ``NAME:s`` unless the crawl's layout chose
    another (on a cluster, ``NAME:s.k`` with k picked so that the shard's slot
    falls on the master it was meant for).
    """

    crawl: str
    shard: int
    tag: str = ""

    @property
    def base(self) -> str:
        return f"{PREFIX}:{{{self.tag or f'{self.crawl}:{self.shard}'}}}:"

    @property
    def ready(self) -> str:
        return self.base + "ready"

    @property
    def delayed(self) -> str:
        return self.base + "delayed"

    @property
    def leases(self) -> str:
        return self.base + "leases"

    @property
    def lease_data(self) -> str:
        return self.base + "lease"

    @property
    def seq(self) -> str:
        return self.base + "seq"

    @property
    def results(self) -> str:
        return self.base + "results"

    @property
    def stats(self) -> str:
        return self.base + "stats"

    @property
    def policy(self) -> str:
        return self.base + "policy"

    @property
    def held(self) -> str:
        return self.base + "held"

    @property
    def ctl(self) -> str:
        return self.base + "ctl"

    @property
    def caps_lock(self) -> str:
        return self.base + "caps_lock"

    @property
    def scope(self) -> str:
        """The anchors as strings: crawls created before ``scope_bucket`` (read only)."""
        return self.base + "scope"

    def scope_bucket(self, bucket: int) -> str:
        return f"{self.base}scope:{bucket:x}"

    @property
    def attempt_ms(self) -> str:
        return self.base + "attempt_ms"

    def queue(self, host: str, band: int = 0) -> str:
        return f"{self.base}{queue_name(band)}:{host}"

    def queues(self, host: str) -> list[str]:
        """The host's queue in every band, the highest first (the order claims pop them)."""
        return [self.queue(host, band) for band in reversed(range(BANDS))]

    def queue_prefix(self, band: int) -> str:
        """What a band's host queue keys start with: SCAN them with this and ``*``."""
        return f"{self.base}{queue_name(band)}:"

    def prefixes(self, host: str) -> str:
        return f"{self.base}px:{host}"

    @property
    def idle(self) -> str:
        return self.base + "idle"

    def host(self, host: str) -> str:
        return f"{self.base}h:{host}"

    @property
    def host_prefix(self) -> str:
        """What host state keys start with: SCAN them with this and ``*``."""
        return f"{self.base}h:"

    def seen(self, bucket: int) -> str:
        return f"{self.base}seen:{bucket:x}"

    def robots(self, host: str) -> str:
        return f"{self.base}robots:{host}"

    @property
    def robots_prefix(self) -> str:
        """What the verdict keys start with: SCAN them with this and ``*``."""
        return f"{self.base}robots:"

    def robots_lock(self, host: str) -> str:
        return f"{self.base}robots_lock:{host}"

    def robots_fails(self, origin: str) -> str:
        return f"{self.base}robots_fails:{origin}"

    def cookie_jar(self, host: str) -> str:
        return f"{self.base}ck:{host}"

    def revisits(self, host: str) -> str:
        return f"{self.base}v:{host}"

    @property
    def recrawl_hosts(self) -> str:
        return self.base + "recrawl_hosts"

    def revisits_due(self, host: str) -> str:
        return f"{self.base}due:{host}"

    @property
    def due_hosts(self) -> str:
        return self.base + "due_hosts"

    def near_dups(self, host: str) -> str:
        return f"{self.base}nd:{host}"

    def near_dup_order(self, host: str) -> str:
        return f"{self.base}ndo:{host}"

    def trap_paths(self, host: str) -> str:
        return f"{self.base}tq:{host}"

    def trap_first_paths(self, bucket: str) -> str:
        """A bucket (3 hex digits) of the paths counted once (lua/_traps.lua)."""
        return f"{self.base}tp:{bucket}"

    @property
    def failed(self) -> str:
        return self.base + "failed"

    def call_done(self, call_id: str) -> str:
        return f"{self.base}done:{call_id}"

    def claim_request(self, worker: str) -> str:
        return f"{self.base}claimreq:{worker}"

    @property
    def script_keys(self) -> list[str]:
        """The fixed keys every frontier script receives, in this order.

        Scripts build per-host key names from ``base`` (ARGV) because the host
        is only known inside the script; all such keys share the hash tag.
        """
        return [self.ready, self.delayed, self.leases, self.lease_data, self.seq,
                self.results, self.stats]


def crawl_base(crawl: str) -> str:
    """The prefix of a crawl's own (unsharded) keys, with its own hash tag."""
    return f"{PREFIX}:{{{crawl}}}:"


def meta_key(crawl: str) -> str:
    return crawl_base(crawl) + "meta"


def settings_key(crawl: str) -> str:
    return crawl_base(crawl) + "settings"


def proxies_key(crawl: str) -> str:
    return crawl_base(crawl) + "proxies"


def rate_key(crawl: str) -> str:
    return crawl_base(crawl) + "rate"


def rate_lock_key(crawl: str) -> str:
    return crawl_base(crawl) + "rate_lock"


def workers_key(crawl: str) -> str:
    return crawl_base(crawl) + "workers"


def worker_key(crawl: str, worker: str) -> str:
    return crawl_base(crawl) + f"worker:{worker}"


def shard_of(host: str, shards: int) -> int:
    """The shard a host belongs to: stable across processes and versions."""
    if shards <= 1:
        return 0
    return zlib.crc32(host.encode()) % shards


def all_shards(crawl: str, shards: int, tags: tuple[str, ...] = ()) -> list[ShardKeys]:
    return [ShardKeys(crawl, s, tags[s] if tags else "") for s in range(shards)]

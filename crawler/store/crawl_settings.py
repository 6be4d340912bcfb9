"""A crawl's own settings, stored with it in Redis, read by every node.

Settings whose scope is ``crawl`` (crawler.config.settings: scope, patterns,
depth, politeness, robots, attempts, user agent, caps, ...) belong to the
crawl, not to whichever worker started last. The first command that opens a
new crawl (usually ``crawl seed``) stores them; ``crawl config set`` changes
them, bumping a version that running workers poll. A command given a
crawl-wide value (flag, ``CRAWL_*`` variable or config file) that disagrees
with the stored one refuses to run, naming the setting and
``crawl config set``: nothing about a crawl changes silently.

The layout settings (shards, their tags, dedup sizing) are fixed at creation
and live in the crawl's layout instead (crawler.crawls).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import WatchError

from crawler.config import Settings, load_settings
from crawler.config.settings import displayed
from crawler.errors import ConfigError
from crawler.store import keys

log = logging.getLogger("crawler.settings")

LAYOUT = ("shards", "shard_tags", "expected_urls", "dedup_bucket_bits")
"""Crawl-scoped, but fixed when the crawl is created: kept in its layout."""

STORED_ORIGIN = "the crawl's stored settings"

ROBOTS_SHAPING = ("user_agent", "allow_private", "allow_cidrs")
"""Settings a stored robots.txt verdict was made under: changing one forgets the verdicts."""

NOT_LIVE: dict[str, str] = {}
"""Crawl-wide settings a running worker cannot take without a restart: name -> why.

None today: every one is applied by ``Steering.apply`` from the next URL,
request or call on (tests/test_live_settings.py walks a running worker for
old values, for every crawl-wide setting of the model). One added here must
be listed in the README, and ``crawl config set`` names the live workers
still using the old value (``still_old``)."""


def crawl_wide() -> tuple[str, ...]:
    """Names of the settings that belong to the crawl and are stored with it."""
    return tuple(name for name, field in Settings.model_fields.items()
                 if (field.json_schema_extra or {}).get("scope") == "crawl"  # type: ignore[union-attr]
                 and name not in LAYOUT)


def crawl_values(settings: Settings) -> dict[str, Any]:
    """The crawl-wide settings as JSON-ready values."""
    dumped = settings.model_dump(mode="json")
    return {name: dumped[name] for name in crawl_wide()}


async def stored_and_pinned(redis: Redis, crawl: str
                            ) -> tuple[dict[str, Any] | None, int, set[str]]:
    """(the stored crawl-wide values, their version, the pinned names), in one read.

    One HMGET: values and pins read by two commands could straddle another
    command's write and show a pin without its value (a false conflict).
    """
    raw: list[Any] = await redis.hmget(keys.settings_key(crawl), ["json", "v", "pinned"])
    chosen = set(json.loads(raw[2])) if raw[2] else set()
    if raw[0] is None:
        return None, 0, chosen
    return json.loads(raw[0]), int(raw[1] or 0), chosen


async def stored(redis: Redis, crawl: str) -> tuple[dict[str, Any] | None, int]:
    """(the stored crawl-wide values, their version); (None, 0) for a crawl without any."""
    values, version_, _ = await stored_and_pinned(redis, crawl)
    return values, version_


async def pinned(redis: Redis, crawl: str) -> set[str]:
    """The settings someone chose for the crawl (a flag, a variable, a file, config set)."""
    return (await stored_and_pinned(redis, crawl))[2]


async def version(redis: Redis, crawl: str) -> int:
    return int(await redis.hget(keys.settings_key(crawl), "v") or 0)


def apply_stored(settings: Settings, values: dict[str, Any]) -> Settings:
    """``settings`` with the crawl's stored crawl-wide ``values`` (``stored``) over them."""
    known = {k: v for k, v in values.items() if k in crawl_wide()}  # a newer version's extras
    try:
        return load_settings(base=settings, overrides=known)
    except ConfigError as exc:
        # A value stored by an older version that a newer check refuses (an empty
        # user_agent): the crawl stays usable, with this command's value, and says so.
        if exc.key not in known:
            raise
        log.warning("crawl %r: its stored %s %s is no longer accepted (%s); using %s until "
                    "crawl config set %s=... stores another", settings.crawl, exc.key,
                    json.dumps(displayed(exc.key, known[exc.key])), exc,
                    json.dumps(displayed(exc.key, crawl_values(settings)[exc.key])), exc.key)
        return apply_stored(settings, {k: v for k, v in known.items() if k != exc.key})


def _same(name: str, ours: Settings, values: dict[str, Any]) -> bool:
    theirs = apply_stored(ours, {name: values[name]})
    return bool(crawl_values(ours)[name] == crawl_values(theirs)[name])


async def adopt(redis: Redis, settings: Settings, origins: dict[str, str],
                strict: bool) -> Settings:
    """The settings with the crawl's stored values; stores ours where the crawl has none.

    ``origins``: where each value not at its default came from. A value
    someone gave (flag, variable, file) to a command that acts on the crawl
    (``strict``: seed, worker) is checked against the crawl's:

    - the crawl's value was chosen too (it is *pinned*) and differs: refused;
    - the crawl only has the default: the given value becomes the crawl's,
      pinned, for every worker (logged), and a later different one is refused.

    Other commands (status, export, ...) just use the crawl's values.
    """
    key = keys.settings_key(settings.crawl)
    given = {n for n in crawl_wide() if n in origins} if strict else set()
    while True:
        async with redis.pipeline(transaction=True) as pipe:
            await pipe.watch(key)
            values, _, chosen = await stored_and_pinned(pipe, settings.crawl)
            new_crawl = values is None
            if values is None:
                values, fresh = crawl_values(settings), given
            else:
                for name in sorted(given & chosen):
                    if name in values and not _same(name, settings, values):
                        raise _conflict(name, values[name], settings, origins[name])
                ours = crawl_values(settings)
                fresh = {n for n in given - chosen
                         if n not in values or not _same(n, settings, values)}
                values = {**values, **{n: ours[n] for n in fresh}}
            pipe.multi()  # type: ignore[no-untyped-call]
            if fresh or new_crawl:
                pipe.hset(key, mapping={"json": json.dumps(values),
                                        "pinned": json.dumps(sorted(chosen | given))})
                pipe.hincrby(key, "v", 1)
            try:
                await pipe.execute()
            except WatchError:
                continue  # another command changed them meanwhile: look again
        if fresh:
            log.warning("crawl %r: %s now set for every worker", settings.crawl,
                        ", ".join(f"{n} = {json.dumps(displayed(n, values[n]))} (from {origins[n]})"
                                  for n in sorted(fresh)))
        return apply_stored(settings, values)


def _conflict(name: str, theirs: Any, settings: Settings, origin: str) -> ConfigError:
    given = displayed(name, crawl_values(settings)[name])  # a proxy's password hidden
    return ConfigError(name, f"this crawl's {name} is {json.dumps(displayed(name, theirs))}, "
                       f"but {origin} gives {json.dumps(given)}; change it for every worker "
                       f"with `crawl config set {_assignment(name, given)}`, or drop {origin}",
                       show_key=False)


def _assignment(name: str, value: Any) -> str:
    """``NAME=value`` as ``crawl config set`` takes it, quoted for a shell if need be
    (a user agent's spaces and parentheses, a pattern's ``|`` or ``*``)."""
    import shlex

    if isinstance(value, dict) or (isinstance(value, list)
                                   and any("," in str(v) for v in value)):
        text = json.dumps(value, separators=(",", ":"))  # host tables; a list item's comma
    elif isinstance(value, list):
        text = ",".join(str(v) for v in value)
    elif isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = str(value)
    return shlex.quote(f"{name}={text}")


def parse_assignments(pairs: list[str]) -> dict[str, str]:
    """``["delay=2", "scope=domain"]`` -> {"delay": "2", "scope": "domain"}, names checked.

    A name may carry its section (``politeness.delay``), as the README and
    config/default.toml write it."""
    from crawler.config.names import undotted, unknown_setting

    out: dict[str, str] = {}
    names = crawl_wide()
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = undotted(name.strip().replace("-", "_"))  # politeness.delay, as the README
        if not sep:
            raise ConfigError(name, "expected KEY=VALUE, e.g. delay=2", show_key=False)
        if name not in names:
            if name in Settings.model_fields:
                why = ("fixed when the crawl was created" if name in LAYOUT
                       else "a node's own setting: give it to the worker")
                raise ConfigError(name, f"not a crawl-wide setting ({why})")
            raise unknown_setting(name, tuple(Settings.model_fields), "crawl config set")
        out[name] = value
    return out


async def set_values(redis: Redis, settings: Settings, changes: dict[str, str]) -> Settings:
    """Store changed crawl-wide settings (checked as flags are) and bump the version."""
    from crawler.config.loading import load_with_origins

    key = keys.settings_key(settings.crawl)
    while True:  # read, change, write under WATCH: a worker pinning meanwhile is not lost
        async with redis.pipeline(transaction=True) as pipe:
            await pipe.watch(key)
            values, _, chosen = await stored_and_pinned(pipe, settings.crawl)
            current = settings if values is None else apply_stored(settings, values)
            updated, _ = load_with_origins(base=current, overrides=changes,
                                           override_origin="crawl config set")
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.hset(key, mapping={"json": json.dumps(crawl_values(updated)),
                                    "pinned": json.dumps(sorted(chosen | set(changes)))})
            pipe.hincrby(key, "v", 1)
            try:
                await pipe.execute()
            except WatchError:
                continue
        return updated

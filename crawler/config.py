"""Settings: defaults < config file (TOML) < environment ``CRAWL_*`` < command-line flags.

``config/default.toml`` documents every key with its default; a test keeps it
equal to the defaults below.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crawler.errors import ConfigError

SCOPES = ("host", "domain", "any")
POLITENESS_KEYS = ("host", "ip")


@dataclass(frozen=True, slots=True)
class HostPolicy:
    """Per-host politeness: concurrency limit and minimum delay between request starts."""

    limit: int
    delay: float


@dataclass(frozen=True)
class Settings:
    """Everything a crawl can be told. Durations are in seconds, sizes in bytes."""

    # Where the frontier lives. None: the embedded Valkey under ``home``.
    redis_url: str | None = None
    crawl: str = "default"
    shards: int = 1
    home: str = ".crawl"
    # Worker
    concurrency: int = 200
    processes: int = 1
    claim_batch: int = 64
    lease_time: float = 120.0
    max_attempts: int = 3
    backoff_base: float = 1.0
    backoff_max: float = 300.0
    shutdown_grace: float = 10.0
    stall_warning: float = 60.0
    # Fetching
    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    total_timeout: float = 30.0
    max_redirects: int = 10
    max_body_bytes: int = 5 * 1024 * 1024
    user_agent: str = "crawler/0.1"
    contact_url: str = ""
    allow_private: bool = False
    allow_cidrs: tuple[str, ...] = ()
    # Politeness (per host, enforced in Redis at claim time)
    max_per_host: int = 1
    delay: float = 1.0
    host_overrides: dict[str, HostPolicy] = field(default_factory=dict)
    obey_robots: bool = True
    robots_ttl: float = 86400.0
    robots_error_ttl: float = 600.0  # a 5xx/unreachable robots.txt blocks its host this long
    crawl_delay_cap: float = 30.0
    # Added to a host's delay at each claim; a worker that cannot reach the send within half
    # of it gives the slot back, so no two starts come closer than the delay.
    politeness_slack: float = 0.02
    # "host": throttle each host:port; "ip": throttle each server address (resolved when added)
    politeness_key: str = "host"
    # Adaptive delay (Heritrix-style): after a response, the host waits delay_factor times
    # its response time, at most max_delay; the host's delay stays the floor.
    adaptive_delay: bool = False
    delay_factor: float = 5.0
    max_delay: float = 30.0
    # Scope and traps
    scope: str = "host"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    max_depth: int = 0
    max_pages_per_host: int = 0
    max_url_length: int = 2048
    max_repeated_segments: int = 3
    follow_nofollow: bool = False
    # Dedup and results
    dedup_bucket_bits: int = 12
    results_maxlen: int = 0

    @property
    def full_user_agent(self) -> str:
        return f"{self.user_agent} (+{self.contact_url})" if self.contact_url else self.user_agent

    def policy_for(self, host: str) -> HostPolicy:
        """The host's politeness: an exact host override, else the longest domain suffix."""
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        best: tuple[int, HostPolicy] | None = None
        for pattern, policy in self.host_overrides.items():
            if pattern in (host, name):
                return policy
            longer = best is None or len(pattern) > best[0]
            if name.endswith("." + pattern.lstrip(".")) and longer:
                best = (len(pattern), policy)
        if best:
            return best[1]
        return HostPolicy(self.max_per_host, self.delay)

    def replace(self, **changes: Any) -> Settings:
        return load_settings(base=self, overrides=changes)


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
_DEFAULTS = Settings()


def _coerce(key: str, value: Any, template: Any) -> Any:
    """Check and convert one value to the type of its default."""
    if key == "redis_url":
        if value in (None, ""):
            return None
        if not isinstance(value, str) or not value.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(key, "a redis://, rediss:// or unix:// URL", value)
        return value
    if key == "host_overrides":
        if not isinstance(value, dict):
            raise ConfigError(key, "a table of host = {limit, delay}", value)
        out = {}
        for host, spec in value.items():
            if isinstance(spec, HostPolicy):
                out[host] = spec
                continue
            if not isinstance(spec, dict) or set(spec) - {"limit", "delay"}:
                raise ConfigError(f"hosts.{host}", "a table with limit and delay", spec)
            limit = _coerce(f"hosts.{host}.limit", spec.get("limit", 1), 1)
            delay = _coerce(f"hosts.{host}.delay", spec.get("delay", 1.0), 1.0)
            if limit < 1:  # a host that may never be fetched would never let the crawl finish
                raise ConfigError(f"hosts.{host}.limit", "a whole number >= 1", limit)
            out[host] = HostPolicy(limit, delay)
        return out
    if isinstance(template, bool):
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false",
                                                          "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        if not isinstance(value, bool):
            raise ConfigError(key, "true or false", value)
        return value
    if isinstance(template, int):
        try:
            number = int(value) if not isinstance(value, bool | float) else None
        except ValueError:
            number = None
        if number is None or number < 0:
            raise ConfigError(key, "a whole number >= 0", value)
        return number
    if isinstance(template, float):
        try:
            number_f = float(value) if not isinstance(value, bool) else None
        except ValueError:
            number_f = None
        if number_f is None or not 0 <= number_f < math.inf:  # also refuses nan
            raise ConfigError(key, "a number of seconds >= 0", value)
        return number_f
    if isinstance(template, tuple):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(key, "a list of strings", value)
        return tuple(value)
    if not isinstance(value, str):
        raise ConfigError(key, "a string", value)
    return value


def _validate(s: Settings) -> None:
    if s.scope not in SCOPES:
        raise ConfigError("scope", " or ".join(SCOPES), s.scope)
    if s.politeness_key not in POLITENESS_KEYS:
        raise ConfigError("politeness_key", " or ".join(POLITENESS_KEYS), s.politeness_key)
    for key in ("concurrency", "processes", "shards", "claim_batch", "max_attempts",
                "max_per_host"):
        if getattr(s, key) < 1:
            raise ConfigError(key, "a whole number >= 1", getattr(s, key))
    if not 1 <= s.dedup_bucket_bits <= 24:
        raise ConfigError("dedup_bucket_bits", "a whole number from 1 to 24", s.dedup_bucket_bits)
    if not s.crawl or any(c in s.crawl for c in "{}: "):
        raise ConfigError("crawl", "a name without braces, colons or spaces", s.crawl)
    for cidr in s.allow_cidrs:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise ConfigError("allow_cidrs", "CIDR networks such as 10.0.0.0/8", cidr) from None


def _flatten_toml(data: dict[str, Any]) -> dict[str, Any]:
    """Sections in the TOML file are for readers; keys are unique across them."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key == "hosts":
            flat["host_overrides"] = value
        elif isinstance(value, dict):
            flat.update(_flatten_toml(value))
        else:
            flat[key] = value
    return flat


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("config", "an existing TOML file", str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"valid TOML ({exc})", str(path)) from None
    return _flatten_toml(data)


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    overrides: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    base: Settings | None = None,
) -> Settings:
    """Build Settings from (lowest first) defaults, a file, ``CRAWL_*`` env and overrides."""
    values: dict[str, Any] = {}
    env = dict(os.environ) if env is None else env
    if base is None:
        config_file = config_file or env.get("CRAWL_CONFIG")
        if config_file is None and Path("crawl.toml").is_file():
            config_file = "crawl.toml"
        if config_file:
            values.update(read_config_file(config_file))
        for name in _FIELDS:
            if name != "host_overrides" and f"CRAWL_{name.upper()}" in env:
                values[name] = env[f"CRAWL_{name.upper()}"]
        start = Settings()
    else:
        start = base
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    unknown = set(values) - set(_FIELDS)
    if unknown:
        raise ConfigError(sorted(unknown)[0], "a known setting (see config/default.toml)",
                          values[sorted(unknown)[0]])
    # Coerce to the type of the default, not of the base's value: a base built
    # as Settings(total_timeout=2) holds an int where a float belongs.
    checked = {k: _coerce(k, v, getattr(_DEFAULTS, k)) for k, v in values.items()}
    settings = dataclasses.replace(start, **checked)
    _validate(settings)
    return settings

"""Every setting of a crawl: its type, its bounds, its section, and whether it is the crawl's.

A typed pydantic model. ``Field`` metadata records two more things per
setting: the TOML ``section`` it belongs in (``config/default.toml`` lists
them, a test keeps the two equal), and its ``scope``: ``crawl`` settings
belong to the crawl and every worker must agree on them (scope, politeness,
robots, fetching, caps); ``node`` settings are one machine's (where Redis is,
how many fetches in flight). Durations are in seconds, sizes in bytes.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from crawler.config.expectations import expected
from crawler.config.host_tables import (
    HostPolicy,
    check_host_render,
    check_hosts,
    finite,
)
from crawler.config.identity import Credential, check_auth, check_headers, check_host_headers
from crawler.config.redis_urls import redact, url_problem
from crawler.errors import ConfigError

SCOPES = ("host", "domain", "any")
POLITENESS_KEYS = ("host", "ip")
PROXY_SCHEMES = ("http", "https", "socks4", "socks5")
SECTIONS = ("frontier", "worker", "fetch", "politeness", "scope", "storage", "render")


def _comma_list(value: Any) -> Any:
    """Lists come as TOML arrays; from the environment, flags and ``config set``
    as an array too (``["a", "b{1,2}"]``), or as ``a,b,c``.

    ``a,b,c`` is split only at commas outside brackets, so a pattern's
    ``{1,2}`` or ``[a,b]`` stays whole (``exclude`` is regular expressions),
    and each item is stripped of spaces. A value that starts with ``[`` and
    reads as a TOML array of strings is that array (an IPv6 ``[::1]:53`` does
    not read as one, and is split as text)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        import tomllib

        try:
            items = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            items = None
        if isinstance(items, list):
            if not all(isinstance(item, str) for item in items):
                raise ValueError(f"a list of strings, not {text!r}")
            return tuple(items)
    return tuple(item.strip() for item in _split_outside_brackets(text) if item.strip())


def _split_outside_brackets(text: str) -> list[str]:
    """``text`` split at each comma not inside (), [] or {}; a backslash-escaped
    bracket (a regex's ``\\[``) opens nothing."""
    parts, depth, start, escaped = [], 0, 0, False
    for i, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in "([{":
            depth += 1
        elif char in ")]}" and depth:
            depth -= 1
        elif char == "," and not depth:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def parse_server(server: str) -> str:
    """A ``dns_servers`` entry, ``ip`` or ``ip:port`` (``[v6]:port``), as c-ares takes it.

    ValueError if it is neither: a name would itself need DNS.
    """
    text = server.strip()
    host, port = text, ""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":") if rest.startswith(":") else rest
        if rest and not rest.startswith(":"):
            raise ValueError(f"not ip or ip:port: {server!r}")
    elif text.count(":") == 1:
        host, port = text.split(":")
    ip = ipaddress.ip_address(host)
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"bad port in {server!r}")
    shown = f"[{ip.compressed}]" if ip.version == 6 else ip.compressed
    return f"{shown}:{port}" if port else ip.compressed


StrList = Annotated[tuple[str, ...], BeforeValidator(_comma_list)]


def _setting(default: Any, section: str, scope: str = "crawl", **kw: Any) -> Any:
    return Field(default, json_schema_extra={"section": section, "scope": scope}, **kw)


class Settings(BaseModel):
    """Everything a crawl can be told."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=False,
                              defer_build=True)  # built on first use: crawl --help starts faster

    # [frontier]
    redis_url: str | None = _setting(None, "frontier", "node")
    crawl: str = _setting("default", "frontier", "node")
    shards: int = _setting(1, "frontier", ge=1)
    home: str = _setting(".crawl", "frontier", "node")
    # [worker]
    concurrency: int = _setting(200, "worker", "node", ge=1)
    processes: int = _setting(1, "worker", "node", ge=1)
    claim_batch: int = _setting(64, "worker", "node", ge=1)
    lease_time: float = _setting(120.0, "worker", ge=0)
    max_attempts: int = _setting(3, "worker", ge=1)
    backoff_base: float = _setting(1.0, "worker", ge=0)
    backoff_max: float = _setting(300.0, "worker", ge=0)
    shutdown_grace: float = _setting(10.0, "worker", "node", ge=0)
    stall_warning: float = _setting(60.0, "worker", "node", ge=0)
    extract: str = _setting("", "worker")
    extract_in_thread: bool = _setting(False, "worker", "node")
    extract_threads: int = _setting(4, "worker", "node", ge=1)
    extract_block_warning: float = _setting(0.25, "worker", "node", ge=0)
    html_parser: Literal["lxml", "lexbor"] = _setting("lexbor", "worker", "node")
    metrics_port: int = _setting(0, "worker", "node", ge=0, le=65535)
    metrics_host: str = _setting("127.0.0.1", "worker", "node")
    metrics_token: str = _setting("", "worker", "node")
    # [fetch]
    connect_timeout: float = _setting(10.0, "fetch", ge=0)
    read_timeout: float = _setting(20.0, "fetch", ge=0)
    total_timeout: float = _setting(30.0, "fetch", ge=0)
    max_redirects: int = _setting(10, "fetch", ge=0, le=100)  # below SITEMAP_HOPS
    max_body_bytes: int = _setting(5 * 1024 * 1024, "fetch", ge=0)
    user_agent: str = _setting("crawler/0.1", "fetch")
    contact_url: str = _setting("", "fetch")
    allow_private: bool = _setting(False, "fetch")
    allow_cidrs: StrList = _setting((), "fetch")
    ca_file: str = _setting("", "fetch", "node")  # a path on this node
    tls_insecure_hosts: StrList = _setting((), "fetch")
    headers: dict[str, str] = _setting({}, "fetch")
    host_headers: dict[str, dict[str, str]] = _setting({}, "hosts")  # [hosts."p".headers]
    auth: dict[str, Credential] = _setting({}, "auth", "node")  # secrets: never in Redis
    # DNS (crawler.net.dns): a machine's resolver, so node settings
    dns_servers: StrList = _setting((), "fetch", "node")
    dns_timeout: float = _setting(2.0, "fetch", "node", ge=0.05)
    dns_tries: int = _setting(2, "fetch", "node", ge=1, le=10)
    dns_concurrency: int = _setting(256, "fetch", "node", ge=1)
    dns_min_ttl: float = _setting(60.0, "fetch", "node", ge=0)
    dns_max_ttl: float = _setting(3600.0, "fetch", "node", ge=0)
    dns_negative_ttl: float = _setting(300.0, "fetch", "node", ge=0)
    cookies: bool = _setting(False, "fetch")
    proxies: StrList = _setting((), "fetch")
    # [politeness]
    max_per_host: int = _setting(1, "politeness", ge=1)
    delay: float = _setting(1.0, "politeness", ge=0)
    host_overrides: dict[str, HostPolicy] = _setting({}, "hosts")
    obey_robots: bool = _setting(True, "politeness")
    robots_ttl: float = _setting(86400.0, "politeness", ge=0)
    robots_error_ttl: float = _setting(600.0, "politeness", ge=0)
    crawl_delay_cap: float = _setting(30.0, "politeness", ge=0)
    politeness_slack: float = _setting(0.02, "politeness", ge=0)
    politeness_key: Literal["host", "ip"] = _setting("host", "politeness")
    adaptive_delay: bool = _setting(False, "politeness")
    delay_factor: float = _setting(5.0, "politeness", ge=0)
    max_delay: float = _setting(30.0, "politeness", ge=0)
    # [scope]
    scope: Literal["host", "domain", "any"] = _setting("host", "scope")
    include: StrList = _setting((), "scope")
    exclude: StrList = _setting((), "scope")
    max_depth: int = _setting(0, "scope", ge=0)
    max_pages_per_host: int = _setting(0, "scope", ge=0)
    max_pages: int = _setting(0, "scope", ge=0)
    max_errors: int = _setting(0, "scope", ge=0)
    max_duration: float = _setting(0.0, "scope", ge=0)
    max_url_length: int = _setting(2048, "scope", ge=0)
    max_repeated_segments: int = _setting(3, "scope", ge=0)
    near_duplicates: bool = _setting(True, "scope")
    simhash_distance: int = _setting(3, "scope", ge=0, le=3)
    near_duplicate_window: int = _setting(1000, "scope", ge=1)
    trap_query_budget: int = _setting(200, "scope", ge=0)
    trap_max_params: int = _setting(8, "scope", ge=0)
    trap_host_pages: int = _setting(100, "scope", ge=0)
    follow_nofollow: bool = _setting(False, "scope")
    sitemaps: bool = _setting(True, "scope")
    clean_query: bool = _setting(True, "scope")
    drop_params: StrList = _setting((), "scope")
    keep_params: StrList = _setting((), "scope")
    sort_query: bool = _setting(False, "scope")
    canonical: Literal["off", "record", "follow"] = _setting("record", "scope")
    canonical_links: Literal["follow", "drop"] = _setting("follow", "scope")
    # [storage]
    wait_replicas: int = _setting(0, "storage", ge=0)
    wait_timeout: float = _setting(1.0, "storage", ge=0)
    shard_tags: StrList = _setting((), "storage")
    expected_urls: int = _setting(10_000_000, "storage", ge=1)
    dedup_bucket_bits: int = _setting(0, "storage", ge=0, le=24)
    results_maxlen: int = _setting(0, "storage", ge=0)
    recrawl: bool = _setting(False, "storage")
    revisit_adaptive: bool = _setting(False, "storage")
    revisit_initial: float = _setting(86400.0, "storage", ge=1)
    revisit_min: float = _setting(3600.0, "storage", ge=1)
    revisit_max: float = _setting(30 * 86400.0, "storage", ge=1)
    warc_dir: str = _setting("", "storage", "node")
    warc_max_bytes: int = _setting(1024**3, "storage", "node", ge=1)
    # [render] (crawler.net.browser, crawler.worker.render)
    render: Literal["never", "always", "auto"] = _setting("never", "render")
    host_render: dict[str, str] = _setting({}, "hosts")  # [hosts."p"] render = "..."
    render_timeout: float = _setting(30.0, "render", ge=0.1)
    render_wait: str = _setting("networkidle", "render")
    render_learn_pages: int = _setting(5, "render", ge=0)
    render_other_hosts: bool = _setting(False, "render")
    render_concurrency: int = _setting(2, "render", "node", ge=1)
    render_restart_pages: int = _setting(200, "render", "node", ge=0)
    render_max_rss: int = _setting(1024**3, "render", "node", ge=0)
    render_block: StrList = _setting(("image", "font", "media"), "render", "node")
    browser_executable: str = _setting("", "render", "node")
    render_screenshot: bool = _setting(False, "render", "node")

    @field_validator("lease_time", "backoff_base", "backoff_max", "shutdown_grace",
                     "stall_warning", "connect_timeout", "read_timeout", "total_timeout",
                     "delay", "robots_ttl", "robots_error_ttl", "crawl_delay_cap",
                     "politeness_slack", "delay_factor", "max_delay", "max_duration",
                     "extract_block_warning", "revisit_initial", "revisit_min", "revisit_max",
                     "dns_timeout", "dns_min_ttl", "dns_max_ttl", "dns_negative_ttl",
                     "render_timeout")
    @classmethod
    def _seconds_are_finite(cls, value: float) -> float:
        return finite(value)

    @field_validator("redis_url", mode="before")
    @classmethod
    def _redis_url(cls, value: Any) -> Any:
        if value in (None, ""):
            return None
        if not isinstance(value, str):
            raise ValueError("not a redis URL")
        problem = url_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("crawl")
    @classmethod
    def _crawl_name(cls, value: str) -> str:
        if not value or any(c in value for c in "{}: "):
            raise ValueError("bad crawl name")
        return value

    @field_validator("include", "exclude")
    @classmethod
    def _patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:  # not a ValueError: pydantic would let it through
                raise ValueError(str(exc)) from None
        return value

    @field_validator("tls_insecure_hosts")
    @classmethod
    def _host_patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            if not pattern.strip() or any(c in pattern for c in "/@ "):
                raise ValueError(f"not a host pattern: {pattern!r}")
        return value

    @field_validator("user_agent")
    @classmethod
    def _user_agent(cls, value: str) -> str:
        # robots.txt groups are matched against its product token (mybot in mybot/1.0):
        # without one only "User-agent: *" applies, and rules for us by name are missed.
        if not value.split("/", 1)[0].split(" ", 1)[0].strip():
            raise ValueError("no product token")
        return value

    @field_validator("render_wait")
    @classmethod
    def _render_wait(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("empty")
        return value

    @field_validator("allow_cidrs")
    @classmethod
    def _cidrs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for cidr in value:
            ipaddress.ip_network(cidr, strict=False)
        return value

    @field_validator("dns_servers")
    @classmethod
    def _dns_servers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(parse_server(server) for server in value)

    @field_validator("proxies")
    @classmethod
    def _proxies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from urllib.parse import urlsplit

        for proxy in value:
            parts = urlsplit(proxy)
            if parts.scheme not in PROXY_SCHEMES or not parts.hostname:
                raise ValueError(f"not a proxy URL: {proxy}")
            parts.port  # noqa: B018 -- raises ValueError for a bad port
        return value

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
        """A copy with ``changes``, checked as loading checks them (ConfigError if bad)."""
        origin = "a value given in code"
        for name in changes:
            if name not in type(self).model_fields:
                raise ConfigError.unknown(name, tuple(type(self).model_fields), origin)
        return self.model_copy(update={name: check_value(name, value, origin)
                                       for name, value in changes.items() if value is not None})


def displayed(name: str, value: Any) -> Any:
    """A setting's value as messages, logs and ``crawl config`` show it: a proxy's
    password hidden."""
    if name == "proxies" and isinstance(value, str):
        value = _comma_list(value)
    if name == "proxies" and isinstance(value, list | tuple):
        return [redact(str(proxy)) for proxy in value]
    return value


def field_section(name: str) -> str:
    return str((Settings.model_fields[name].json_schema_extra or {})["section"])  # type: ignore[index]


def field_scope(name: str) -> str:
    return str((Settings.model_fields[name].json_schema_extra or {})["scope"])  # type: ignore[index]


def check_value(name: str, value: Any, origin: str) -> Any:
    """``value`` as the setting ``name`` holds it, or ConfigError saying where it came from."""
    if name == "host_overrides":
        return check_hosts(value, origin)
    if name == "headers":
        return check_headers(value, origin)
    if name == "host_headers":
        return check_host_headers(value, origin)
    if name == "auth":
        return check_auth(value, origin)
    if name == "host_render":
        return check_host_render(value, origin)
    if name == "redis_url" and isinstance(value, str) and value:
        problem = url_problem(value)
        if problem:  # one line naming the URL, its password hidden
            raise ConfigError(name, f"bad Redis URL {redact(value)}: {problem}", origin,
                              show_key=False)
    if isinstance(value, bool) and Settings.model_fields[name].annotation in (int, float):
        # pydantic's lax mode reads true as 1; in a settings file that is a mistake.
        raise ConfigError(name, f"expected {expected(name, Settings)}, got {value!r}", origin)
    try:
        return getattr(Settings.model_validate({name: value}), name)
    except ValidationError:
        shown = displayed(name, value)
        if isinstance(shown, list | tuple):  # --include '(' gives ('(',): show what was typed
            shown_text = ", ".join(map(repr, shown)) or "none"
        else:
            shown_text = repr(shown)
        raise ConfigError(name, f"expected {expected(name, Settings)}, got {shown_text}",
                          origin) from None

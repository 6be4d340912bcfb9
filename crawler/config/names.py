"""Setting names as people write them: dotted (``politeness.delay``), and by meaning.

The README's tables and ``config/default.toml`` name a setting with its
section (``politeness.delay``); ``crawl config set`` takes that name as well
as the bare one. A name that is no setting gets suggestions by spelling
(difflib) and by meaning (``MEANINGS``: ``timeout`` is one of three timeouts,
``ua`` is ``user_agent``), since a user who types ``threads`` is not one
typo away from ``concurrency``.
"""

from __future__ import annotations

import difflib

from crawler.config.settings import Settings, field_section
from crawler.errors import ConfigError

MEANINGS: dict[str, tuple[str, ...]] = {
    "timeout": ("total_timeout", "connect_timeout", "read_timeout"),
    "timeouts": ("total_timeout", "connect_timeout", "read_timeout"),
    "ua": ("user_agent",),
    "useragent": ("user_agent",),
    "agent": ("user_agent",),
    "bot": ("user_agent",),
    "threads": ("concurrency", "processes"),
    "workers": ("concurrency", "processes"),
    "parallel": ("concurrency", "max_per_host"),
    "parallelism": ("concurrency", "max_per_host"),
    "connections": ("max_per_host", "concurrency"),
    "per_host": ("max_per_host", "max_pages_per_host"),
    "rate": ("delay", "max_per_host"),
    "rate_limit": ("delay", "max_per_host"),
    "wait": ("delay",),
    "sleep": ("delay",),
    "interval": ("delay",),
    "crawl_delay": ("delay", "crawl_delay_cap"),
    "depth": ("max_depth",),
    "limit": ("max_pages", "max_pages_per_host"),
    "pages": ("max_pages", "max_pages_per_host"),
    "robots": ("obey_robots",),
    "robots_txt": ("obey_robots",),
    "ignore_robots": ("obey_robots",),
    "private": ("allow_private", "allow_cidrs"),
    "loopback": ("allow_private", "allow_cidrs"),
    "localhost": ("allow_private",),
    "retries": ("max_attempts",),
    "retry": ("max_attempts",),
    "attempts": ("max_attempts",),
    "domain": ("scope",),
    "follow": ("scope", "include", "exclude"),
    "pattern": ("include", "exclude"),
    "filter": ("include", "exclude"),
    "regex": ("include", "exclude"),
    "size": ("max_body_bytes",),
    "max_size": ("max_body_bytes",),
    "redirects": ("max_redirects",),
    "contact": ("contact_url",),
    "email": ("contact_url",),
    "hook": ("extract",),
    "extractor": ("extract",),
    "parser": ("extract",),
    "warc": ("warc_dir",),
    "redis": ("redis_url",),
    "proxy": ("proxies",),
    "cookie": ("cookies",),
    "ca": ("ca_file",),
    "dns": ("dns_servers",),
}

NO_SUCH_FEATURE: dict[str, str] = {}
"""Words that name something the crawler does not do, and the sentence that says so."""


def section_of(name: str) -> str:
    return field_section(name)


def undotted(name: str) -> str:
    """``politeness.delay`` -> ``delay``: the section, if it is the setting's own, dropped.

    A wrong section (``fetch.delay``) is an error naming the right one, as is
    a section without a setting after it.
    """
    section, dot, bare = name.rpartition(".")
    if not dot:
        return name
    if bare in Settings.model_fields:
        if section_of(bare) != section:
            raise ConfigError(name, f"{bare} is in [{section_of(bare)}], not [{section}]: "
                              f"{section_of(bare)}.{bare}", "crawl config set", show_key=False)
        return bare
    return name  # unknown: reported by the caller, with suggestions


def suggestions(word: str, known: tuple[str, ...]) -> list[str]:
    """Settings meant by ``word``: by meaning first, then by spelling (at most four)."""
    key = word.rpartition(".")[2].lower().replace("-", "_")
    meant = [n for n in MEANINGS.get(key, ()) if n in known]
    spelled = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
    return list(dict.fromkeys([*meant, *spelled]))[:4]


def unknown_setting(word: str, known: tuple[str, ...], origin: str) -> ConfigError:
    """``unknown setting 'timeout' (did you mean 'total_timeout', 'connect_timeout' ...?)``."""
    key = word.rpartition(".")[2].lower().replace("-", "_")
    close = suggestions(word, known)
    hint = ""
    if close:
        hint = f" (did you mean {', '.join(map(repr, close[:-1]))}" \
               f"{' or ' if len(close) > 1 else ''}{close[-1]!r}?)"
    elif key in NO_SUCH_FEATURE:
        hint = f" ({NO_SUCH_FEATURE[key]})"
    return ConfigError(word, f"unknown setting {word!r}{hint}", origin, show_key=False)

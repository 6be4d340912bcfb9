"""What each setting must be, in one sentence: the tail of every message about a bad value.

Read from the model's own bounds and types (``ge``, ``le``, ``Literal``), so a
message never disagrees with what validation accepts; a few settings whose
type says too little have their own words.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import get_args, get_origin

from pydantic import BaseModel

SETTING_WORDS = {
    # The settings whose type says too little.
    "redis_url": "a redis://, rediss://, redis+cluster://, rediss+cluster:// or unix:// URL "
                 "(a cluster's may name several nodes: redis+cluster://n1:7000,n2:7000)",
    "crawl": "a name without braces, colons or spaces",
    "allow_cidrs": "CIDR networks such as 10.0.0.0/8",
    "dns_servers": "DNS server addresses, ip or ip:port ([v6]:port), e.g. 127.0.0.1:5353",
    "proxies": "proxy URLs such as http://host:3128, https://..., socks5://user:pw@host:1080",
    "include": "regular expressions (Python re syntax)",
    "exclude": "regular expressions (Python re syntax)",
    "drop_params": "parameter names or globs such as utm_*",
    "keep_params": "parameter names or globs such as utm_*",
    "host_overrides": 'tables [hosts."example.com"] with max_per_host and delay (JSON in '
                      'crawl config set: \'{"example.com": {"delay": 2}}\')',
    "tls_insecure_hosts": "host patterns such as intranet.example.com or example.com:8443",
    "host_render": 'tables [hosts."example.com"] with render = "never", "always" or "auto"',
    "render_wait": '"networkidle", "load", or a CSS selector the page must show',
    "render_block": "resource types such as image, font, media, stylesheet",
    "user_agent": "a product token first, as in mybot/1.0 (+https://example.com/bot): "
                  "robots.txt groups are matched against it",
}


def expected(name: str, model: type[BaseModel],
             words: Mapping[str, str] = SETTING_WORDS) -> str:
    """One description of what a field of ``model`` must be, whatever was wrong
    with the value: ``words`` for the fields that have their own (a host's table
    passes none: a field that shares a setting's name is not that setting)."""
    if name in words:
        return words[name]
    field = model.model_fields[name]
    ge = next((m.ge for m in field.metadata if getattr(m, "ge", None) is not None), None)
    le = next((m.le for m in field.metadata if getattr(m, "le", None) is not None), None)
    annotation = field.annotation
    if annotation is bool:
        return "true or false"
    if annotation is int:
        return f"a whole number from {ge} to {le}" if le is not None else \
            f"a whole number >= {ge if ge is not None else 0}"
    if annotation is float:
        return f"a number of seconds >= {ge if ge is not None else 0}"
    if get_origin(annotation) is not None and str(get_origin(annotation)).endswith("Literal"):
        options = [str(a) for a in get_args(annotation)]
        return ", ".join(options[:-1]) + " or " + options[-1]
    if get_origin(annotation) is tuple:
        return "a list of strings"
    return "a string"

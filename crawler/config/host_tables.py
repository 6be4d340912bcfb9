"""The per-host tables of the settings: politeness (``[hosts."name"]`` max_per_host
and delay) and rendering (``render = ...``), and how a file's table is checked.

Apart from ``settings`` because a host's table is its own small model, checked
field by field with its own messages (``hosts.example.com.delay``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from crawler.config.expectations import SETTING_WORDS, expected
from crawler.errors import ConfigError

RENDER_MODES = ("never", "always", "auto")


def finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("not finite")
    return value


class HostPolicy(BaseModel):
    """Per-host politeness: requests in flight, and seconds between request starts."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    max_per_host: int = Field(1, ge=1)  # a host that may never be fetched never ends
    delay: float = Field(1.0, ge=0)

    def __init__(self, max_per_host: int = 1, delay: float = 1.0, **data: Any) -> None:
        super().__init__(max_per_host=max_per_host, delay=delay, **data)

    @field_validator("delay")
    @classmethod
    def _delay_is_finite(cls, value: float) -> float:
        return finite(value)


HOST_KEYS = tuple(HostPolicy.model_fields)


def check_hosts(value: Any, origin: str) -> dict[str, HostPolicy]:
    if isinstance(value, str):  # `crawl config set host_overrides='{"h": {"delay": 2}}'`
        import json

        try:
            value = json.loads(value) if value.strip() else {}
        except ValueError:
            value = None
    if not isinstance(value, Mapping):
        raise ConfigError("host_overrides", f"expected {SETTING_WORDS['host_overrides']}", origin)
    out: dict[str, HostPolicy] = {}
    for host, spec in value.items():
        key = f"hosts.{host}"
        if isinstance(spec, HostPolicy):
            out[host] = spec
            continue
        if not isinstance(spec, Mapping):
            raise ConfigError(key, "expected a table with max_per_host and delay", origin)
        for field, field_value in spec.items():
            if field == "limit":
                raise ConfigError(f"{key}.limit", "renamed: use max_per_host, as the global "
                                  "setting is named", origin)
            if field not in HOST_KEYS:
                raise ConfigError.unknown(field, HOST_KEYS, origin, key=key)
            try:
                HostPolicy.model_validate({field: field_value})
            except ValidationError:
                wanted = expected(field, HostPolicy, words={})
                raise ConfigError(f"{key}.{field}", f"expected {wanted}, got {field_value!r}",
                                  origin) from None
        out[host] = HostPolicy.model_validate(dict(spec))
    return out


def check_host_render(value: Any, origin: str) -> dict[str, str]:
    """``[hosts."pattern"] render = ...``: pattern -> never, always or auto."""
    if isinstance(value, str):  # from `crawl config set host_render=...` (JSON)
        import json

        try:
            value = json.loads(value) if value.strip() else {}
        except ValueError:
            value = None
    if not isinstance(value, Mapping):
        raise ConfigError("host_render", f"expected {SETTING_WORDS['host_render']}", origin)
    out: dict[str, str] = {}
    for pattern, mode in value.items():
        if mode not in RENDER_MODES:
            raise ConfigError(f"hosts.{pattern}.render", "expected never, always or auto, "
                              f"got {mode!r}", origin)
        out[str(pattern)] = mode
    return out

"""Layering the sources of settings, and saying where a bad value came from.

Lowest first: the defaults, a TOML file (``--config``, ``$CRAWL_CONFIG`` or
``./crawl.toml``), ``CRAWL_<KEY>`` environment variables, then flags. Each
value is checked by the settings model on its own, so an error names the
setting, what it must be, what it got, and where it came from: the flag, the
environment variable, or the file and line.

pydantic-settings would merge the sources before checking them and could not
say which one a bad value came from; the checking is pydantic's all the same.

The file's sections are real: a key belongs in its own section (or at the top
level, for a flat file), ``[hosts."example.com"]`` tables hold per-host
politeness, and an unknown section or key is an error with a suggestion.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from crawler.config.identity import AUTH_ENV_PREFIX, auth_from_env
from crawler.config.settings import (
    SECTIONS,
    Settings,
    check_value,
    field_section,
)
from crawler.errors import ConfigError

log = logging.getLogger("crawler.config")

ENV_PREFIX = "CRAWL_"
ENV_NOT_SETTINGS = ("CRAWL_CONFIG",)
"""CRAWL_* variables that are not settings (CRAWL_TEST_* belong to the test suite)."""
NAMES = tuple(Settings.model_fields)
TABLE_SETTINGS = ("auth", "headers")
"""Settings that are tables at the top level of a file."""
NOT_FLAT = ("host_overrides", "host_headers", "host_render", "auth")
"""Settings read from their own tables only ([hosts."p"], [auth."p"]), not as keys or
CRAWL_<KEY> variables (credentials come from CRAWL_AUTH_<NAME>, see config.identity)."""

Origins = dict[str, str]


FLAG_NAMES = {"redis_url": "--redis"}
"""Settings whose command-line flag is not ``--`` and the name with dashes."""


def flag_name(name: str) -> str:
    """The command-line flag that sets the setting ``name``."""
    return FLAG_NAMES.get(name, f"--{name.replace('_', '-')}")


def _suggest(word: str, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word.lower(), choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


# -- the TOML file ---------------------------------------------------------------------------


def _key_lines(text: str) -> dict[tuple[str, str], int]:
    """(section, key) -> line number, read from the text (tomllib keeps no positions)."""
    lines: dict[tuple[str, str], int] = {}
    section = ""
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("["):
            section = line.strip("[] ")
            lines.setdefault((section, ""), number)
            continue
        match = re.match(r'^("[^"]*"|[A-Za-z0-9_\-]+)\s*=', line)
        if match:
            lines.setdefault((section, match.group(1).strip('"')), number)
    return lines


def read_config_file(path: str | os.PathLike[str]) -> dict[str, tuple[Any, str]]:
    """The settings in a TOML file: name -> (value, "file line N")."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config", "no such file", name, show_key=False) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("config", f"cannot read it ({exc})", name, show_key=False) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        where = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        if where:
            raise ConfigError("config", f"not valid TOML: {message} (column {where[2]})",
                              f"{name} line {where[1]}", show_key=False) from None
        raise ConfigError("config", f"not valid TOML: {message}", name, show_key=False) from None
    lines = _key_lines(text)

    def at(section: str, key: str = "") -> str:
        number = lines.get((section, key)) or lines.get((f"{section}.{key}", "")) \
            or lines.get((section, ""))
        return f"{name} line {number}" if number else name

    values: dict[str, tuple[Any, str]] = {}

    def put(key: str, value: Any, origin: str) -> None:
        if key in values:
            raise ConfigError(key, f"set twice (also at {values[key][1]})", origin)
        values[key] = (value, origin)

    for key, value in data.items():
        if key == "hosts":
            if not isinstance(value, dict):
                raise ConfigError("hosts", "expected tables such as [hosts.\"example.com\"]",
                                  at("", "hosts"))
            politeness = {host: {k: v for k, v in spec.items() if k not in ("headers", "render")}
                          if isinstance(spec, dict) else spec for host, spec in value.items()}
            host_headers = {host: spec["headers"] for host, spec in value.items()
                            if isinstance(spec, dict) and "headers" in spec}
            host_render = {host: spec["render"] for host, spec in value.items()
                           if isinstance(spec, dict) and "render" in spec}
            # a table holding only headers or render is no politeness override
            put("host_overrides", {h: p for h, p in politeness.items() if p != {}
                                   or (h not in host_headers and h not in host_render)},
                at("hosts"))
            if host_render:
                put("host_render", host_render, at("hosts"))
            if host_headers:
                tables = [n for (sec, k), n in lines.items()
                          if not k and sec.startswith("hosts.") and sec.endswith(".headers")]
                put("host_headers", host_headers,
                    f"{name} line {min(tables)}" if tables else at("hosts"))
        elif key in TABLE_SETTINGS:  # [auth."pattern"], or a flat file's [headers]
            put(key, value, at(key))
        elif key in SECTIONS and not (key in NAMES and not isinstance(value, dict)):
            # "render" names both a section and a setting: a flat file's
            # render = "auto" is the setting, [render] the section.
            if not isinstance(value, dict):
                raise ConfigError(key, f"[{key}] is a section, not a setting", at("", key))
            for inner, inner_value in value.items():
                origin = at(key, inner)
                if inner not in NAMES:
                    raise ConfigError.unknown(inner, NAMES, origin)
                home = field_section(inner)
                if home != key:
                    raise ConfigError(inner, f"belongs in [{home}], not [{key}]", origin)
                put(inner, inner_value, origin)
        elif isinstance(value, dict):
            raise ConfigError(key, f"unknown section [{key}]{_suggest(key, (*SECTIONS, 'hosts'))}",
                              at(key), show_key=False)
        elif key in NAMES and key not in NOT_FLAT:
            put(key, value, at("", key))
        else:
            raise ConfigError.unknown(key, NAMES, at("", key))
    return values


# -- all sources together --------------------------------------------------------------------


def _env_values(env: Mapping[str, str]) -> dict[str, tuple[Any, str]]:
    values: dict[str, tuple[Any, str]] = {}
    env_names = {f"{ENV_PREFIX}{n.upper()}": n for n in NAMES if n not in NOT_FLAT}
    for var, value in env.items():
        if not var.startswith(ENV_PREFIX) or var in ENV_NOT_SETTINGS or \
                var.startswith(("CRAWL_TEST_", AUTH_ENV_PREFIX)):
            continue
        name = env_names.get(var)
        if name is None:
            close = difflib.get_close_matches(var.removeprefix(ENV_PREFIX).lower(), NAMES,
                                              n=1, cutoff=0.6)
            hint = f" (did you mean {ENV_PREFIX}{close[0].upper()}?)" if close else ""
            log.warning("environment variable %s is not a setting; ignored%s", var, hint)
            continue
        values[name] = (value, f"environment variable {var}")
    return values


def load_with_origins(config_file: str | os.PathLike[str] | None = None,
                      overrides: Mapping[str, Any] | None = None,
                      env: Mapping[str, str] | None = None,
                      base: Settings | None = None,
                      override_origin: str = "flag") -> tuple[Settings, Origins]:
    """Settings from the sources, and where each value not at its default came from.

    ``overrides`` are flags (None: not given); their origin reads ``--name``
    unless ``override_origin`` says otherwise. With ``base``, only the
    overrides are applied to it (no file, no environment).
    """
    layered: dict[str, tuple[Any, str]] = {}
    if base is None:
        env = os.environ if env is None else env
        config_file = config_file or env.get("CRAWL_CONFIG")
        if config_file is None and Path("crawl.toml").is_file():
            config_file = "crawl.toml"
        if config_file:
            layered.update(read_config_file(config_file))
        layered.update(_env_values(env))
        from_env = auth_from_env(env)
        if from_env:  # per pattern, a variable wins over the file's table
            in_file = layered.get("auth", ({}, ""))[0]
            merged = {**(in_file if isinstance(in_file, dict) else {}),
                      **{pattern: spec for pattern, (spec, _) in from_env.items()}}
            where = sorted({origin for _, origin in from_env.values()})
            layered["auth"] = (merged, " / ".join(where))
    for name, value in (overrides or {}).items():
        if value is None:
            continue
        if name not in NAMES:
            raise ConfigError.unknown(name, NAMES, "a value given in code")
        origin = flag_name(name) if override_origin == "flag" else override_origin
        layered[name] = (value, origin)
    checked = {name: check_value(name, value, origin) for name, (value, origin) in layered.items()}
    start = base if base is not None else Settings()
    settings = start.model_copy(update=checked)
    origins = {name: origin for name, (_, origin) in layered.items()}
    return settings, origins


def load_settings(config_file: str | os.PathLike[str] | None = None,
                  overrides: Mapping[str, Any] | None = None,
                  env: Mapping[str, str] | None = None,
                  base: Settings | None = None) -> Settings:
    """Settings from (lowest first) defaults, a file, ``CRAWL_*`` env and overrides."""
    return load_with_origins(config_file, overrides, env, base,
                             override_origin="flag" if base is None else "a value given in code")[0]

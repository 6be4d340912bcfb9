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
from typing import Any, get_args, get_origin

from pydantic import ValidationError

from crawler.config.settings import SECTIONS, HostPolicy, Settings, field_section
from crawler.errors import ConfigError
from crawler.redis_urls import redact, url_problem

log = logging.getLogger("crawler.config")

ENV_PREFIX = "CRAWL_"
ENV_NOT_SETTINGS = ("CRAWL_CONFIG",)
"""CRAWL_* variables that are not settings (CRAWL_TEST_* belong to the test suite)."""
NAMES = tuple(Settings.model_fields)
HOST_KEYS = tuple(HostPolicy.model_fields)

Origins = dict[str, str]


# -- what each setting must be ------------------------------------------------------------

_EXPECTED_SPECIAL = {
    "redis_url": "a redis://, rediss://, redis+cluster://, rediss+cluster:// or unix:// URL "
                 "(a cluster's may name several nodes: redis+cluster://n1:7000,n2:7000)",
    "crawl": "a name without braces, colons or spaces",
    "allow_cidrs": "CIDR networks such as 10.0.0.0/8",
    "include": "regular expressions (Python re syntax)",
    "exclude": "regular expressions (Python re syntax)",
    "host_overrides": 'tables [hosts."example.com"] with max_per_host and delay',
}


def expected(name: str, model: type[Any] = Settings) -> str:
    """One description of what a setting must be, whatever was wrong with the value."""
    if model is Settings and name in _EXPECTED_SPECIAL:
        return _EXPECTED_SPECIAL[name]
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


def _check(name: str, value: Any, origin: str) -> Any:
    """``value`` as the setting ``name`` holds it, or ConfigError saying where it came from."""
    if name == "host_overrides":
        return _check_hosts(value, origin)
    if name == "redis_url" and isinstance(value, str) and value:
        problem = url_problem(value)
        if problem:  # one line naming the URL, its password hidden
            raise ConfigError(name, f"bad Redis URL {redact(value)}: {problem}", origin,
                              show_key=False)
    if isinstance(value, bool) and Settings.model_fields[name].annotation in (int, float):
        # pydantic's lax mode reads true as 1; in a settings file that is a mistake.
        raise ConfigError(name, f"expected {expected(name)}, got {value!r}", origin)
    try:
        return getattr(Settings.model_validate({name: value}), name)
    except ValidationError:
        raise ConfigError(name, f"expected {expected(name)}, got {value!r}", origin) from None


def _check_hosts(value: Any, origin: str) -> dict[str, HostPolicy]:
    if not isinstance(value, Mapping):
        raise ConfigError("host_overrides", f"expected {expected('host_overrides')}", origin)
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
                raise ConfigError(f"{key}.{field}", f"expected {expected(field, HostPolicy)}, "
                                  f"got {field_value!r}", origin) from None
        out[host] = HostPolicy.model_validate(dict(spec))
    return out


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
        number = lines.get((section, key)) or lines.get((section, ""))
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
            put("host_overrides", value, at("hosts"))
        elif key in SECTIONS:
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
        elif key in NAMES and key != "host_overrides":
            put(key, value, at("", key))
        else:
            raise ConfigError.unknown(key, NAMES, at("", key))
    return values


# -- all sources together --------------------------------------------------------------------


def _env_values(env: Mapping[str, str]) -> dict[str, tuple[Any, str]]:
    values: dict[str, tuple[Any, str]] = {}
    env_names = {f"{ENV_PREFIX}{n.upper()}": n for n in NAMES if n != "host_overrides"}
    for var, value in env.items():
        if not var.startswith(ENV_PREFIX) or var in ENV_NOT_SETTINGS or \
                var.startswith("CRAWL_TEST_"):
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
    for name, value in (overrides or {}).items():
        if value is None:
            continue
        if name not in NAMES:
            raise ConfigError.unknown(name, NAMES, "a value given in code")
        origin = flag_name(name) if override_origin == "flag" else override_origin
        layered[name] = (value, origin)
    checked = {name: _check(name, value, origin) for name, (value, origin) in layered.items()}
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

"""The identity settings: request headers, per-host headers, credentials.

``headers`` (crawl-wide) and ``[hosts."pattern".headers]`` (per host pattern)
are crawl settings, stored with the crawl in Redis: never put a secret in
them. ``[auth."pattern"]`` credentials are a node's own: read from this
node's config file or ``CRAWL_AUTH_<NAME>`` variables, held as secrets
(printed as ``**********``), never stored in Redis, never in ``crawl config
show``. Each node that must log in needs them in its own config or
environment.

``CRAWL_AUTH_<NAME>='<host pattern> basic <user:password>'`` or
``CRAWL_AUTH_<NAME>='<host pattern> bearer <token>'``: three fields split on
the first two runs of whitespace, so a password may hold spaces. ``<NAME>``
only tells the variables apart.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr

from crawler.errors import ConfigError

AUTH_ENV_PREFIX = "CRAWL_AUTH_"
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 9110 field-name
REFUSED_HEADERS = {
    "user-agent": "the User-Agent is its own setting: use user_agent (and contact_url)",
    "authorization": "credentials belong in [auth.\"pattern\"] (node-local, never stored "
                     "in Redis or shown), not in headers",
    "proxy-authorization": "credentials belong in the proxy URL, not in headers",
    "accept-encoding": "computed from the codings the crawler can decode (README: "
                       "Compression); it cannot be set",
    "host": "set from each URL",
    "content-length": "a GET has no body",
    "transfer-encoding": "a GET has no body",
    "connection": "the connection pool decides it",
}


class Credential(BaseModel):
    """One host pattern's credentials: basic (``user:password``) or a bearer token."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    basic: SecretStr | None = None
    bearer: SecretStr | None = None

    def authorization(self) -> str:
        """The ``Authorization`` header value."""
        import base64

        if self.basic is not None:
            raw = self.basic.get_secret_value().encode("utf-8")
            return "Basic " + base64.b64encode(raw).decode("ascii")
        assert self.bearer is not None
        return "Bearer " + self.bearer.get_secret_value()


def _table(value: Any, key: str, origin: str) -> Mapping[str, Any]:
    if isinstance(value, str):  # from CRAWL_HEADERS or `crawl config set headers=...`
        try:
            value = json.loads(value) if value.strip() else {}
        except ValueError:
            raise ConfigError(key, 'expected a JSON object such as {"Accept-Language": "fr"}',
                              origin) from None
    if not isinstance(value, Mapping):
        raise ConfigError(key, "expected a table of header = value", origin)
    return value


def check_headers(value: Any, origin: str, key: str = "headers") -> dict[str, str]:
    """A table of request headers, each name a token, each value one line."""
    out: dict[str, str] = {}
    seen: dict[str, str] = {}
    for name, header_value in _table(value, key, origin).items():
        where = f"{key}.{name}"
        if not isinstance(name, str) or not _TOKEN.match(name):
            raise ConfigError(where, "not a valid header name", origin)
        why = REFUSED_HEADERS.get(name.lower())
        if why:
            raise ConfigError(where, f"cannot be set in headers: {why}", origin)
        if not isinstance(header_value, str) or any(c in header_value for c in "\r\n\0"):
            raise ConfigError(where, "expected a string on one line", origin)
        if name.lower() in seen:
            raise ConfigError(where, f"set twice (also as {seen[name.lower()]!r})", origin)
        seen[name.lower()] = name
        out[name] = header_value
    return out


def check_host_headers(value: Any, origin: str) -> dict[str, dict[str, str]]:
    """``[hosts."pattern".headers]`` tables: pattern -> headers."""
    return {str(pattern): check_headers(table, origin, f"hosts.{pattern}.headers")
            for pattern, table in _table(value, "hosts", origin).items()}


def check_auth(value: Any, origin: str) -> dict[str, Credential]:
    """``[auth."pattern"]`` tables, each with exactly one of basic or bearer."""
    if not isinstance(value, Mapping):
        raise ConfigError("auth", 'expected tables such as [auth."example.com"] with '
                          "basic or bearer", origin, show_key=False)
    out: dict[str, Credential] = {}
    for pattern, spec in value.items():
        key = f"auth.{pattern}"
        if isinstance(spec, Credential):
            out[pattern] = spec
            continue
        if not isinstance(spec, Mapping):
            raise ConfigError(key, 'expected basic = "user:password" or bearer = "token"', origin)
        unknown = set(spec) - {"basic", "bearer"}
        if unknown:
            raise ConfigError.unknown(sorted(unknown)[0], ("basic", "bearer"), origin, key=key)
        given = {k: v for k, v in spec.items() if v not in (None, "")}
        if len(given) != 1:
            raise ConfigError(key, "give exactly one of basic or bearer", origin)
        kind, secret = next(iter(given.items()))
        if isinstance(secret, SecretStr):
            secret = secret.get_secret_value()
        if not isinstance(secret, str) or any(c in secret for c in "\r\n\0"):
            raise ConfigError(f"{key}.{kind}", "expected a string on one line", origin)
        if kind == "basic" and ":" not in secret:
            raise ConfigError(f"{key}.basic", 'expected "user:password"', origin)
        out[str(pattern)] = Credential.model_validate({kind: secret})
    return out


def auth_from_env(env: Mapping[str, str]) -> dict[str, tuple[dict[str, str], str]]:
    """``CRAWL_AUTH_<NAME>`` variables: pattern -> ({kind: secret}, origin)."""
    out: dict[str, tuple[dict[str, str], str]] = {}
    for var in sorted(env):
        if not var.startswith(AUTH_ENV_PREFIX) or var == AUTH_ENV_PREFIX:
            continue
        origin = f"environment variable {var}"
        fields = env[var].strip().split(None, 2)
        if len(fields) != 3 or fields[1].lower() not in ("basic", "bearer"):
            # never echo the value: it holds a secret
            raise ConfigError(var, "expected '<host pattern> basic <user:password>' or "
                              "'<host pattern> bearer <token>'", origin, show_key=False)
        pattern, kind, secret = fields
        if pattern in out:
            raise ConfigError(var, f"a second credential for {pattern!r} (also in "
                              f"{out[pattern][1]})", origin, show_key=False)
        out[pattern] = ({kind.lower(): secret}, origin)
    return out

"""TLS: the CAs a crawl trusts, the hosts it may not verify, and certificate errors in words.

``ca_file`` is a PEM bundle added to the system's CAs (a company's or a test's
CA), never a replacement for them. ``tls_insecure_hosts`` names the host
patterns whose certificates are not verified at all; each such host is logged
once per process, so that an unverified crawl is never silent. Every other
host is verified against the system's CAs plus ``ca_file``.

A failed verification becomes ``TLSCertificateError`` (record type
``tls_certificate``) whose message says in one line what is wrong: expired,
not valid yet, wrong name, self-signed or unknown issuer, revoked, or the
OpenSSL reason for anything rarer. Other TLS failures (a handshake the
server breaks off, no shared cipher) stay ``tls_error``.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterable

from crawler import errors
from crawler.errors import ConfigError

log = logging.getLogger("crawler.tls")

# OpenSSL's X509_V_ERR_* codes (x509_vfy.h), as ``SSLCertVerificationError.verify_code``.
_REASONS = {
    9: "certificate not valid yet",
    10: "certificate expired",
    18: "self-signed certificate",
    19: "self-signed certificate in the chain (unknown issuer)",
    20: "unknown issuer (no trusted CA issued it)",
    21: "unknown issuer (cannot verify the first certificate)",
    23: "certificate revoked",
    62: "wrong name: certificate is not for this host",
    64: "wrong name: certificate is not for this IP address",
}


def host_matches(host: str, patterns: Iterable[str]) -> str | None:
    """The pattern ``host`` falls under: an exact host (or host:port), or a domain suffix.

    The rule of ``[hosts."pattern"]`` tables: ``example.com`` covers
    ``example.com`` and ``www.example.com``, not ``badexample.com``.
    """
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    name = name.lower().rstrip(".")
    best: str | None = None
    for pattern in patterns:
        bare = pattern.lower().strip().lstrip(".").rstrip(".")
        if pattern.lower() == host.lower() or bare == name:
            return pattern
        if name.endswith("." + bare) and (best is None or len(pattern) > len(best)):
            best = pattern
    return best


def client_context(ca_file: str) -> ssl.SSLContext:
    """The verifying context: the system's CAs, plus ``ca_file``'s when given.

    Raises ConfigError naming ``ca_file`` when the bundle cannot be read or
    holds no certificate, so a worker refuses to start rather than failing
    every HTTPS fetch.
    """
    context = ssl.create_default_context()
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except FileNotFoundError:
            raise ConfigError("ca_file", f"no such file: {ca_file}") from None
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError("ca_file", f"not a PEM bundle of CA certificates: {ca_file} "
                              f"({exc})") from None
    return context


class TLSPolicy:
    """What each request's ``ssl=`` is: the verifying context, or False for an insecure host."""

    def __init__(self, ca_file: str, insecure_hosts: tuple[str, ...]) -> None:
        self.context = client_context(ca_file)
        self.insecure_hosts = insecure_hosts
        self._warned: set[str] = set()

    def use(self, insecure_hosts: tuple[str, ...]) -> None:
        """Changed ``tls_insecure_hosts`` (``crawl config set``), from the next request on."""
        self.insecure_hosts = insecure_hosts

    def for_host(self, host: str) -> ssl.SSLContext | bool:
        """``ssl=`` for a request to ``host``: False (not verified) only if a pattern names it.

        aiohttp keys its connection pool on this value too, so a connection
        opened unverified is never reused for a verified request.
        """
        if not self.insecure_hosts:
            return self.context
        pattern = host_matches(host, self.insecure_hosts)
        if pattern is None:
            return self.context
        if host not in self._warned:
            self._warned.add(host)
            log.warning("TLS certificates of %s are NOT verified (tls_insecure_hosts "
                        "pattern %r): anyone on the path can pose as it", host, pattern)
        return False


def certificate_error(exc: BaseException) -> errors.TLSCertificateError | None:
    """A certificate verification failure in one line, or None if ``exc`` is not one."""
    cause: BaseException | None = exc
    for _ in range(5):  # aiohttp wraps the ssl error (and is itself one): bounded walk
        if cause is None:
            break
        inner = getattr(cause, "certificate_error", None)
        if isinstance(inner, BaseException) and inner is not cause:
            cause = inner
        elif isinstance(cause, ssl.SSLCertVerificationError):
            break
        else:
            cause = getattr(cause, "os_error", None) or cause.__cause__
    if not isinstance(cause, ssl.SSLCertVerificationError):
        return None
    code = getattr(cause, "verify_code", None)
    detail = getattr(cause, "verify_message", None) or str(cause) or "no reason given"
    reason = _REASONS.get(code) if isinstance(code, int) else None
    if reason is None:
        return errors.TLSCertificateError(f"certificate rejected: {detail}")
    return errors.TLSCertificateError(f"{reason} ({detail}, OpenSSL verify code {code})")

"""The SSRF guard: which addresses a fetch may connect to.

Checked on the addresses DNS actually returns (``GuardedResolver``) and on IP
literals before connecting (``check_literal_address``), so a public name that
points at 169.254.169.254 or 127.0.0.1 is refused, on every redirect hop too.
Special-use names (``*.invalid``, ``*.onion``) fail without a DNS query.
"""

from __future__ import annotations

import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from crawler import errors
from crawler.urls import hostname

LOCAL_NXDOMAIN = (".invalid", ".onion")
"""Special-use names that fail at once, never asked of DNS (RFC 6761 6.4, RFC 7686)."""
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class Blocked(OSError):
    """Raised inside the resolver; aiohttp wraps OSErrors from resolvers."""


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries and would reach: mapped, 6to4 or NAT64."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public(ip: IPAddress) -> bool:
    """True only for globally routable unicast addresses.

    ``is_global`` alone is False for private, loopback, link-local (cloud
    metadata), CGNAT, documentation and unspecified ranges, but True for
    multicast, and for IPv4-compatible (::a.b.c.d) and site-local IPv6.
    """
    refused = ip.is_multicast or ip.is_reserved or ip.is_unspecified
    if isinstance(ip, ipaddress.IPv6Address):
        refused |= ip.is_site_local
    return ip.is_global and not refused


class AddressPolicy:
    """Which IP addresses a fetch may connect to (the SSRF guard)."""

    def __init__(self, allow_private: bool = False, allow_cidrs: tuple[str, ...] = ()) -> None:
        self.allow_private = allow_private
        self.allowed = [ipaddress.ip_network(c, strict=False) for c in allow_cidrs]

    def permits(self, address: str) -> bool:
        if self.allow_private:
            return True
        try:
            ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address):
            ip = _embedded_ipv4(ip) or ip
        if any(ip in net for net in self.allowed):
            return True
        return is_public(ip)


def is_special_use_name(host: str) -> bool:
    name = host.rstrip(".").lower()
    return ("." + name).endswith(LOCAL_NXDOMAIN)


class GuardedResolver(AbstractResolver):
    """Resolves with the default resolver, then drops addresses the policy refuses.

    Checking what DNS actually returned (not the name) is what stops a public
    name that points at 169.254.169.254 or 127.0.0.1. Special-use names such
    as ``*.invalid`` fail here without a query leaving the machine.
    """

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self.inner = inner or DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        if is_special_use_name(host):
            raise socket.gaierror(socket.EAI_NONAME, f"{host}: special-use name, not resolved")
        results = await self.inner.resolve(host, port, family)
        allowed = [r for r in results if self.policy.permits(r["host"])]
        if not allowed:
            raise Blocked(f"{host} resolves only to blocked addresses "
                           f"({', '.join(r['host'] for r in results)})")
        return allowed

    async def close(self) -> None:
        await self.inner.close()


def check_literal_address(url: str, policy: AddressPolicy) -> None:
    """aiohttp skips the resolver for IP literals, so check those before connecting."""
    host = hostname(url).strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return
    if not policy.permits(host):
        raise errors.BlockedAddress(f"{host} is a blocked address")

"""The outbound guard: which addresses a target call may reach.

A scheduler calls URLs its users give it, so unguarded it is a tool for reaching what only it can
reach (server-side request forgery). The guard judges the *resolved* address at call time, and
the connection goes to the address it judged, so a name that resolves elsewhere later (DNS
rebinding) gains nothing. Link-local and cloud metadata addresses are always refused; private,
loopback and other non-public ranges only when asked to, with an allow-list for exceptions.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from kairos.settings import Settings

__all__ = ["GuardedResolver", "OutboundGuard", "OutboundRefused"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Never called, whatever the settings: instance metadata services hand out cloud credentials.
ALWAYS_REFUSED: tuple[tuple[IPNetwork, str], ...] = (
    (ipaddress.ip_network("169.254.0.0/16"), "link-local (cloud metadata)"),
    (ipaddress.ip_network("fd00:ec2::254/128"), "cloud metadata"),
    (ipaddress.ip_network("fe80::/10"), "link-local"),
)
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT: not public either


class OutboundRefused(OSError):
    """A target address the guard refuses; the message says which and why."""


class OutboundGuard:
    """Judges addresses. ``allow`` holds networks (``10.1.0.0/16``, ``192.168.1.5``) and host
    names (``billing.internal``) exempt from ``block_private``; never from the always-refused."""

    def __init__(self, *, block_private: bool, allow: Iterable[str] = ()) -> None:
        self.block_private = block_private
        self._allowed_networks: list[IPNetwork] = []
        self._allowed_hosts: set[str] = set()
        for entry in allow:
            entry = entry.strip()
            if not entry:
                continue
            try:
                self._allowed_networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self._allowed_hosts.add(entry.lower().rstrip("."))
        self._literals: dict[str, str | None] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboundGuard:
        return cls(block_private=settings.block_private_networks, allow=settings.allowed_networks)

    def refusal(self, host: str, address: str) -> str | None:
        """Why ``host``, resolved to ``address``, may not be called; None if it may."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # ::ffff:169.254.169.254 is 169.254.169.254
        for network, kind in ALWAYS_REFUSED:
            if ip in network:
                return f"{_named(host, ip)} is a {kind} address, which is never called"
        if not self.block_private or not _non_public(ip):
            return None
        if host.lower().rstrip(".") in self._allowed_hosts:
            return None
        if any(ip in network for network in self._allowed_networks):
            return None
        return (
            f"{_named(host, ip)} is a private or loopback address, refused because "
            "KAIROS_BLOCK_PRIVATE_NETWORKS is on (KAIROS_ALLOWED_NETWORKS lists exceptions)"
        )

    def check_literal(self, host: str) -> None:
        """Raise ``OutboundRefused`` if ``host`` is an IP address the guard refuses. (Names are
        judged by ``GuardedResolver`` when they are resolved.) Cached: it is on every call."""
        try:
            reason = self._literals[host]
        except KeyError:
            bare = host[1:-1] if host.startswith("[") else host
            try:
                reason = self.refusal(host, bare)
            except ValueError:
                reason = None  # a name, not an address
            if len(self._literals) < 10_000:
                self._literals[host] = reason
        if reason is not None:
            raise OutboundRefused(reason)


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, keeping only the addresses the guard allows (none: refused)."""

    def __init__(self, guard: OutboundGuard, inner: AbstractResolver | None = None) -> None:
        self._guard = guard
        self._inner = inner or aiohttp.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed, reasons = [], []
        for result in results:
            reason = self._guard.refusal(host, result["host"])
            if reason is None:
                allowed.append(result)
            else:
                reasons.append(reason)
        if not allowed:
            raise OutboundRefused(reasons[0] if reasons else f"{host} resolves to no address")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def _non_public(ip: IPAddress) -> bool:
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_unspecified
        or ip.is_reserved
        or ip.is_multicast
        or ip in _SHARED
    )


def _named(host: str, ip: IPAddress) -> str:
    return str(ip) if host.strip("[]") == str(ip) else f"{host} ({ip})"

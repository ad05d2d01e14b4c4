"""Who sent a request, when it came through the load balancers in front of the daemon.

The audit trail (`jarvis.telemetry.audit`) records it for the admin API and the
status page, and the status page's login throttle keys on it.
On ECS behind an ALB or on Cloud Run behind Google's front end, every request
arrives from a proxy's address; ``http.trusted_proxies`` names those networks.
Each trusted proxy appends the address it was connected from to
``X-Forwarded-For``, so, read from the right, the entries are written by
trusted proxies up to the first that is not one: that is the client. What is
left of it the client wrote itself, so it is never read. A peer outside the
trusted networks is the client, whatever it forwards; an entry a trusted proxy
would not write (not an address) stops the walk at the peer, so it never picks
a key of its own.

An entry is an address, bare or with the port the proxy saw it connect from,
as load balancers and RFC 7239 write them: ``203.0.113.7``, ``203.0.113.7:4711``,
``2001:db8::1``, ``[2001:db8::1]`` or ``[2001:db8::1]:4711``, quoted or not;
the port is dropped. An IPv4-mapped IPv6 address is its IPv4 address.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

__all__ = ["client_address", "forwarded_https", "throttle_key"]

Network = IPv4Network | IPv6Network

_PORT = re.compile(
    r":(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}"
    r"|_[A-Za-z0-9._-]+)"
)
"""``:port`` after an address: a number up to 65535, or RFC 7239's obfuscated ``_name``."""


def client_address(peer: str | None, forwarded: Sequence[str], trusted: Sequence[Network]) -> str:
    """The client's address: ``peer`` unless it is a trusted proxy (see the module docstring).

    ``forwarded`` is every ``X-Forwarded-For`` header of the request, in order.
    """
    client = peer or "unknown"
    address = _address(client)
    if not trusted or address is None or not _trusted(address, trusted):
        return client
    hops = [hop.strip() for header in forwarded for hop in header.split(",")]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            return client
        client = str(address)
        if not _trusted(address, trusted):
            return client
    # No header, or every hop a trusted proxy: the request began inside their networks.
    return client


def forwarded_https(peer: str | None, proto: Sequence[str], trusted: Sequence[Network]) -> bool:
    """Whether a trusted proxy says the client came over https (``X-Forwarded-Proto``).

    ``proto`` is every ``X-Forwarded-Proto`` header; the right-most entry is the
    nearest proxy's. From a peer outside the trusted networks it is never read.
    """
    address = _address(peer or "")
    if address is None or not _trusted(address, trusted):
        return False
    entries = [entry.strip().lower() for header in proto for entry in header.split(",")]
    return bool(entries) and entries[-1] == "https"


def throttle_key(client: str) -> str:
    """What the login throttle counts ``client`` (a `client_address`) under.

    An IPv4 address is one client. An IPv6 client is its /64: a host is given
    a whole /64 (SLAAC, privacy addresses, RFC 6177), so counting each address
    would let it pick a fresh key per guess. An IPv4-mapped address is its IPv4.
    """
    address = _address(client)
    if isinstance(address, IPv6Address):
        return str(IPv6Network((address, 64), strict=False))
    return client if address is None else str(address)


def _address(text: str) -> IPv4Address | IPv6Address | None:
    """The address an entry names, without its port; None for anything else."""
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    address = _ip(text)
    if address is None and text.startswith("["):
        inside, bracket, rest = text[1:].partition("]")
        address = _ip(inside) if bracket and (not rest or _PORT.fullmatch(rest)) else None
        if not isinstance(address, IPv6Address):
            return None  # only an IPv6 address is written in brackets
    elif address is None:
        host, colon, port = text.partition(":")
        address = _ip(host) if colon and _PORT.fullmatch(colon + port) else None
        if not isinstance(address, IPv4Address):
            return None  # an IPv6 address with a port is written in brackets
    # A dual-stack listener reports an IPv4 peer as ::ffff:a.b.c.d.
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _ip(text: str) -> IPv4Address | IPv6Address | None:
    try:
        return ip_address(text)
    except ValueError:
        return None


def _trusted(address: IPv4Address | IPv6Address, trusted: Sequence[Network]) -> bool:
    return any(address in network for network in trusted)

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
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

__all__ = ["client_address"]

Network = IPv4Network | IPv6Network


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


def _address(text: str) -> IPv4Address | IPv6Address | None:
    try:
        address = ip_address(text)
    except ValueError:
        return None
    # A dual-stack listener reports an IPv4 peer as ::ffff:a.b.c.d.
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: IPv4Address | IPv6Address, trusted: Sequence[Network]) -> bool:
    return any(address in network for network in trusted)

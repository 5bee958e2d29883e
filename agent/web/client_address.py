"""Who is really asking, when a reverse proxy stands in front: the client's address from X-Forwarded-For, believed
only as far as the hops are proxies the admin trusts (`[http] trusted_proxies`).

The header is walked from the right (the hop nearest to us) past every trusted proxy; the first address that is
not one is the client. Anything to its left was written by the client itself and could be forged, so it is never
read. A connection from an untrusted peer keeps its own address whatever it sends.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_network(text: str) -> Network | None:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None


def parse_hop(text: str) -> Address | None:
    """One X-Forwarded-For entry: `203.0.113.7`, `2001:db8::1`, and the forms with a port some proxies write
    (`203.0.113.7:51234`, `[2001:db8::1]:51234`)."""
    hop = text.strip()
    if hop.startswith("["):
        hop = hop[1 : hop.find("]")] if "]" in hop else ""
    elif hop.count(":") == 1:
        hop = hop.partition(":")[0]
    try:
        address = ipaddress.ip_address(hop)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_trusted(address: Address, trusted: Iterable[Network]) -> bool:
    return any(address.version == net.version and address in net for net in trusted)


def client_address(peer: str | None, forwarded_for: Iterable[str], trusted: tuple[Network, ...]) -> str | None:
    """The client's address: `peer` itself unless it is a trusted proxy, else the nearest untrusted hop of
    X-Forwarded-For (every header line in order, each a comma-separated list)."""
    if peer is None or not trusted:
        return peer
    current = parse_hop(peer)
    if current is None or not is_trusted(current, trusted):
        return peer
    hops = [hop for line in forwarded_for for hop in line.split(",") if hop.strip()]
    for text in reversed(hops):
        hop = parse_hop(text)
        if hop is None:  # garbage in the chain: the last proxy we trust is the best we know
            break
        current = hop
        if not is_trusted(hop, trusted):
            break
    return str(current)

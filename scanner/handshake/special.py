"""Special-purpose addresses (RFC 6890): where no mail server of the internet is.

An MX host's A or AAAA record can name any address, and some name private,
loopback, link-local, documentation or multicast ones, by mistake or to
point a scanner at something it must not touch (the scanner's own host, a
network behind it). No packet goes to such an address unless the scan allows
its range explicitly (``--allow-range``, as a scan of the testbed on
127.0.0.0/8 does): it is recorded as ``reserved`` instead.

The table is the IANA IPv4 and IPv6 Special-Purpose Address Registries
(RFC 6890 section 2.2, updated by RFC 8190), as of 2025, every entry whose
"Globally Reachable" is False, plus the multicast blocks, which are no
unicast destinations at all (RFC 5771 section 3, RFC 4291 section 2.7). A
block the registry marks as not reachable keeps its globally reachable
sub-allocations (anycast for PCP and TURN, AMT, ORCHIDv2, Teredo) inside it:
they name protocol services, never a mail server. Left out, because they
are globally reachable: the AS112 blocks, 64:ff9b::/96 (NAT64), 2002::/16
(6to4).

IPv4-mapped IPv6 addresses (::ffff:0:0/96, RFC 4291 section 2.5.5.2) are
special as a whole: a connection to one is an IPv4 connection, so the
mapped address is judged against the IPv4 entries where it is allowed.
Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from scanner.handshake.exclude import IPAddress, IPNetwork, Ranges


@dataclass(frozen=True, slots=True)
class SpecialRange:
    """One block of the registry: where it is, what it is for, who says so."""

    network: IPNetwork
    name: str
    reference: str  # the RFC, and section, that reserves it


def _entry(cidr: str, name: str, reference: str) -> SpecialRange:
    return SpecialRange(ipaddress.ip_network(cidr), name, reference)


# Nested blocks are all listed: a lookup names the narrowest one holding the
# address (192.0.0.8/32 "IPv4 dummy address" within 192.0.0.0/24).
SPECIAL_PURPOSE: tuple[SpecialRange, ...] = (
    # IANA IPv4 Special-Purpose Address Registry.
    _entry("0.0.0.0/32", "this host on this network", "RFC 1122 section 3.2.1.3"),
    _entry("0.0.0.0/8", "this network", "RFC 791 section 3.2"),
    _entry("10.0.0.0/8", "private use", "RFC 1918"),
    _entry("100.64.0.0/10", "shared address space (carrier-grade NAT)", "RFC 6598"),
    _entry("127.0.0.0/8", "loopback", "RFC 1122 section 3.2.1.3"),
    _entry("169.254.0.0/16", "link local", "RFC 3927"),
    _entry("172.16.0.0/12", "private use", "RFC 1918"),
    _entry("192.0.0.0/29", "IPv4 service continuity prefix", "RFC 7335"),
    _entry("192.0.0.8/32", "IPv4 dummy address", "RFC 7600"),
    _entry("192.0.0.170/31", "NAT64/DNS64 discovery", "RFC 8880"),
    _entry("192.0.0.0/24", "IETF protocol assignments", "RFC 6890 section 2.1"),
    _entry("192.0.2.0/24", "documentation (TEST-NET-1)", "RFC 5737"),
    _entry("192.88.99.0/24", "deprecated 6to4 relay anycast", "RFC 7526"),
    _entry("192.168.0.0/16", "private use", "RFC 1918"),
    _entry("198.18.0.0/15", "benchmarking", "RFC 2544"),
    _entry("198.51.100.0/24", "documentation (TEST-NET-2)", "RFC 5737"),
    _entry("203.0.113.0/24", "documentation (TEST-NET-3)", "RFC 5737"),
    _entry("224.0.0.0/4", "multicast", "RFC 5771"),
    _entry("255.255.255.255/32", "limited broadcast", "RFC 8190, RFC 919 section 7"),
    _entry("240.0.0.0/4", "reserved", "RFC 1112 section 4"),
    # IANA IPv6 Special-Purpose Address Registry.
    _entry("::/128", "unspecified address", "RFC 4291 section 2.5.2"),
    _entry("::1/128", "loopback address", "RFC 4291 section 2.5.3"),
    _entry("::ffff:0:0/96", "IPv4-mapped address", "RFC 4291 section 2.5.5.2"),
    _entry("64:ff9b:1::/48", "local-use IPv4/IPv6 translation", "RFC 8215"),
    _entry("100::/64", "discard-only address block", "RFC 6666"),
    _entry("2001:2::/48", "benchmarking", "RFC 5180"),
    _entry("2001::/23", "IETF protocol assignments", "RFC 2928"),
    _entry("2001:db8::/32", "documentation", "RFC 3849"),
    _entry("3fff::/20", "documentation", "RFC 9637"),
    _entry("5f00::/16", "segment routing SIDs", "RFC 9602"),
    _entry("fc00::/7", "unique local", "RFC 4193"),
    _entry("fe80::/10", "link-local unicast", "RFC 4291 section 2.5.6"),
    _entry("ff00::/8", "multicast", "RFC 4291 section 2.7"),
)


def _ranges(version: int) -> Ranges:
    return Ranges.merge(
        (int(s.network.network_address), int(s.network.broadcast_address))
        for s in SPECIAL_PURPOSE
        if s.network.version == version
    )


# One binary search says whether an address is special at all; the table is
# walked only for the (rare) address that is, to name its block.
_V4 = _ranges(4)
_V6 = _ranges(6)


def special_purpose(address: IPAddress) -> SpecialRange | None:
    """The narrowest special-purpose block holding ``address``; None for an
    address of the global internet."""
    if int(address) not in (_V4 if address.version == 4 else _V6):
        return None
    found = [s for s in SPECIAL_PURPOSE if address in s.network]
    return max(found, key=lambda s: s.network.prefixlen)

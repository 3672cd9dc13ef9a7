"""The zone files of the testbed's DNS tree: validation of the zone list,
and the text of each zone with its delegations, glue and DS records
(RFC 1034 section 4.2, RFC 4035 section 2.4; the SOA minimum is the
negative-caching TTL of RFC 2308).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from testbed.dns.keys import ZoneKey
from testbed.model import DsMode, Zone
from testbed.procs import TestbedError

TTL = 3600
# SOA refresh, retry, expire, minimum. The minimum is the negative-caching TTL
# (RFC 2308), kept short so that a rebuilt testbed is seen soon.
_SOA_TIMERS = "3600 900 604800 300"

_LABEL = re.compile(r"[a-z0-9_-]{1,63}")


def layer_of(origin: str) -> int:
    """0 for the root, 1 for a TLD, 2 for anything deeper."""
    return min(2, origin.rstrip(".").count(".") + 1) if origin != "." else 0


@dataclass(frozen=True, slots=True)
class _Delegation:
    origin: str
    address: str
    ds: str | None


def require_loopback(label: str, address: str) -> None:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise TestbedError(f"{label} address {address!r} is not an IP address") from None
    if not ip.is_loopback:
        raise TestbedError(
            f"{label} address {address} is not loopback: the testbed stays on 127.0.0.0/8 or ::1"
        )


def index_zones(zones: Iterable[Zone]) -> dict[str, Zone]:
    by_origin: dict[str, Zone] = {}
    stems: dict[str, str] = {}
    for zone in zones:
        origin = zone.origin
        if origin != "." and not (
            origin.endswith(".") and all(_LABEL.fullmatch(x) for x in origin[:-1].split("."))
        ):
            raise TestbedError(f"zone origin {origin!r} is not an absolute lower-case name")
        if origin in by_origin:
            raise TestbedError(f"zone {origin} is defined twice")
        stem = file_stem(origin)
        if stem in stems:
            raise TestbedError(f"zones {stems[stem]} and {origin} would share a file")
        stems[stem] = origin
        if zone.server is not None:
            require_loopback(f"the server of zone {origin}", zone.server)
        by_origin[origin] = zone
    if "." not in by_origin:
        raise TestbedError("no root zone: the zone list must contain '.'")
    if by_origin["."].lame or not by_origin["."].signed:
        raise TestbedError("the root zone must be signed and served")
    return by_origin


def file_stem(origin: str) -> str:
    return "_root" if origin == "." else origin[:-1]


def _parent(origin: str, origins: dict[str, Zone]) -> str:
    """The longest other origin that is a proper suffix of ``origin``."""
    rest = origin
    while True:
        rest = rest.split(".", 1)[1] or "."
        if rest in origins:
            return rest


def delegations_by_parent(
    by_origin: dict[str, Zone], *, auth_address: str, lame_address: str, key: ZoneKey
) -> dict[str, list[_Delegation]]:
    """For each parent origin, the child zones it delegates."""
    result: dict[str, list[_Delegation]] = {}
    for origin, zone in by_origin.items():
        if origin == ".":
            continue
        ds: str | None = None
        # An unsigned child has no key, so no DS whatever the mode says.
        if zone.signed and zone.parent_ds is not DsMode.NONE:
            ds = key.ds_text(origin, wrong=zone.parent_ds is DsMode.WRONG)
        address = lame_address if zone.lame else (zone.server or auth_address)
        result.setdefault(_parent(origin, by_origin), []).append(_Delegation(origin, address, ds))
    return result


def address_type(address: str) -> str:
    return "AAAA" if ":" in address else "A"


def render_zone(zone: Zone, children: Iterable[_Delegation], *, address: str, key: ZoneKey) -> str:
    """The zone file: apex SOA, NS and its address, the DNSKEY if signed, the
    zone's records, then one delegation (NS, glue, DS) per child. Every name is
    absolute, so no $ORIGIN is needed."""
    origin = zone.origin
    ns = f"ns1.{origin}" if origin != "." else "ns1."
    lines = [
        f"{origin} {TTL} IN SOA {ns} hostmaster.{origin if origin != '.' else ''} 1 {_SOA_TIMERS}",
        f"{origin} {TTL} IN NS {ns}",
        f"{ns} {TTL} IN {address_type(address)} {address}",
    ]
    if zone.signed:
        lines.append(f"{origin} {TTL} IN DNSKEY {key.dnskey_text}")
    suffix = "." + origin if origin != "." else ""
    for r in zone.records:
        if suffix and r.owner != origin and not r.owner.endswith(suffix):
            raise TestbedError(f"record {r.owner} {r.rtype} is outside zone {origin}")
        lines.append(f"{r.owner} {r.ttl} IN {r.rtype} {r.rdata}")
    for child in children:
        child_ns = f"ns1.{child.origin}"
        lines.append(f"{child.origin} {TTL} IN NS {child_ns}")
        lines.append(f"{child_ns} {TTL} IN {address_type(child.address)} {child.address}")
        if child.ds is not None:
            lines.append(f"{child.origin} {TTL} IN DS {child.ds}")
    lines.append("")
    return "\n".join(lines)

"""The scan's exclusion list (``--exclude FILE``): who must never be contacted.

Operators who ask to be left out of a survey name networks or domains; the
handshake stage checks every address and name against this list before any
packet is sent, and an excluded address is recorded as ``blocked``.

File format, one entry per line:

- an IPv4 or IPv6 address, or a network in CIDR notation (RFC 4632, RFC 4291
  section 2.3); host bits after the prefix are ignored, so ``192.0.2.7/24``
  excludes all of ``192.0.2.0/24``, the wider and therefore safer reading;
- a domain name, which excludes the name and every name below it; ``*.`` or a
  leading dot mean the same; IDNs are taken in Unicode or as A-labels;
- ``#`` starts a comment; blank lines are ignored. A line that is none of the
  above is reported with its number and otherwise ignored.

IPv4-mapped IPv6 addresses (RFC 4291 section 2.5.5.2) are checked against the
IPv4 entries as well. Lookups cost one binary search per address family over
merged ranges and one set lookup per label of a name, whatever the list size.
Pure: no file or network I/O here.
"""

from __future__ import annotations

import ipaddress
import re
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass

import idna

from scanner import names

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Letters, digits, hyphens (and underscores, seen in real zones), 1-63 per label.
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line of the exclusion file that was not understood (and is ignored)."""

    line_no: int  # 1-based
    text: str
    reason: str


@dataclass(frozen=True, slots=True)
class Ranges:
    """Disjoint, sorted, non-adjacent integer ranges [start, end] of one address family."""

    starts: tuple[int, ...] = ()
    ends: tuple[int, ...] = ()

    @classmethod
    def merge(cls, ranges: Iterable[tuple[int, int]]) -> Ranges:
        starts: list[int] = []
        ends: list[int] = []
        for start, end in sorted(ranges):
            if ends and start <= ends[-1] + 1:
                ends[-1] = max(ends[-1], end)
            else:
                starts.append(start)
                ends.append(end)
        return cls(tuple(starts), tuple(ends))

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, int):
            return False
        i = bisect_right(self.starts, value) - 1
        return i >= 0 and value <= self.ends[i]

    def __len__(self) -> int:
        return len(self.starts)


@dataclass(frozen=True, slots=True)
class Exclusions:
    """Networks and domains a scan must not contact. The default excludes nothing."""

    v4: Ranges = Ranges()
    v6: Ranges = Ranges()
    # Normalised: lower case A-labels, no trailing dot.
    domains: frozenset[str] = frozenset()

    @classmethod
    def build(cls, networks: Iterable[IPNetwork], domains: Iterable[str] = ()) -> Exclusions:
        v4: list[tuple[int, int]] = []
        v6: list[tuple[int, int]] = []
        for network in networks:
            bounds = (int(network.network_address), int(network.broadcast_address))
            (v4 if network.version == 4 else v6).append(bounds)
        return cls(Ranges.merge(v4), Ranges.merge(v6), frozenset(domains))

    def __bool__(self) -> bool:
        return bool(self.v4 or self.v6 or self.domains)

    def is_excluded(self, address: IPAddress | str, names: Iterable[str] = ()) -> bool:
        """Whether the address, or any of the names, is on the list.

        ``address`` must be an IP address (a string is parsed, and a string
        that is no address raises ValueError: that is the caller's bug, not
        input). ``names`` are the host names the address stands for, e.g. the
        MX host, the SNI name and the mail domain.
        """
        return self.address_excluded(address) or any(self.name_excluded(n) for n in names)

    def address_excluded(self, address: IPAddress | str) -> bool:
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        if ip.version == 4:
            return int(ip) in self.v4
        mapped = ip.ipv4_mapped
        return int(ip) in self.v6 or (mapped is not None and int(mapped) in self.v4)

    def name_excluded(self, name: str) -> bool:
        if not self.domains:
            return False
        labels = names.key(name).split(".")
        return any(".".join(labels[i:]) in self.domains for i in range(len(labels)))


@dataclass(frozen=True, slots=True)
class ParsedExclusions:
    exclusions: Exclusions
    bad_lines: tuple[BadLine, ...]


def parse_exclusions(lines: Iterable[str]) -> ParsedExclusions:
    """Parse the lines of an exclusion file; bad lines are reported, not fatal."""
    networks: list[IPNetwork] = []
    domains: list[str] = []
    bad: list[BadLine] = []
    for line_no, line in enumerate(lines, start=1):
        text = line.partition("#")[0].strip()
        if not text:
            continue
        try:
            entry = _parse_entry(text)
        except ValueError as exc:
            bad.append(BadLine(line_no, line.rstrip("\r\n"), str(exc)))
            continue
        if isinstance(entry, str):
            domains.append(entry)
        else:
            networks.append(entry)
    return ParsedExclusions(Exclusions.build(networks, domains), tuple(bad))


def _parse_entry(text: str) -> IPNetwork | str:
    """A network, or a normalised domain name; ValueError says why it is neither."""
    if len(text.split()) > 1:
        raise ValueError("more than one entry on a line")
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        if ":" in text or "/" in text or text.replace(".", "").isdigit():
            raise ValueError(f"not an address or network: {exc}") from None
    name = names.relative(text.removeprefix("*.").removeprefix("."))
    if not name.isascii():
        try:
            name = idna.encode(name, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise ValueError(f"not a domain name: {exc}") from None
    name = name.lower()
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError("neither an address, a network nor a domain name")
    if labels[-1].isdigit():
        # An all-numeric top label is a mistyped address, not a name.
        raise ValueError("neither an address, a network nor a domain name")
    return name

"""The data a testbed is built from: zones for the DNS side, listeners for the
mail side. Produced by testbed.plan (pure), consumed by testbed.dns and
testbed.responder. Names are absolute and lower case, with the trailing dot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class Record:
    """A resource record in presentation format: ("a.example.", 300, "MX", "10 mx.a.example.")."""

    owner: str
    ttl: int
    rtype: str
    rdata: str


class DsMode(StrEnum):
    """What the parent publishes for a child zone."""

    NONE = "none"  # insecure delegation (or unsigned child)
    MATCH = "match"  # DS of the child's key: a secure delegation
    WRONG = "wrong"  # a DS that matches no key of the child: bogus


@dataclass(frozen=True, slots=True)
class Zone:
    """A zone served by the authoritative server.

    The DNS backend adds the apex SOA and NS records, the delegation (NS, glue
    and DS per ``parent_ds``) in the parent zone (the longest other zone that is a
    proper suffix), and signs the zone when ``signed``.
    """

    origin: str
    records: tuple[Record, ...] = ()
    signed: bool = True
    parent_ds: DsMode = DsMode.MATCH
    # The delegation points at an address where no server listens: SERVFAIL.
    lame: bool = False
    # All signatures already expired when the zone is served: bogus.
    expired: bool = False
    # (owner, rtype) whose RRSIG is corrupted after signing: that RRset is bogus.
    corrupt_rrsets: tuple[tuple[str, str], ...] = ()


class Behavior(StrEnum):
    """How a mail host on one address behaves on port 25."""

    STARTTLS = "starttls"  # 220 banner, EHLO with STARTTLS, TLS handshake
    NO_STARTTLS = "no_starttls"  # EHLO without STARTTLS
    STARTTLS_454 = "starttls_454"  # STARTTLS offered, answered 454
    SILENT = "silent"  # accepts the connection and never speaks


@dataclass(frozen=True, slots=True)
class Listener:
    """Port 25 on one loopback address. A host whose connection must be refused
    simply has no listener."""

    address: str
    behavior: Behavior = Behavior.STARTTLS
    # SNI name (absolute, no trailing dot, lower case) -> chain id; the chain is
    # the PEM file pki/<chain id>.pem (leaf first) with key pki/<chain id>.key.
    chains: dict[str, str] = field(default_factory=dict)
    # Chain presented when the SNI is absent or unknown.
    default_chain: str | None = None

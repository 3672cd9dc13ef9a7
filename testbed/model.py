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
    # The address its delegation and its own NS record point at: a DNS
    # operator of the internet profile (testbed.relay); None: the
    # authoritative server itself.
    server: str | None = None


class Behavior(StrEnum):
    """How a mail host on one address behaves on port 25."""

    STARTTLS = "starttls"  # 220 banner, EHLO with STARTTLS, TLS handshake
    NO_STARTTLS = "no_starttls"  # EHLO without STARTTLS
    STARTTLS_454 = "starttls_454"  # STARTTLS offered, answered 454
    SILENT = "silent"  # accepts the connection and never speaks
    # Every byte of every reply a second apart, as OpenBSD spamd stutters at
    # the hosts it tarpits: a banner takes longer than any session deadline.
    TARPIT = "tarpit"
    # STARTTLS accepted, then every TLS handshake reset (RST) once the
    # client's hello has arrived, as a broken middlebox does.
    TLS_RESET = "tls_reset"


@dataclass(frozen=True, slots=True)
class Pushback:
    """How a mail host on one address pushes back on its clients, as real
    mail servers do (the internet profile draws these, testbed.profile; the
    defaults push back on nobody, as on the loopback profile).

    Every one of these gives way to a client that waits and retries
    reasonably: the host then serves normally, so the truth is unchanged.
    A "client" is one source address.
    """

    # Seconds before the 220 greeting (Sendmail's greet_pause, postscreen's
    # greeting wait).
    greeting_delay: float = 0.0
    # Greylisting: EHLO and HELO are answered 450 from a client's first
    # connection until this many seconds after it; the first connection
    # after that passes and the client is remembered.
    greylist_window: float | None = None
    # 421 and close for a connection beyond this many open at once from one
    # client (Postfix's smtpd_client_connection_count_limit).
    max_concurrent: int | None = None
    # 421 and close for a connection beyond this many in the last 60 s from
    # one client (Postfix's smtpd_client_connection_rate_limit).
    max_per_minute: int | None = None
    # Seconds between the client's TLS hello and the server's first flight.
    tls_delay: float = 0.0
    # The first TLS handshake from each client is reset midway; later ones succeed.
    reset_first_handshake: bool = False

    def __post_init__(self) -> None:
        if min(self.greeting_delay, self.tls_delay) < 0:
            raise ValueError("delays cannot be negative")
        if self.greylist_window is not None and self.greylist_window < 0:
            raise ValueError("greylist_window cannot be negative")
        for limit in (self.max_concurrent, self.max_per_minute):
            if limit is not None and limit < 1:
                raise ValueError("connection limits must be at least 1")

    @property
    def is_default(self) -> bool:
        return self == NO_PUSHBACK


NO_PUSHBACK = Pushback()


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
    pushback: Pushback = NO_PUSHBACK
    # EHLO keywords offered only over TLS, beside the usual ones (REQUIRETLS,
    # RFC 8689 section 4.1: it means nothing in plaintext).
    tls_extensions: tuple[str, ...] = ()


class StsServe(StrEnum):
    """How https://mta-sts.<domain>/.well-known/mta-sts.txt answers (RFC 8461
    section 3.3 says what a sender accepts: 200, text/plain, a certificate
    valid for the name by the WebPKI, no redirect)."""

    POLICY = "policy"  # 200, text/plain, the policy
    NOT_FOUND = "not_found"  # 404
    REDIRECT = "redirect"  # 301 to another URL (never followed)
    WRONG_MEDIA_TYPE = "wrong_media_type"  # 200, the policy as text/html
    TOO_LARGE = "too_large"  # 200, text/plain, a body over 64 KiB
    WRONG_NAME = "wrong_name"  # the policy under a certificate for another name
    UNTRUSTED = "untrusted"  # the policy under a certificate from a private CA
    NO_HTTPS = "no_https"  # the name has an address; nothing listens on 443
    NO_ADDRESS = "no_address"  # the name has no address record


@dataclass(frozen=True, slots=True)
class HttpsSite:
    """mta-sts.<domain> on port 443 of one loopback address, served by nginx
    (testbed.nginx). A site that serves nothing (NO_HTTPS, NO_ADDRESS) is kept
    for people and tests to see what was laid out."""

    name: str  # mta-sts.<domain>, no trailing dot, lower case
    serve: StsServe
    address: str | None = None
    # The AAAA beside the A (::1, shared by every IPv6 site of the testbed).
    address6: str | None = None
    # The chain pki/<chain id>.pem presented for the name; None when no HTTPS.
    chain_id: str | None = None
    # What the policy URL answers with (POLICY, WRONG_MEDIA_TYPE, TOO_LARGE,
    # WRONG_NAME, UNTRUSTED).
    body: str = ""
    # The Location of a REDIRECT.
    location: str | None = None

    @property
    def served(self) -> bool:
        """Whether nginx listens for it."""
        return self.serve not in (StsServe.NO_HTTPS, StsServe.NO_ADDRESS)

    @property
    def addresses(self) -> tuple[str, ...]:
        """Its A and AAAA addresses, in that order."""
        return tuple(a for a in (self.address, self.address6) if a is not None)

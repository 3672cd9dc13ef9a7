"""Scenarios with DANE: at providers whose hosts serve many domains, and
self-hosted, one of each way to get it right or wrong.

RFC 7672 section 3.1: DANE-EE(3) matches the leaf with no name or expiry
check; DANE-TA(2) needs a valid chain to the anchor, a matching name and
nothing expired; usages 0 and 1 are unusable; one matching record suffices.
Section 2.2.2: for a CNAME the expanded name is tried first, then the
original; section 2.2.3: a SERVFAIL or bogus TLSA lookup is ``fail_dns``.
RFC 7671 section 9: per usage and selector only the strongest digest counts.
"""

from __future__ import annotations

from collections.abc import Callable

from scanner.status import DaneVerdict as V
from scanner.status import DomainVerdict as D
from testbed.builder import IPV6_ADDRESS, BesideTruth, Builder, flip_last_hex
from testbed.model import Behavior
from testbed.pki import Issued, KeyType, tlsa_rdata
from testbed.scenarios.layout import (
    Host,
    Provider,
    Records,
    dane_host,
    ee_311,
    mx_to,
    old_leaf,
    provider,
    provider_a,
    provider_b,
    provider_c,
    publish,
    self_hosted,
    unreachable,
    with_records,
)
from testbed.scenarios.registry import Laid, scenario

# -- DANE at providers (most DANE domains) -----------------------------------------


def _at_provider(make: Callable[[Builder], Provider]) -> Callable[[Builder], Laid]:
    def lay_out(b: Builder) -> Laid:
        domain, _ = b.signed_domain()
        return mx_to(b, domain, provider(b, make).hosts)

    return lay_out


for _name, _weight, _make, _description in (
    ("dane_provider_a", 0.004, provider_a, "DANE-EE 3 1 1 provider, two hosts"),
    ("dane_provider_b", 0.002, provider_b, "RSA provider, 3 1 1 plus 2 1 1"),
    ("dane_provider_c", 0.001, provider_c, "provider mid-rollover, two 3 1 1"),
):
    scenario(_weight, _description, D.DANE_VALID, V.PASS, name=_name)(_at_provider(_make))


# -- self-hosted DANE ----------------------------------------------------------------


def _ee(usage: int, selector: int, mtype: int) -> Callable[[Builder], Laid]:
    """DANE-EE with the given selector and matching type, on an ECDSA or RSA key."""

    def records(b: Builder, host: Host, leaf: Issued, issuer: Issued) -> list[str]:
        return [tlsa_rdata(usage, selector, mtype, leaf)]

    def lay_out(b: Builder) -> Laid:
        kind = b.rng.choice((KeyType.ECDSA, KeyType.RSA))
        return dane_host(b, records, kind)[0].laid

    return lay_out


for _name, _weight, _params, _description in (
    ("ee_311", 0.0006, (3, 1, 1), "DANE-EE 3 1 1"),
    ("ee_301", 0.0001, (3, 0, 1), "DANE-EE 3 0 1"),
    ("ee_312", 0.0001, (3, 1, 2), "DANE-EE 3 1 2"),
    ("ee_300", 0.00005, (3, 0, 0), "DANE-EE 3 0 0 (the whole certificate)"),
    ("ee_310", 0.00005, (3, 1, 0), "DANE-EE 3 1 0 (the whole SPKI)"),
):
    scenario(_weight, _description, D.DANE_VALID, V.PASS, name=_name)(_ee(*_params))


def _ta_211(b: Builder, host: Host, leaf: Issued, issuer: Issued) -> list[str]:
    return [tlsa_rdata(2, 1, 1, issuer)]


scenario(
    0.0002,
    "DANE-TA 2 1 1 on the issuing intermediate",
    D.DANE_VALID,
    V.PASS,
    name="ta_211_intermediate",
)(with_records(_ta_211))


@scenario(0.00005, "DANE-TA 2 0 1 on a root the server sends", D.DANE_VALID, V.PASS)
def ta_201_root_sent(b: Builder) -> Laid:
    root, _ = b.public_ca(KeyType.RSA)
    host = self_hosted(b)
    leaf, issuer = b.leaf([host.name], KeyType.RSA)
    publish(b, host, tlsa_rdata(2, 0, 1, root))
    b.serve(host.address, [host.name], b.chain([leaf, issuer, root]))
    return host.laid


@scenario(0.00005, "DANE-TA 2 0 0, the anchor only in DNS", D.DANE_VALID, V.PASS)
def ta_200_not_sent(b: Builder) -> Laid:
    """The full private CA certificate is in the record; the server sends only its leaf."""
    ca = b.pki.ca("Private Mail CA", KeyType.ECDSA)
    host = self_hosted(b)
    leaf, _ = b.leaf([host.name], issuer=ca)
    publish(b, host, tlsa_rdata(2, 0, 0, ca))
    b.serve(host.address, [host.name], b.chain([leaf]))
    return host.laid


scenario(
    0.00005, "DANE-TA, leaf names another host", D.DANE_INVALID, V.FAIL_TA_NAME,
    name="ta_name_mismatch",
)(with_records(_ta_211, names=lambda host: [f"www.{host.domain}"]))  # fmt: skip
scenario(
    0.00005, "DANE-TA, expired leaf", D.DANE_INVALID, V.FAIL_TA_EXPIRED, name="ta_expired_leaf"
)(with_records(_ta_211, days_after=-3))


@scenario(0.00005, "DANE-TA, expired intermediate", D.DANE_INVALID, V.FAIL_TA_EXPIRED)
def ta_expired_intermediate(b: Builder) -> Laid:
    """The anchor (a root the server sends) is valid; the intermediate below it expired."""
    root, _ = b.public_ca(KeyType.ECDSA)
    stale = b.pki.ca("Testbed Issuing E2 (retired)", KeyType.ECDSA, issuer=root, days_after=-10)
    host = self_hosted(b)
    leaf, _ = b.leaf([host.name], issuer=stale)
    publish(b, host, tlsa_rdata(2, 0, 1, root))
    b.serve(host.address, [host.name], b.chain([leaf, stale, root]))
    return host.laid


# DANE-EE ignores names and dates (RFC 7672 section 3.1.1): passes.
scenario(
    0.00005, "DANE-EE, expired and wrongly named leaf: pass", D.DANE_VALID, V.PASS,
    name="ee_expired_wrong_name",
)(with_records(ee_311, names=lambda host: ["wrong-name.invalid"], days_after=-30))  # fmt: skip

# What each of these publishes, from the host, its leaf and the leaf's issuer.
_RECORDS: tuple[tuple[str, float, str, D, V, Records], ...] = (
    (
        "stale_after_rollover", 0.0001, "only the old key's record after a rollover",
        D.DANE_INVALID, V.FAIL_NO_MATCH,
        lambda b, host, leaf, issuer: [tlsa_rdata(3, 1, 1, old_leaf(b, host))],
    ),
    (
        "rollover_both", 0.0001, "old and new keys both published", D.DANE_VALID, V.PASS,
        lambda b, host, leaf, issuer: [
            tlsa_rdata(3, 1, 1, old_leaf(b, host)), tlsa_rdata(3, 1, 1, leaf)
        ],
    ),
    (
        "ee_and_ta", 0.0001, "3 1 1 and 2 1 1 together", D.DANE_VALID, V.PASS,
        lambda b, host, leaf, issuer: [tlsa_rdata(3, 1, 1, leaf), tlsa_rdata(2, 1, 1, issuer)],
    ),
    # Only SHA-512 counts when both digests are present (RFC 7671 section 9).
    (
        "agility_strong_right", 0.00005, "3 1 1 wrong, 3 1 2 right: pass", D.DANE_VALID, V.PASS,
        lambda b, host, leaf, issuer: [
            flip_last_hex(tlsa_rdata(3, 1, 1, leaf)), tlsa_rdata(3, 1, 2, leaf)
        ],
    ),
    (
        "agility_strong_wrong", 0.00005, "3 1 1 right, 3 1 2 wrong: fail",
        D.DANE_INVALID, V.FAIL_NO_MATCH,
        lambda b, host, leaf, issuer: [
            tlsa_rdata(3, 1, 1, leaf), flip_last_hex(tlsa_rdata(3, 1, 2, leaf))
        ],
    ),
    (
        "pkix_only", 0.00005, "only usages 0 and 1: unusable", D.DANE_INVALID, V.UNUSABLE,
        lambda b, host, leaf, issuer: [tlsa_rdata(1, 1, 1, leaf), tlsa_rdata(0, 1, 1, issuer)],
    ),
    # Usage 4 is unknown; the SHA-256 field is cut to 20 bytes: both unusable.
    (
        "malformed_records", 0.00005, "usage 4 and a 20-byte SHA-256",
        D.DANE_INVALID, V.UNUSABLE,
        lambda b, host, leaf, issuer: [
            "4" + tlsa_rdata(3, 1, 1, leaf)[1:], tlsa_rdata(3, 1, 1, leaf)[: len("3 1 1 ") + 40]
        ],
    ),
    # Over 1232 bytes: truncated over UDP, complete over TCP. The decoys share
    # the real record's usage, selector and matching type, so digest agility
    # (RFC 7671 section 9) leaves every record in play.
    (
        "big_tlsa_rrset", 0.00005, "TLSA RRset over 1232 bytes (TCP)", D.DANE_VALID, V.PASS,
        lambda b, host, leaf, issuer: [
            *(f"3 1 2 {b.rng.randbytes(64).hex()}" for _ in range(22)), tlsa_rdata(3, 1, 2, leaf)
        ],
    ),
)  # fmt: skip
for _name, _weight, _description, _verdict, _host_verdict, _records in _RECORDS:
    scenario(_weight, _description, _verdict, _host_verdict, name=_name)(with_records(_records))


@scenario(0.00005, "TLSA RRset with a corrupted signature", D.DANE_INVALID, V.FAIL_DNS)
def bogus_tlsa(b: Builder) -> Laid:
    host, _, _ = dane_host(b, ee_311)
    b.zone_of(host.name).corrupt.append((f"_25._tcp.{host.name}", "TLSA"))
    return host.laid


@scenario(0.00005, "TLSA SERVFAIL from a lame delegation", D.DANE_INVALID, V.FAIL_DNS)
def lame_tlsa(b: Builder) -> Laid:
    """_25._tcp.<host> is delegated (with a DS) to a server that never answers: SERVFAIL."""
    host, _, _ = dane_host(b, lambda b, host, leaf, issuer: [])
    b.zone(f"_25._tcp.{host.name}", lame=True)
    return host.laid


@scenario(0.00005, "no MX, TLSA at _25._tcp.<domain>", D.NO_MX_RECORD, V.PASS)
def implicit_mx_tlsa(b: Builder) -> Laid:
    """No MX: the domain is its own mail host, with TLSA at _25._tcp.<domain>."""
    domain, zone = b.signed_domain()
    address = b.new_address()
    leaf, issuer = b.leaf([domain])
    zone.add(domain, "A", address)
    zone.add(f"_25._tcp.{domain}", "TLSA", tlsa_rdata(3, 1, 1, leaf))
    b.serve(address, [domain], b.chain([leaf, issuer]))
    return Laid(domain, (domain,))


def _cname(at_expanded: bool) -> Callable[[Builder], Laid]:
    def lay_out(b: Builder) -> Laid:
        domain, zone = b.signed_domain()
        alias, target = f"mx.{domain}", f"srv.{domain}"
        address = b.new_address()
        leaf, issuer = b.leaf([target, alias])
        zone.add(domain, "MX", f"10 {alias}")
        zone.add(alias, "CNAME", target)
        zone.add(target, "A", address)
        base = target if at_expanded else alias
        zone.add(f"_25._tcp.{base}", "TLSA", tlsa_rdata(3, 1, 1, leaf))
        b.serve(address, [target, alias], b.chain([leaf, issuer]))
        return Laid(domain, (alias,))

    return lay_out


scenario(
    0.00005, "MX host is a CNAME, TLSA at the target", D.DANE_VALID, V.PASS,
    name="cname_tlsa_expanded",
)(_cname(at_expanded=True))  # fmt: skip
scenario(
    0.00005, "MX host is a CNAME, TLSA only at the alias", D.DANE_VALID, V.PASS,
    name="cname_tlsa_original",
)(_cname(at_expanded=False))  # fmt: skip


@scenario(0.00005, "two MX hosts, one fails", D.DANE_PARTIAL, (V.PASS, V.FAIL_NO_MATCH))
def two_hosts_one_fails(b: Builder) -> Laid:
    domain, zone = b.signed_domain()
    hosts = (f"mx1.{domain}", f"mx2.{domain}")
    for i, host in enumerate(hosts):
        address = b.new_address()
        leaf, issuer = b.leaf([host])
        zone.add(domain, "MX", f"{10 * (i + 1)} {host}")
        zone.add(host, "A", address)
        rdata = tlsa_rdata(3, 1, 1, leaf)
        zone.add(f"_25._tcp.{host}", "TLSA", rdata if i == 0 else flip_last_hex(rdata))
        b.serve(address, [host], b.chain([leaf, issuer]))
    return Laid(domain, hosts)


@scenario(
    0.00005,
    "one host, one of two addresses presents another key",
    D.DANE_INVALID,
    V.FAIL_NO_MATCH,
)
def two_addresses_one_wrong(b: Builder) -> Laid:
    """Every address must authenticate: one presenting another key fails the host."""
    host, _, issuer = dane_host(b, ee_311)
    other_address = b.new_address()
    b.add(host.name, "A", other_address)
    wrong = old_leaf(b, host, "wrong")
    b.serve(other_address, [host.name], b.chain([wrong, issuer]))
    return host.laid


for _name, _behavior, _description, _signs in (
    ("no_starttls", Behavior.NO_STARTTLS, "TLSA published, STARTTLS not offered",
     ("tlsa_without_starttls",)),
    ("starttls_454", Behavior.STARTTLS_454, "TLSA published, STARTTLS answered 454",
     ("starttls_rejected",)),
):  # fmt: skip
    scenario(
        0.00005, _description, D.DANE_INVALID, V.FAIL_NO_TLS, name=_name,
        beside=BesideTruth(host_downgrade=(_signs,)),
    )(unreachable(_behavior))  # fmt: skip
scenario(
    0.00005, "TLSA published, connection refused", D.DANE_INVALID, V.FAIL_NO_TLS,
    name="connect_refused",
)(unreachable(Behavior.STARTTLS, listen=False))  # fmt: skip
scenario(
    0.00005, "TLSA published, accepts and never speaks", D.DANE_INVALID, V.FAIL_NO_TLS,
    name="silent_host",
)(unreachable(Behavior.SILENT))  # fmt: skip


@scenario(0.00005, "IPv4 and IPv6 (::1) addresses", D.DANE_VALID, V.PASS, ipv6=True)
def dual_stack(b: Builder) -> Laid:
    """A host with an IPv4 and an IPv6 (::1) address, both authenticating."""
    host = self_hosted(b)
    leaf, issuer = b.leaf([host.name])
    publish(b, host, tlsa_rdata(3, 1, 1, leaf))
    chain_id = b.chain([leaf, issuer])
    b.serve(host.address, [host.name], chain_id)
    b.add(host.name, "AAAA", IPV6_ADDRESS)
    b.serve(IPV6_ADDRESS, [host.name], chain_id)
    return host.laid

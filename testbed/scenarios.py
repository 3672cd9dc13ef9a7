"""The scenario catalogue of the simulated internet, and the truth of each entry.

Each scenario lays out one mail domain with a Builder and returns what a scanner
that follows RFC 7672 must conclude: the DomainVerdict and, per MX host, the
DaneVerdict. The rules applied (DESIGN.md, "RFC 7672 rules"):

- section 2.2.1: DANE applies only when the MX RRset is secure; an insecure MX
  RRset makes every host ``no_dane_insecure``; a bogus one makes the domain
  ``dnssec_bogus``; ``0 .`` is a null MX (RFC 7505); no MX means the domain is
  its own MX host (implicit MX, RFC 5321 section 5.1).
- section 2.2.2: a host's address records must be secure before its TLSA RRset
  is used; for a CNAME the expanded name is tried first, then the original.
- section 2.2.3: a SERVFAIL or bogus TLSA lookup under a secure host is a DANE
  failure (``fail_dns``); a secure denial is ``no_dane_absent``.
- section 3.1: DANE-EE(3) matches the leaf with no name or expiry check;
  DANE-TA(2) needs a valid chain to the anchor, a matching name and nothing
  expired; usages 0 and 1 are unusable; one matching record suffices; RFC 7671
  section 9: per usage and selector only the strongest digest present is used.

Weights resemble the real internet: most domains unsigned, a few per cent
signed, about one per cent with TLSA, with DANE concentrated on a few
providers whose MX hosts serve many domains. Every non-bulk scenario appears
at least ``minimum`` times, so a small testbed still covers the catalogue.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from scanner.status import DaneVerdict as V
from scanner.status import DomainVerdict as D
from testbed.builder import (
    IPV6_ADDRESS,
    Builder,
    DomainTruth,
    HostTruth,
    flip_last_hex,
    tlsa_rdata,
)
from testbed.model import Behavior, DsMode
from testbed.pki import Issued, KeyType
from testbed.profile import OperatorKind


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    weight: float  # share of all domains
    build: Callable[[Builder], DomainTruth]
    description: str
    minimum: int = 1  # at least this many, whatever N
    bulk: bool = False  # takes its share of what the other scenarios leave
    # Serves on ::1, which only one testbed on a machine can hold (port 25).
    ipv6: bool = False
    # Only on the internet profile (a fault the loopback profile does not model).
    internet: bool = False


@dataclass(frozen=True, slots=True)
class Provider:
    hosts: tuple[str, ...]


def _truth(domain: str, verdict: D, hosts: Sequence[tuple[str, V]], scenario: str) -> DomainTruth:
    return DomainTruth(domain, scenario, verdict, tuple(HostTruth(h, v) for h, v in hosts))


# -- shared infrastructure ------------------------------------------------------


def _shared_host_address(b: Builder, pool: str = "hosting") -> str:
    """An address of an ordinary shared hoster: STARTTLS with one generic certificate
    whatever the SNI, as real shared hosts do for names they hold no certificate for."""
    key = f"{pool}-chain"
    chain_id = b.shared.get(key)
    if chain_id is None:
        leaf, issuer = b.leaf([f"smtp.{pool}.alt"], KeyType.RSA)
        chain_id = b.shared[key] = b.chain([leaf, issuer])
    address = b.pooled_address(pool, per_address=500)
    b.serve(address, [], str(chain_id))
    return address


def _provider(b: Builder, key: str, make: Callable[[Builder], Provider]) -> Provider:
    found = b.shared.get(key)
    if not isinstance(found, Provider):
        found = b.shared[key] = make(b)
    return found


def _bulkmail(b: Builder) -> Provider:
    """A large provider without DNSSEC: MX hosts in the unsigned TLD."""
    hosts = ("mx1.bulkmail.alt.", "mx2.bulkmail.alt.")
    leaf, issuer = b.leaf([h.rstrip(".") for h in hosts], KeyType.RSA)
    chain_id = b.chain([leaf, issuer])
    for host in hosts:
        address = b.new_address()
        b.add(host, "A", address)
        b.serve(address, [host], chain_id)
    return Provider(hosts)


def _dane_provider_a(b: Builder) -> Provider:
    """DANE-EE 3 1 1 on two hosts, two addresses each, one ECDSA key."""
    zone = b.zone("mail-a.example.")
    hosts = ("mx1.mail-a.example.", "mx2.mail-a.example.")
    leaf, issuer = b.leaf([h.rstrip(".") for h in hosts])
    chain_id = b.chain([leaf, issuer])
    for host in hosts:
        zone.add(f"_25._tcp.{host}", "TLSA", tlsa_rdata(3, 1, 1, leaf))
        for _ in range(2):
            address = b.new_address()
            zone.add(host, "A", address)
            b.serve(address, [host], chain_id)
    return Provider(hosts)


def _dane_provider_b(b: Builder) -> Provider:
    """RSA, with DANE-EE 3 1 1 and DANE-TA 2 1 1 on the issuing intermediate."""
    zone = b.zone("mx-b.test.")
    host = "smtp.mx-b.test."
    leaf, issuer = b.leaf([host], KeyType.RSA)
    chain_id = b.chain([leaf, issuer])
    zone.add(f"_25._tcp.{host}", "TLSA", tlsa_rdata(3, 1, 1, leaf))
    zone.add(f"_25._tcp.{host}", "TLSA", tlsa_rdata(2, 1, 1, issuer))
    address = b.new_address()
    zone.add(host, "A", address)
    b.serve(address, [host], chain_id)
    return Provider((host,))


def _dane_provider_c(b: Builder) -> Provider:
    """Mid-rollover: the current key and the next key both published (RFC 7671 section 8.1)."""
    zone = b.zone("mail-c.example.")
    hosts = ("in1.mail-c.example.", "in2.mail-c.example.")
    names = [h.rstrip(".") for h in hosts]
    current, issuer = b.leaf(names, key_label="mail-c/current")
    upcoming, _ = b.leaf(names, key_label="mail-c/next")
    chain_id = b.chain([current, issuer])
    for host in hosts:
        zone.add(f"_25._tcp.{host}", "TLSA", tlsa_rdata(3, 1, 1, current))
        zone.add(f"_25._tcp.{host}", "TLSA", tlsa_rdata(3, 1, 1, upcoming))
        address = b.new_address()
        zone.add(host, "A", address)
        b.serve(address, [host], chain_id)
    return Provider(hosts)


def _mx_to(b: Builder, domain: str, provider: Provider) -> None:
    for i, host in enumerate(provider.hosts):
        b.add(domain, "MX", f"{10 * (i + 1)} {host}")


# -- scenarios: unsigned and non-DANE -------------------------------------------


def unsigned_provider(b: Builder) -> DomainTruth:
    domain = b.unsigned_domain()
    provider = _provider(b, "bulkmail", _bulkmail)
    _mx_to(b, domain, provider)
    hosts = [(h, V.NO_DANE_INSECURE) for h in provider.hosts]
    return _truth(domain, D.NO_DANE, hosts, "unsigned_provider")


def unsigned_selfhosted(b: Builder) -> DomainTruth:
    domain = b.unsigned_domain()
    host = f"mx.{domain}"
    b.add(domain, "MX", f"10 {host}")
    b.add(host, "A", _shared_host_address(b))
    return _truth(domain, D.NO_DANE, [(host, V.NO_DANE_INSECURE)], "unsigned_selfhosted")


def unsigned_dane_provider(b: Builder) -> DomainTruth:
    """An unsigned domain whose MX is a DANE provider: insecure MX, so no DANE."""
    domain = b.unsigned_domain()
    provider = _provider(b, "provider-a", _dane_provider_a)
    _mx_to(b, domain, provider)
    hosts = [(h, V.NO_DANE_INSECURE) for h in provider.hosts]
    return _truth(domain, D.NO_DANE, hosts, "unsigned_dane_provider")


def unsigned_no_mx(b: Builder) -> DomainTruth:
    domain = b.unsigned_domain()
    b.add(domain, "A", _shared_host_address(b))
    return _truth(domain, D.NO_MX_RECORD, [(domain, V.NO_DANE_INSECURE)], "unsigned_no_mx")


def insecure_delegation_tlsa(b: Builder) -> DomainTruth:
    """TLSA published in an unsigned zone (insecure delegation): no DANE."""
    domain, zone = b.insecure_domain()
    host = f"mx.{domain}"
    address = b.new_address()
    leaf, issuer = b.leaf([host])
    b.serve(address, [host], b.chain([leaf, issuer]))
    zone.add(domain, "MX", f"10 {host}")
    zone.add(host, "A", address)
    zone.add(f"_25._tcp.{host}", "TLSA", tlsa_rdata(3, 1, 1, leaf))
    return _truth(domain, D.NO_DANE, [(host, V.NO_DANE_INSECURE)], "insecure_delegation_tlsa")


def nxdomain(b: Builder) -> DomainTruth:
    """A listed name that does not exist (secure NXDOMAIN from a signed TLD)."""
    return _truth(b.new_name(b.signed_tld()), D.NXDOMAIN, [], "nxdomain")


def null_mx(b: Builder) -> DomainTruth:
    domain, zone = b.signed_domain()
    zone.add(domain, "MX", "0 .")
    return _truth(domain, D.NULL_MX, [], "null_mx")


def signed_no_tlsa(b: Builder) -> DomainTruth:
    """Signed domain, ordinary STARTTLS, no TLSA: secure NXDOMAIN at _25._tcp."""
    domain, zone = b.signed_domain()
    host = f"mx.{domain}"
    zone.add(domain, "MX", f"10 {host}")
    zone.add(host, "A", _shared_host_address(b, "signed-hosting"))
    return _truth(domain, D.NO_DANE, [(host, V.NO_DANE_ABSENT)], "signed_no_tlsa")


def signed_tlsa_nodata(b: Builder) -> DomainTruth:
    """The TLSA name exists with another type: secure NODATA."""
    domain, zone = b.signed_domain()
    host = f"mx.{domain}"
    zone.add(domain, "MX", f"10 {host}")
    zone.add(host, "A", _shared_host_address(b, "signed-hosting"))
    zone.add(f"_25._tcp.{host}", "TXT", '"no tlsa here"')
    return _truth(domain, D.NO_DANE, [(host, V.NO_DANE_ABSENT)], "signed_tlsa_nodata")


def signed_insecure_host(b: Builder) -> DomainTruth:
    """Secure MX pointing to hosts in an insecure zone: no DANE for those hosts."""
    domain, zone = b.signed_domain()
    provider = _provider(b, "bulkmail", _bulkmail)
    for i, host in enumerate(provider.hosts):
        zone.add(domain, "MX", f"{10 * (i + 1)} {host}")
    hosts = [(h, V.NO_DANE_INSECURE) for h in provider.hosts]
    return _truth(domain, D.NO_DANE, hosts, "signed_insecure_host")


# -- scenarios: DANE at providers -------------------------------------------------


def _provider_scenario(key: str, make: Callable[[Builder], Provider]) -> Callable[..., DomainTruth]:
    def build(b: Builder) -> DomainTruth:
        domain, zone = b.signed_domain()
        provider = _provider(b, key, make)
        for i, host in enumerate(provider.hosts):
            zone.add(domain, "MX", f"{10 * (i + 1)} {host}")
        hosts = [(h, V.PASS) for h in provider.hosts]
        return _truth(domain, D.DANE_VALID, hosts, f"dane_{key.replace('-', '_')}")

    return build


# -- scenarios: self-hosted DANE -------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Host:
    domain: str
    name: str
    address: str


def _self_hosted(b: Builder) -> _Host:
    """A signed domain with one MX host on an address of its own; nothing served yet."""
    domain, zone = b.signed_domain()
    host = f"mx.{domain}"
    address = b.new_address()
    zone.add(domain, "MX", f"10 {host}")
    zone.add(host, "A", address)
    return _Host(domain, host, address)


def _one_host(name: str, dverdict: D, hverdict: V) -> Callable[[Builder, _Host], DomainTruth]:
    def finish(b: Builder, h: _Host) -> DomainTruth:
        return _truth(h.domain, dverdict, [(h.name, hverdict)], name)

    return finish


def _ee(usage_selector_mtype: tuple[int, int, int], name: str) -> Callable[[Builder], DomainTruth]:
    usage, selector, mtype = usage_selector_mtype

    def build(b: Builder) -> DomainTruth:
        host, leaf, issuer = _leaf_and_host(b, b.rng.choice((KeyType.ECDSA, KeyType.RSA)))
        _publish(b, host, tlsa_rdata(usage, selector, mtype, leaf))
        b.serve(host.address, [host.name], b.chain([leaf, issuer]))
        return _one_host(name, D.DANE_VALID, V.PASS)(b, host)

    return build


def _leaf_and_host(
    b: Builder,
    kind: KeyType = KeyType.ECDSA,
    *,
    issuer: Issued | None = None,
    days_after: int = 60,
) -> tuple[_Host, Issued, Issued]:
    """A self-hosted signed domain and a leaf for its MX host; nothing served yet."""
    host = _self_hosted(b)
    leaf, issued_by = b.leaf([host.name], kind, issuer=issuer, days_after=days_after)
    return host, leaf, issued_by


def _publish(b: Builder, host: _Host, *records: str) -> None:
    for rdata in records:
        b.add(f"_25._tcp.{host.name}", "TLSA", rdata)


def ta_211_intermediate(b: Builder) -> DomainTruth:
    host, leaf, issuer = _leaf_and_host(b)
    _publish(b, host, tlsa_rdata(2, 1, 1, issuer))
    b.serve(host.address, [host.name], b.chain([leaf, issuer]))
    return _one_host("ta_211_intermediate", D.DANE_VALID, V.PASS)(b, host)


def ta_201_root_sent(b: Builder) -> DomainTruth:
    root, _ = b.public_ca(KeyType.RSA)
    host, leaf, issuer = _leaf_and_host(b, KeyType.RSA)
    _publish(b, host, tlsa_rdata(2, 0, 1, root))
    b.serve(host.address, [host.name], b.chain([leaf, issuer, root]))
    return _one_host("ta_201_root_sent", D.DANE_VALID, V.PASS)(b, host)


def ta_200_not_sent(b: Builder) -> DomainTruth:
    """The full private CA certificate is in the record; the server sends only its leaf."""
    ca = b.pki.ca("Private Mail CA", KeyType.ECDSA)
    host, leaf, _ = _leaf_and_host(b, issuer=ca)
    _publish(b, host, tlsa_rdata(2, 0, 0, ca))
    b.serve(host.address, [host.name], b.chain([leaf]))
    return _one_host("ta_200_not_sent", D.DANE_VALID, V.PASS)(b, host)


def ta_name_mismatch(b: Builder) -> DomainTruth:
    host = _self_hosted(b)
    leaf, issuer = b.leaf([f"www.{host.domain}"], key_label=host.name)
    _publish(b, host, tlsa_rdata(2, 1, 1, issuer))
    b.serve(host.address, [host.name], b.chain([leaf, issuer]))
    return _one_host("ta_name_mismatch", D.DANE_INVALID, V.FAIL_TA_NAME)(b, host)


def ta_expired_leaf(b: Builder) -> DomainTruth:
    host, leaf, issuer = _leaf_and_host(b, days_after=-3)
    _publish(b, host, tlsa_rdata(2, 1, 1, issuer))
    b.serve(host.address, [host.name], b.chain([leaf, issuer]))
    return _one_host("ta_expired_leaf", D.DANE_INVALID, V.FAIL_TA_EXPIRED)(b, host)


def ta_expired_intermediate(b: Builder) -> DomainTruth:
    """The anchor (a root the server sends) is valid; the intermediate below it expired."""
    root, _ = b.public_ca(KeyType.ECDSA)
    stale = b.pki.ca("Testbed Issuing E2 (retired)", KeyType.ECDSA, issuer=root, days_after=-10)
    host, leaf, _ = _leaf_and_host(b, issuer=stale)
    _publish(b, host, tlsa_rdata(2, 0, 1, root))
    b.serve(host.address, [host.name], b.chain([leaf, stale, root]))
    return _one_host("ta_expired_intermediate", D.DANE_INVALID, V.FAIL_TA_EXPIRED)(b, host)


def ee_expired_wrong_name(b: Builder) -> DomainTruth:
    """DANE-EE ignores names and dates (RFC 7672 section 3.1.1): passes."""
    host = _self_hosted(b)
    leaf, issuer = b.leaf(["wrong-name.invalid"], key_label=host.name, days_after=-30)
    _publish(b, host, tlsa_rdata(3, 1, 1, leaf))
    b.serve(host.address, [host.name], b.chain([leaf, issuer]))
    return _one_host("ee_expired_wrong_name", D.DANE_VALID, V.PASS)(b, host)


def stale_after_rollover(b: Builder) -> DomainTruth:
    host, leaf, issuer = _leaf_and_host(b)
    old, _ = b.leaf([host.name], key_label=f"{host.name}/old")
    _publish(b, host, tlsa_rdata(3, 1, 1, old))
    b.serve(host.address, [host.name], b.chain([leaf, issuer]))
    return _one_host("stale_after_rollover", D.DANE_INVALID, V.FAIL_NO_MATCH)(b, host)


def rollover_both(b: Builder) -> DomainTruth:
    host, leaf, issuer = _leaf_and_host(b)
    old, _ = b.leaf([host.name], key_label=f"{host.name}/old")
    _publish(b, host, tlsa_rdata(3, 1, 1, old), tlsa_rdata(3, 1, 1, leaf))
    b.serve(host.address, [host.name], b.chain([leaf, issuer]))
    return _one_host("rollover_both", D.DANE_VALID, V.PASS)(b, host)


def ee_and_ta(b: Builder) -> DomainTruth:
    host, leaf, issuer = _leaf_and_host(b)
    _publish(b, host, tlsa_rdata(3, 1, 1, leaf), tlsa_rdata(2, 1, 1, issuer))
    b.serve(host.address, [host.name], b.chain([leaf, issuer]))
    return _one_host("ee_and_ta", D.DANE_VALID, V.PASS)(b, host)


def agility_strong_right(b: Builder) -> DomainTruth:
    """3 1 1 wrong, 3 1 2 right: only SHA-512 counts (RFC 7671 section 9): pass."""
    host, leaf, issuer = _leaf_and_host(b)
    _publish(b, host, flip_last_hex(tlsa_rdata(3, 1, 1, leaf)), tlsa_rdata(3, 1, 2, leaf))
    b.serve(host.address, [host.name], b.chain([leaf, issuer]))
    return _one_host("agility_strong_right", D.DANE_VALID, V.PASS)(b, host)


def agility_strong_wrong(b: Builder) -> DomainTruth:
    """3 1 1 right, 3 1 2 wrong: SHA-256 is ignored when SHA-512 is present: fail."""
    host, leaf, issuer = _leaf_and_host(b)
    _publish(b, host, tlsa_rdata(3, 1, 1, leaf), flip_last_hex(tlsa_rdata(3, 1, 2, leaf)))
    b.serve(host.address, [host.name], b.chain([leaf, issuer]))
    return _one_host("agility_strong_wrong", D.DANE_INVALID, V.FAIL_NO_MATCH)(b, host)


def pkix_only(b: Builder) -> DomainTruth:
    host, leaf, issuer = _leaf_and_host(b)
    _publish(b, host, tlsa_rdata(1, 1, 1, leaf), tlsa_rdata(0, 1, 1, issuer))
    b.serve(host.address, [host.name], b.chain([leaf, issuer]))
    return _one_host("pkix_only", D.DANE_INVALID, V.UNUSABLE)(b, host)


def malformed_records(b: Builder) -> DomainTruth:
    """Usage 4 (unknown) and a SHA-256 field of 20 bytes: both unusable."""
    host, leaf, issuer = _leaf_and_host(b)
    good = tlsa_rdata(3, 1, 1, leaf)
    _publish(b, host, "4" + good[1:], good[: len("3 1 1 ") + 40])
    b.serve(host.address, [host.name], b.chain([leaf, issuer]))
    return _one_host("malformed_records", D.DANE_INVALID, V.UNUSABLE)(b, host)


def big_tlsa_rrset(b: Builder) -> DomainTruth:
    """A TLSA RRset over 1232 bytes: truncated over UDP, complete over TCP. The
    decoys share the matching record's usage, selector and matching type, so
    digest agility (RFC 7671 section 9) leaves every record in play."""
    host, leaf, issuer = _leaf_and_host(b)
    decoys = [f"3 1 2 {b.rng.randbytes(64).hex()}" for _ in range(22)]
    _publish(b, host, *decoys, tlsa_rdata(3, 1, 2, leaf))
    b.serve(host.address, [host.name], b.chain([leaf, issuer]))
    return _one_host("big_tlsa_rrset", D.DANE_VALID, V.PASS)(b, host)


def _unreachable(
    name: str, behavior: Behavior, listen: bool = True
) -> Callable[[Builder], DomainTruth]:
    def build(b: Builder) -> DomainTruth:
        host, leaf, issuer = _leaf_and_host(b)
        _publish(b, host, tlsa_rdata(3, 1, 1, leaf))
        if listen:
            b.serve(host.address, [host.name], b.chain([leaf, issuer]), behavior)
        return _one_host(name, D.DANE_INVALID, V.FAIL_NO_TLS)(b, host)

    return build


def bogus_mx(b: Builder) -> DomainTruth:
    domain, zone = b.signed_domain()
    host = f"mx.{domain}"
    zone.add(domain, "MX", f"10 {host}")
    zone.add(host, "A", _shared_host_address(b, "signed-hosting"))
    zone.corrupt.append((domain, "MX"))
    return _truth(domain, D.DNSSEC_BOGUS, [], "bogus_mx")


def _bogus_zone(
    name: str, *, parent_ds: DsMode = DsMode.MATCH, expired: bool = False
) -> Callable[[Builder], DomainTruth]:
    def build(b: Builder) -> DomainTruth:
        domain, zone = b.signed_domain(parent_ds=parent_ds, expired=expired)
        host = f"mx.{domain}"
        zone.add(domain, "MX", f"10 {host}")
        zone.add(host, "A", _shared_host_address(b, "signed-hosting"))
        return _truth(domain, D.DNSSEC_BOGUS, [], name)

    return build


def bogus_tlsa(b: Builder) -> DomainTruth:
    host, leaf, issuer = _leaf_and_host(b)
    _publish(b, host, tlsa_rdata(3, 1, 1, leaf))
    b.zone_of(host.name).corrupt.append((f"_25._tcp.{host.name}", "TLSA"))
    b.serve(host.address, [host.name], b.chain([leaf, issuer]))
    return _one_host("bogus_tlsa", D.DANE_INVALID, V.FAIL_DNS)(b, host)


def lame_tlsa(b: Builder) -> DomainTruth:
    """_25._tcp.<host> is delegated (with a DS) to a server that never answers: SERVFAIL."""
    host, leaf, issuer = _leaf_and_host(b)
    b.zone(f"_25._tcp.{host.name}", lame=True)
    b.serve(host.address, [host.name], b.chain([leaf, issuer]))
    return _one_host("lame_tlsa", D.DANE_INVALID, V.FAIL_DNS)(b, host)


def implicit_mx_tlsa(b: Builder) -> DomainTruth:
    """No MX: the domain is its own mail host, with TLSA at _25._tcp.<domain>."""
    domain, zone = b.signed_domain()
    address = b.new_address()
    leaf, issuer = b.leaf([domain])
    zone.add(domain, "A", address)
    zone.add(f"_25._tcp.{domain}", "TLSA", tlsa_rdata(3, 1, 1, leaf))
    b.serve(address, [domain], b.chain([leaf, issuer]))
    return _truth(domain, D.NO_MX_RECORD, [(domain, V.PASS)], "implicit_mx_tlsa")


def _cname(name: str, at_expanded: bool) -> Callable[[Builder], DomainTruth]:
    def build(b: Builder) -> DomainTruth:
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
        return _truth(domain, D.DANE_VALID, [(alias, V.PASS)], name)

    return build


def two_hosts_one_fails(b: Builder) -> DomainTruth:
    domain, zone = b.signed_domain()
    hosts = [f"mx1.{domain}", f"mx2.{domain}"]
    for i, host in enumerate(hosts):
        address = b.new_address()
        leaf, issuer = b.leaf([host])
        zone.add(domain, "MX", f"{10 * (i + 1)} {host}")
        zone.add(host, "A", address)
        rdata = tlsa_rdata(3, 1, 1, leaf)
        zone.add(f"_25._tcp.{host}", "TLSA", rdata if i == 0 else flip_last_hex(rdata))
        b.serve(address, [host], b.chain([leaf, issuer]))
    verdicts = [(hosts[0], V.PASS), (hosts[1], V.FAIL_NO_MATCH)]
    return _truth(domain, D.DANE_PARTIAL, verdicts, "two_hosts_one_fails")


def two_addresses_one_wrong(b: Builder) -> DomainTruth:
    """Every address must authenticate: one presenting another key fails the host."""
    host, leaf, issuer = _leaf_and_host(b)
    _publish(b, host, tlsa_rdata(3, 1, 1, leaf))
    b.serve(host.address, [host.name], b.chain([leaf, issuer]))
    other_address = b.new_address()
    b.add(host.name, "A", other_address)
    wrong, _ = b.leaf([host.name], key_label=f"{host.name}/wrong")
    b.serve(other_address, [host.name], b.chain([wrong, issuer]))
    return _one_host("two_addresses_one_wrong", D.DANE_INVALID, V.FAIL_NO_MATCH)(b, host)


def dual_stack(b: Builder) -> DomainTruth:
    """A host with an IPv4 and an IPv6 (::1) address, both authenticating."""
    host, leaf, issuer = _leaf_and_host(b)
    _publish(b, host, tlsa_rdata(3, 1, 1, leaf))
    chain_id = b.chain([leaf, issuer])
    b.serve(host.address, [host.name], chain_id)
    b.add(host.name, "AAAA", IPV6_ADDRESS)
    b.serve(IPV6_ADDRESS, [host.name], chain_id)
    return _one_host("dual_stack", D.DANE_VALID, V.PASS)(b, host)


def _unanswered(name: str, kind: OperatorKind, signed: bool) -> Callable[[Builder], DomainTruth]:
    """A domain whose only DNS operator never answers or answers REFUSED: the
    resolver has nothing to give but SERVFAIL, whatever a scanner retries."""

    def build(b: Builder) -> DomainTruth:
        if signed:
            domain, _ = b.signed_domain(operator=kind)
        else:
            domain = b.unsigned_domain(operator=kind)
        host = f"mx.{domain}"
        b.add(domain, "MX", f"10 {host}")
        b.add(host, "A", _shared_host_address(b))
        return _truth(domain, D.DNS_ERROR, [], name)

    return build


def postfix_dane(b: Builder) -> DomainTruth:
    """The real Postfix instance, DANE-EE 3 1 1 (its chain is written by testbed.cli)."""
    domain, zone = b.signed_domain()
    host = f"mx.{domain}"
    leaf, issuer = b.leaf([host], key_label="postfix")
    b.postfix = (host, b.chain([leaf, issuer]))
    zone.add(domain, "MX", f"10 {host}")
    zone.add(host, "A", b.postfix_address)
    zone.add(f"_25._tcp.{host}", "TLSA", tlsa_rdata(3, 1, 1, leaf))
    return _truth(domain, D.DANE_VALID, [(host, V.PASS)], "postfix_dane")


CATALOGUE: tuple[Scenario, ...] = (
    # the unsigned bulk (about 93%)
    Scenario(
        "unsigned_provider",
        0.55,
        unsigned_provider,
        "unsigned domain, MX at a non-DNSSEC provider",
        bulk=True,
    ),
    Scenario(
        "unsigned_selfhosted",
        0.37,
        unsigned_selfhosted,
        "unsigned domain, own MX name on a shared hoster",
        bulk=True,
    ),
    Scenario(
        "unsigned_dane_provider",
        0.004,
        unsigned_dane_provider,
        "unsigned domain, MX at a DANE provider: no DANE",
    ),
    Scenario("unsigned_no_mx", 0.004, unsigned_no_mx, "unsigned domain without MX (implicit MX)"),
    Scenario("nxdomain", 0.004, nxdomain, "listed name that does not exist"),
    Scenario(
        "insecure_delegation_tlsa",
        0.0005,
        insecure_delegation_tlsa,
        "TLSA in an unsigned zone: no DANE",
    ),
    # signed without DANE (about 3%)
    Scenario(
        "signed_no_tlsa",
        0.015,
        signed_no_tlsa,
        "signed domain, ordinary STARTTLS, secure NXDOMAIN for TLSA",
    ),
    Scenario(
        "signed_tlsa_nodata", 0.001, signed_tlsa_nodata, "signed domain, secure NODATA for TLSA"
    ),
    Scenario(
        "signed_insecure_host",
        0.01,
        signed_insecure_host,
        "secure MX pointing to hosts in an insecure zone",
    ),
    Scenario("null_mx", 0.001, null_mx, "null MX (RFC 7505)"),
    Scenario("bogus_mx", 0.0003, bogus_mx, "MX RRset with a corrupted signature"),
    Scenario(
        "bogus_wrong_ds",
        0.0003,
        _bogus_zone("bogus_wrong_ds", parent_ds=DsMode.WRONG),
        "DS in the parent matches no key",
    ),
    Scenario(
        "bogus_expired",
        0.0003,
        _bogus_zone("bogus_expired", expired=True),
        "every signature of the zone expired",
    ),
    # DANE at providers (most DANE domains)
    Scenario(
        "dane_provider_a",
        0.004,
        _provider_scenario("provider-a", _dane_provider_a),
        "DANE-EE 3 1 1 provider, two hosts",
    ),
    Scenario(
        "dane_provider_b",
        0.002,
        _provider_scenario("provider-b", _dane_provider_b),
        "RSA provider, 3 1 1 plus 2 1 1",
    ),
    Scenario(
        "dane_provider_c",
        0.001,
        _provider_scenario("provider-c", _dane_provider_c),
        "provider mid-rollover, two 3 1 1",
    ),
    # self-hosted DANE, one of each way to get it right or wrong
    Scenario("ee_311", 0.0006, _ee((3, 1, 1), "ee_311"), "DANE-EE 3 1 1"),
    Scenario("ee_301", 0.0001, _ee((3, 0, 1), "ee_301"), "DANE-EE 3 0 1"),
    Scenario("ee_312", 0.0001, _ee((3, 1, 2), "ee_312"), "DANE-EE 3 1 2"),
    Scenario("ee_300", 0.00005, _ee((3, 0, 0), "ee_300"), "DANE-EE 3 0 0 (the whole certificate)"),
    Scenario("ee_310", 0.00005, _ee((3, 1, 0), "ee_310"), "DANE-EE 3 1 0 (the whole SPKI)"),
    Scenario(
        "ta_211_intermediate",
        0.0002,
        ta_211_intermediate,
        "DANE-TA 2 1 1 on the issuing intermediate",
    ),
    Scenario(
        "ta_201_root_sent", 0.00005, ta_201_root_sent, "DANE-TA 2 0 1 on a root the server sends"
    ),
    Scenario("ta_200_not_sent", 0.00005, ta_200_not_sent, "DANE-TA 2 0 0, the anchor only in DNS"),
    Scenario("ta_name_mismatch", 0.00005, ta_name_mismatch, "DANE-TA, leaf names another host"),
    Scenario("ta_expired_leaf", 0.00005, ta_expired_leaf, "DANE-TA, expired leaf"),
    Scenario(
        "ta_expired_intermediate", 0.00005, ta_expired_intermediate, "DANE-TA, expired intermediate"
    ),
    Scenario(
        "ee_expired_wrong_name",
        0.00005,
        ee_expired_wrong_name,
        "DANE-EE, expired and wrongly named leaf: pass",
    ),
    Scenario(
        "stale_after_rollover",
        0.0001,
        stale_after_rollover,
        "only the old key's record after a rollover",
    ),
    Scenario("rollover_both", 0.0001, rollover_both, "old and new keys both published"),
    Scenario("ee_and_ta", 0.0001, ee_and_ta, "3 1 1 and 2 1 1 together"),
    Scenario(
        "agility_strong_right", 0.00005, agility_strong_right, "3 1 1 wrong, 3 1 2 right: pass"
    ),
    Scenario(
        "agility_strong_wrong", 0.00005, agility_strong_wrong, "3 1 1 right, 3 1 2 wrong: fail"
    ),
    Scenario("pkix_only", 0.00005, pkix_only, "only usages 0 and 1: unusable"),
    Scenario("malformed_records", 0.00005, malformed_records, "usage 4 and a 20-byte SHA-256"),
    Scenario("big_tlsa_rrset", 0.00005, big_tlsa_rrset, "TLSA RRset over 1232 bytes (TCP)"),
    Scenario("bogus_tlsa", 0.00005, bogus_tlsa, "TLSA RRset with a corrupted signature"),
    Scenario("lame_tlsa", 0.00005, lame_tlsa, "TLSA SERVFAIL from a lame delegation"),
    Scenario("implicit_mx_tlsa", 0.00005, implicit_mx_tlsa, "no MX, TLSA at _25._tcp.<domain>"),
    Scenario(
        "cname_tlsa_expanded",
        0.00005,
        _cname("cname_tlsa_expanded", True),
        "MX host is a CNAME, TLSA at the target",
    ),
    Scenario(
        "cname_tlsa_original",
        0.00005,
        _cname("cname_tlsa_original", False),
        "MX host is a CNAME, TLSA only at the alias",
    ),
    Scenario("two_hosts_one_fails", 0.00005, two_hosts_one_fails, "two MX hosts, one fails"),
    Scenario(
        "two_addresses_one_wrong",
        0.00005,
        two_addresses_one_wrong,
        "one host, one of two addresses presents another key",
    ),
    Scenario(
        "no_starttls",
        0.00005,
        _unreachable("no_starttls", Behavior.NO_STARTTLS),
        "TLSA published, STARTTLS not offered",
    ),
    Scenario(
        "starttls_454",
        0.00005,
        _unreachable("starttls_454", Behavior.STARTTLS_454),
        "TLSA published, STARTTLS answered 454",
    ),
    Scenario(
        "connect_refused",
        0.00005,
        _unreachable("connect_refused", Behavior.STARTTLS, listen=False),
        "TLSA published, connection refused",
    ),
    Scenario(
        "silent_host",
        0.00005,
        _unreachable("silent_host", Behavior.SILENT),
        "TLSA published, accepts and never speaks",
    ),
    Scenario("dual_stack", 0.00005, dual_stack, "IPv4 and IPv6 (::1) addresses", ipv6=True),
    # faults of the real internet (testbed.profile)
    Scenario(
        "dead_operator",
        0.005,
        _unanswered("dead_operator", OperatorKind.DEAD, signed=False),
        "the domain's only DNS operator never answers",
        internet=True,
    ),
    Scenario(
        "lame_operator",
        0.005,
        _unanswered("lame_operator", OperatorKind.LAME, signed=True),
        "signed domain whose only DNS operator answers REFUSED",
        internet=True,
    ),
    Scenario(
        "tarpit_host",
        0.00005,
        _unreachable("tarpit_host", Behavior.TARPIT),
        "TLSA published, the host sends one byte a second",
        internet=True,
    ),
    Scenario(
        "tls_reset_host",
        0.00005,
        _unreachable("tls_reset_host", Behavior.TLS_RESET),
        "TLSA published, every TLS handshake reset midway",
        internet=True,
    ),
    Scenario("postfix_dane", 0.0, postfix_dane, "the real Postfix, DANE-EE 3 1 1", minimum=1),
)

BY_NAME = {s.name: s for s in CATALOGUE}

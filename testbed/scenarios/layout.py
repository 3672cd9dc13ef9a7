"""The pieces scenarios lay domains out with: shared hosters, mail providers
whose hosts serve many domains, and the self-hosted signed domain with one MX
host that most DANE scenarios vary.

TLSA records are written with testbed.builder.tlsa_rdata (RFC 6698 section
2.1), computed from the certificates independently of the scanner's matcher.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from testbed.builder import Builder
from testbed.model import Behavior
from testbed.pki import Issued, KeyType, tlsa_rdata
from testbed.scenarios.registry import Laid

# -- shared infrastructure ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Provider:
    hosts: tuple[str, ...]


def shared_host_address(b: Builder, pool: str = "hosting") -> str:
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


def provider(b: Builder, make: Callable[[Builder], Provider]) -> Provider:
    """The provider ``make`` lays out, laid out once per testbed."""
    key = make.__name__
    found = b.shared.get(key)
    if not isinstance(found, Provider):
        found = b.shared[key] = make(b)
    return found


def mx_to(b: Builder, domain: str, hosts: Sequence[str]) -> Laid:
    """MX records for ``hosts`` at preferences 10, 20, ..."""
    for i, host in enumerate(hosts):
        b.add(domain, "MX", f"{10 * (i + 1)} {host}")
    return Laid(domain, tuple(hosts))


def _provider_hosts(
    b: Builder, hosts: tuple[str, ...], chain: list[Issued], *records: str, per_host: int = 1
) -> Provider:
    """``hosts`` publish ``records`` and serve ``chain`` on ``per_host`` addresses each."""
    chain_id = b.chain(chain)
    for host in hosts:
        for rdata in records:
            b.add(f"_25._tcp.{host}", "TLSA", rdata)
        for _ in range(per_host):
            address = b.new_address()
            b.add(host, "A", address)
            b.serve(address, [host], chain_id)
    return Provider(hosts)


def bulkmail(b: Builder) -> Provider:
    """A large provider without DNSSEC: MX hosts in the unsigned TLD."""
    hosts = ("mx1.bulkmail.alt.", "mx2.bulkmail.alt.")
    leaf, issuer = b.leaf([h.rstrip(".") for h in hosts], KeyType.RSA)
    return _provider_hosts(b, hosts, [leaf, issuer])


def provider_a(b: Builder) -> Provider:
    """DANE-EE 3 1 1 on two hosts, two addresses each, one ECDSA key."""
    b.zone("mail-a.example.")
    hosts = ("mx1.mail-a.example.", "mx2.mail-a.example.")
    leaf, issuer = b.leaf([h.rstrip(".") for h in hosts])
    return _provider_hosts(b, hosts, [leaf, issuer], tlsa_rdata(3, 1, 1, leaf), per_host=2)


def provider_b(b: Builder) -> Provider:
    """RSA, with DANE-EE 3 1 1 and DANE-TA 2 1 1 on the issuing intermediate."""
    b.zone("mx-b.test.")
    host = "smtp.mx-b.test."
    leaf, issuer = b.leaf([host], KeyType.RSA)
    records = (tlsa_rdata(3, 1, 1, leaf), tlsa_rdata(2, 1, 1, issuer))
    return _provider_hosts(b, (host,), [leaf, issuer], *records)


def provider_c(b: Builder) -> Provider:
    """Mid-rollover: the current key and the next key both published (RFC 7671 section 8.1)."""
    b.zone("mail-c.example.")
    hosts = ("in1.mail-c.example.", "in2.mail-c.example.")
    names = [h.rstrip(".") for h in hosts]
    current, issuer = b.leaf(names, key_label="mail-c/current")
    upcoming, _ = b.leaf(names, key_label="mail-c/next")
    records = (tlsa_rdata(3, 1, 1, current), tlsa_rdata(3, 1, 1, upcoming))
    return _provider_hosts(b, hosts, [current, issuer], *records)


# -- the self-hosted signed domain ----------------------------------------------


@dataclass(frozen=True, slots=True)
class Host:
    domain: str
    name: str
    address: str

    @property
    def laid(self) -> Laid:
        return Laid(self.domain, (self.name,))


def self_hosted(b: Builder) -> Host:
    """A signed domain with one MX host on an address of its own; nothing served yet."""
    domain, zone = b.signed_domain()
    host = f"mx.{domain}"
    address = b.new_address()
    zone.add(domain, "MX", f"10 {host}")
    zone.add(host, "A", address)
    return Host(domain, host, address)


def publish(b: Builder, host: Host, *records: str) -> None:
    for rdata in records:
        b.add(f"_25._tcp.{host.name}", "TLSA", rdata)


# What a DANE host publishes, from its host, its leaf and the leaf's issuer.
Records = Callable[[Builder, Host, Issued, Issued], Sequence[str]]


# The names a leaf is issued for, other than its host's own.
Names = Callable[[Host], list[str]]


def dane_host(
    b: Builder,
    records: Records,
    kind: KeyType = KeyType.ECDSA,
    *,
    names: Names | None = None,
    days_after: int = 60,
    behavior: Behavior = Behavior.STARTTLS,
    listen: bool = True,
) -> tuple[Host, Issued, Issued]:
    """A self-hosted signed domain whose MX host publishes ``records`` and
    serves a fresh leaf (of ``kind``, from the public intermediate, for the
    host's name or ``names``) with its issuer; with ``listen`` false nothing
    answers on its address."""
    host = self_hosted(b)
    leaf_names = names(host) if names is not None else [host.name]
    leaf, issuer = b.leaf(leaf_names, kind, key_label=host.name, days_after=days_after)
    publish(b, host, *records(b, host, leaf, issuer))
    if listen:
        b.serve(host.address, [host.name], b.chain([leaf, issuer]), behavior)
    return host, leaf, issuer


def with_records(
    records: Records, *, names: Names | None = None, days_after: int = 60
) -> Callable[[Builder], Laid]:
    """The layout of a self-hosted DANE domain that publishes ``records``."""

    def lay_out(b: Builder) -> Laid:
        return dane_host(b, records, names=names, days_after=days_after)[0].laid

    return lay_out


def old_leaf(b: Builder, host: Host, suffix: str = "old") -> Issued:
    """Another key's leaf for ``host``: the one before a rollover, or a wrong one."""
    return b.leaf([host.name], key_label=f"{host.name}/{suffix}")[0]


def unreachable(behavior: Behavior, *, listen: bool = True) -> Callable[[Builder], Laid]:
    """A DANE-EE host that never completes TLS: it behaves as ``behavior``, or
    refuses connections when ``listen`` is false (RFC 7672 section 2.2: a
    DANE host without TLS fails)."""

    def lay_out(b: Builder) -> Laid:
        return dane_host(b, ee_311, behavior=behavior, listen=listen)[0].laid

    return lay_out


def ee_311(b: Builder, host: Host, leaf: Issued, issuer: Issued) -> list[str]:
    """The usual record: DANE-EE 3 1 1 of the leaf's key."""
    return [tlsa_rdata(3, 1, 1, leaf)]

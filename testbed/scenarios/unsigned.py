"""Scenarios without DNSSEC: the unsigned bulk of the internet (about 93% of
domains), where RFC 7672 section 2.2.1 leaves no DANE whatever is published."""

from __future__ import annotations

from scanner.status import DaneVerdict as V
from scanner.status import DomainVerdict as D
from testbed.builder import Builder
from testbed.pki import tlsa_rdata
from testbed.scenarios.layout import (
    bulkmail,
    mx_to,
    provider,
    provider_a,
    shared_host_address,
)
from testbed.scenarios.registry import Laid, scenario

# Whatever is published, an insecure MX RRset leaves every host without DANE.
_INSECURE = (D.NO_DANE, V.NO_DANE_INSECURE)


@scenario(0.55, "unsigned domain, MX at a non-DNSSEC provider", *_INSECURE, bulk=True)
def unsigned_provider(b: Builder) -> Laid:
    return mx_to(b, b.unsigned_domain(), provider(b, bulkmail).hosts)


@scenario(0.37, "unsigned domain, own MX name on a shared hoster", *_INSECURE, bulk=True)
def unsigned_selfhosted(b: Builder) -> Laid:
    domain = b.unsigned_domain()
    host = f"mx.{domain}"
    b.add(domain, "MX", f"10 {host}")
    b.add(host, "A", shared_host_address(b))
    return Laid(domain, (host,))


@scenario(
    0.004,
    "unsigned domain, MX at a DANE provider: no DANE",
    *_INSECURE,
    relaxed=D.DANE_VALID,
)
def unsigned_dane_provider(b: Builder) -> Laid:
    """An unsigned domain whose MX is a DANE provider: insecure MX, so no DANE
    strictly; a sender that uses the provider's secure TLSA records anyway
    (RFC 7672 s2.2.1, Postfix's default) authenticates it."""
    return mx_to(b, b.unsigned_domain(), provider(b, provider_a).hosts)


@scenario(0.004, "unsigned domain without MX (implicit MX)", D.NO_MX_RECORD, V.NO_DANE_INSECURE)
def unsigned_no_mx(b: Builder) -> Laid:
    domain = b.unsigned_domain()
    b.add(domain, "A", shared_host_address(b))
    return Laid(domain, (domain,))


@scenario(0.004, "listed name that does not exist", D.NXDOMAIN)
def nxdomain(b: Builder) -> Laid:
    """A listed name that does not exist (secure NXDOMAIN from a signed TLD)."""
    return Laid(b.new_name(b.signed_tld()))


@scenario(0.0005, "TLSA in an unsigned zone: no DANE", *_INSECURE)
def insecure_delegation_tlsa(b: Builder) -> Laid:
    """TLSA published in an unsigned zone (insecure delegation): no DANE."""
    domain, zone = b.insecure_domain()
    host = f"mx.{domain}"
    address = b.new_address()
    leaf, issuer = b.leaf([host])
    b.serve(address, [host], b.chain([leaf, issuer]))
    zone.add(domain, "MX", f"10 {host}")
    zone.add(host, "A", address)
    zone.add(f"_25._tcp.{host}", "TLSA", tlsa_rdata(3, 1, 1, leaf))
    return Laid(domain, (host,))

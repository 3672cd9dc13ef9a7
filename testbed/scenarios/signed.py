"""Scenarios with DNSSEC and no DANE (about 3% of domains): a secure denial of
TLSA (RFC 7672 section 2.2.3), MX hosts in an insecure zone (section 2.2.2),
the null MX (RFC 7505), and zones that fail validation (section 2.2.1:
``dnssec_bogus``)."""

from __future__ import annotations

from collections.abc import Callable

from scanner.status import DaneVerdict as V
from scanner.status import DomainVerdict as D
from testbed.builder import Builder, ZoneDraft
from testbed.model import DsMode
from testbed.scenarios.layout import bulkmail, mx_to, provider, shared_host_address
from testbed.scenarios.registry import Laid, scenario


def _signed_on_hoster(
    b: Builder, *, parent_ds: DsMode = DsMode.MATCH, expired: bool = False
) -> tuple[Laid, ZoneDraft]:
    """A signed domain whose MX host is on the signed shared hoster."""
    domain, draft = b.signed_domain(parent_ds=parent_ds, expired=expired)
    host = f"mx.{domain}"
    draft.add(domain, "MX", f"10 {host}")
    draft.add(host, "A", shared_host_address(b, "signed-hosting"))
    return Laid(domain, (host,)), draft


@scenario(
    0.015,
    "signed domain, ordinary STARTTLS, secure NXDOMAIN for TLSA",
    D.NO_DANE,
    V.NO_DANE_ABSENT,
)
def signed_no_tlsa(b: Builder) -> Laid:
    """Signed domain, ordinary STARTTLS, no TLSA: secure NXDOMAIN at _25._tcp."""
    return _signed_on_hoster(b)[0]


@scenario(0.001, "signed domain, secure NODATA for TLSA", D.NO_DANE, V.NO_DANE_ABSENT)
def signed_tlsa_nodata(b: Builder) -> Laid:
    """The TLSA name exists with another type: secure NODATA."""
    laid, zone = _signed_on_hoster(b)
    zone.add(f"_25._tcp.{laid.hosts[0]}", "TXT", '"no tlsa here"')
    return laid


@scenario(0.01, "secure MX pointing to hosts in an insecure zone", D.NO_DANE, V.NO_DANE_INSECURE)
def signed_insecure_host(b: Builder) -> Laid:
    """Secure MX pointing to hosts in an insecure zone: no DANE for those hosts."""
    domain, _ = b.signed_domain()
    return mx_to(b, domain, provider(b, bulkmail).hosts)


@scenario(0.001, "null MX (RFC 7505)", D.NULL_MX)
def null_mx(b: Builder) -> Laid:
    domain, zone = b.signed_domain()
    zone.add(domain, "MX", "0 .")
    return Laid(domain)


@scenario(0.0003, "MX RRset with a corrupted signature", D.DNSSEC_BOGUS)
def bogus_mx(b: Builder) -> Laid:
    laid, zone = _signed_on_hoster(b)
    zone.corrupt.append((laid.domain, "MX"))
    return Laid(laid.domain)


def _bogus_zone(
    parent_ds: DsMode = DsMode.MATCH, expired: bool = False
) -> Callable[[Builder], Laid]:
    def lay_out(b: Builder) -> Laid:
        return Laid(_signed_on_hoster(b, parent_ds=parent_ds, expired=expired)[0].domain)

    return lay_out


scenario(0.0003, "DS in the parent matches no key", D.DNSSEC_BOGUS, name="bogus_wrong_ds")(
    _bogus_zone(parent_ds=DsMode.WRONG)
)
scenario(0.0003, "every signature of the zone expired", D.DNSSEC_BOGUS, name="bogus_expired")(
    _bogus_zone(expired=True)
)

"""The one domain the real Postfix serves (testbed.postfix runs it): DANE-EE
3 1 1 (RFC 7672 section 3.1.1), its chain written by testbed.cli."""

from __future__ import annotations

from scanner.status import DaneVerdict as V
from scanner.status import DomainVerdict as D
from testbed.builder import Builder
from testbed.pki import tlsa_rdata
from testbed.scenarios.registry import Laid, scenario


@scenario(0.0, "the real Postfix, DANE-EE 3 1 1", D.DANE_VALID, V.PASS, minimum=1)
def postfix_dane(b: Builder) -> Laid:
    domain, zone = b.signed_domain()
    host = f"mx.{domain}"
    leaf, issuer = b.leaf([host], key_label="postfix")
    b.postfix = (host, b.chain([leaf, issuer]))
    zone.add(domain, "MX", f"10 {host}")
    zone.add(host, "A", b.postfix_address)
    zone.add(f"_25._tcp.{host}", "TLSA", tlsa_rdata(3, 1, 1, leaf))
    return Laid(domain, (host,))

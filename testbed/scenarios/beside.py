"""Scenarios of what a scan observes beside DANE (issue 19): certificates
that will expire (``--days-ahead``), REQUIRETLS (RFC 8689) and the signs of
a STARTTLS downgrade. The MTA-STS and TLS-RPT scenarios, which need the
testbed's web server, live with it.
"""

from __future__ import annotations

from scanner.status import DaneVerdict as V
from scanner.status import DomainVerdict as D
from testbed.builder import BesideTruth, Builder
from testbed.model import Behavior
from testbed.pki import Issued, tlsa_rdata
from testbed.scenarios.layout import Host, dane_host, ee_311, publish, self_hosted
from testbed.scenarios.registry import Laid, scenario

_SOON = 10  # days a leaf has left in "expires soon": within --days-ahead 30


@scenario(
    0.00005,
    "DANE-TA, leaf expires within 30 days",
    D.DANE_VALID,
    V.PASS,
    beside=BesideTruth(verdict_in_30_days=D.DANE_INVALID),
)
def ta_expires_soon(b: Builder) -> Laid:
    """A DANE-TA host that passes today and fails once its leaf expires (RFC
    7671 section 5.2: DANE-TA checks the chain's dates); DANE-EE would not."""

    def ta_211(b: Builder, host: Host, leaf: Issued, issuer: Issued) -> list[str]:
        return [tlsa_rdata(2, 1, 1, issuer)]

    return dane_host(b, ta_211, days_after=_SOON)[0].laid


@scenario(
    0.00005,
    "DANE-EE host offering REQUIRETLS after STARTTLS",
    D.DANE_VALID,
    V.PASS,
    beside=BesideTruth(host_requiretls=(True,), host_downgrade=((),)),
)
def requiretls_offered(b: Builder) -> Laid:
    host = self_hosted(b)
    leaf, issuer = b.leaf([host.name])
    publish(b, host, tlsa_rdata(3, 1, 1, leaf))
    b.serve(host.address, [host.name], b.chain([leaf, issuer]), tls_extensions=("REQUIRETLS",))
    return host.laid


@scenario(
    0.00005,
    "TLSA published, STARTTLS offered on one address and not on the other",
    D.DANE_INVALID,
    V.FAIL_NO_TLS,
    beside=BesideTruth(
        host_requiretls=(False,),
        host_downgrade=(("tlsa_without_starttls", "starttls_inconsistent"),),
    ),
)
def starttls_on_one_address(b: Builder) -> Laid:
    """One address strips STARTTLS, as a middlebox on one path would."""
    host, leaf, issuer = dane_host(b, ee_311)
    other = b.new_address()
    b.add(host.name, "A", other)
    b.serve(other, [host.name], b.chain([leaf, issuer]), Behavior.NO_STARTTLS)
    return host.laid

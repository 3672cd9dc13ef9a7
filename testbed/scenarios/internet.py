"""Scenarios of faults the real internet has and the loopback profile does not
model (testbed.profile): DNS operators that never answer or refuse, leaving
the resolver nothing but SERVFAIL (RFC 7672 section 2.2.1: the MX lookup
fails), and mail hosts that stall or reset TLS (section 2.2: fail_no_tls)."""

from __future__ import annotations

from collections.abc import Callable

from scanner.status import DaneVerdict as V
from scanner.status import DomainVerdict as D
from testbed.builder import Builder
from testbed.model import Behavior
from testbed.profile import OperatorKind
from testbed.scenarios.layout import shared_host_address, unreachable
from testbed.scenarios.registry import Laid, scenario


def _unanswered(kind: OperatorKind, signed: bool) -> Callable[[Builder], Laid]:
    """A domain whose only DNS operator never answers or answers REFUSED: the
    resolver has nothing to give but SERVFAIL, whatever a scanner retries."""

    def lay_out(b: Builder) -> Laid:
        if signed:
            domain, _ = b.signed_domain(operator=kind)
        else:
            domain = b.unsigned_domain(operator=kind)
        host = f"mx.{domain}"
        b.add(domain, "MX", f"10 {host}")
        b.add(host, "A", shared_host_address(b))
        return Laid(domain)

    return lay_out


scenario(
    0.005, "the domain's only DNS operator never answers", D.DNS_ERROR,
    name="dead_operator", internet=True,
)(_unanswered(OperatorKind.DEAD, signed=False))  # fmt: skip
scenario(
    0.005, "signed domain whose only DNS operator answers REFUSED", D.DNS_ERROR,
    name="lame_operator", internet=True,
)(_unanswered(OperatorKind.LAME, signed=True))  # fmt: skip
scenario(
    0.00005, "TLSA published, the host sends one byte a second", D.DANE_INVALID, V.FAIL_NO_TLS,
    name="tarpit_host", internet=True,
)(unreachable(Behavior.TARPIT))  # fmt: skip
scenario(
    0.00005, "TLSA published, every TLS handshake reset midway", D.DANE_INVALID, V.FAIL_NO_TLS,
    name="tls_reset_host", internet=True,
)(unreachable(Behavior.TLS_RESET))  # fmt: skip

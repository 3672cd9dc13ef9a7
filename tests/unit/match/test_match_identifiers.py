"""Name checks: SAN dNSNames, CN fallback, wildcards (RFC 6125 section 6.4, RFC 7672 3.2.3)."""

from __future__ import annotations

import pytest
from match_pki import issue, key

from scanner.match.certificates import CertInfo, cert_info
from scanner.match.identifiers import host_matches


def _leaf_info(dns: list[str], cn: str = "leaf.example") -> CertInfo:
    info = cert_info(issue(cn, key("ec"), dns=dns).der)
    assert info is not None
    return info


@pytest.mark.parametrize(
    ("dns", "cn", "name", "ok"),
    [
        (["mx.example.com"], "x", "mx.example.com", True),
        (["MX.Example.com"], "x", "mx.EXAMPLE.com.", True),
        (["*.example.com"], "x", "mx.example.com", True),
        (["*.example.com"], "x", "a.mx.example.com", False),  # one label only
        (["*.example.com"], "x", "example.com", False),
        (["*.com"], "x", "example.com", False),  # at least two labels after the wildcard
        (["mx*.example.com"], "x", "mx1.example.com", False),  # no partial wildcards
        (["m*x.example.com"], "x", "mx.example.com", False),
        (["mx.*.com"], "x", "mx.example.com", False),
        (["*.example.com"], "x", "xn--bcher-kva.example.com", True),
        ([], "mx.example.com", "mx.example.com", True),  # CN only without dNSName
        ([], "*.example.com", "mx.example.com", True),
        (["other.example.com"], "mx.example.com", "mx.example.com", False),  # SAN wins
    ],
)
def test_host_matches(dns: list[str], cn: str, name: str, ok: bool) -> None:
    info = _leaf_info(dns, cn)
    assert (host_matches(info, [name]) is not None) is ok

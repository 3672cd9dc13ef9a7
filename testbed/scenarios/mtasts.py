"""Scenarios of MTA-STS (RFC 8461) and TLS-RPT (RFC 8460), with what a scan
must conclude of them (testbed.builder.BesideTruth).

Most are unsigned domains, where MTA-STS is the protection a sender can use:
one self-hosted MX host whose certificate chains to the testbed's WebPKI
roots (D/webpki-roots.pem, which the scan trusts through --pkix-ca), a
``_mta-sts`` record and a policy served by the testbed's nginx. What
differs is one thing each: the mode, the policy's mx patterns, how the
policy is served (section 3.3), the record (section 3.1), the MX
certificate (section 4.2), or DANE beside it (section 2: DANE first).

The effective policy and outcome follow scanner.effective's rules: a policy
that cannot be used leaves the sender with opportunistic TLS, and a failure
that may be transient (nothing listens on 443) leaves it unknown.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from scanner.status import DaneVerdict as V
from scanner.status import DomainVerdict as D
from testbed.builder import BesideTruth, Builder, sts_policy
from testbed.model import StsServe
from testbed.pki import KeyType, tlsa_rdata
from testbed.scenarios.layout import publish, self_hosted
from testbed.scenarios.registry import Laid, scenario

_INSECURE = (D.NO_DANE, V.NO_DANE_INSECURE)
_RECORD = "v=STSv1; id=20261204T000000;"
_WEIGHT = 0.00005

# The MX hosts' patterns: the host itself unless a scenario says otherwise.
Patterns = Callable[[str, str], Sequence[str]]


def _own(domain: str, host: str) -> Sequence[str]:
    return [host]


def _sts_domain(
    *,
    mode: str = "enforce",
    patterns: Patterns = _own,
    serve: StsServe = StsServe.POLICY,
    records: Sequence[str] = (_RECORD,),
    trusted_mx: bool = True,
    tlsrpt: str | None = None,
) -> Callable[[Builder], Laid]:
    """An unsigned domain with one MX host and an MTA-STS policy."""

    def lay_out(b: Builder) -> Laid:
        fqdn = b.unsigned_domain()  # absolute, as the builder's owners are
        domain = fqdn.rstrip(".")
        host = f"mx.{domain}"
        address = b.new_address()
        b.add(fqdn, "MX", f"10 {host}.")
        b.add(f"{host}.", "A", address)
        issuer = None if trusted_mx else b.pki.ca("Private Mail CA", KeyType.ECDSA)
        leaf, parent = b.leaf([host], issuer=issuer)
        b.serve(address, [host], b.chain([leaf, parent]))
        if records:
            b.mta_sts_record(fqdn, *records)
            b.mta_sts(fqdn, sts_policy(mode, patterns(domain, host)), serve)
        if tlsrpt is not None:
            b.tls_rpt(fqdn, tlsrpt)
        return Laid(fqdn, (f"{host}.",))

    return lay_out


def _beside(
    fetch: str | None,
    mode: str | None,
    policy: str,
    outcome: str,
    host: str | None,
    *,
    record: str = "valid",
    tlsrpt: str = "absent",
) -> BesideTruth:
    return BesideTruth(
        mta_sts_record=record,
        mta_sts_fetch=fetch,
        mta_sts_mode=mode,
        tlsrpt_record=tlsrpt,
        effective_policy=policy,
        effective_outcome=outcome,
        host_mta_sts=(host,),
    )


_RUA = "v=TLSRPTv1; rua=mailto:tlsrpt@reports.example"

for _name, _description, _layout, _truth in (
    ("sts_enforce", "MTA-STS enforce, the MX host valid under it",
     _sts_domain(tlsrpt=_RUA),
     _beside("ok", "enforce", "mta_sts_enforce", "pass", "valid", tlsrpt="valid")),
    ("sts_testing", "MTA-STS testing, the MX host valid under it",
     _sts_domain(mode="testing"),
     _beside("ok", "testing", "mta_sts_testing", "pass", "valid")),
    ("sts_mode_none", "MTA-STS mode none",
     _sts_domain(mode="none"),
     _beside("ok", "none", "opportunistic", "unauthenticated", "valid")),
    ("sts_wildcard", "MTA-STS enforce, the MX host matched by *.<domain>",
     _sts_domain(patterns=lambda domain, host: [f"*.{domain}"]),
     _beside("ok", "enforce", "mta_sts_enforce", "pass", "valid")),
    ("sts_mx_outside", "MTA-STS enforce, the MX host outside the policy's patterns",
     _sts_domain(patterns=lambda domain, host: [f"mail.{domain}"]),
     _beside("ok", "enforce", "mta_sts_enforce", "fail", "not_allowed")),
    ("sts_testing_outside", "MTA-STS testing, the MX host outside the patterns",
     _sts_domain(mode="testing", patterns=lambda domain, host: [f"mail.{domain}"]),
     _beside("ok", "testing", "mta_sts_testing", "report_only", "not_allowed")),
    ("sts_mx_untrusted", "MTA-STS enforce, the MX certificate from a private CA",
     _sts_domain(trusted_mx=False),
     _beside("ok", "enforce", "mta_sts_enforce", "fail", "untrusted")),
    ("sts_not_found", "MTA-STS record, the policy URL answers 404",
     _sts_domain(serve=StsServe.NOT_FOUND),
     _beside("http_error", None, "opportunistic", "unauthenticated", None)),
    ("sts_redirect", "MTA-STS record, the policy URL redirects",
     _sts_domain(serve=StsServe.REDIRECT),
     _beside("redirect", None, "opportunistic", "unauthenticated", None)),
    ("sts_wrong_type", "MTA-STS record, the policy served as text/html",
     _sts_domain(serve=StsServe.WRONG_MEDIA_TYPE),
     _beside("wrong_media_type", None, "opportunistic", "unauthenticated", None)),
    ("sts_too_large", "MTA-STS record, a policy over 64 KiB",
     _sts_domain(serve=StsServe.TOO_LARGE),
     _beside("too_large", None, "opportunistic", "unauthenticated", None)),
    ("sts_wrong_name", "MTA-STS record, the policy host's certificate for another name",
     _sts_domain(serve=StsServe.WRONG_NAME),
     _beside("cert_name_mismatch", None, "opportunistic", "unauthenticated", None)),
    ("sts_no_https", "MTA-STS record, nothing listens on the policy host's port 443",
     _sts_domain(serve=StsServe.NO_HTTPS),
     _beside("connect_error", None, "unknown", "unknown", None)),
    ("sts_no_policy_host", "MTA-STS record (an id), no policy host at all",
     _sts_domain(serve=StsServe.NO_ADDRESS),
     _beside("no_address", None, "opportunistic", "unauthenticated", None)),
    ("sts_policy_syntax", "MTA-STS policy with an unknown mode",
     _sts_domain(mode="enforcing"),
     _beside("ok", None, "opportunistic", "unauthenticated", None)),
    ("sts_record_invalid", "MTA-STS record without an id",
     _sts_domain(records=("v=STSv1;",)),
     _beside(None, None, "opportunistic", "unauthenticated", None, record="invalid")),
    ("sts_record_twice", "two MTA-STS records",
     _sts_domain(records=(_RECORD, "v=STSv1; id=other;")),
     _beside(None, None, "opportunistic", "unauthenticated", None, record="multiple")),
    ("tlsrpt_malformed", "a TLS-RPT record with an ftp: rua, no MTA-STS",
     _sts_domain(records=(), tlsrpt="v=TLSRPTv1; rua=ftp://reports.example/x"),
     _beside(None, None, "opportunistic", "unauthenticated", None, record="absent",
             tlsrpt="invalid")),
):  # fmt: skip
    scenario(_WEIGHT, _description, *_INSECURE, name=_name, beside=_truth)(_layout)


@scenario(
    _WEIGHT,
    "DANE and MTA-STS enforce both published: DANE first",
    D.DANE_VALID,
    V.PASS,
    beside=BesideTruth(
        mta_sts_record="valid",
        mta_sts_fetch="ok",
        mta_sts_mode="enforce",
        effective_policy="dane",
        effective_outcome="pass",
        host_mta_sts=("valid",),
    ),
)
def dane_and_sts(b: Builder) -> Laid:
    """RFC 8461 section 2: a sender that implements both applies DANE."""
    host = self_hosted(b)
    leaf, issuer = b.leaf([host.name])
    publish(b, host, tlsa_rdata(3, 1, 1, leaf))
    b.serve(host.address, [host.name], b.chain([leaf, issuer]))
    b.mta_sts_record(host.domain, _RECORD)
    b.mta_sts(host.domain, sts_policy("enforce", [host.name.rstrip(".")]))
    return host.laid

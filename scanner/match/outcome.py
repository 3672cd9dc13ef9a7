"""What the matcher reports: the verdict, the matched record and depth, OpenSSL's code.

A :class:`MatchResult` carries the RFC 7672 verdict (``scanner.status``) with
the X509 verify code OpenSSL's DANE verifier (RFC 6698, RFC 7671) reports for
the same inputs, so that a verdict can be compared with OpenSSL's case by
case (tests/unit/match/test_match_conformance.py). :func:`verdict_for_code`
is the one mapping from codes to verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from scanner.status import DaneVerdict
from scanner.tlsa import TlsaRecord

__all__ = ["NO_EE_MATCH", "MatchResult", "VerifyCode", "ee_pass", "verdict_for_code"]


class VerifyCode(IntEnum):
    """The OpenSSL X509 verify codes this matcher can produce (x509_vfy.h)."""

    OK = 0
    UNSPECIFIED = 1
    UNABLE_TO_GET_ISSUER_CERT = 2
    CERT_SIGNATURE_FAILURE = 7
    CERT_NOT_YET_VALID = 9
    CERT_HAS_EXPIRED = 10
    DEPTH_ZERO_SELF_SIGNED_CERT = 18
    SELF_SIGNED_CERT_IN_CHAIN = 19
    UNABLE_TO_GET_ISSUER_CERT_LOCALLY = 20
    UNABLE_TO_VERIFY_LEAF_SIGNATURE = 21
    CERT_CHAIN_TOO_LONG = 22
    INVALID_CA = 24
    PATH_LENGTH_EXCEEDED = 25
    INVALID_PURPOSE = 26
    KEYUSAGE_NO_CERTSIGN = 32
    HOSTNAME_MISMATCH = 62
    DANE_NO_MATCH = 65


def verdict_for_code(code: int) -> DaneVerdict:
    """The DaneVerdict that an OpenSSL verify code stands for."""
    if code == VerifyCode.OK:
        return DaneVerdict.PASS
    if code == VerifyCode.DANE_NO_MATCH:
        return DaneVerdict.FAIL_NO_MATCH
    if code == VerifyCode.HOSTNAME_MISMATCH:
        return DaneVerdict.FAIL_TA_NAME
    if code in (VerifyCode.CERT_NOT_YET_VALID, VerifyCode.CERT_HAS_EXPIRED):
        return DaneVerdict.FAIL_TA_EXPIRED
    # signatures, CA flags, key usage, purpose, path length; with PKIX also "no trust path"
    return DaneVerdict.FAIL_CHAIN


@dataclass(frozen=True, slots=True)
class MatchResult:
    """The DANE outcome for one chain and one TLSA RRset.

    ``depth`` is the chain depth of the certificate that matched (0 = leaf), or
    -1 when nothing matched; a bare ``2 1 0`` key reports the depth of the
    certificate it signed, as OpenSSL does. ``code`` is the OpenSSL X509 verify
    code that OpenSSL would report for the same inputs (None when no record is
    usable). ``pkix`` is the optional PKIX evaluation of usages 0/1.
    """

    verdict: DaneVerdict
    record: TlsaRecord | None
    depth: int
    reason: str
    code: int | None
    pkix: MatchResult | None = None


def ee_pass(record: TlsaRecord) -> MatchResult:
    """A DANE-EE(3) ``record`` matched the leaf: a pass with no further check."""
    return MatchResult(
        DaneVerdict.PASS, record, 0, f"{record.label()} matched the leaf", int(VerifyCode.OK)
    )


# Only DANE-EE(3) records were usable and none matched the leaf.
NO_EE_MATCH = MatchResult(
    DaneVerdict.FAIL_NO_MATCH,
    None,
    -1,
    "no record matched the leaf certificate",
    int(VerifyCode.DANE_NO_MATCH),
)

"""The TLS-RPT record (RFC 8460 section 3): examples and malformed records."""

from __future__ import annotations

import pytest

from scanner.mtasts.record import TxtRecordStatus
from scanner.tlsrpt import TlsRptRecord, parse_tlsrpt_record

VALID = TxtRecordStatus.VALID


def one(text: str) -> list[list[bytes]]:
    return [[text.encode("latin-1")]]


@pytest.mark.parametrize(
    ("text", "rua"),
    [
        # RFC 8460 s3.1's examples
        ("v=TLSRPTv1;rua=mailto:reports@example.com", ("mailto:reports@example.com",)),
        (
            "v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt",
            ("https://reporting.example.com/v1/tlsrpt",),
        ),
        (
            "v=TLSRPTv1; rua=mailto:tlsrpt@example.com,https://r.example.net/tls",
            ("mailto:tlsrpt@example.com", "https://r.example.net/tls"),
        ),
        # whitespace around the commas of the list, and around ';'
        (
            "v=TLSRPTv1 ; rua=mailto:a@example.com \t, MAILTO:b@example.com ;",
            ("mailto:a@example.com", "MAILTO:b@example.com"),
        ),
        ("v=TLSRPTv1; ext=1; rua=mailto:a@example.com; x.y=z", ("mailto:a@example.com",)),
        (
            "v=TLSRPTv1; rua=mailto:a%2Cb@example.com?subject=x",
            ("mailto:a%2Cb@example.com?subject=x",),
        ),
    ],
)
def test_valid_records(text: str, rua: tuple[str, ...]) -> None:
    assert parse_tlsrpt_record(one(text)) == TlsRptRecord(VALID, rua=rua)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("v=TLSRPTv1", "no field after the version"),
        ("v=TLSRPTv1 rua=mailto:a@example.com", "expected ';' after v=TLSRPTv1"),
        ("v=TLSRPTv1; rua=mailto:a@example.com ", "whitespace after the last field"),
        ("v=TLSRPTv1;; rua=mailto:a@example.com", "empty field"),
        ("v=TLSRPTv1; ext=1", "no rua field"),
        ("v=TLSRPTv1; RUA=mailto:a@example.com", "no rua field"),  # %s"rua="
        ("v=TLSRPTv1; rua=mailto:a@example.com; rua=mailto:b@example.com", "more than one rua"),
        ("v=TLSRPTv1; rua=", "is empty or holds whitespace"),
        ("v=TLSRPTv1; rua=mailto:a@example.com,", "is empty or holds whitespace"),
        ("v=TLSRPTv1; rua=mailto:a @example.com", "is empty or holds whitespace"),
        ("v=TLSRPTv1; rua=http://r.example.com/", "neither mailto: nor https:"),
        ("v=TLSRPTv1; rua=reports@example.com", "neither mailto: nor https:"),
        ("v=TLSRPTv1; rua=mailto:reports", "has no address"),
        ("v=TLSRPTv1; rua=mailto:@", "has no address"),
        ("v=TLSRPTv1; rua=https:r.example.com", "has no host"),
        ("v=TLSRPTv1; rua=https:///path", "has no host"),
        ("v=TLSRPTv1; rua=mailto:a@example.com; ext=a=b", "malformed value of 'ext'"),
        ("v=TLSRPTv1; rua=mailto:\xe9@example.com", "not US-ASCII"),
    ],
)
def test_invalid_records(text: str, error: str) -> None:
    result = parse_tlsrpt_record(one(text))
    assert result.status is TxtRecordStatus.INVALID
    assert result.rua == ()
    assert error in result.error


@pytest.mark.parametrize(
    ("rrset", "expected"),
    [
        ([], TlsRptRecord(TxtRecordStatus.ABSENT)),
        ([[b"v=STSv1; id=1"]], TlsRptRecord(TxtRecordStatus.ABSENT)),
        ([[b"v=TLSRPTv10; rua=mailto:a@example.com"]], TlsRptRecord(TxtRecordStatus.ABSENT)),
        (
            [[b"v=TLSRPTv1; rua=mailto:a@example.com"], [b"v=TLSRPTv1; rua=mailto:b@example.com"]],
            TlsRptRecord(TxtRecordStatus.MULTIPLE),
        ),
        (
            [[b"v=TLSRPTv1; rua=mailto:a@", b"example.com"], [b"other"]],
            TlsRptRecord(VALID, rua=("mailto:a@example.com",)),
        ),
    ],
)
def test_selection(rrset: list[list[bytes]], expected: TlsRptRecord) -> None:
    assert parse_tlsrpt_record(rrset) == expected


def test_a_failed_lookup_is_not_a_fact() -> None:
    assert TlsRptRecord.failed("timeout") == TlsRptRecord(
        TxtRecordStatus.LOOKUP_ERROR, error="timeout"
    )

"""The _mta-sts TXT record (RFC 8461 section 3.1): selection and syntax."""

from __future__ import annotations

import pytest

from scanner.mtasts.record import StsRecord, TxtRecordStatus, parse_sts_record

VALID = TxtRecordStatus.VALID
INVALID = TxtRecordStatus.INVALID


def one(text: str) -> list[list[bytes]]:
    return [[text.encode("latin-1")]]


@pytest.mark.parametrize(
    ("text", "id_"),
    [
        ("v=STSv1; id=20160831085700Z;", "20160831085700Z"),  # RFC 8461 s3.1's example
        ("v=STSv1; id=20160831085700Z", "20160831085700Z"),
        ("v=STSv1;id=1", "1"),
        ("v=STSv1 ;\tid=abc ; ", "abc"),  # whitespace around ';' (sts-field-delim)
        ("v=STSv1; id=" + "a" * 32, "a" * 32),
        ("v=STSv1; ext=x:y/z; id=AbC123", "AbC123"),  # extensions ignored, any order
        ("v=STSv1; id=1; a.b_c-d=!", "1"),
        ("v=STSv1; id=1; " + "e" * 32 + "=1", "1"),
    ],
)
def test_valid_records(text: str, id_: str) -> None:
    assert parse_sts_record(one(text)) == StsRecord(VALID, id=id_)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("v=STSv1", "no field after the version"),
        ("v=STSv1;", "no field after the version"),
        ("v=STSv1; ; ", "empty field"),
        ("v=STSv1 id=1", "expected ';' after v=STSv1"),
        ("v=STSv1; id=1 ", "whitespace after the last field"),
        ("v=STSv1;; id=1", "empty field"),
        ("v=STSv1; id=1;;", "empty field"),
        ("v=STSv1; id", "malformed field"),
        ("v=STSv1; =1; id=1", "malformed field"),
        ("v=STSv1; id=1; _x=1", "malformed field"),  # a name begins with a letter or digit
        ("v=STSv1; id=1; " + "e" * 33 + "=1", "malformed field"),
        ("v=STSv1; id=1; ext=", "malformed value of 'ext'"),
        ("v=STSv1; id=1; ext=a=b", "malformed value of 'ext'"),
        ("v=STSv1; id=1; ext=a b", "malformed value of 'ext'"),
        ("v=STSv1; ext=1", "no id field"),
        ("v=STSv1; ID=1", "no id field"),  # %s"id=": case-sensitive
        ("v=STSv1; id=1; id=2", "more than one id field"),
        ("v=STSv1; id=", "id is not 1-32"),
        ("v=STSv1; id=" + "a" * 33, "id is not 1-32"),
        ("v=STSv1; id=2016-08-31", "id is not 1-32"),
        ("v=STSv1; id=caf\xe9", "not US-ASCII"),
    ],
)
def test_invalid_records(text: str, error: str) -> None:
    result = parse_sts_record(one(text))
    assert result.status is INVALID
    assert result.id == ""
    assert error in result.error


@pytest.mark.parametrize(
    ("rrset", "expected"),
    [
        ([], StsRecord(TxtRecordStatus.ABSENT)),
        ([[b"v=spf1 -all"]], StsRecord(TxtRecordStatus.ABSENT)),
        ([[b"V=STSv1; id=1"]], StsRecord(TxtRecordStatus.ABSENT)),  # %s: case-sensitive
        ([[b" v=STSv1; id=1"]], StsRecord(TxtRecordStatus.ABSENT)),  # must begin with it
        ([[b"v=STSv10; id=1"]], StsRecord(TxtRecordStatus.ABSENT)),  # another version
        ([[b"v=STSv1; id=1"], [b"v=spf1 -all"]], StsRecord(VALID, id="1")),
        ([[b"v=STSv1; id=1"], [b"v=STSv1; id=2"]], StsRecord(TxtRecordStatus.MULTIPLE)),
        # a broken record still counts: two with the prefix are "not one"
        ([[b"v=STSv1; id=1"], [b"v=STSv1"]], StsRecord(TxtRecordStatus.MULTIPLE)),
        # character-strings are concatenated without spaces (s3.1)
        ([[b"v=STSv1; id=2016", b"0831085700Z;"]], StsRecord(VALID, id="20160831085700Z")),
        ([[b"v=STS", b"v1; id=1"]], StsRecord(VALID, id="1")),
        ([[b"v=STSv1;", b" id=1"]], StsRecord(VALID, id="1")),
    ],
)
def test_selection(rrset: list[list[bytes]], expected: StsRecord) -> None:
    assert parse_sts_record(rrset) == expected


def test_a_failed_lookup_is_not_a_fact() -> None:
    record = StsRecord.failed("SERVFAIL")
    assert record == StsRecord(TxtRecordStatus.LOOKUP_ERROR, error="SERVFAIL")
    assert [s.value for s in TxtRecordStatus] == [
        "absent",
        "valid",
        "invalid",
        "multiple",
        "lookup_error",
    ]

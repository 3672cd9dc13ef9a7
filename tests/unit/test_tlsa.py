"""The TLSA record's one text form: parsing "U S M HEX" and writing it back."""

from __future__ import annotations

import pytest

from scanner.tlsa import TlsaRecord, TlsaSyntaxError, parse_tlsa


def test_parse_tlsa() -> None:
    assert parse_tlsa("3 1 1 0A0b") == TlsaRecord(3, 1, 1, b"\x0a\x0b")
    assert parse_tlsa("  2 0 0 30 82\n01 ") == TlsaRecord(2, 0, 0, b"\x30\x82\x01")
    record = parse_tlsa("255 7 9 00")
    assert record == TlsaRecord(255, 7, 9, b"\x00")  # syntax only: unusable, not unparseable
    assert isinstance(record, TlsaRecord)
    assert record.to_text() == "255 7 9 00"
    assert TlsaRecord(3, 1, 1, b"\xab\xcd").to_text() == "3 1 1 ABCD"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("3 1 1", "expected"),
        ("", "expected"),
        ("x 1 1 00", "usage must be an integer"),
        ("3 -1 1 00", "selector must be an integer"),
        ("3 1 256 00", "matching type must be an integer"),
        ("3 1 1 0g", "not hexadecimal"),
        ("3 1 1 abc", "odd number"),
        ("3 1 1 ١٢", "not hexadecimal"),
    ],
)
def test_parse_tlsa_errors(text: str, message: str) -> None:
    result = parse_tlsa(text)
    assert isinstance(result, TlsaSyntaxError)
    assert message in result.message
    assert text in str(result)

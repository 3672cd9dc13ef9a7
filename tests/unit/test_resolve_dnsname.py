"""Names on the wire and in presentation format (scanner.resolve.dnsname):
encoding, and which names decode to their own text."""

from __future__ import annotations

import pytest

from scanner.resolve.dnsname import encode_name, is_plain_name

EXAMPLE = b"\x07example\x03com\x00"
LABEL63 = b"\x3f" + b"a" * 63


@pytest.mark.parametrize(
    ("name", "wire"),
    [
        (".", b"\x00"),
        ("", b"\x00"),
        ("com", b"\x03com\x00"),
        ("example.com.", EXAMPLE),
        ("a\\.b.example.", b"\x03a.b\x07example\x00"),
        ("\\032\\255x.", b"\x03 \xffx\x00"),
        ("\\@\\\\.", b"\x02@\\\x00"),
        ("a" * 63 + ".", LABEL63 + b"\x00"),
    ],
)
def test_encode_name(name: str, wire: bytes) -> None:
    assert encode_name(name) == wire


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("a..example", "label of 0 octets"),
        (".example", "label of 0 octets"),
        ("a" * 64 + ".example", "label of 64 octets"),
        (".".join(["a" * 63] * 4), "name of 257 octets"),
        ("bücher.example", "non-ASCII"),
        ("a\\256.example", "out of range"),
        ("a\\", "dangling backslash"),
    ],
)
def test_encode_name_rejects(name: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        encode_name(name)


@pytest.mark.parametrize(
    ("name", "plain"),
    [
        ("mx1.example.com.", True),
        ("_25._tcp.mx-1.example.", True),
        (".", True),
        ("MX.example.", False),  # decoding lower-cases: not the text of its wire form
        ("a\\.b.example.", False),  # an escaped dot inside a label
        ("a\\065.example.", False),
        ("a b.example.", False),  # decoded as a\032b
        ('a"b.example.', False),
        ("bücher.example.", False),
    ],
)
def test_is_plain_name(name: str, plain: bool) -> None:
    assert is_plain_name(name) is plain

"""der.spki against cryptography on generated certificates, and on malformed DER."""

from __future__ import annotations

import base64
import functools
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from match_pki import KINDS, Issued, issue, key

from scanner.match.der import DerError, pem_certificates, spki

# cryptography caps a CN at 64 bytes of UTF-8: 16 characters always fit
names = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=16
)
labels = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12)
dns_names = st.lists(st.lists(labels, min_size=2, max_size=4).map(".".join), max_size=4)
times = st.datetimes(
    min_value=datetime(1951, 1, 1), max_value=datetime(9998, 1, 1), timezones=st.just(UTC)
)


@functools.cache
def _issuer(kind: str, index: int) -> Issued:
    return issue("Issuer", key(kind, index), ca=True)


def _reference(cert_der: bytes) -> bytes:
    return (
        x509.load_der_x509_certificate(cert_der)
        .public_key()
        .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    )


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cn=names,
    dns=dns_names,
    serial=st.integers(min_value=1, max_value=2**159 - 1),
    start=times,
    days=st.integers(min_value=1, max_value=40000),
    key_index=st.integers(min_value=0, max_value=2),
    ca=st.sampled_from([None, True, False]),
)
def test_spki_equals_cryptography(
    kind: str,
    cn: str,
    dns: list[str],
    serial: int,
    start: datetime,
    days: int,
    key_index: int,
    ca: bool | None,
) -> None:
    # 3 x 1000 certificates with RSA, ECDSA and Ed25519 keys, issued by a CA of another kind
    issuer = _issuer(KINDS[(KINDS.index(kind) + 1) % 3], key_index)
    end = start + timedelta(days=min(days, (datetime(9999, 1, 1, tzinfo=UTC) - start).days))
    cert = issue(
        cn,
        key(kind, key_index),
        issuer,
        dns=dns,
        serial=serial,
        not_before=start,
        not_after=end,
        ca=ca,
    )
    assert spki(cert.der) == _reference(cert.der)


def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def _children(data: bytes) -> list[bytes]:
    """The TLVs directly inside a constructed DER value (test helper, trusted input)."""
    out, pos = [], 0
    while pos < len(data):
        first = data[pos + 1]
        if first < 0x80:
            start, length = pos + 2, first
        else:
            count = first & 0x7F
            start = pos + 2 + count
            length = int.from_bytes(data[pos + 2 : start], "big")
        out.append(data[pos : start + length])
        pos = start + length
    return out


def _strip(tlv: bytes) -> bytes:
    first = tlv[1]
    return tlv[2:] if first < 0x80 else tlv[2 + (first & 0x7F) :]


def test_v1_certificate_without_version_field(pki_cert: bytes) -> None:
    # X.509 v1: no [0] version and no extensions; the walker must still find the key.
    cert, sigalg, signature = _children(_strip(pki_cert))
    tbs = _children(_strip(cert))
    assert tbs[0][0] == 0xA0
    v1_tbs = _tlv(0x30, b"".join(tbs[1:7]))  # serial .. subjectPublicKeyInfo
    v1 = _tlv(0x30, v1_tbs + sigalg + signature)
    assert spki(v1) == tbs[6] == _reference(pki_cert)


@pytest.fixture(scope="module")
def pki_cert() -> bytes:
    return issue("mx.example.com", key("ec"), issue("CA", key("rsa"), ca=True)).der


def test_statuses(pki_cert: bytes) -> None:
    assert spki(b"") is DerError.EMPTY
    assert spki(pki_cert + b"\x00") is DerError.TRAILING_DATA
    assert spki(pki_cert[:-1]) is DerError.TRUNCATED
    assert spki(b"\x30\x80\x00\x00") is DerError.BAD_LENGTH  # BER indefinite length
    assert spki(b"\x30\x81\x05" + b"\x00" * 5) is DerError.BAD_LENGTH  # not minimal
    assert spki(b"\x30\x82\x00\x85" + b"\x00" * 0x85) is DerError.BAD_LENGTH  # leading zero
    assert spki(b"\x31" + pki_cert[1:]) is DerError.UNEXPECTED_TAG
    assert spki(_tlv(0x30, _tlv(0x30, _tlv(0x02, b"\x01")))) is DerError.TRUNCATED


def test_every_truncation_is_a_status(pki_cert: bytes) -> None:
    for n in range(len(pki_cert)):
        assert isinstance(spki(pki_cert[:n]), DerError)


@settings(max_examples=2000)
@given(data=st.binary(max_size=600))
def test_random_bytes_never_raise(data: bytes) -> None:
    result = spki(data)
    assert isinstance(result, DerError) or (isinstance(result, bytes) and result in data)


@settings(max_examples=2000, deadline=None)
@given(position=st.integers(min_value=0), value=st.integers(min_value=0, max_value=255))
def test_mutated_certificates_never_raise(pki_cert: bytes, position: int, value: int) -> None:
    mutated = bytearray(pki_cert)
    mutated[position % len(mutated)] = value
    result = spki(bytes(mutated))
    assert isinstance(result, DerError) or (isinstance(result, bytes) and result in mutated)


def test_pem_round_trip(pki_cert: bytes) -> None:
    body = base64.encodebytes(pki_cert).decode()
    text = (
        f"subject= /CN=x\n-----BEGIN CERTIFICATE-----\n{body}-----END CERTIFICATE-----\n"
        f"junk between\n-----BEGIN TRUSTED CERTIFICATE-----\n{body}"
        "-----END TRUSTED CERTIFICATE-----\n"
    )
    assert pem_certificates(text.encode()) == [pki_cert, pki_cert]
    assert pem_certificates(b"no certificates here") == []
    with pytest.raises(ValueError, match="bad base64"):
        pem_certificates(b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----")

"""Parsed certificates: fields, odd serial numbers, issuer names as OpenSSL compares them."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from match_pki import Pki, check, issue, key, make_pki, rec, reissue_leaf

from scanner.match.certificates import cert_info
from scanner.match.der import spki
from scanner.status import DaneVerdict


def test_a_negative_serial_number_is_read_without_a_warning() -> None:
    der = issue("mx.example.com", key("ec"), serial=3).der
    negative = der.replace(b"\x02\x01\x03", b"\x02\x01\x83", 1)  # INTEGER 3 -> -125
    assert negative != der
    info = cert_info(negative)  # warnings are errors in this suite
    assert info is not None
    assert info.serial == -125


def test_cert_info_of_generated_certificate(pki: Pki) -> None:
    info = cert_info(pki.leaf.der)
    assert info is not None
    assert info.dns_names == ("mx.example.com",)
    assert info.common_names == ("mx.example.com",)
    assert not info.self_issued
    root = cert_info(pki.root.der)
    assert root is not None
    assert root.self_signed
    assert root.ca is True
    expected = pki.leaf.cert.public_key().public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo
    )
    assert spki(pki.leaf.der) == expected
    assert cert_info(b"junk") is None
    assert isinstance(info.cert, x509.Certificate)


def test_issuer_names_compare_as_openssl_does() -> None:
    # OpenSSL folds case and spacing when it chains names; cryptography's own
    # verify_directly_issued_by would refuse, so the key alone decides the signature.
    pki = make_pki()
    leaf = reissue_leaf(pki, issuer_cn="test  ISSUER")
    result = check([leaf.der, pki.intermediate.der], [rec(2, 1, 1, pki.intermediate)])
    assert (result.verdict, result.depth) == (DaneVerdict.PASS, 1)

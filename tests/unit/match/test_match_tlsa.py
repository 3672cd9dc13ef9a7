"""TLSA semantics: records, DANE-EE, DANE-TA, names, expiry, agility, precedence."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from match_pki import NOW, Issued, Pki, issue, key, make_pki

from scanner.match.batch import CertPool
from scanner.match.der import spki
from scanner.match.tlsa import (
    MatchResult,
    TlsaRecord,
    TlsaSyntaxError,
    VerifyCode,
    cert_info,
    host_matches,
    match_chain,
    openssl_verify,
    parse_tlsa,
    record_problem,
    unusable_records,
)
from scanner.status import DaneVerdict

NAMES = ["mx.example.com"]


def rec(usage: int, selector: int, mtype: int, cert: Issued | bytes) -> TlsaRecord:
    """The record of ``usage`` that matches ``cert``."""
    der = cert if isinstance(cert, bytes) else cert.der
    data = der if selector == 0 else spki(der)
    assert isinstance(data, bytes)
    if mtype == 1:
        data = hashlib.sha256(data).digest()
    elif mtype == 2:
        data = hashlib.sha512(data).digest()
    return TlsaRecord(usage, selector, mtype, data)


def check(
    chain: list[bytes], records: list[TlsaRecord], names: list[str] = NAMES, **kwargs: object
) -> MatchResult:
    return match_chain(chain, records, names, NOW, CertPool(), **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- records


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


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        (TlsaRecord(3, 1, 1, bytes(32)), None),
        (TlsaRecord(4, 1, 1, bytes(32)), "unknown certificate usage 4"),
        (TlsaRecord(3, 2, 1, bytes(32)), "unknown selector 2"),
        (TlsaRecord(3, 1, 3, bytes(32)), "unknown matching type 3"),
        (TlsaRecord(3, 1, 1, bytes(31)), "must be 32 bytes, got 31"),
        (TlsaRecord(3, 1, 2, bytes(32)), "must be 64 bytes, got 32"),
        (TlsaRecord(3, 1, 0, b""), "empty"),
    ],
)
def test_record_problem(record: TlsaRecord, problem: str | None) -> None:
    found = record_problem(record)
    assert found == problem if problem is None else (found is not None and problem in found)


# --------------------------------------------------------------------------- DANE-EE(3)


@pytest.mark.parametrize(("selector", "mtype"), [(s, m) for s in (0, 1) for m in (0, 1, 2)])
def test_dane_ee_matches_leaf(pki: Pki, selector: int, mtype: int) -> None:
    record = rec(3, selector, mtype, pki.leaf)
    result = check(pki.chain, [record])
    assert (result.verdict, result.record, result.depth, result.code) == (
        DaneVerdict.PASS,
        record,
        0,
        0,
    )
    assert "DANE-EE(3)" in result.reason


def test_dane_ee_ignores_names_and_expiry() -> None:
    leaf = issue(
        "other.example",
        key("ec"),
        dns=["other.example"],
        not_before=NOW - timedelta(days=800),
        not_after=NOW - timedelta(days=400),
    )
    result = check([leaf.der], [rec(3, 1, 1, leaf)])
    assert result.verdict is DaneVerdict.PASS
    # OpenSSL's default (ee_name_checks) does check names for DANE-EE
    strict = check([leaf.der], [rec(3, 1, 1, leaf)], ee_name_checks=True)
    assert (strict.verdict, strict.depth, strict.code) == (
        DaneVerdict.FAIL_TA_NAME,
        0,
        VerifyCode.HOSTNAME_MISMATCH,
    )
    assert "other.example" in strict.reason


def test_no_match(pki: Pki) -> None:
    wrong = rec(3, 1, 1, pki.intermediate)  # a DANE-EE record for the wrong certificate
    result = check(pki.chain, [wrong])
    assert (result.verdict, result.record, result.depth, result.code) == (
        DaneVerdict.FAIL_NO_MATCH,
        None,
        -1,
        VerifyCode.DANE_NO_MATCH,
    )


def test_empty_chain() -> None:
    result = check([], [TlsaRecord(3, 1, 1, bytes(32))])
    assert (result.verdict, result.depth) == (DaneVerdict.FAIL_NO_MATCH, -1)


# --------------------------------------------------------------------------- DANE-TA(2)


@pytest.mark.parametrize(("selector", "mtype"), [(s, m) for s in (0, 1) for m in (0, 1, 2)])
def test_dane_ta_intermediate_and_root(pki: Pki, selector: int, mtype: int) -> None:
    at_1 = check(pki.full_chain, [rec(2, selector, mtype, pki.intermediate)])
    assert (at_1.verdict, at_1.depth) == (DaneVerdict.PASS, 1)
    at_2 = check(pki.full_chain, [rec(2, selector, mtype, pki.root)])
    assert (at_2.verdict, at_2.depth) == (DaneVerdict.PASS, 2)
    assert "mx.example.com matched" in at_2.reason


def test_dane_ta_does_not_match_the_leaf(pki: Pki) -> None:
    # depth >= 1 only: a DANE-TA record for the leaf itself is no anchor
    result = check(pki.chain, [rec(2, 1, 1, pki.leaf)])
    assert (result.verdict, result.depth) == (DaneVerdict.FAIL_NO_MATCH, -1)


def test_dane_ta_full_certificate_from_dns(pki: Pki) -> None:
    # 2 0 0: the server did not send the anchor; the record carries it
    result = check(pki.chain, [rec(2, 0, 0, pki.root)])
    assert (result.verdict, result.depth) == (DaneVerdict.PASS, 2)
    leaf_only = check([pki.leaf.der], [rec(2, 0, 0, pki.intermediate)])
    assert (leaf_only.verdict, leaf_only.depth) == (DaneVerdict.PASS, 1)


def test_dane_ta_bare_key(pki: Pki) -> None:
    # 2 1 0: a bare key reports the depth of the certificate it signed, as OpenSSL does
    result = check(pki.chain, [rec(2, 1, 0, pki.root)])
    assert (result.verdict, result.depth) == (DaneVerdict.PASS, 1)
    assert "bare key" in result.reason
    leaf_only = check([pki.leaf.der], [rec(2, 1, 0, pki.intermediate)])
    assert (leaf_only.verdict, leaf_only.depth) == (DaneVerdict.PASS, 0)
    stranger = check([pki.leaf.der], [TlsaRecord(2, 1, 0, rec(2, 1, 0, pki.root).data)])
    assert stranger.verdict is DaneVerdict.FAIL_NO_MATCH


def test_dane_ta_chain_out_of_order(pki: Pki) -> None:
    # issuers are found by name, not by position
    chain = [pki.leaf.der, pki.root.der, pki.intermediate.der]
    result = check(chain, [rec(2, 1, 1, pki.root)])
    assert (result.verdict, result.depth) == (DaneVerdict.PASS, 2)


def test_dane_ta_name_mismatch(pki: Pki) -> None:
    result = check(pki.chain, [rec(2, 1, 1, pki.intermediate)], names=["mx.example.net"])
    assert (result.verdict, result.depth, result.code) == (
        DaneVerdict.FAIL_TA_NAME,
        1,
        VerifyCode.HOSTNAME_MISMATCH,
    )
    assert "mx.example.com" in result.reason
    assert "mx.example.net" in result.reason
    assert check(pki.chain, [rec(2, 1, 1, pki.intermediate)], names=[]).verdict is (
        DaneVerdict.FAIL_TA_NAME
    )
    # any one reference identifier is enough
    ok = check(pki.chain, [rec(2, 1, 1, pki.intermediate)], names=["a.test", "MX.Example.COM."])
    assert ok.verdict is DaneVerdict.PASS


def test_dane_ta_expiry() -> None:
    expired_leaf = make_pki(leaf_kwargs={"not_after": NOW - timedelta(days=1)})
    result = check(expired_leaf.chain, [rec(2, 1, 1, expired_leaf.intermediate)])
    assert (result.verdict, result.depth, result.code) == (
        DaneVerdict.FAIL_TA_EXPIRED,
        1,
        VerifyCode.CERT_HAS_EXPIRED,
    )
    future_leaf = make_pki(leaf_kwargs={"not_before": NOW + timedelta(days=1)})
    result = check(future_leaf.chain, [rec(2, 1, 1, future_leaf.intermediate)])
    assert (result.verdict, result.code) == (
        DaneVerdict.FAIL_TA_EXPIRED,
        VerifyCode.CERT_NOT_YET_VALID,
    )
    old_ca = make_pki(intermediate_kwargs={"not_after": NOW - timedelta(days=1)})
    # below a root anchor the expired intermediate fails the chain ...
    result = check(old_ca.full_chain, [rec(2, 1, 1, old_ca.root)])
    assert (result.verdict, result.depth) == (DaneVerdict.FAIL_TA_EXPIRED, 2)
    # ... while an intermediate that is itself the anchor is not checked (as OpenSSL)
    assert check(old_ca.chain, [rec(2, 1, 1, old_ca.intermediate)]).verdict is DaneVerdict.PASS


def test_dane_ta_bad_signature() -> None:
    good = make_pki()
    forged = issue(
        "mx.example.com",
        key("ec", 2),
        good.intermediate,
        dns=["mx.example.com"],
        signing_key=key("ec", 9),  # not the intermediate's key
    )
    result = check([forged.der, good.intermediate.der], [rec(2, 1, 1, good.intermediate)])
    assert (result.verdict, result.depth, result.code) == (
        DaneVerdict.FAIL_CHAIN,
        1,
        VerifyCode.CERT_SIGNATURE_FAILURE,
    )


def test_dane_ta_issuer_must_be_a_ca() -> None:
    not_ca = make_pki(intermediate_kwargs={"ca": False})
    result = check(not_ca.full_chain, [rec(2, 1, 1, not_ca.root)])
    assert (result.verdict, result.code) == (DaneVerdict.FAIL_CHAIN, VerifyCode.INVALID_CA)


def test_dane_ta_leaf_purpose() -> None:
    code_signing = make_pki(leaf_kwargs={"server_eku": False})
    result = check(code_signing.chain, [rec(2, 1, 1, code_signing.intermediate)])
    assert (result.verdict, result.code) == (DaneVerdict.FAIL_CHAIN, VerifyCode.INVALID_PURPOSE)
    server = make_pki(leaf_kwargs={"server_eku": True})
    assert check(server.chain, [rec(2, 1, 1, server.intermediate)]).verdict is DaneVerdict.PASS


def test_unreadable_leaf() -> None:
    garbage = b"\x30\x03\x02\x01\x01"
    assert check([garbage], [rec(3, 0, 1, garbage)]).verdict is DaneVerdict.PASS
    assert check([garbage], [TlsaRecord(3, 1, 1, bytes(32))]).verdict is DaneVerdict.FAIL_NO_MATCH
    result = check([garbage], [TlsaRecord(2, 1, 1, bytes(32))])
    assert (result.verdict, result.code) == (DaneVerdict.FAIL_CHAIN, VerifyCode.UNSPECIFIED)


# --------------------------------------------------------------------------- names


def _leaf_info(dns: list[str], cn: str = "leaf.example") -> object:
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
    assert (host_matches(info, [name]) is not None) is ok  # type: ignore[arg-type]


# --------------------------------------------------------------------------- usable records


def test_unusable(pki: Pki) -> None:
    pkix_only = check(pki.chain, [rec(1, 1, 1, pki.leaf), rec(0, 1, 1, pki.root)])
    assert (pkix_only.verdict, pkix_only.depth, pkix_only.code) == (DaneVerdict.UNUSABLE, -1, None)
    assert "unusable for SMTP" in pkix_only.reason
    malformed = [
        TlsaRecord(4, 1, 1, bytes(32)),
        TlsaRecord(3, 1, 1, bytes(31)),
        TlsaRecord(2, 0, 0, b"not a certificate"),
        TlsaRecord(2, 1, 0, b"not a key"),
        TlsaRecord(3, 1, 9, bytes(32)),
    ]
    result = check(pki.chain, malformed)
    assert result.verdict is DaneVerdict.UNUSABLE
    assert len(unusable_records(malformed)) == 5
    # a malformed record never spoils a usable one
    mixed = check(pki.chain, [*malformed, rec(3, 1, 1, pki.leaf)])
    assert (mixed.verdict, mixed.depth) == (DaneVerdict.PASS, 0)
    assert check(pki.chain, []).verdict is DaneVerdict.UNUSABLE


def test_digest_agility(pki: Pki) -> None:
    sha256 = rec(3, 1, 1, pki.leaf)
    wrong_sha512 = TlsaRecord(3, 1, 2, bytes(64))
    # SHA2-512 present for (3, 1): the matching SHA2-256 record is not used
    assert check(pki.chain, [sha256, wrong_sha512]).verdict is DaneVerdict.FAIL_NO_MATCH
    # a different selector or usage is a different group
    assert check(pki.chain, [rec(3, 0, 1, pki.leaf), wrong_sha512]).verdict is DaneVerdict.PASS
    # a malformed SHA2-512 record (wrong length) takes no part
    assert check(pki.chain, [sha256, TlsaRecord(3, 1, 2, bytes(32))]).verdict is DaneVerdict.PASS
    # Full(0) is outside digest agility
    full = rec(3, 1, 0, pki.leaf)
    assert check(pki.chain, [full, wrong_sha512]).verdict is DaneVerdict.PASS
    # the preference is a parameter
    flipped = check(pki.chain, [sha256, wrong_sha512], mtype_preference=(1, 2))
    assert flipped.verdict is DaneVerdict.PASS


def test_precedence(pki: Pki) -> None:
    ee, ta1, ta2 = rec(3, 1, 1, pki.leaf), rec(2, 1, 1, pki.intermediate), rec(2, 1, 1, pki.root)
    assert check(pki.full_chain, [ta2, ta1, ee]).record == ee  # DANE-EE first
    both = check(pki.full_chain, [ta2, ta1])
    assert (both.record, both.depth) == (ta1, 1)  # the lowest anchor on the path
    # a failing DANE-EE candidate does not hide a DANE-TA pass
    result = check(pki.full_chain, [TlsaRecord(3, 1, 1, bytes(32)), ta2])
    assert (result.verdict, result.depth) == (DaneVerdict.PASS, 2)


def test_naive_now_is_utc(pki: Pki) -> None:
    naive = NOW.replace(tzinfo=None)
    result = match_chain(pki.full_chain, [rec(2, 1, 1, pki.root)], NAMES, naive, CertPool())
    assert result.verdict is DaneVerdict.PASS


# --------------------------------------------------------------------------- PKIX (statistics)


def test_pkix_evaluation(pki: Pki) -> None:
    store = [pki.root.der]
    pkix_ee = rec(1, 1, 1, pki.leaf)
    result = openssl_verify(pki.chain, [pkix_ee], NAMES, NOW, CertPool(), ca_store=store)
    assert (result.code, result.depth, result.verdict) == (0, 0, DaneVerdict.PASS)
    no_store = openssl_verify(pki.chain, [pkix_ee], NAMES, NOW, CertPool())
    assert (no_store.code, no_store.depth) == (VerifyCode.UNABLE_TO_GET_ISSUER_CERT_LOCALLY, 0)
    pkix_ta = rec(0, 1, 1, pki.root)  # the root comes from the store
    result = openssl_verify(pki.chain, [pkix_ta], NAMES, NOW, CertPool(), ca_store=store)
    assert (result.code, result.depth) == (0, 2)
    # for SMTP the same RRset is unusable; the PKIX view rides along when asked for
    smtp = check(pki.chain, [pkix_ee, pkix_ta], ca_store=store)
    assert smtp.verdict is DaneVerdict.UNUSABLE
    assert smtp.pkix is not None
    assert (smtp.pkix.code, smtp.pkix.depth, smtp.pkix.record) == (0, 0, pkix_ee)
    assert check(pki.chain, [pkix_ee]).pkix is None


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
    leaf = issue(
        "mx.example.com",
        key("ec", 2),
        pki.intermediate,
        dns=["mx.example.com"],
        issuer_cn="test  ISSUER",
    )
    result = check([leaf.der, pki.intermediate.der], [rec(2, 1, 1, pki.intermediate)])
    assert (result.verdict, result.depth) == (DaneVerdict.PASS, 1)

"""The DANE algorithm: DANE-EE, DANE-TA, expiry, chain checks, precedence, PKIX."""

from __future__ import annotations

from datetime import timedelta

import pytest
from match_pki import NAMES, NOW, Pki, check, issue, key, make_pki, rec, reissue_leaf

from scanner.match.batch import CertPool
from scanner.match.dane import match_chain, openssl_verify
from scanner.match.outcome import VerifyCode
from scanner.status import DaneVerdict
from scanner.tlsa import TlsaRecord


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
    forged = reissue_leaf(good, signing_key=key("ec", 9))  # not the intermediate's key
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

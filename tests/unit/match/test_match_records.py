"""Which records the matcher uses: problems, unusable RRsets, digest agility."""

from __future__ import annotations

import pytest
from match_pki import Pki, check, rec

from scanner.match.records import record_problem, unusable_records
from scanner.status import DaneVerdict
from scanner.tlsa import TlsaRecord


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

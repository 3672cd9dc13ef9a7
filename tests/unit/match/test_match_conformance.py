"""Every case of OpenSSL's DANE test vectors: same verdict, same match depth.

The vectors and their reader are in dane_vectors.py; without them every test
here skips, loudly (the reason, and a line in the session's summary).
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime

import pytest
from dane_vectors import EXPECTED_CASES, FILES, MISSING, PRESENT, Case, all_cases, setup

from scanner.match.batch import CertPool
from scanner.match.dane import match_chain, openssl_verify
from scanner.match.outcome import MatchResult, verdict_for_code
from scanner.status import DaneVerdict

# Every DANE-TA chain in the vectors is valid until 2116 or later, from 2016 at the latest.
NOW = datetime(2025, 6, 1, tzinfo=UTC)
# README: OpenSSL runs the vectors with SHA2-512 preferred over SHA2-256.
PREFERENCE = (2, 1)

CASES = all_cases()
pytestmark = pytest.mark.skipif(not PRESENT, reason=MISSING)
each_case = pytest.mark.parametrize("case", CASES, ids=[f"{c.file}-{c.number}" for c in CASES])


def _result(case: Case, *, openssl: bool) -> MatchResult:
    """``case`` with its names and flags: in conformance mode with the case's
    trust store (``openssl``), or through the scanner's own SMTP matcher."""
    names, store = setup(case)
    verify = functools.partial(openssl_verify, ca_store=store) if openssl else match_chain
    return verify(
        case.chain,
        case.records,
        names,
        NOW,
        CertPool(),
        ee_name_checks=not case.no_ee_name_checks,
        mtype_preference=PREFERENCE,
    )


def test_all_cases_read() -> None:
    counts = {name: sum(c.file == name for c in CASES) for name in FILES}
    assert counts == {name: spec[2] for name, spec in FILES.items()}
    assert len(CASES) == EXPECTED_CASES


@each_case
def test_openssl_conformance(case: Case) -> None:
    result = _result(case, openssl=True)
    assert (result.code, result.depth) == (case.want_code, case.want_depth), result.reason
    assert result.verdict is verdict_for_code(case.want_code)


@each_case
def test_smtp_verdict_agrees(case: Case) -> None:
    """The scanner's own verdict: the same as OpenSSL's where the RRset is usable for SMTP."""
    result = _result(case, openssl=False)
    usages = {r.usage for r in case.records}
    if usages <= {0, 1}:
        assert (result.verdict, result.depth, result.code) == (DaneVerdict.UNUSABLE, -1, None)
    else:
        assert usages <= {2, 3}, "no vector mixes PKIX and DANE usages"
        assert (result.code, result.depth) == (case.want_code, case.want_depth), result.reason
        assert result.verdict is verdict_for_code(case.want_code)


def test_rfc7672_default_skips_dane_ee_names() -> None:
    """Case 54 fails in OpenSSL's default; RFC 7672 section 3.1.1 says to pass it."""
    case = next(c for c in CASES if c.file == "danetest.in" and c.number == 54)
    names, _ = setup(case)
    result = match_chain(case.chain, case.records, names, NOW, CertPool())
    assert (result.verdict, result.depth) == (DaneVerdict.PASS, 0)

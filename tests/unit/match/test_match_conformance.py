"""Every case of OpenSSL's DANE test vectors: same verdict, same match depth.

The vectors live in ../shared/conformance/openssl-dane/ beside the repository
(see its README.md for the base names, trust stores and flags used here).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from scanner.match.batch import CertPool
from scanner.match.dane import match_chain, openssl_verify
from scanner.match.der import pem_certificates
from scanner.match.outcome import verdict_for_code
from scanner.status import DaneVerdict
from scanner.tlsa import TlsaRecord, parse_tlsa

REPO = Path(__file__).resolve().parents[3]
VECTORS = REPO.parent / "shared" / "conformance" / "openssl-dane"
# Every DANE-TA chain in the vectors is valid until 2116 or later, from 2016 at the latest.
NOW = datetime(2025, 6, 1, tzinfo=UTC)
# README: OpenSSL runs the vectors with SHA2-512 preferred over SHA2-256.
PREFERENCE = (2, 1)
FILES = {
    # file: (reference name, PKIX trust store, number of cases)
    "danetest.in": ("example.com", "danetest.pem", 54),
    "dane-cross.in": ("server.example", "cross-root.pem", 1),
}


@dataclass(frozen=True)
class Case:
    file: str
    number: int
    records: tuple[TlsaRecord, ...]
    chain: tuple[bytes, ...]
    no_ee_name_checks: bool
    want_code: int
    want_depth: int


def _cases(path: Path) -> list[Case]:
    """danetest.c's reader: a header line, that many record lines, that many PEM blocks."""
    lines = path.read_text().splitlines(keepends=True)
    cases, i = [], 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        ntlsa, ncert, nonames, want, depth = (int(f) for f in line.split())
        records = []
        for text in lines[i : i + ntlsa]:
            record = parse_tlsa(text)
            assert isinstance(record, TlsaRecord), record
            records.append(record)
        i += ntlsa
        block, ends = [], 0
        while ends < ncert:  # free text may sit between the certificates
            block.append(lines[i])
            ends += lines[i].startswith("-----END")
            i += 1
        chain = pem_certificates("".join(block).encode())
        assert len(chain) == ncert
        cases.append(
            Case(
                path.name, len(cases) + 1, tuple(records), tuple(chain), bool(nonames), want, depth
            )
        )
    return cases


def _all_cases() -> list[Case]:
    if not VECTORS.is_dir():
        return []
    return [case for name in FILES for case in _cases(VECTORS / name)]


CASES = _all_cases()
needs_vectors = pytest.mark.skipif(
    not VECTORS.is_dir(), reason=f"OpenSSL DANE vectors not found at {VECTORS}"
)


def _setup(case: Case) -> tuple[list[str], list[bytes]]:
    name, store_file, _ = FILES[case.file]
    return [name], pem_certificates((VECTORS / store_file).read_bytes())


@needs_vectors
def test_all_cases_read() -> None:
    counts = {name: sum(c.file == name for c in CASES) for name in FILES}
    assert counts == {name: spec[2] for name, spec in FILES.items()}


@needs_vectors
@pytest.mark.parametrize("case", CASES, ids=[f"{c.file}-{c.number}" for c in CASES])
def test_openssl_conformance(case: Case) -> None:
    names, store = _setup(case)
    result = openssl_verify(
        case.chain,
        case.records,
        names,
        NOW,
        CertPool(),
        ca_store=store,
        ee_name_checks=not case.no_ee_name_checks,
        mtype_preference=PREFERENCE,
    )
    assert (result.code, result.depth) == (case.want_code, case.want_depth), result.reason
    assert result.verdict is verdict_for_code(case.want_code)


@needs_vectors
@pytest.mark.parametrize("case", CASES, ids=[f"{c.file}-{c.number}" for c in CASES])
def test_smtp_verdict_agrees(case: Case) -> None:
    """The scanner's own verdict: the same as OpenSSL's where the RRset is usable for SMTP."""
    names, _ = _setup(case)
    result = match_chain(
        case.chain,
        case.records,
        names,
        NOW,
        CertPool(),
        ee_name_checks=not case.no_ee_name_checks,
        mtype_preference=PREFERENCE,
    )
    usages = {r.usage for r in case.records}
    if usages <= {0, 1}:
        assert (result.verdict, result.depth, result.code) == (DaneVerdict.UNUSABLE, -1, None)
    else:
        assert usages <= {2, 3}, "no vector mixes PKIX and DANE usages"
        assert (result.code, result.depth) == (case.want_code, case.want_depth), result.reason
        assert result.verdict is verdict_for_code(case.want_code)


@needs_vectors
def test_rfc7672_default_skips_dane_ee_names() -> None:
    """Case 54 fails in OpenSSL's default; RFC 7672 section 3.1.1 says to pass it."""
    case = next(c for c in CASES if c.file == "danetest.in" and c.number == 54)
    names, _ = _setup(case)
    result = match_chain(case.chain, case.records, names, NOW, CertPool())
    assert (result.verdict, result.depth) == (DaneVerdict.PASS, 0)

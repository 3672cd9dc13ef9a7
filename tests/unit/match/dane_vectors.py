"""Where OpenSSL's DANE test vectors are, and their reader (a helper module,
imported by name like match_pki).

The vectors live outside the repository, in ../shared/conformance/openssl-dane/
beside it (see its README.md for the base names, trust stores and flags used
here); ``DANESCAN_DANE_VECTORS`` names another folder, e.g. from a git worktree
whose parent has no ``shared``. Set, it must exist: a named folder that is
missing is an error, not a skip. Unset and absent, the conformance tests skip
with ``MISSING`` as their reason and the session's summary says so
(conftest.py), since a green run without them has not checked the matcher
against OpenSSL at all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from scanner.match.der import pem_certificates
from scanner.tlsa import TlsaRecord, parse_tlsa

ENV = "DANESCAN_DANE_VECTORS"
REPO = Path(__file__).resolve().parents[3]
VECTORS = Path(os.environ.get(ENV) or REPO.parent / "shared" / "conformance" / "openssl-dane")
FILES = {
    # file: (reference name, PKIX trust store, number of cases)
    "danetest.in": ("example.com", "danetest.pem", 54),
    "dane-cross.in": ("server.example", "cross-root.pem", 1),
}
EXPECTED_CASES = sum(spec[2] for spec in FILES.values())
PRESENT = VECTORS.is_dir()
MISSING = (
    f"OpenSSL DANE vectors not found at {VECTORS}: their {EXPECTED_CASES} cases were NOT run "
    f"(set {ENV} to the folder that holds them)"
)
if os.environ.get(ENV) and not PRESENT:
    raise FileNotFoundError(f"{ENV}={VECTORS} is not a folder")


@dataclass(frozen=True)
class Case:
    file: str
    number: int
    records: tuple[TlsaRecord, ...]
    chain: tuple[bytes, ...]
    no_ee_name_checks: bool
    want_code: int
    want_depth: int


def read_cases(path: Path) -> list[Case]:
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


def all_cases() -> list[Case]:
    """Every case of every file, or none when the vectors are absent."""
    if not PRESENT:
        return []
    return [case for name in FILES for case in read_cases(VECTORS / name)]


def setup(case: Case) -> tuple[list[str], list[bytes]]:
    """The reference identifiers and the PKIX trust store of ``case``'s file."""
    name, store_file, _ = FILES[case.file]
    return [name], pem_certificates((VECTORS / store_file).read_bytes())

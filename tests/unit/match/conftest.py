"""Fixtures for the matcher tests (the certificate factory is match_pki), and the
summary line that says the OpenSSL vectors (dane_vectors) did not run."""

from __future__ import annotations

import dane_vectors
import pytest
from match_pki import Pki, make_pki

from scanner.match.batch import CertPool


@pytest.fixture(scope="session")
def pki() -> Pki:
    return make_pki()


@pytest.fixture
def pool() -> CertPool:
    return CertPool()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say at the end of the run, where it is seen, that the OpenSSL vectors did not run."""
    if not dane_vectors.PRESENT:
        terminalreporter.write_sep("!", dane_vectors.MISSING, yellow=True, bold=True)

"""Fixtures for the matcher tests; the certificate factory is match_pki."""

from __future__ import annotations

import pytest
from match_pki import Pki, make_pki

from scanner.match.batch import CertPool


@pytest.fixture(scope="session")
def pki() -> Pki:
    return make_pki()


@pytest.fixture
def pool() -> CertPool:
    return CertPool()

"""Fixtures of the analysis.metrics tests: the datasets of metrics_rows as relations."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pytest
from metrics_rows import Pki, main_rows, make_pki, relation, ta_rows


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


@pytest.fixture
def connection() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    yield con
    con.close()


@pytest.fixture
def scan(connection: duckdb.DuckDBPyConnection, pki: Pki) -> duckdb.DuckDBPyRelation:
    """The thirteen domains of the main dataset."""
    return relation(connection, main_rows(pki))


@pytest.fixture
def ta_scan(connection: duckdb.DuckDBPyConnection, pki: Pki) -> duckdb.DuckDBPyRelation:
    """The six domains of the trust-anchor dataset."""
    return relation(connection, ta_rows(pki))

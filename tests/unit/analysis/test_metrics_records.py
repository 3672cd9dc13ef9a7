"""analysis.metrics.records: every TLSA record checked against the certificates presented."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from metrics_rows import (
    Pki,
    address,
    host,
    main_rows,
    relation,
    row,
    scan_depths,
    schema_3,
    ta_rows,
)

from analysis import metrics
from analysis.load import Scan, load
from scanner.match.batch import CertPool
from scanner.output.schema import SCHEMA, SCHEMA_VERSION


def test_tlsa_records_find_what_matches(scan: duckdb.DuckDBPyRelation) -> None:
    out = metrics.tlsa_records(scan).set_index(["base", "triplet"])
    assert out.loc[("mx2.prov.nl", "2 1 1"), ["matches", "depth", "anchor_kind"]].tolist() == [
        True,
        1,
        "intermediate",
    ]
    assert out.loc[("mx2.prov.nl", "2 1 1"), "anchor"] == "Test Intermediate"
    assert out.loc[("mx1.prov.nl", "3 1 1"), "domains"] == 2
    assert not out.loc[("mx.e.de", "3 1 1"), "matches"]
    assert not out.loc[("mx.m.com", "3 1 1"), "presented"]
    assert out.loc[("mx.l.com", "1 1 1"), "depth"] == 0
    assert len(out) == 9


def test_records_of_unknown_parameters_match_nothing(
    connection: duckdb.DuckDBPyConnection, pki: Pki
) -> None:
    odd = [
        {"usage": 3, "selector": 7, "mtype": 1, "data": b"x" * 32},
        {"usage": 3, "selector": 1, "mtype": 9, "data": b"x" * 32},
        {**pki.tlsa(3, 1, 1, "t"), "usage": 4},  # unknown usage, data of the leaf
    ]
    chain = [pki["t"], pki["inter"]]
    rows = [
        row(
            "o.nl",
            "dane_invalid",
            [host("mx.o.nl", "unusable", tlsa=odd, addresses=[address("192.0.2.1", chain)])],
        )
    ]
    out = metrics.tlsa_records(relation(connection, rows))
    assert out["triplet"].tolist() == ["3 7 1", "3 1 9", "4 1 1"]
    assert out["matches"].tolist() == [False, False, True]


@pytest.mark.parametrize(
    "table",
    [metrics.tlsa_records, metrics.rollover_readiness, metrics.ta_exposure, metrics.ta_anchors],
)
def test_shared_record_checks_give_the_same_table(
    table: Callable[..., pd.DataFrame], ta_scan: duckdb.DuckDBPyRelation
) -> None:
    alone = table(ta_scan)
    assert not alone.empty
    pd.testing.assert_frame_equal(table(ta_scan, checks=metrics.check_records(ta_scan)), alone)


def _refuse(*_: object) -> bytes:
    raise AssertionError("hashed a certificate the scan's depths already place")


TABLES = [metrics.tlsa_records, metrics.rollover_readiness, metrics.ta_exposure, metrics.ta_anchors]


@pytest.mark.parametrize("rows", [main_rows, ta_rows])
@pytest.mark.parametrize("table", TABLES)
def test_the_scans_depths_give_the_same_tables_without_hashing(
    connection: duckdb.DuckDBPyConnection,
    pki: Pki,
    monkeypatch: pytest.MonkeyPatch,
    rows: Callable[[Pki], list[dict[str, Any]]],
    table: Callable[..., pd.DataFrame],
) -> None:
    computed = table(relation(connection, rows(pki)))  # null depths: hashed here
    assert not computed.empty
    scanned = relation(connection, scan_depths(rows(pki)))
    monkeypatch.setattr(CertPool, "digest", _refuse)
    pd.testing.assert_frame_equal(table(scanned), computed)


def test_addresses_with_different_certificates_hash_only_to_name_the_match(
    connection: duckdb.DuckDBPyConnection, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    chains = [[pki["prov"], pki["inter"]], [pki["t"], pki["inter"]]]
    records = [pki.tlsa(3, 1, 1, "t"), pki.tlsa(2, 1, 1, "inter"), pki.tlsa(3, 1, 1, "e")]
    addresses = [address(f"192.0.2.{i}", chain) for i, chain in enumerate(chains)]
    rows = [
        row(
            "p.nl",
            "dane_partial",
            [host("mx.p.nl", "fail_no_match", tlsa=records, addresses=addresses)],
        )
    ]
    computed = metrics.tlsa_records(relation(connection, rows))
    assert computed["anchor"].tolist()[:2] == ["t.example", "Test Intermediate"]
    assert computed["depth"].tolist() == [0, 1, -1]
    scanned = relation(connection, scan_depths(rows))
    digests: list[bytes] = []
    real = CertPool.digest

    def counting(self: CertPool, cert: bytes, selector: int, mtype: int) -> bytes | None:
        digests.append(cert)
        return real(self, cert, selector, mtype)

    monkeypatch.setattr(CertPool, "digest", counting)
    from_column = metrics.tlsa_records(scanned)
    pd.testing.assert_frame_equal(from_column, computed)
    # Only the leaves, at depth 0 where the chains differ, and each at most once.
    assert digests
    assert len(set(digests)) == len(digests)
    assert set(digests) <= {pki["prov"], pki["t"]}


def test_a_version_3_dataset_reads_with_depths_computed_here(tmp_path: Path, pki: Pki) -> None:
    """Without the column (schema 3) analysis.legacy reads null depths and the
    records are hashed here: the same tables as from the scan's depths, also
    from a dataset whose parts mix the two versions."""
    old_rows, new_rows = main_rows(pki) + ta_rows(pki), scan_depths(main_rows(pki) + ta_rows(pki))
    parts = {
        "v3": [(old_rows, schema_3())],
        "v4": [(new_rows, SCHEMA)],
        "mixed": [(old_rows[:9], schema_3()), (new_rows[9:], SCHEMA)],
    }
    for name, written in parts.items():
        (tmp_path / name).mkdir()
        for i, (rows, schema) in enumerate(written):
            table = pa.Table.from_pylist(rows, schema=schema)
            pq.write_table(table, tmp_path / name / f"part-000-00000{i}.parquet")
    old, new, mixed = (load(tmp_path / name) for name in parts)
    versions = [scan.dataset.schema_version for scan in (old, new, mixed)]
    assert versions == ["3", SCHEMA_VERSION, f"3+{SCHEMA_VERSION}"]
    for table in TABLES:
        pd.testing.assert_frame_equal(table(old.dane), table(new.dane))
        pd.testing.assert_frame_equal(table(mixed.dane), table(new.dane))
    # The version 3 part read with null depths, the version 4 part with the scan's.
    assert _depths(old) == {None}
    assert _depths(new) == {None, -1, 0, 1, 2}  # null: hosts that presented no chain


def _depths(scan: Scan) -> set[int | None]:
    found = scan.dane.query(
        "d", "SELECT DISTINCT unnest(h.tlsa).depth FROM (SELECT unnest(mx_hosts) AS h FROM d)"
    )
    assert found is not None
    return {depth for (depth,) in found.fetchall()}

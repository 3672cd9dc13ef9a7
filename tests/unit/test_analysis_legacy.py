"""A dataset of schema version 2 (null where version 3 writes a verdict) reads
as version 3 does (analysis.legacy)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis.load import load
from scanner.output.rows import ROW_TYPE, domain_row
from scanner.output.schema import ADDRESS, MX_HOST, SCHEMA, VERSION_KEY
from scanner.results import AddressResult, DomainResult, HostResult
from scanner.status import DaneVerdict
from tests.unit.resolutions import insecure_host
from tests.unit.test_output import dane_result

ADDRESS_VERDICT = "mx_hosts.list.element.addresses.list.element.verdict"


def _insecure_host(passing: HostResult) -> HostResult:
    resolution = insecure_host("mx2.x.example.", "127.0.0.8")
    session = replace(passing.addresses[0].session, address="127.0.0.8")
    address = AddressResult(session, DaneVerdict.NO_DANE_INSECURE)
    return HostResult(
        "mx2.x.example.", 20, resolution, DaneVerdict.NO_DANE_INSECURE, "r", (address,)
    )


def _version_2(results: list[DomainResult], nulls: dict[str, set[tuple[int, int]]]) -> pa.Table:
    """Rows as version 2 wrote them: ``nulls`` says which verdicts were null,
    by domain ("domain"), by (domain, host) ("host") and (domain, host) of
    whose addresses ("address")."""
    rows: list[dict[str, Any]] = pa.array([domain_row(r) for r in results], ROW_TYPE).to_pylist()
    for i, row in enumerate(rows):
        if (i, -1) in nulls["domain"]:
            row["verdict"] = None
        for j, host in enumerate(row["mx_hosts"]):
            if (i, j) in nulls["host"]:
                host["verdict"] = None
            if (i, j) in nulls["address"]:
                for address in host["addresses"]:
                    address["verdict"] = None
    schema = SCHEMA.with_metadata({VERSION_KEY: b"2"})
    return pa.Table.from_pylist(rows, schema=schema)


@pytest.fixture
def old_dataset(tmp_path: Path) -> Path:
    base = dane_result("x.example", 1)
    passing = base.hosts[0]
    untested = replace(passing, host="mx3.x.example.", verdict=DaneVerdict.NOT_TESTED)
    results = [
        replace(base, domain="error.example", error="internal error: boom"),
        replace(base, domain="mixed.example", hosts=(passing, untested)),
        replace(base, domain="untested.example", hosts=(untested,)),
        replace(base, domain="insecure.example", hosts=(passing, _insecure_host(passing))),
    ]
    nulls = {
        "domain": {(0, -1), (1, -1), (2, -1)},
        "host": {(1, 1), (2, 0)},
        "address": {(1, 1), (2, 0), (3, 1)},
    }
    pq.write_table(_version_2(results, nulls), tmp_path / "part-000-000000.parquet")
    return tmp_path


def test_version_2_nulls_read_as_explicit_verdicts(old_dataset: Path) -> None:
    scan = load(old_dataset, extra_columns=[ADDRESS_VERDICT])
    assert scan.dataset.schema_version == "2"
    domains = dict(scan.domains.query("d", "SELECT domain, verdict FROM d").fetchall())
    assert domains == {
        "error.example": "internal_error",
        "mixed.example": "undetermined",
        "untested.example": "not_tested",
        "insecure.example": "dane_valid",
    }
    hosts = scan.dane.query(
        "d",
        "SELECT domain, h.host, h.verdict, [a.verdict FOR a IN h.addresses] "
        "FROM (SELECT domain, unnest(mx_hosts) AS h FROM d) ORDER BY ALL",
    ).fetchall()
    assert [row for row in hosts if row[0] != "error.example"] == [
        ("insecure.example", "mx.x.example", "pass", ["pass"]),
        ("insecure.example", "mx2.x.example", "no_dane_insecure", ["no_dane_insecure"]),
        ("mixed.example", "mx.x.example", "pass", ["pass"]),
        ("mixed.example", "mx3.x.example", "not_tested", ["not_tested"]),
        ("untested.example", "mx3.x.example", "not_tested", ["not_tested"]),
    ]


def test_a_current_dataset_is_read_as_written(tmp_path: Path) -> None:
    row = domain_row(dane_result("x.example", 1))
    pq.write_table(
        pa.Table.from_pylist(pa.array([row], ROW_TYPE).to_pylist(), SCHEMA),
        tmp_path / "part-000-000000.parquet",
    )
    scan = load(tmp_path)
    assert scan.dataset.schema_version == SCHEMA.metadata[VERSION_KEY].decode()
    assert scan.domains.query("d", "SELECT verdict FROM d").fetchall() == [("dane_valid",)]


def _without(struct: pa.StructType, names: set[str]) -> list[pa.Field]:
    return [f for f in struct if f.name not in names]


def test_a_version_4_dataset_without_the_columns_beside_dane_reads_alike(
    tmp_path: Path,
) -> None:
    address = pa.struct(_without(ADDRESS, {"requiretls"}))
    host_fields = [
        f.with_type(pa.list_(address)) if f.name == "addresses" else f
        for f in _without(
            MX_HOST, {"mta_sts", "mta_sts_error", "requiretls", "downgrade", "verdict_ahead"}
        )
    ]
    v4 = pa.schema(
        [
            f.with_type(pa.list_(pa.struct(host_fields))) if f.name == "mx_hosts" else f
            for f in SCHEMA
            if SCHEMA.get_field_index(f.name) <= SCHEMA.get_field_index("transient")
        ],
        metadata={VERSION_KEY: b"4"},
    )
    rows = pa.array([domain_row(dane_result("x.example", 1))], ROW_TYPE).to_pylist()
    pq.write_table(pa.Table.from_pylist(rows, v4), tmp_path / "part-000-000000.parquet")
    scan = load(tmp_path)
    assert scan.dataset.schema_version == "4"
    assert scan.domains.query("d", "SELECT verdict FROM d").fetchall() == [("dane_valid",)]
    hosts = scan.dane.query("d", "SELECT h.verdict FROM (SELECT unnest(mx_hosts) AS h FROM d)")
    assert hosts.fetchall() == [("pass",)]

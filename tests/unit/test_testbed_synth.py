"""testbed.synth: schema-conformant datasets whose counts the metrics reproduce."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis import metrics
from scanner.match.batch import CertPool
from scanner.match.depths import record_depths
from scanner.output.schema import SCHEMA, SCHEMA_VERSION, VERSION_KEY
from scanner.tlsa import TlsaRecord
from testbed import synth

N = 4000


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> synth.SynthSummary:
    root = tmp_path_factory.mktemp("synth")
    return synth.write_synthetic(
        root / "scan", N, seed=7, rows_per_part=1500, truth=root / "truth.parquet"
    )


@pytest.fixture(scope="module")
def relation(written: synth.SynthSummary) -> duckdb.DuckDBPyRelation:
    parts = sorted(str(p) for p in written.path.glob("part-*.parquet"))
    return duckdb.connect().read_parquet(parts)


def _plain(type_: pa.DataType) -> str:
    # Parquet names list items "element" where Arrow says "item": compare without.
    if pa.types.is_list(type_):
        return f"list<{_plain(type_.value_type)}>"
    if pa.types.is_struct(type_):
        return "struct<" + ", ".join(f"{f.name}: {_plain(f.type)}" for f in type_) + ">"
    return str(type_)


def test_layout_and_schema(written: synth.SynthSummary) -> None:
    parts = sorted(written.path.glob("part-*.parquet"))
    assert [p.name for p in parts] == [f"part-0-0000{i}.parquet" for i in range(3)]
    assert written.parts == 3
    for part in parts:
        schema = pq.read_schema(part)
        assert [_plain(f.type) for f in schema] == [_plain(f.type) for f in SCHEMA]
        assert schema.names == SCHEMA.names
        assert schema.metadata[VERSION_KEY] == SCHEMA_VERSION.encode()
    assert sum(pq.read_metadata(p).num_rows for p in parts) == N
    manifest = json.loads((written.path / "manifest.json").read_text())
    assert manifest["schema_version"] == SCHEMA_VERSION
    assert manifest["counts"]["domains"] == N
    assert not list(written.path.glob("*.tmp"))


def test_every_variant_is_present_and_counts_add_up(written: synth.SynthSummary) -> None:
    counts = dict(written.per_variant)
    assert sum(counts.values()) == N
    assert all(n >= v.minimum for v, n in written.variants)
    assert set(counts) == {v.name for v, _ in written.variants}


def test_proportions_are_realistic(written: synth.SynthSummary) -> None:
    funnel = written.funnel()
    unsigned = N - funnel["secure_mx"]
    assert 0.92 < unsigned / N < 0.98
    assert 0.005 < funnel["secure_tlsa"] / N < 0.02
    assert 0.7 < funnel["dane_valid"] / funnel["secure_tlsa"] < 0.95


def test_metrics_reproduce_the_stated_counts(
    written: synth.SynthSummary, relation: duckdb.DuckDBPyRelation
) -> None:
    funnel = metrics.funnel(relation)
    assert dict(zip(funnel["stage"].astype(str), funnel["domains"], strict=True)) == (
        written.funnel()
    )
    verdicts = metrics.domain_verdicts(relation)
    observed = {v: n for v, n in zip(verdicts["verdict"], verdicts["domains"], strict=True) if n}
    assert observed == written.verdicts()
    hosts = metrics.host_verdicts(relation)
    observed = {v: n for v, n in zip(hosts["verdict"], hosts["pairs"], strict=True) if n}
    assert observed == written.host_verdicts()


def test_names_are_filled_in(relation: duckdb.DuckDBPyRelation) -> None:
    leftovers = relation.query(
        "s",
        "SELECT count(*) FROM (SELECT domain, unnest(mx_hosts) AS h FROM s) "
        "WHERE h.host LIKE '%{%' OR h.tlsa_base LIKE '%{%' OR domain LIKE '%{%'",
    )
    assert leftovers is not None
    assert leftovers.fetchall() == [(0,)]
    distinct = relation.query("s", "SELECT count(DISTINCT domain) FROM s")
    assert distinct is not None
    assert distinct.fetchall() == [(N,)]


def test_truth_file_agrees(written: synth.SynthSummary) -> None:
    truth = pq.read_table(written.path.parent / "truth.parquet")
    assert truth.num_rows == N
    verdicts = truth.group_by("verdict").aggregate([("domain", "count")]).to_pylist()
    assert {r["verdict"]: r["domain_count"] for r in verdicts} == written.verdicts()
    scenarios = truth.group_by("scenario").aggregate([("domain", "count")]).to_pylist()
    assert {r["scenario"]: r["domain_count"] for r in scenarios} == written.per_variant


def test_churn_keeps_names_and_proportions(tmp_path: Path) -> None:
    before = synth.write_synthetic(tmp_path / "a", 1000, seed=3)
    after = synth.write_synthetic(tmp_path / "b", 1000, seed=3, churn=0.5)
    assert before.per_variant == after.per_variant
    a = pq.read_table(tmp_path / "a" / "part-0-00000.parquet", columns=["domain", "verdict"])
    b = pq.read_table(tmp_path / "b" / "part-0-00000.parquet", columns=["domain", "verdict"])
    assert a.column("domain").equals(b.column("domain"))
    assert not a.column("verdict").equals(b.column("verdict"))


def test_too_few_domains_for_the_catalogue(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot hold every variant"):
        synth.write_synthetic(tmp_path, 10)


def test_record_depths_are_the_scanners(relation: duckdb.DuckDBPyRelation) -> None:
    """Each record's ``depth`` is what the scanner's matcher computes from the
    chains the host's addresses presented (scanner.match.depths)."""
    hosts = relation.query(
        "s",
        "SELECT DISTINCT h.tlsa AS tlsa, [a.chain FOR a IN h.addresses] AS chains "
        "FROM (SELECT unnest(mx_hosts) AS h FROM s) WHERE len(h.tlsa) > 0",
    )
    assert hosts is not None
    pool = CertPool()
    seen: set[int | None] = set()
    for tlsa, chains in hosts.fetchall():
        records = [TlsaRecord(r["usage"], r["selector"], r["mtype"], r["data"]) for r in tlsa]
        depths = record_depths(records, chains, pool)
        assert [r["depth"] for r in tlsa] == (
            list(depths) if depths is not None else [None] * len(tlsa)
        )
        seen.update(r["depth"] for r in tlsa)
    assert {None, -1, 0, 1} <= seen  # untested hosts, stale records, leaves, intermediates

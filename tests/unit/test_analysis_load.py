"""analysis.load: finding and checking datasets, and the projected relations."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from analysis import load, metrics
from scanner.output.schema import VERSION_KEY
from testbed import synth
from testbed.scenarios import CATALOGUE

N = 5000
# Variants whose domains never have DANE in play (stated by hand, from the
# scenario catalogue testbed.synth draws its variants from).
QUIET_VARIANTS = frozenset(
    {
        "unsigned_provider",
        "unsigned_selfhosted",
        "unsigned_no_mx",
        "nxdomain",
        "input_error",
        "dead_operator",
        "lame_operator",
        "unsigned_dane_provider",
        "signed_no_tlsa",
        "signed_tlsa_nodata",
        "signed_insecure_host",
        "null_mx",
    }
    # The MTA-STS and TLS-RPT scenarios: unsigned self-hosted domains, for DANE.
    | {s.name for s in CATALOGUE if s.name.startswith(("sts_", "tlsrpt_"))}
)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> synth.SynthSummary:
    return synth.write_synthetic(
        tmp_path_factory.mktemp("load") / "scan", N, seed=11, rows_per_part=2000
    )


@pytest.fixture(scope="module")
def scan(written: synth.SynthSummary) -> load.Scan:
    return load.load(written.path)


def test_open_dataset_finds_parts_and_manifest(written: synth.SynthSummary) -> None:
    dataset = load.open_dataset(written.path)
    assert [Path(p).name for p in dataset.parts] == [
        "part-0-00000.parquet",
        "part-0-00001.parquet",
        "part-0-00002.parquet",
    ]
    assert dataset.local
    assert dataset.manifest is not None
    assert dataset.manifest.counts.domains == N
    assert dataset.manifest.scanner_version == "synthetic"
    single = load.open_dataset(dataset.parts[0])
    assert single.parts == (dataset.parts[0],)
    assert single.manifest is None


def _copy(written: synth.SynthSummary, target: Path) -> Path:
    shutil.copytree(written.path, target)
    return target


def test_a_part_of_another_schema_version_is_refused(
    written: synth.SynthSummary, tmp_path: Path
) -> None:
    copy = _copy(written, tmp_path / "scan")
    part = copy / "part-0-00001.parquet"
    table = pq.read_table(part)
    pq.write_table(table.replace_schema_metadata({VERSION_KEY: b"99"}), part)
    with pytest.raises(load.SchemaVersionError, match=r"part-0-00001.*version 99"):
        load.open_dataset(copy)


def test_a_part_without_version_is_refused(written: synth.SynthSummary, tmp_path: Path) -> None:
    copy = _copy(written, tmp_path / "scan")
    part = copy / "part-0-00000.parquet"
    pq.write_table(pq.read_table(part).replace_schema_metadata({}), part)
    with pytest.raises(load.SchemaVersionError, match="missing"):
        load.open_dataset(copy)


def test_a_manifest_of_another_version_is_refused(
    written: synth.SynthSummary, tmp_path: Path
) -> None:
    copy = _copy(written, tmp_path / "scan")
    manifest = json.loads((copy / "manifest.json").read_text())
    (copy / "manifest.json").write_text(json.dumps({**manifest, "schema_version": "99"}))
    with pytest.raises(load.SchemaVersionError, match="manifest declares schema version 99"):
        load.open_dataset(copy)


def test_nothing_to_read(tmp_path: Path) -> None:
    with pytest.raises(load.DatasetError, match="no part-"):
        load.open_dataset(tmp_path)
    with pytest.raises(load.DatasetError, match="no such file"):
        load.open_dataset(tmp_path / "missing")


def test_relations_hold_every_domain_and_the_dane_ones(
    scan: load.Scan, written: synth.SynthSummary
) -> None:
    assert scan.domains.shape[0] == N
    dane = sum(n for name, n in written.per_variant.items() if name not in QUIET_VARIANTS)
    assert scan.dane.shape[0] == dane
    assert scan.domains.columns == ["domain", "verdict", "mx_kind", "mx_dnssec", "mx_hosts"]


# Metrics that look only at domains where DANE is in play, and those that need all.
DANE_METRICS: list[Callable[[duckdb.DuckDBPyRelation], pd.DataFrame]] = [
    metrics.tlsa_triplets,
    metrics.failure_taxonomy,
    metrics.failure_categories,
    metrics.provider_concentration,
    metrics.tlsa_records,
    metrics.rollover_readiness,
    metrics.ta_anchors,
    metrics.ta_exposure,
    metrics.tls_versions,
    metrics.tls_ciphers,
]
ALL_METRICS: list[Callable[[duckdb.DuckDBPyRelation], pd.DataFrame]] = [
    metrics.funnel,
    metrics.funnel_by_tld,
    metrics.domain_verdicts,
    metrics.host_verdicts,
]


@pytest.mark.parametrize("metric", DANE_METRICS, ids=lambda m: m.__name__)
def test_dane_metrics_agree_on_the_dane_relation_and_the_full_dataset(
    scan: load.Scan, metric: Callable[[duckdb.DuckDBPyRelation], pd.DataFrame]
) -> None:
    full = load.full_relation(scan.dataset)
    expected = metric(full)
    assert len(expected) > 0
    pd.testing.assert_frame_equal(metric(scan.dane), expected)


@pytest.mark.parametrize("metric", ALL_METRICS, ids=lambda m: m.__name__)
def test_domain_metrics_agree_on_the_domains_relation_and_the_full_dataset(
    scan: load.Scan, metric: Callable[[duckdb.DuckDBPyRelation], pd.DataFrame]
) -> None:
    full = load.full_relation(scan.dataset)
    pd.testing.assert_frame_equal(metric(scan.domains), metric(full))


def test_a_filesystem_other_than_the_local_disk(
    written: synth.SynthSummary, scan: load.Scan
) -> None:
    # A sub-tree filesystem is not pyarrow's LocalFileSystem: the generic path is taken.
    fs = pafs.SubTreeFileSystem(str(written.path.parent), pafs.LocalFileSystem())
    remote = load.load("scan", filesystem=fs, threads=1)
    assert not remote.dataset.local
    assert remote.dataset.manifest is not None
    pd.testing.assert_frame_equal(metrics.funnel(remote.domains), metrics.funnel(scan.domains))
    pd.testing.assert_frame_equal(
        metrics.tlsa_triplets(load.full_relation(remote.dataset)),
        metrics.tlsa_triplets(scan.dane),
    )


def test_two_scans_in_one_connection(written: synth.SynthSummary) -> None:
    scans = load.load_many({"old": written.path, "new": written.path})
    diff = metrics.scan_diff(scans["old"].domains, scans["new"].domains)
    assert set(diff["change"]) == {"unchanged"}
    assert diff["domains"].sum() == N


def test_domains_only(written: synth.SynthSummary, scan: load.Scan) -> None:
    domains = load.load_domains(written.path, connection=scan.connection)
    assert not isinstance(domains, load.Scan)
    pd.testing.assert_frame_equal(metrics.funnel(domains.domains), metrics.funnel(scan.domains))
    diff = metrics.scan_diff(domains.domains, scan.domains)
    assert diff["domains"].sum() == N


def test_pandas_views(scan: load.Scan, written: synth.SynthSummary) -> None:
    domains = scan.domains_df()
    assert len(domains) == N
    assert domains["verdict"].value_counts().to_dict() == written.verdicts()
    hosts = scan.hosts_df()
    assert set(hosts["domain"]) <= set(domains["domain"])
    assert {"host", "verdict", "tlsa_state", "tlsa_records", "addresses"} <= set(hosts.columns)


def test_extra_columns(written: synth.SynthSummary) -> None:
    banner = "mx_hosts.list.element.addresses.list.element.banner"
    scan = load.load(written.path, extra_columns=[banner])
    fields = scan.dane.query(
        "d",
        "SELECT DISTINCT a.banner FROM (SELECT unnest(h.addresses) AS a FROM "
        "(SELECT unnest(mx_hosts) AS h FROM d))",
    )
    assert fields is not None
    assert ("220 mail ESMTP",) in fields.fetchall()

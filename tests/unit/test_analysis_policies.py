"""Beside DANE in the analysis (analysis.beside, analysis.metrics.policies):
a dataset of hand-made rows, one of schema 4 among them, and every table."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis import metrics
from analysis.beside import Beside, load_beside
from analysis.load import load, open_dataset
from analysis.report import build_html
from scanner.effective import Effective, EffectiveOutcome, EffectivePolicy
from scanner.mailpolicy import HostJudgement, Policies, StsObservation
from scanner.mtasts.policy import StsHostStatus, StsMode, StsPolicy
from scanner.mtasts.record import StsRecord, TxtRecordStatus
from scanner.mtasts.response import FetchResult, FetchStatus
from scanner.output.rows import ROW_TYPE, domain_row
from scanner.output.schema import SCHEMA, VERSION_KEY
from scanner.results import DomainResult
from scanner.status import DomainVerdict
from scanner.tlsrpt import TlsRptRecord
from tests.unit.test_output import dane_result

VALID = TxtRecordStatus.VALID
ABSENT = TlsRptRecord(TxtRecordStatus.ABSENT)
DANE_PASS = Effective(EffectivePolicy.DANE, EffectiveOutcome.PASS, "r")
OPPORTUNISTIC = Effective(EffectivePolicy.OPPORTUNISTIC, EffectiveOutcome.UNAUTHENTICATED, "r")
ENFORCED = Effective(EffectivePolicy.MTA_STS_ENFORCE, EffectiveOutcome.PASS, "r")


def sts(fetch: FetchStatus | None, mode: StsMode | None = None) -> StsObservation:
    if fetch is None:
        return StsObservation(StsRecord(TxtRecordStatus.ABSENT))
    policy = StsPolicy(True, mode, 86400, ("mx.x.example",)) if mode else None
    return StsObservation(StsRecord(VALID, "1"), FetchResult(fetch), policy)


def result(name: str, verdict: DomainVerdict, **fields: object) -> DomainResult:
    base = dane_result(f"{name}.example", 1)
    return replace(base, verdict=verdict, verdict_relaxed=verdict, **fields)  # type: ignore[arg-type]


def rows() -> list[DomainResult]:
    no_dane = DomainVerdict.NO_DANE
    enforced = result(
        "enforced", no_dane, policies=Policies(sts(FetchStatus.OK, StsMode.ENFORCE),
        TlsRptRecord(VALID, ("mailto:r@x.example",))), effective=ENFORCED,
    )  # fmt: skip
    host = replace(enforced.hosts[0], sts=HostJudgement(StsHostStatus.VALID))
    return [
        result("dane", DomainVerdict.DANE_VALID, policies=Policies(sts(None), ABSENT),
               effective=DANE_PASS, days_ahead=30, verdict_ahead=DomainVerdict.DANE_INVALID,
               effective_ahead=Effective(EffectivePolicy.DANE, EffectiveOutcome.FAIL, "r")),
        replace(enforced, hosts=(host,)),
        result("redirect", no_dane, policies=Policies(sts(FetchStatus.REDIRECT), ABSENT),
               effective=OPPORTUNISTIC),
        result("both", DomainVerdict.DANE_VALID,
               policies=Policies(sts(FetchStatus.OK, StsMode.TESTING), ABSENT),
               effective=DANE_PASS),
        replace(result("provider", no_dane, policies=Policies(sts(None), ABSENT),
                       effective=OPPORTUNISTIC), verdict_relaxed=DomainVerdict.DANE_VALID),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def beside(tmp_path_factory: pytest.TempPathFactory) -> Beside:
    folder = tmp_path_factory.mktemp("beside")
    table = pa.Table.from_pylist(
        pa.array([domain_row(r) for r in rows()], ROW_TYPE).to_pylist(), SCHEMA
    )
    pq.write_table(table, folder / "part-000-000000.parquet")
    # A part of schema 4: none of the columns beside DANE.
    old = table.select([f.name for f in SCHEMA][: SCHEMA.get_field_index("transient") + 1])
    old = old.drop_columns(["mx_hosts"]).slice(0, 1)
    old = old.set_column(0, "domain", pa.array(["old.example"]))
    pq.write_table(
        old.replace_schema_metadata({VERSION_KEY: b"4"}), folder / "part-001-000000.parquet"
    )
    return load_beside(open_dataset(folder), duckdb.connect())


def test_mta_sts_adoption(beside: Beside) -> None:
    table = metrics.mta_sts_adoption(beside.domains)
    got = {(r.record, r.fetch_status, r.mode): r.domains for r in table.itertuples()}
    assert got == {
        ("absent", "", ""): 2,
        ("valid", "ok", "enforce"): 1,
        ("valid", "ok", "testing"): 1,
        ("valid", "redirect", ""): 1,
        ("not_looked_up", "", ""): 1,
    }
    assert table["share"].sum() == pytest.approx(1.0)


def test_tlsrpt_overlap_and_effective(beside: Beside) -> None:
    tlsrpt = metrics.tlsrpt_adoption(beside.domains)
    assert dict(zip(tlsrpt["record"], tlsrpt["domains"], strict=True)) == {
        "absent": 4, "valid": 1, "not_looked_up": 1,
    }  # fmt: skip
    overlap = metrics.dane_sts_overlap(beside.domains)
    assert dict(zip(overlap["published"], overlap["domains"], strict=True)) == {
        "dane_only": 2, "mta_sts_only": 1, "both": 1, "neither": 2,
    }  # fmt: skip
    effective = metrics.effective_policies(beside.domains)
    got = {(r.policy, r.outcome): r.domains for r in effective.itertuples()}
    assert got == {
        ("dane", "pass"): 2,
        ("opportunistic", "unauthenticated"): 2,
        ("mta_sts_enforce", "pass"): 1,
    }


def test_hosts_relaxed_and_ahead(beside: Beside) -> None:
    hosts = metrics.sts_host_statuses(beside.sts_hosts)
    got = {(r.mode, r.status): r.pairs for r in hosts.itertuples()}
    assert got == {
        ("enforce", "valid"): 1,
        ("testing", "not_judged"): 1,
        ("no_policy", "not_judged"): 1,
    }
    relaxed = metrics.relaxed_dane(beside.domains)
    assert relaxed.to_dict("records") == [
        {"verdict": "no_dane", "verdict_relaxed": "dane_valid", "domains": 1}
    ]
    ahead = metrics.breaking_within(beside.domains)
    assert ahead.to_dict("records") == [
        {"days": 30, "what": "dane", "today": "dane_valid", "later": "dane_invalid", "domains": 1},
        {"days": 30, "what": "effective", "today": "pass", "later": "fail", "domains": 1},
    ]


def test_the_report_has_the_section(beside: Beside, tmp_path: Path) -> None:
    folder = tmp_path / "scan"
    folder.mkdir()
    table = pa.Table.from_pylist(
        pa.array([domain_row(r) for r in rows()], ROW_TYPE).to_pylist(), SCHEMA
    )
    pq.write_table(table, folder / "part-000-000000.parquet")
    connection = duckdb.connect()
    scan = load(folder, connection=connection)
    page = build_html(scan, None, load_beside(scan.dataset, connection))
    for table_id in ("mta-sts-table", "tlsrpt-table", "overlap-table", "effective-table",
                     "relaxed-table", "ahead-table", "fig-effective"):  # fmt: skip
        assert f'id="{table_id}"' in page

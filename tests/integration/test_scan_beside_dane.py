"""Beside DANE against the testbed (issue 19): a scan with --days-ahead 30
concludes what every scenario states beside its DANE verdict
(testbed.builder.BesideTruth: the verdict in 30 days, MTA-STS, TLS-RPT, the
effective policy, per host the MTA-STS judgement, REQUIRETLS and downgrade
signs), and --days-ahead flags exactly the scenarios whose chains expire
within those days."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from tests.integration.support import Testbed
from tests.integration.test_scan_testbed import mismatches, run_scan

pytestmark = pytest.mark.testbed

# Columns of truth.parquet and how the dataset says the same (SQL over a row).
DOMAIN_COLUMNS = {
    "verdict_in_30_days": "verdict_ahead",
    "mta_sts_record": "mta_sts_record",
    "mta_sts_fetch": "mta_sts_fetch",
    "mta_sts_mode": "mta_sts_mode",
    "tlsrpt_record": "tlsrpt_record",
    "effective_policy": "effective_policy",
    "effective_outcome": "effective_outcome",
}
HOST_COLUMNS = {
    "host_mta_sts": "[h.mta_sts FOR h IN mx_hosts]",
    "host_requiretls": "[h.requiretls FOR h IN mx_hosts]",
    "host_downgrade": "[h.downgrade FOR h IN mx_hosts]",
}


@pytest.fixture(scope="module")
def ahead_scan(testbed: Testbed, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("beside") / "results"
    proc = run_scan(testbed, output, "--rate", "5000", "--days-ahead", "30")
    assert proc.returncode == 0, proc.stderr
    return output


def test_the_dane_verdicts_are_those_of_a_scan_without_days_ahead(
    testbed: Testbed, ahead_scan: Path
) -> None:
    assert mismatches(testbed, ahead_scan) == []


@pytest.mark.parametrize("column", [*DOMAIN_COLUMNS, *HOST_COLUMNS])
def test_every_stated_truth_beside_dane_is_concluded(
    testbed: Testbed, ahead_scan: Path, column: str
) -> None:
    got = {**DOMAIN_COLUMNS, **HOST_COLUMNS}[column]
    wrong = (
        duckdb.connect()
        .execute(
            f"""
            WITH got AS (SELECT domain, {got} AS value FROM '{ahead_scan}/part-*.parquet'),
                 want AS (SELECT domain, scenario, {column} AS value
                          FROM '{testbed.state["truth_file"]}' WHERE {column} IS NOT NULL)
            SELECT want.scenario, want.domain, want.value, got.value
            FROM want LEFT JOIN got USING (domain)
            WHERE want.value IS DISTINCT FROM got.value
            """
        )
        .fetchall()
    )
    assert wrong == []


def test_days_ahead_flags_exactly_the_scenarios_that_expire(
    testbed: Testbed, ahead_scan: Path
) -> None:
    flagged = (
        duckdb.connect()
        .execute(
            f"""SELECT DISTINCT t.scenario
                FROM '{ahead_scan}/part-*.parquet' r
                JOIN '{testbed.state["truth_file"]}' t USING (domain)
                WHERE r.days_ahead = 30 AND r.verdict_ahead IS DISTINCT FROM r.verdict"""
        )
        .fetchall()
    )
    assert {s for (s,) in flagged} == {"ta_expires_soon"}

"""Beside DANE against the testbed (issue 19): a scan with --days-ahead 30
concludes what every scenario states beside its DANE verdict
(testbed.builder.BesideTruth: the verdict in 30 days, MTA-STS, TLS-RPT, the
effective policy, per host the MTA-STS judgement, REQUIRETLS and downgrade
signs), and --days-ahead flags exactly the scenarios whose chains expire
within those days."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import duckdb
import pytest

from scanner.mtasts.policy import parse_policy
from tests.integration.support import Testbed
from tests.integration.test_scan_testbed import EHLO, cli, mismatches, resolver_args, run_scan

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
    truth = testbed.state["truth_file"]
    (stated,) = duckdb.sql(f"SELECT count({column}) FROM '{truth}'").fetchall()[0]
    assert stated > 0  # the catalogue states this column for some scenario
    wrong = (
        duckdb.connect()
        .execute(
            f"""
            WITH got AS (SELECT domain, {got} AS value FROM '{ahead_scan}/part-*.parquet'),
                 want AS (SELECT domain, scenario, {column} AS value
                          FROM '{truth}' WHERE {column} IS NOT NULL)
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


def test_every_mta_sts_scenario_is_in_the_testbed(testbed: Testbed) -> None:
    from testbed.scenarios import CATALOGUE

    stated = {row["scenario"] for row in testbed.truth if row["mta_sts_record"] is not None}
    expected = {s.name for s in CATALOGUE if s.beside.mta_sts_record is not None}
    assert len(expected) >= 19
    assert stated == expected


def test_the_policy_the_scan_read_is_what_curl_fetches(
    testbed: Testbed, ahead_scan: Path, tmp_path: Path
) -> None:
    """One scenario's policy, fetched by curl with the testbed's WebPKI roots."""
    (row,) = testbed.by_scenario("sts_enforce")
    domain = str(row["domain"])
    query = dns.message.make_query(f"mta-sts.{domain}", dns.rdatatype.A)
    address, port = testbed.resolver
    answer = dns.query.tcp(query, address, port=port, timeout=5)
    (site,) = [rr.address for rrset in answer.answer for rr in rrset]
    (roots,) = testbed.pkix_ca
    body = tmp_path / "policy.txt"
    proc = subprocess.run(
        ["curl", "-sS", "--max-time", "10", "--cacert", str(roots),
         "--resolve", f"mta-sts.{domain}:443:{site}", "-o", str(body), "-w", "%{http_code}",
         f"https://mta-sts.{domain}/.well-known/mta-sts.txt"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert (proc.returncode, proc.stdout) == (0, "200"), proc.stderr
    policy = parse_policy(body.read_bytes())
    assert policy.ok
    scanned = duckdb.sql(
        f"SELECT mta_sts_mode, mta_sts_mx FROM '{ahead_scan}/part-*.parquet' "
        f"WHERE domain = '{domain}'"
    ).fetchall()
    assert scanned == [(str(policy.mode), list(policy.mx))]


@pytest.mark.parametrize(
    ("scenario", "extra", "phrases"),
    [
        ("sts_enforce", (), [
            "MTA-STS record at _mta-sts.", "(id 20261204T000000)", "policy fetch from mta-sts.",
            ": ok", "policy: mode enforce, max_age 86400", "under the MTA-STS policy: valid",
            "TLS-RPT record at _smtp._tls.", "valid: mailto:tlsrpt@reports.example",
            "A sender with DANE and MTA-STS: mta_sts_enforce, pass",
        ]),
        ("sts_wrong_name", (), ["policy fetch from mta-sts.", "cert_name_mismatch",
                                "opportunistic, unauthenticated"]),
        ("ta_expires_soon", ("--days-ahead", "30"), [
            "Verdict: dane_valid", "In 30 days, same records and chains: dane_invalid",
            "this host's verdict becomes fail_ta_expired",
        ]),
        ("requiretls_offered", (), ["REQUIRETLS offered after STARTTLS (RFC 8689)"]),
        ("no_starttls", (), ["STARTTLS downgrade signs: tlsa_without_starttls"]),
    ],
)  # fmt: skip
def test_check_explains_what_is_beside_dane(
    testbed: Testbed, scenario: str, extra: tuple[str, ...], phrases: list[str]
) -> None:
    domain = str(testbed.by_scenario(scenario)[0]["domain"])
    proc = cli("check", domain, *resolver_args(testbed), "--ehlo-name", EHLO,
               "--min-interval", "0", *extra)  # fmt: skip
    for phrase in phrases:
        assert phrase in proc.stdout, proc.stdout + proc.stderr


def test_the_manifest_counts_the_policy_fetches(ahead_scan: Path) -> None:
    manifest = json.loads((ahead_scan / "manifest.json").read_text())
    fetches = manifest["counts"]["work"]["policy_fetches"]
    (fetched,) = duckdb.sql(
        f"SELECT count(mta_sts_fetch) FROM '{ahead_scan}/part-*.parquet'"
    ).fetchall()[0]
    assert fetches["fetches"] >= fetched > 0  # a retried domain is fetched again
    assert fetches["requests"] > 0  # connections made (a domain with no policy host makes none)

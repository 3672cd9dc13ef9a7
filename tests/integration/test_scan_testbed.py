"""The whole scan against the simulated internet: the dataset equals
truth.parquet domain by domain and host by host; a scan killed with SIGKILL and
resumed loses and repeats nothing; the command line behaves on bad input."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from testbed.synth.rows import with_depths
from tests.integration.support import Testbed

pytestmark = pytest.mark.testbed

EHLO = "scanner.danescan.test"


def scan_args(tb: Testbed, output: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "scanner.cli", str(tb.state["domains_file"]),
        "-o", str(output), "--resolver", str(tb.state["resolver"]),
        "--bogus-probe", str(tb.state["bogus_probe"]), "--ehlo-name", EHLO,
        "--min-interval", "0", "--retry-backoff", "0.1", "--timeout", "4", "-q",
        *tb.scan_args, *extra,
    ]  # fmt: skip


def parts(output: Path) -> list[str]:
    """The part files (the folder also holds manifest.json, which is not Parquet)."""
    return sorted(str(p) for p in output.glob("part-*.parquet"))


def run_scan(tb: Testbed, output: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        scan_args(tb, output, *extra), capture_output=True, text=True, timeout=600, check=False
    )


def mismatches(tb: Testbed, output: Path) -> list[tuple[object, ...]]:
    """Domains whose verdict, or whose MX hosts and their verdicts, differ from truth."""
    return (
        duckdb.connect()
        .execute(
            f"""
        WITH got AS (SELECT domain, verdict, verdict_relaxed,
                     [(h.host, h.verdict) FOR h IN mx_hosts] AS hosts
                     FROM '{output}/part-*.parquet'),
             want AS (SELECT domain, scenario, verdict, verdict_relaxed,
                      [(h.host, h.verdict) FOR h IN mx_hosts] AS hosts
                      FROM '{tb.state["truth_file"]}')
        SELECT want.scenario, want.domain, want.verdict, got.verdict, want.hosts, got.hosts,
               want.verdict_relaxed, got.verdict_relaxed
        FROM want FULL OUTER JOIN got USING (domain)
        WHERE want.verdict IS DISTINCT FROM got.verdict
           OR want.hosts IS DISTINCT FROM got.hosts
           OR (want.verdict_relaxed IS NOT NULL
               AND want.verdict_relaxed IS DISTINCT FROM got.verdict_relaxed)
        """
        )
        .fetchall()
    )


@pytest.fixture(scope="module")
def full_scan(testbed: Testbed, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("scan") / "results"
    log = output.parent / "scan.jsonl"
    proc = run_scan(testbed, output, "--rate", "5000", "--log-json", str(log))
    assert proc.returncode == 0, proc.stderr
    return output


def test_scan_reproduces_truth(testbed: Testbed, full_scan: Path) -> None:
    assert mismatches(testbed, full_scan) == []


def test_dataset_has_one_row_per_domain_and_a_manifest(testbed: Testbed, full_scan: Path) -> None:
    table = pq.read_table(parts(full_scan))
    domains = table.column("domain").to_pylist()
    assert len(domains) == len(set(domains)) == len(testbed.truth)
    manifest = json.loads((full_scan / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["counts"]["domains"] == len(testbed.truth)
    assert manifest["resolvers"] == [testbed.state["resolver"]]


def test_json_log_has_a_line_per_domain(testbed: Testbed, full_scan: Path) -> None:
    lines = (full_scan.parent / "scan.jsonl").read_text().splitlines()
    assert len(lines) == len(testbed.truth)
    verdicts = {json.loads(line)["domain"]: json.loads(line)["verdict"] for line in lines}
    assert verdicts == {str(r["domain"]): r["verdict"] for r in testbed.truth}


def test_chains_and_records_are_kept(testbed: Testbed, full_scan: Path) -> None:
    (row,) = (
        duckdb.connect()
        .execute(
            f"""SELECT h.tlsa, h.matched, h.match_depth, h.addresses
            FROM (SELECT unnest(mx_hosts) AS h, domain FROM '{full_scan}/part-*.parquet')
            WHERE domain = ?""",
            [str(testbed.by_scenario("ta_211_intermediate")[0]["domain"])],
        )
        .fetchall()
    )
    tlsa, matched, depth, addresses = row
    assert [(r["usage"], r["selector"], r["mtype"]) for r in tlsa] == [(2, 1, 1)]
    assert matched.startswith("2 1 1 ")
    assert depth == 1
    assert tlsa[0]["depth"] == 1
    assert addresses[0]["smtp_status"] == "tls_ok"
    assert len(addresses[0]["chain"]) == 2


def test_record_depths_are_where_the_chains_match(full_scan: Path) -> None:
    """Every record's depth, as the testbed's own TLSA computation finds it in
    the chains its host's addresses presented (null when they presented none)."""
    hosts = (
        duckdb.connect()
        .execute(
            f"""SELECT DISTINCT h.tlsa, h.addresses
            FROM (SELECT unnest(mx_hosts) AS h FROM '{full_scan}/part-*.parquet')
            WHERE len(h.tlsa) > 0"""
        )
        .fetchall()
    )
    seen = set()
    for tlsa, addresses in hosts:
        records = [{k: v for k, v in r.items() if k != "depth"} for r in tlsa]
        assert with_depths(records, addresses) == tlsa
        seen.update(r["depth"] for r in tlsa)
    assert {None, -1, 0, 1} <= seen


def wait_for_parts(output: Path, count: int, proc: subprocess.Popen[str], limit: float) -> None:
    deadline = time.monotonic() + limit
    while len(list(output.glob("part-*.parquet"))) < count:
        assert proc.poll() is None, "the scan ended before it could be killed"
        assert time.monotonic() < deadline, "no parts appeared"
        time.sleep(0.05)


def test_resume_after_sigkill_loses_and_repeats_nothing(
    testbed: Testbed, full_scan: Path, tmp_path: Path
) -> None:
    output = tmp_path / "killed"
    argv = scan_args(testbed, output, "--rate", "300", "--part-rows", "100")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_parts(output, 3, proc, limit=60)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
    before = pq.read_table(parts(output)).num_rows
    assert 0 < before < len(testbed.truth)
    resumed = run_scan(testbed, output, "--rate", "5000", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    domains = pq.read_table(parts(output)).column("domain").to_pylist()
    assert len(domains) == len(set(domains)) == len(testbed.truth)
    assert mismatches(testbed, output) == []


def test_sigint_stops_cleanly_and_marks_the_manifest(testbed: Testbed, tmp_path: Path) -> None:
    output = tmp_path / "interrupted"
    argv = scan_args(testbed, output, "--rate", "100", "--part-rows", "50")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for_parts(output, 1, proc, limit=60)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    written = pq.read_table(parts(output)).num_rows
    assert written == manifest["counts"]["written"]
    assert 0 < written < len(testbed.truth)


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scanner.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def resolver_args(tb: Testbed) -> Sequence[str]:
    """The testbed's resolver, and the ranges a scan of it must allow."""
    return ["--resolver", str(tb.state["resolver"]), "--bogus-probe", str(tb.state["bogus_probe"]),
            *tb.scan_args]  # fmt: skip


def test_stdin_input_and_input_errors(testbed: Testbed, tmp_path: Path) -> None:
    good = str(testbed.by_scenario("ee_311")[0]["domain"])
    text = f"# a comment\n{good}\nbad_label.example\n\n{good.upper()}\n"
    proc = cli("-", "-o", str(tmp_path / "out"), *resolver_args(testbed), "--ehlo-name", EHLO,
               "-q", stdin=text)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = {r["domain"]: r for r in pq.read_table(parts(tmp_path / "out")).to_pylist()}
    assert set(rows) == {good, "bad_label.example"}  # the upper-case duplicate scanned once
    assert rows[good]["verdict"] == "dane_valid"
    assert rows["bad_label.example"]["verdict"] == "input_error"
    assert rows["bad_label.example"]["input_line"] == 3
    assert "not a valid host name label" in rows["bad_label.example"]["error"]


def test_refuses_a_resolver_that_does_not_validate(testbed: Testbed, tmp_path: Path) -> None:
    # The authoritative server answers but does not validate (no AD on the root).
    proc = cli(str(testbed.state["domains_file"]), "-o", str(tmp_path / "x"), "-q",
               "--resolver", str(testbed.state["auth_server"]), "--ehlo-name", EHLO)  # fmt: skip
    assert proc.returncode == 1
    assert "does not validate DNSSEC" in proc.stderr
    assert not list((tmp_path / "x").glob("part-*"))


def test_refuses_to_overwrite_an_earlier_scan(testbed: Testbed, full_scan: Path) -> None:
    proc = cli(str(testbed.state["domains_file"]), "-o", str(full_scan),
               *resolver_args(testbed), "--ehlo-name", EHLO, "-q")  # fmt: skip
    assert proc.returncode == 1
    assert "--resume" in proc.stderr


def test_managed_unbound_with_the_testbed_root(testbed: Testbed, tmp_path: Path) -> None:
    domain = str(testbed.by_scenario("dane_provider_a")[0]["domain"])
    proc = cli("check", domain, "--trust-anchor", str(testbed.state["trust_anchor"]),
               "--root-hints", str(testbed.state["root_hints"]),
               "--bogus-probe", str(testbed.state["bogus_probe"]), "--ehlo-name", EHLO,
               "--min-interval", "0", *testbed.scan_args)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Verdict: dane_valid" in proc.stdout


@pytest.mark.parametrize(
    ("scenario", "status", "phrases"),
    [
        (
            "ee_311",
            0,
            [
                "secure (DNSSEC validated)",
                "STARTTLS ok",
                "-> pass",
                "depth 0",
                "matches the leaf certificate (depth 0)",
            ],
        ),
        ("ta_211_intermediate", 0, ["-> pass", "matches the certificate at depth 1 of the chain"]),
        (
            "stale_after_rollover",
            1,
            ["fail_no_match", "Verdict: dane_invalid", "matches no certificate presented"],
        ),
        ("unsigned_provider", 3, ["not DNSSEC-secure", "Verdict: no_dane"]),
        ("bogus_tlsa", 1, ["TLSA at _25._tcp.", "bogus", "fail_dns"]),
        ("cname_tlsa_expanded", 0, ["alias of srv.", "-> pass"]),
    ],
)
def test_check_explains(testbed: Testbed, scenario: str, status: int, phrases: list[str]) -> None:
    domain = str(testbed.by_scenario(scenario)[0]["domain"])
    proc = cli("check", domain, *resolver_args(testbed), "--ehlo-name", EHLO,
               "--min-interval", "0")  # fmt: skip
    assert proc.returncode == status, proc.stdout + proc.stderr
    for phrase in phrases:
        assert phrase in proc.stdout, proc.stdout


def test_bad_arguments_exit_2(tmp_path: Path) -> None:
    assert cli("x.txt").returncode == 2  # no -o
    proc = cli("x.txt", "-o", str(tmp_path), "--rate", "0", "--ehlo-name", EHLO)
    assert proc.returncode == 2
    assert "--rate must be positive" in proc.stderr
    proc = cli("x.txt", "-o", str(tmp_path), "--ehlo-name", "not a name")
    assert proc.returncode == 2
    assert "EHLO name" in proc.stderr
    assert cli("check", "not_a_domain!", "--ehlo-name", EHLO).returncode == 2


def test_two_workers_split_the_input_and_agree_with_truth(testbed: Testbed, tmp_path: Path) -> None:
    output = tmp_path / "workers"
    proc = run_scan(testbed, output, "--rate", "5000", "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    workers = {Path(p).name.split("-")[1] for p in parts(output)}
    assert workers == {"000", "001"}
    assert mismatches(testbed, output) == []
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["counts"]["domains"] == len(testbed.truth)


def test_shards_partition_the_input(testbed: Testbed, tmp_path: Path) -> None:
    seen: list[str] = []
    for index in range(2):
        output = tmp_path / f"shard{index}"
        proc = run_scan(testbed, output, "--rate", "5000", "--shard", f"{index}/2")
        assert proc.returncode == 0, proc.stderr
        shard = pq.read_table(parts(output)).column("domain").to_pylist()
        assert 0 < len(shard) < len(testbed.truth)
        seen += shard
    assert sorted(seen) == sorted(str(r["domain"]) for r in testbed.truth)


def test_policies_beside_dane_are_in_every_row(testbed: Testbed, full_scan: Path) -> None:
    # Every scenario but those of MTA-STS and TLS-RPT (test_scan_beside_dane)
    # publishes neither record.
    con = duckdb.connect()
    rows = con.execute(
        f"""SELECT r.verdict, r.mta_sts_record, r.tlsrpt_record, r.mta_sts_fetch,
                   r.effective_policy, r.effective_outcome
            FROM '{full_scan}/part-*.parquet' r JOIN '{testbed.state["truth_file"]}' t
            USING (domain)
            WHERE r.verdict != 'input_error' AND t.mta_sts_record IS NULL
              AND t.tlsrpt_record IS NULL"""
    ).fetchall()
    assert len(rows) > len(testbed.truth) * 0.9
    # A zone whose signatures fail fails the TXT lookups as well: no fact.
    records = {(r[1], r[2]) for r in rows if r[0] not in ("dns_error", "dnssec_bogus")}
    assert records == {("absent", "absent")}
    bogus = {(r[1], r[2]) for r in rows if r[0] == "dnssec_bogus"}
    assert bogus <= {("absent", "absent"), ("lookup_error", "lookup_error")}
    assert {r[3] for r in rows} == {None}  # nothing to fetch without a record
    by_verdict = {(r[0], r[4], r[5]) for r in rows}
    assert ("dane_valid", "dane", "pass") in by_verdict
    assert ("no_dane", "opportunistic", "unauthenticated") in by_verdict
    assert all(policy == "unknown" for v, policy, _ in by_verdict if v == "dns_error")


def test_no_mta_sts_writes_no_policy_columns(testbed: Testbed, tmp_path: Path) -> None:
    output = tmp_path / "dane-only"
    proc = run_scan(testbed, output, "--rate", "5000", "--no-mta-sts")
    assert proc.returncode == 0, proc.stderr
    assert mismatches(testbed, output) == []
    nulls = (
        duckdb.connect()
        .execute(
            f"SELECT count(*) FROM '{output}/part-*.parquet' "
            "WHERE mta_sts_record IS NOT NULL OR effective_policy IS NOT NULL"
        )
        .fetchone()
    )
    assert nulls == (0,)

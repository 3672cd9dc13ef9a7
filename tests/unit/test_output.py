"""The dataset: rows fit the one schema, parts are atomic, resume reads them back,
and DuckDB, pandas and polars all read what was written."""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import threading
from dataclasses import replace
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scanner.config import ScanConfig
from scanner.effective import Effective, EffectiveOutcome, EffectivePolicy
from scanner.handshake.session import SessionResult
from scanner.handshake.smtp import Reply, Transcript
from scanner.mailpolicy import DowngradeSign, HostJudgement, Policies, StsObservation
from scanner.mtasts.policy import StsHostStatus, StsMode, StsPolicy
from scanner.mtasts.record import StsRecord, TxtRecordStatus
from scanner.mtasts.response import FetchResult, FetchStatus
from scanner.output.rows import ROW_TYPE, domain_row
from scanner.output.schema import SCHEMA, SCHEMA_VERSION, VERSION_KEY
from scanner.output.writer import OtherSchema, PartWriter, check_schema, drop_transient, read_done
from scanner.ratelimit import TokenBucket
from scanner.resolve.discover import HostResolution
from scanner.resolve.policy import (
    AddressDecision,
    TlsaLookup,
    TlsaState,
)
from scanner.results import AddressResult, DomainResult, HostResult
from scanner.run import ScanError, prepare_output
from scanner.seen import name_key
from scanner.status import DaneVerdict, DnssecStatus, DomainVerdict, SmtpStatus
from scanner.tlsa import TlsaRecord
from scanner.tlsrpt import TlsRptRecord
from tests.unit.resolutions import dane_host, mx_hosts

WHEN = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)


def dane_result(domain: str, line: int) -> DomainResult:
    host = f"mx.{domain}."
    resolution = dane_host(host, "127.0.0.7")
    session = SessionResult(
        "127.0.0.7", 25, host.rstrip("."), SmtpStatus.TLS_OK, tls_version="TLSv1.3",
        cipher="TLS_AES_256_GCM_SHA384", chain=(b"leaf-der", b"issuer-der"),
        connect_ms=1.0, tls_ms=2.0, total_ms=4.0,
    )  # fmt: skip
    address = AddressResult(session, DaneVerdict.PASS, "3 1 1 matched", "3 1 1 " + "01" * 32, 0)
    return DomainResult(
        domain=domain,
        input_line=line,
        verdict=DomainVerdict.DANE_VALID,
        error="",
        mx=mx_hosts((host, 10)),
        mx_ttl=3600,
        hosts=(HostResult(host, 10, resolution, DaneVerdict.PASS, "", (address,)),),
        scanned_at=WHEN,
        duration_ms=12.5,
    )


def error_result(raw: str, line: int) -> DomainResult:
    return DomainResult(raw, line, DomainVerdict.INPUT_ERROR, "bad", None, None, (), WHEN, 0.0)


def test_row_round_trips_through_the_schema(tmp_path: Path) -> None:
    writer = PartWriter(tmp_path, 0)
    writer.add(domain_row(dane_result("a.example", 1)))
    writer.add(domain_row(error_result("not a domain", 2)))
    name = writer.flush()
    assert name is not None
    table = pq.read_table(tmp_path / name)
    assert table.schema.equals(SCHEMA, check_metadata=False)
    assert table.schema.metadata[VERSION_KEY] == SCHEMA_VERSION.encode()
    rows = table.to_pylist()
    assert rows[0]["verdict"] == "dane_valid"
    host = rows[0]["mx_hosts"][0]
    assert host["host"] == "mx.a.example"
    # A result without depths (the host was not tested) writes null ones.
    tlsa = {"usage": 3, "selector": 1, "mtype": 1, "data": b"\x01" * 32, "depth": None}
    assert host["tlsa"][0] == tlsa
    assert host["matched"] == "3 1 1 " + "01" * 32
    assert host["addresses"][0]["chain"] == [b"leaf-der", b"issuer-der"]
    assert host["addresses"][0]["smtp_status"] == "tls_ok"
    assert rows[1]["verdict"] == "input_error"
    assert rows[1]["mx_hosts"] == []


def test_parts_are_numbered_and_resume_reads_them(tmp_path: Path) -> None:
    writer = PartWriter(tmp_path, 3)
    assert writer.flush() is None  # nothing buffered, no empty part
    writer.add(domain_row(dane_result("a.example", 1)))
    first = writer.flush()
    writer.add(domain_row(dane_result("b.example", 2)))
    writer.add(domain_row(error_result("x y", 3)))
    second = writer.flush()
    assert first is not None
    assert second is not None
    assert (first, second) == ("part-003-000000.parquet", "part-003-000001.parquet")
    (tmp_path / ".part-003-000002.parquet.tmp").write_bytes(b"half a part")  # killed mid-write
    done = read_done(tmp_path)
    assert sorted(done.domains) == sorted([name_key("a.example"), name_key("b.example")])
    assert name_key("a.example") in done.domains
    assert name_key("c.example") not in done.domains
    assert done.error_lines == {3}
    assert done.next_part == {3: 2}
    assert done.rows == 3


def every_field_result() -> DomainResult:
    """A result in which every row field has a value of its own, so that two
    fields swapped in the positional row would show."""
    host = "mx.every.example."
    resolution = HostResolution(
        host,
        AddressDecision(("192.0.2.1", "2001:db8::1"), DnssecStatus.SECURE, "alias.example.", 301),
        TlsaLookup(
            "base.example.", TlsaState.RECORDS, (TlsaRecord(2, 0, 2, b"\x02" * 64),), 3601, "t"
        ),
    )
    transcript = Transcript(
        banner=Reply(220, ("banner.every.example ESMTP",)),
        ehlo=Reply(250, ("hello", "STARTTLS", "SIZE 100")),
        ehlo_tls=Reply(250, ("hello", "REQUIRETLS")),
    )
    v4 = SessionResult(
        "192.0.2.1", 25, "base.example", SmtpStatus.TLS_OK, error="e4", transcript=transcript,
        tls_version="TLSv1.2", cipher="ECDHE", chain=(b"leaf", b"ca"),
        connect_ms=1.5, tls_ms=2.5, total_ms=3.5, attempts=2,
    )  # fmt: skip
    v6 = SessionResult("2001:db8::1", 25, "base.example", SmtpStatus.CONNECT_TIMEOUT, "late")
    addresses = (
        AddressResult(v4, DaneVerdict.FAIL_TA_NAME, "why4", "2 0 2 " + "02" * 64, 1),
        AddressResult(v6, DaneVerdict.FAIL_NO_TLS, "why6"),
    )
    mx = mx_hosts((host, 5), error="mx-e")
    policies = Policies(
        StsObservation(
            StsRecord(TxtRecordStatus.VALID, "id1", "rec-e"),
            FetchResult(FetchStatus.OK, "fetch-e", 200, "text"),
            StsPolicy(True, StsMode.TESTING, 604800, ("mx.every.example", "*.example")),
        ),
        TlsRptRecord(TxtRecordStatus.INVALID, ("mailto:a@every.example",), "rpt-e"),
    )
    return DomainResult(
        "every.example", 77, DomainVerdict.DANE_INVALID, "oops", mx, 3602,
        (HostResult(host, 5, resolution, DaneVerdict.FAIL_TA_NAME, "host why", addresses,
                    depths=(1,), sts=HostJudgement(StsHostStatus.EXPIRED, "sts-e"),
                    requiretls=True, downgrade=(DowngradeSign.STARTTLS_INCONSISTENT,),
                    verdict_ahead=DaneVerdict.FAIL_TA_EXPIRED,
                    verdict_relaxed=DaneVerdict.UNUSABLE),),
        WHEN, 99.5, 3, True, verdict_relaxed=DomainVerdict.DANE_PARTIAL, policies=policies,
        effective=Effective(EffectivePolicy.DANE, EffectiveOutcome.FAIL, "eff-why"),
        days_ahead=30, verdict_ahead=DomainVerdict.DANE_VALID,
        effective_ahead=Effective(EffectivePolicy.DANE, EffectiveOutcome.REPORT_ONLY, "later"),
    )  # fmt: skip


def test_every_row_field_lands_in_its_schema_column() -> None:
    (row,) = pa.array([domain_row(every_field_result())], type=ROW_TYPE).to_pylist()
    address4 = {
        "address": "192.0.2.1", "family": 4, "smtp_status": "tls_ok", "error": "e4",
        "verdict": "fail_ta_name", "reason": "why4",
        "banner": "220 banner.every.example ESMTP", "starttls_offered": True,
        "tls_version": "TLSv1.2", "cipher": "ECDHE", "chain": [b"leaf", b"ca"],
        "connect_ms": 1.5, "tls_ms": 2.5, "total_ms": 3.5, "attempts": 2, "requiretls": True,
    }  # fmt: skip
    address6 = {
        "address": "2001:db8::1", "family": 6, "smtp_status": "connect_timeout",
        "error": "late", "verdict": "fail_no_tls", "reason": "why6", "banner": None,
        "starttls_offered": None, "tls_version": None, "cipher": None, "chain": [],
        "connect_ms": None, "tls_ms": None, "total_ms": None, "attempts": 1, "requiretls": None,
    }  # fmt: skip
    assert row == {
        "domain": "every.example",
        "input_line": 77,
        "verdict": "dane_invalid",
        "error": "oops",
        "mx_kind": "hosts",
        "mx_dnssec": "secure",
        "mx_ttl": 3602,
        "mx_error": "mx-e",
        "mx_hosts": [
            {
                "host": "mx.every.example",
                "preference": 5,
                "verdict": "fail_ta_name",
                "reason": "host why",
                "address_dnssec": "secure",
                "cname_target": "alias.example",
                "address_ttl": 301,
                "address_error": None,
                "tlsa_base": "base.example",
                "tlsa_state": "records",
                "tlsa_ttl": 3601,
                "tlsa_error": "t",
                "tlsa": [{"usage": 2, "selector": 0, "mtype": 2, "data": b"\x02" * 64, "depth": 1}],
                "matched": "2 0 2 " + "02" * 64,
                "match_depth": 1,
                "addresses": [address4, address6],
                "mta_sts": "expired",
                "mta_sts_error": "sts-e",
                "requiretls": True,
                "downgrade": ["starttls_inconsistent"],
                "verdict_ahead": "fail_ta_expired",
                "verdict_relaxed": "unusable",
            }
        ],
        "scanned_at": WHEN,
        "duration_ms": 99.5,
        "attempts": 3,
        "transient": True,
        "verdict_relaxed": "dane_partial",
        "mta_sts_record": "valid",
        "mta_sts_id": "id1",
        "mta_sts_record_error": "rec-e",
        "mta_sts_fetch": "ok",
        "mta_sts_fetch_error": "fetch-e",
        "mta_sts_http_status": 200,
        "mta_sts_mode": "testing",
        "mta_sts_max_age": 604800,
        "mta_sts_mx": ["mx.every.example", "*.example"],
        "mta_sts_policy_error": None,
        "tlsrpt_record": "invalid",
        "tlsrpt_rua": ["mailto:a@every.example"],
        "tlsrpt_error": "rpt-e",
        "effective_policy": "dane",
        "effective_outcome": "fail",
        "effective_reason": "eff-why",
        "days_ahead": 30,
        "verdict_ahead": "dane_valid",
        "effective_outcome_ahead": "report_only",
    }


def test_retry_transient_drops_transient_rows_and_resume_redoes_them(tmp_path: Path) -> None:
    writer = PartWriter(tmp_path, 0)
    writer.add(domain_row(dane_result("a.example", 1)))
    writer.add(domain_row(replace(dane_result("b.example", 2), attempts=3, transient=True)))
    writer.flush()
    writer.add(domain_row(dane_result("c.example", 3)))
    writer.flush()
    assert drop_transient(tmp_path) == 1
    assert drop_transient(tmp_path) == 0  # nothing left to drop
    done = read_done(tmp_path)
    assert name_key("b.example") not in done.domains
    assert {name_key("a.example"), name_key("c.example")} <= set(done.domains)
    assert done.next_part == {0: 2}  # the resumed scan writes new parts
    assert not list(tmp_path.glob(".*.tmp"))


def test_resume_refuses_parts_of_another_schema_and_changes_nothing(tmp_path: Path) -> None:
    writer = PartWriter(tmp_path, 0)
    writer.add(domain_row(dane_result("a.example", 1)))
    writer.flush()
    writer.add(domain_row(replace(dane_result("b.example", 2), transient=True)))
    older = writer.flush()
    assert older is not None
    check_schema(tmp_path)  # this scanner's own parts pass
    # The second part as an older danescan would have labelled it.
    table = pq.read_table(tmp_path / older)
    pq.write_table(table.replace_schema_metadata({VERSION_KEY: b"4"}), tmp_path / older)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(OtherSchema, match="schema 4.*writes schema " + SCHEMA_VERSION):
        check_schema(tmp_path)
    config = ScanConfig(
        input="-", output=str(tmp_path), ehlo_name="scanner.example.net",
        resume=True, retry_transient=True,
    )  # fmt: skip
    with pytest.raises(ScanError, match="another -o"):
        prepare_output(config)
    # Refused before --retry-transient could rewrite the part.
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    pq.write_table(table.replace_schema_metadata(None), tmp_path / older)
    with pytest.raises(OtherSchema, match="schema unknown"):
        check_schema(tmp_path)


def test_writer_converts_rows_to_arrow_in_batches(tmp_path: Path) -> None:
    writer = PartWriter(tmp_path, 0, batch_rows=3)
    for i in range(7):
        writer.add(domain_row(dane_result(f"d{i}.example", i)))
        assert len(writer) == i + 1
    # Two batches of three are Arrow already; the seventh row waits.
    assert writer.nbytes > 0
    assert len(writer._batches) == 2
    assert len(writer._pending) == 1
    name = writer.flush()
    assert name is not None
    assert (len(writer), writer.nbytes, writer.written) == (0, 0, 7)
    table = pq.read_table(tmp_path / name)
    assert table.column("domain").to_pylist() == [f"d{i}.example" for i in range(7)]
    assert table.schema.metadata[VERSION_KEY] == SCHEMA_VERSION.encode()
    assert writer.flush() is None


def test_dataset_is_readable_by_duckdb_pandas_and_polars(tmp_path: Path) -> None:
    writer = PartWriter(tmp_path, 0)
    for i in range(5):
        writer.add(domain_row(dane_result(f"d{i}.example", i)))
    writer.flush()
    writer.add(domain_row(error_result("bad name", 9)))
    writer.flush()
    glob = str(tmp_path / "part-*.parquet")
    con = duckdb.connect()
    counts = dict(con.execute(f"SELECT verdict, count(*) FROM '{glob}' GROUP BY 1").fetchall())
    assert counts == {"dane_valid": 5, "input_error": 1}
    nested = con.execute(
        f"SELECT count(*) FROM (SELECT unnest(mx_hosts) AS h FROM '{glob}') WHERE h.verdict='pass'"
    ).fetchone()
    assert nested == (5,)
    assert len(pd.read_parquet(tmp_path)) == 6
    assert pl.read_parquet(glob).height == 6


def test_a_part_that_cannot_be_written_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = PartWriter(tmp_path, 0)
    writer.add(domain_row(dane_result("a.example", 1)))
    real_write = pq.write_table

    def disk_full(table: pa.Table, where: object, **kwargs: object) -> None:
        real_write(table, where, **kwargs)  # the temporary file takes space...
        raise OSError(errno.ENOSPC, "No space left on device")  # ...and then none is left

    monkeypatch.setattr(pq, "write_table", disk_full)
    with pytest.raises(OSError, match="No space left"):
        writer.flush()
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert len(writer) == 1  # the rows wait for the next flush
    monkeypatch.setattr(pq, "write_table", real_write)
    assert writer.flush() == "part-000-000000.parquet"
    assert pq.read_table(tmp_path).column("domain").to_pylist() == ["a.example"]


def test_token_bucket_admits_at_the_rate() -> None:
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    async def admit(n: int) -> None:
        bucket = TokenBucket(100.0, burst=10, clock=lambda: now[0], sleep=sleep)
        for _ in range(n):
            await bucket.take()

    asyncio.run(admit(1010))
    # 10 from the burst, then 1000 at 100/s: 10 seconds of fake time
    assert now[0] == pytest.approx(10.0, rel=1e-6)
    assert all(s > 0 for s in slept)


def test_shard_of_is_stable_and_spreads() -> None:
    from scanner.config import Shard

    def shard_of(domain: str, count: int) -> int:
        return next(i for i in range(count) if Shard(i, count).owns(name_key(domain)))

    # Fixed values: a shard must not move between runs, machines or versions.
    assert [shard_of(d, 4) for d in ("example.com", "example.net", "a.test")] == [2, 0, 3]
    counts = [0, 0, 0, 0]
    for i in range(4000):
        counts[shard_of(f"d{i}.example", 4)] += 1
    assert all(800 < c < 1200 for c in counts)


def test_concurrent_flushes_write_each_row_once(tmp_path: Path) -> None:
    writer = PartWriter(tmp_path, 0, batch_rows=16)
    for i in range(200):
        writer.add(domain_row(dane_result(f"d{i}.example", i)))
    # A part being written in a worker thread while a cancelled scan flushes
    # what is left from the event loop's thread.
    other = threading.Thread(target=writer.flush)
    other.start()
    writer.flush()
    other.join()
    domains = [
        d for p in writer.parts for d in pq.read_table(tmp_path / p).column("domain").to_pylist()
    ]
    assert sorted(domains) == sorted(f"d{i}.example" for i in range(200))
    assert writer.written == 200
    assert len(writer.parts) == 1

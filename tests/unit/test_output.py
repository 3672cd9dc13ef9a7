"""The dataset: rows fit the one schema, parts are atomic, resume reads them back,
and DuckDB, pandas and polars all read what was written."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest

from scanner.handshake.session import SessionResult
from scanner.output.rows import domain_row
from scanner.output.schema import SCHEMA, SCHEMA_VERSION, VERSION_KEY
from scanner.output.writer import PartWriter, read_done, read_manifest, write_manifest
from scanner.ratelimit import TokenBucket
from scanner.resolve.discover import HostResolution
from scanner.resolve.policy import (
    AddressDecision,
    MxDecision,
    MxKind,
    MxTarget,
    TlsaLookup,
    TlsaState,
)
from scanner.resolve.wire import Tlsa
from scanner.results import AddressResult, DomainResult, HostResult
from scanner.status import DaneVerdict, DnssecStatus, DomainVerdict, SmtpStatus

WHEN = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)


def dane_result(domain: str, line: int) -> DomainResult:
    host = f"mx.{domain}."
    resolution = HostResolution(
        host,
        AddressDecision(("127.0.0.7",), DnssecStatus.SECURE, None, 300),
        TlsaLookup(host, TlsaState.RECORDS, (Tlsa(3, 1, 1, b"\x01" * 32),), 3600),
        (host,),
    )
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
        mx=MxDecision(MxKind.HOSTS, DnssecStatus.SECURE, (MxTarget(host, 10),)),
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
    path = writer.flush()
    assert path is not None
    table = pq.read_table(path)
    assert table.schema.equals(SCHEMA, check_metadata=False)
    assert table.schema.metadata[VERSION_KEY] == SCHEMA_VERSION.encode()
    rows = table.to_pylist()
    assert rows[0]["verdict"] == "dane_valid"
    host = rows[0]["mx_hosts"][0]
    assert host["host"] == "mx.a.example"
    assert host["tlsa"][0] == {"usage": 3, "selector": 1, "mtype": 1, "data": b"\x01" * 32}
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
    assert (first.name, second.name) == ("part-003-000000.parquet", "part-003-000001.parquet")
    (tmp_path / ".part-003-000002.parquet.tmp").write_bytes(b"half a part")  # killed mid-write
    done = read_done(tmp_path)
    assert done.domains == {"a.example", "b.example"}
    assert done.error_lines == {3}
    assert done.next_part == {3: 2}
    assert done.rows == 3


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


def test_manifest_round_trip(tmp_path: Path) -> None:
    write_manifest(tmp_path, {"status": "running", "counts": {"domains": 1}})
    manifest = read_manifest(tmp_path)
    assert manifest is not None
    assert manifest["status"] == "running"
    assert manifest["schema_version"] == SCHEMA_VERSION


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
    from scanner.pipeline import shard_of

    # Fixed values: a shard must not move between runs, machines or versions.
    assert [shard_of(d, 4) for d in ("example.com", "example.net", "a.test")] == [2, 0, 3]
    counts = [0, 0, 0, 0]
    for i in range(4000):
        counts[shard_of(f"d{i}.example", 4)] += 1
    assert all(800 < c < 1200 for c in counts)

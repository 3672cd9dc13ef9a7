"""The internet profile of the testbed, seen by independent tools: dig and
dnsperf through the DNS operators, Unbound over them, a plain socket and
OpenSSL's s_client against the mail hosts that push back, and `testbed
connections` counting a known pattern of connections.

The testbed has its own nets (248, and 247 for --latency-scale 0), leaves out
Postfix and ::1, and every client here binds a source address of its own, so
that no test sees another's greylisting, limits or resets.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import duckdb
import pyarrow.parquet as pq
import pytest

from testbed import cli
from testbed.profile import Profile

pytestmark = [pytest.mark.testbed, pytest.mark.slow]

NET = 248
STILL_NET = 247  # the same testbed with --latency-scale 0
DOMAINS = 2000
SEED = 20261204
REPO = Path(__file__).resolve().parents[2]
_QUERY_TIME = re.compile(rb";; Query time: (\d+) msec")


@dataclass(frozen=True)
class Internet:
    directory: Path
    state: dict[str, Any]
    operators: list[dict[str, Any]]
    listeners: list[dict[str, Any]]
    truth: list[dict[str, Any]]

    @property
    def resolver(self) -> str:
        return str(self.state["resolver"]).rsplit(":", 1)[0]

    def operator(self, test: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        found = [op for op in self.operators if test(op)]
        assert found, "no such operator in the testbed"
        return found[0]

    def listener(self, test: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        found = [x for x in self.listeners if test(x)]
        assert found, "no such mail host in the testbed"
        return found[0]

    def domains_of(self, scenario: str) -> list[str]:
        return [row["domain"] for row in self.truth if row["scenario"] == scenario]


def bring_up(net: int, scale: float) -> tuple[Path, dict[str, Any]]:
    # Postfix is left out, but the folder stays searchable like the main testbed's.
    directory = Path(tempfile.mkdtemp(prefix=f"danescan-internet-{net}-"))
    directory.chmod(0o755)
    state = cli.up(
        directory,
        domains=DOMAINS,
        seed=SEED,
        net=net,
        with_postfix=False,
        ipv6=False,
        profile=Profile.INTERNET,
        latency_scale=scale,
        out=lambda _line: None,
    )
    return directory, state


def load(directory: Path, state: dict[str, Any]) -> Internet:
    return Internet(
        directory,
        state,
        json.loads(Path(state["operators_file"]).read_text()),
        json.loads((directory / "responder.json").read_text())["listeners"],
        pq.read_table(state["truth_file"]).to_pylist(),
    )


@pytest.fixture(scope="module")
def internet() -> Iterator[Internet]:
    directory, state = bring_up(NET, 1.0)
    try:
        yield load(directory, state)
    finally:
        cli.down(directory)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def still() -> Iterator[Internet]:
    directory, state = bring_up(STILL_NET, 0.0)
    try:
        yield load(directory, state)
    finally:
        cli.down(directory)
        shutil.rmtree(directory, ignore_errors=True)


# -- DNS ---------------------------------------------------------------------


def dig_times(address: str, name: str, count: int) -> list[int]:
    """Query times (ms) that dig saw for ``count`` queries of ``name`` SOA."""
    with tempfile.NamedTemporaryFile("w", suffix=".batch") as batch:
        batch.write(f"{name} SOA\n" * count)
        batch.flush()
        done = subprocess.run(
            ["dig", "+norec", "+tries=1", "+time=4", f"@{address}", "-f", batch.name],
            capture_output=True,
            timeout=count * 4 + 30,
            check=False,
        )
    return [int(ms) for ms in _QUERY_TIME.findall(done.stdout)]


def test_dig_sees_each_operators_median(internet: Internet) -> None:
    chosen = [
        op
        for op in internet.operators
        if op["kind"] == "healthy" and op["zones"] and 5 <= op["median_ms"] <= 60
    ][:6]
    assert len(chosen) >= 4
    with ThreadPoolExecutor(len(chosen)) as pool:
        samples = list(
            pool.map(lambda op: dig_times(op["address"], op["zone_names"][0], 150), chosen)
        )
    for op, times in zip(chosen, samples, strict=True):
        assert len(times) >= 140, f"{op['name']}: {len(times)} answers of 150"
        median = statistics.median(times)
        # dig reports whole milliseconds: allow half of one beyond the 25%.
        assert abs(median - op["median_ms"]) <= 0.25 * op["median_ms"] + 0.5, (
            f"{op['name']}: median {median} ms, configured {op['median_ms']} ms"
        )


def dnsperf_lost(address: str, name: str, count: int) -> tuple[int, int]:
    """(sent, lost) for ``count`` queries of ``name`` SOA sent by dnsperf, which
    waits 3.5 s for each (no operator holds an answer back for more than 3 s),
    with room for every lost query to stay outstanding meanwhile."""
    with tempfile.NamedTemporaryFile("w", suffix=".queries") as queries:
        queries.write(f"{name} SOA\n" * count)
        queries.flush()
        argv = ["dnsperf", "-s", address, "-d", queries.name, "-n", "1", "-t", "3.5",
                "-Q", "4000", "-q", "2000"]  # fmt: skip
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    sent = int(re.search(r"Queries sent:\s+(\d+)", done.stdout).group(1))  # type: ignore[union-attr]
    lost = int(re.search(r"Queries lost:\s+(\d+)", done.stdout).group(1))  # type: ignore[union-attr]
    return sent, lost


def test_dnsperf_sees_each_operators_loss(internet: Internet) -> None:
    lossy = max(
        (op for op in internet.operators if op["kind"] == "healthy" and op["zones"]),
        key=lambda op: op["loss"],
    )
    clean = internet.operator(lambda op: op["name"] == "root")
    assert lossy["loss"] >= 0.01
    assert clean["loss"] == 0
    with ThreadPoolExecutor(2) as pool:
        lossy_run = pool.submit(dnsperf_lost, lossy["address"], lossy["zone_names"][0], 4000)
        clean_run = pool.submit(dnsperf_lost, clean["address"], ".", 1000)
        (sent, lost), clean_result = lossy_run.result(), clean_run.result()
    expected = sent * lossy["loss"]
    # Five standard deviations of the binomial: the bound holds but for 1 in 10^6.
    assert abs(lost - expected) <= 5 * (expected * (1 - lossy["loss"])) ** 0.5
    assert clean_result == (1000, 0)


def udp(address: str, name: str, rdtype: str, timeout: float = 3.0) -> dns.message.Message:
    return dns.query.udp(
        dns.message.make_query(name, rdtype, use_edns=0),
        address,
        timeout=timeout,
        ignore_trailing=True,
    )


def test_the_truncating_operator_sends_tc_and_unbound_falls_back_to_tcp(internet: Internet) -> None:
    op = internet.operator(lambda op: op["kind"] == "truncating" and op["zones"])
    zone = op["zone_names"][0]
    flags = subprocess.run(
        ["dig", "+norec", "+ignore", "+tries=1", f"@{op['address']}", zone, "SOA"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert re.search(r";; flags:[^;]* tc[ ;]", flags)
    # Through Unbound the zone resolves: only over TCP could it have.
    answer = udp(internet.resolver, zone, "SOA", timeout=10)
    assert answer.rcode() == dns.rcode.NOERROR
    assert answer.answer
    stats = Path(internet.state["relay_stats"])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if json.loads(stats.read_text())[op["address"]]["tcp_queries"] > 0:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the relay saw no query over TCP for the truncating operator")


def test_the_rate_limited_operator_truncates_above_its_rate(internet: Internet) -> None:
    op = internet.operator(lambda op: op["kind"] == "rate_limited")
    zone = op["zone_names"][0] if op["zones"] else "."
    with ThreadPoolExecutor(16) as pool:
        answers = list(
            pool.map(lambda _: _retrying_udp(op["address"], zone), range(3 * op["rate_limit"]))
        )
    truncated = sum(1 for a in answers if a.flags & dns.flags.TC)
    assert truncated >= op["rate_limit"] // 2  # the burst may straddle two seconds
    whole = dns.query.tcp(dns.message.make_query(zone, "SOA"), op["address"], timeout=10)
    assert not whole.flags & dns.flags.TC


def _retrying_udp(address: str, name: str) -> dns.message.Message:
    for _ in range(10):  # a query the operator lost is sent again
        try:
            return udp(address, name, "SOA", timeout=2)
        except dns.exception.Timeout:
            continue
    raise AssertionError(f"{address} never answered")


def test_a_dead_or_lame_operators_zones_servfail_through_unbound(internet: Internet) -> None:
    dead = internet.domains_of("dead_operator")[0]
    lame = internet.domains_of("lame_operator")[0]
    with ThreadPoolExecutor(2) as pool:
        started = time.monotonic()
        answers = list(pool.map(lambda name: udp(internet.resolver, name, "MX", 30), [dead, lame]))
        elapsed = time.monotonic() - started
    assert [a.rcode() for a in answers] == [dns.rcode.SERVFAIL, dns.rcode.SERVFAIL]
    assert elapsed < 30
    dead_op = internet.operator(lambda op: op["kind"] == "dead")
    lame_op = internet.operator(lambda op: op["kind"] == "lame")
    with pytest.raises(dns.exception.Timeout):
        udp(dead_op["address"], ".", "SOA", timeout=1)
    assert udp(lame_op["address"], ".", "SOA").rcode() == dns.rcode.REFUSED


# -- SMTP ---------------------------------------------------------------------

_clients = iter(range(2, 250))


def client_address() -> str:
    """A source address no other test of this module uses (127.249.0.x)."""
    return f"127.249.0.{next(_clients)}"


def name_of(listener: dict[str, Any]) -> str:
    return next(iter(listener["chains"]), "mx.example")


def smtp(address: str, source: str, *commands: bytes, timeout: float = 40.0) -> list[bytes]:
    """The banner and the reply to each command, over a plain socket."""
    with socket.create_connection((address, 25), timeout=timeout, source_address=(source, 0)) as s:
        stream = s.makefile("rb")
        replies = [_reply(stream)]
        for command in commands:
            s.sendall(command + b"\r\n")
            replies.append(_reply(stream))
        return replies


def _reply(stream: Any) -> bytes:
    lines = []
    while True:
        line = stream.readline()
        lines.append(line)
        if not line or line[3:4] != b"-":
            return b"".join(lines)


def s_client(address: str, name: str, source: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "openssl",
            "s_client",
            "-starttls",
            "smtp",
            "-connect",
            f"{address}:25",
            "-servername",
            name,
            "-bind",
            source,
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def handshake_done(result: subprocess.CompletedProcess[str]) -> bool:
    return result.returncode == 0 and "Cipher is TLS_" in result.stdout


def test_a_paused_greeting_is_waited_out(internet: Internet) -> None:
    host = min(
        (x for x in internet.listeners if x.get("pushback", {}).get("greeting_delay", 0) >= 5),
        key=lambda x: x["pushback"]["greeting_delay"],
    )
    delay = host["pushback"]["greeting_delay"]

    def by_socket() -> float:
        started = time.monotonic()
        banner = smtp(host["address"], client_address(), b"QUIT")[0]
        assert banner.startswith(b"220 ")
        return time.monotonic() - started

    def by_openssl() -> float:
        started = time.monotonic()
        assert handshake_done(s_client(host["address"], name_of(host), client_address()))
        return time.monotonic() - started

    with ThreadPoolExecutor(2) as pool:
        waits = [pool.submit(by_socket), pool.submit(by_openssl)]
        for wait in waits:
            assert delay - 0.05 <= wait.result() < delay + 5


def test_greylisting_refuses_ehlo_until_the_window_has_passed(internet: Internet) -> None:
    host = internet.listener(lambda x: bool(x.get("pushback", {}).get("greylist_window")))
    source = client_address()
    for _ in range(2):  # the first attempt, and a retry within the window
        replies = smtp(host["address"], source, b"EHLO scanner.danescan.test", b"QUIT")
        assert replies[0].startswith(b"220 ")
        assert replies[1].startswith(b"450 4.7.1 ")
        assert b"Greylisted" in replies[1]
    result = s_client(host["address"], name_of(host), client_address())
    assert "Didn't find STARTTLS in server response" in result.stderr


def test_connection_limits_refuse_with_421(internet: Internet) -> None:
    host = internet.listener(lambda x: x.get("pushback", {}).get("max_per_minute") is not None)
    limit = host["pushback"]["max_concurrent"]
    source = client_address()
    held = [
        socket.create_connection((host["address"], 25), timeout=40, source_address=(source, 0))
        for _ in range(limit)
    ]
    try:
        time.sleep(0.3)  # the held connections are counted before the next arrives
        refused = smtp(host["address"], source)[0]
        assert refused.startswith(b"421 4.7.0 ")
        assert b"too many connections" in refused
    finally:
        for sock in held:
            sock.close()


def test_a_slow_tls_handshake_completes(internet: Internet) -> None:
    host = internet.listener(lambda x: x.get("pushback", {}).get("tls_delay", 0) > 0)
    pushback = host["pushback"]
    started = time.monotonic()
    assert handshake_done(s_client(host["address"], name_of(host), client_address()))
    assert time.monotonic() - started >= pushback["tls_delay"] + pushback["greeting_delay"] - 0.05


def test_the_first_handshake_is_reset_and_the_next_succeeds(internet: Internet) -> None:
    host = internet.listener(lambda x: bool(x.get("pushback", {}).get("reset_first_handshake")))
    source = client_address()
    first = s_client(host["address"], name_of(host), source)
    assert not handshake_done(first)
    assert "errno=104" in first.stdout + first.stderr  # ECONNRESET
    assert handshake_done(s_client(host["address"], name_of(host), source))


def test_hostile_hosts_reset_every_handshake_or_tarpit(internet: Internet) -> None:
    resetting = internet.listener(lambda x: x["behavior"] == "tls_reset")
    source = client_address()
    for _ in range(2):
        assert not handshake_done(s_client(resetting["address"], name_of(resetting), source))
    tarpit = internet.listener(lambda x: x["behavior"] == "tarpit")
    with socket.create_connection((tarpit["address"], 25), timeout=10) as sock:
        started = time.monotonic()
        received = b""
        while len(received) < 4:
            received += sock.recv(1)
        assert received == b"220 "
        assert time.monotonic() - started >= 2.5  # a byte a second


def connections(directory: Path) -> dict[str, Any]:
    """What `testbed connections --dir D --json` prints."""
    argv = [sys.executable, "-m", "testbed.cli", "connections", "--dir", str(directory), "--json"]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, cwd=REPO)
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def test_testbed_connections_counts_a_known_pattern(internet: Internet) -> None:
    quiet = [
        x
        for x in internet.listeners
        if x["behavior"] == "starttls"
        and set(x.get("pushback", {})) <= {"greeting_delay"}
        and x["pushback"]["greeting_delay"] < 1
    ]
    sequential, overlapping = quiet[0], quiet[1]
    source = client_address()
    for _ in range(3):
        smtp(sequential["address"], source, b"QUIT")
        time.sleep(0.5)
    held = [
        socket.create_connection((overlapping["address"], 25), source_address=(source, 0))
        for _ in range(2)
    ]
    time.sleep(0.3)
    for sock in held:
        sock.close()
    time.sleep(1.0)  # the responder writes its log at least twice a second
    summary = connections(internet.directory)
    rows = {row["address"]: row for row in summary["per_address"]}
    first, second = rows[sequential["address"]], rows[overlapping["address"]]
    assert (first["connections"], first["max_concurrent"], first["over_limit"]) == (3, 1, 0)
    assert 0.5 <= first["min_gap_s"] < 0.5 + sequential["pushback"]["greeting_delay"] + 0.3
    assert (second["connections"], second["max_concurrent"], second["over_limit"]) == (2, 2, 0)
    assert summary["connections"] >= 5
    assert summary["max_concurrent"] >= 2


# -- --latency-scale 0 -----------------------------------------------------------


def test_latency_scale_zero_removes_the_delays_and_nothing_else(
    internet: Internet, still: Internet
) -> None:
    assert [row["domain"] for row in still.truth] == [row["domain"] for row in internet.truth]
    assert still.truth == internet.truth
    shape = lambda op: {k: v for k, v in op.items() if k not in ("address", "median_ms", "max_ms")}  # noqa: E731
    assert [shape(op) for op in still.operators] == [shape(op) for op in internet.operators]
    assert all(op["median_ms"] == 0 for op in still.operators)
    root = still.operator(lambda op: op["name"] == "root")
    assert statistics.median(dig_times(root["address"], ".", 20)) <= 1
    # What is not a delay stays: faults, truncation, greylisting.
    dead = still.operator(lambda op: op["kind"] == "dead")
    with pytest.raises(dns.exception.Timeout):
        udp(dead["address"], ".", "SOA", timeout=1)
    truncating = still.operator(lambda op: op["kind"] == "truncating" and op["zones"])
    assert udp(truncating["address"], truncating["zone_names"][0], "SOA").flags & dns.flags.TC
    slow = [x for x in internet.listeners if x.get("pushback", {}).get("greeting_delay", 0) >= 5]
    for fast_host, slow_host in zip(still.listeners, internet.listeners, strict=True):
        assert fast_host["behavior"] == slow_host["behavior"]
        assert set(fast_host.get("pushback", {})) <= set(slow_host.get("pushback", {}))
    host = still.listeners[internet.listeners.index(slow[0])]
    started = time.monotonic()
    assert smtp(host["address"], client_address(), b"QUIT")[0].startswith(b"220 ")
    assert time.monotonic() - started < 1.0
    greylisting = still.listener(lambda x: "greylist_window" in x.get("pushback", {}))
    replies = smtp(greylisting["address"], client_address(), b"EHLO scanner.danescan.test")
    assert replies[1].startswith(b"450 ")


# -- a scan of it ----------------------------------------------------------------


def test_a_scan_of_the_internet_testbed_equals_its_truth(still: Internet, tmp_path: Path) -> None:
    """With its delays off (greylisting windows of 0 s), so that the retries
    the truth assumes fit in a test: loss, faulty operators, greylisting,
    limits and resets all stay."""
    output = tmp_path / "scan"
    argv = [sys.executable, "-m", "scanner.cli", still.state["domains_file"], "-o", str(output),
            "--resolver", still.state["resolver"], "--bogus-probe", still.state["bogus_probe"],
            "--ehlo-name", "scanner.danescan.test", "--rate", "2000", "--retry-backoff", "0.5",
            "-q", *still.state["scan_args"]]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False, cwd=REPO)
    assert done.returncode == 0, done.stderr
    differing = (
        duckdb.connect()
        .execute(
            f"""
        WITH got AS (SELECT domain, verdict, [(h.host, h.verdict) FOR h IN mx_hosts] AS hosts
                     FROM '{output}/part-*.parquet'),
             want AS (SELECT domain, scenario, verdict,
                      [(h.host, h.verdict) FOR h IN mx_hosts] AS hosts
                      FROM '{still.state["truth_file"]}')
        SELECT want.scenario, want.domain, want.verdict, got.verdict, got.hosts
        FROM want FULL OUTER JOIN got USING (domain)
        WHERE want.verdict IS DISTINCT FROM got.verdict
           OR want.hosts IS DISTINCT FROM got.hosts
        """
        )
        .fetchall()
    )
    assert not differing, f"{len(differing)} domains differ, the first: {differing[:3]}"
    summary = connections(still.directory)
    scanner_rows = [row for row in summary["per_address"] if row["connections"]]
    assert scanner_rows
    # One connection at a time per address, and never beyond a host's limits.
    assert max(row["max_concurrent"] for row in scanner_rows) == 1
    assert summary["over_limit"] == 0

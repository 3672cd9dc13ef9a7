"""A scan on a real Dask cluster: `dask scheduler` and three `dask worker`
processes on loopback, with the survey's certificates (scan cluster-certs),
against a 5,000-domain testbed.

Every verdict equals truth.parquet; each mail address sees one connection at
a time and no two closer than the minimum interval, across all workers; no
client or worker without the survey's certificate gets in; a worker killed
mid-scan leaves the dataset an uninterrupted scan writes; a killed scheduler
ends the scan with a clear message and --resume finishes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from distributed import Client

from scanner.cluster import certs
from scanner.cluster.driver import DASK_CONFIG
from scanner.output.manifest import read_manifest
from scanner.resolve.managed import free_port
from tests.integration.support import Testbed, module_testbed
from tests.integration.test_scan_testbed import mismatches, parts, scan_args

pytestmark = [pytest.mark.testbed, pytest.mark.slow]

NET = 207
DOMAINS = 5000
WORKERS = 3
MIN_INTERVAL = 1.0
# The responder stamps a connection when it accepts it, the scanner's
# pacing when it connects: the two clocks' readings of one interval differ
# by the accept's scheduling, well under this.
CLOCK_SLACK = 0.02

bed = module_testbed("cluster", net=NET, domains=DOMAINS, seed=18)


class DaskCluster:
    """A scheduler and workers as `dask` starts them, with TLS certificates."""

    def __init__(self, folder: Path, certificates: Path) -> None:
        self.folder = folder
        self.certs = certificates
        self.port = free_port()
        self.address = f"tls://127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.scheduler: subprocess.Popen[bytes] | None = None

    def tls(self, member: str, folder: Path | None = None) -> list[str]:
        cert, key = certs.member_files(folder or self.certs, member)
        ca = (folder or self.certs) / certs.CA_CERT
        return ["--tls-ca-file", str(ca), "--tls-cert", str(cert), "--tls-key", str(key)]

    def _spawn(self, name: str, *argv: str) -> subprocess.Popen[bytes]:
        # The survey's Dask settings, as the README has every host take them.
        env = {**os.environ, "DASK_CONFIG": str(DASK_CONFIG)}
        with (self.folder / f"{name}.log").open("ab") as log:  # the child keeps its own
            proc = subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_" + argv[0], *argv[1:]],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env,
            )  # fmt: skip
        self.procs.append(proc)
        return proc

    def start(self, workers: int = WORKERS) -> DaskCluster:
        """The scheduler and ``workers`` workers, once they have all registered."""
        self.start_scheduler()
        for index in range(workers):
            self.start_worker(index)
        self.wait_for_workers(workers)
        return self

    def start_scheduler(self) -> None:
        self.scheduler = self._spawn(
            "scheduler", "scheduler", "--host", "127.0.0.1", "--port", str(self.port),
            "--protocol", "tls", "--no-dashboard", *self.tls("scheduler"),
        )  # fmt: skip

    def start_worker(self, index: int, member: str = "worker", folder: Path | None = None) -> None:
        self._spawn(
            f"worker-{index}", "worker", self.address, "--host", "127.0.0.1",
            "--nthreads", "1", "--no-dashboard", *self.tls(member, folder),
        )  # fmt: skip

    def client(self) -> Client:
        return Client(self.address, security=certs.security(self.certs), timeout=20)

    def wait_for_workers(self, count: int) -> None:
        with self.client() as client:
            client.wait_for_workers(count, timeout=60)

    def busy_worker_pid(self) -> int:
        """The process of a worker that is running a task now."""
        deadline = time.monotonic() + 30
        with self.client() as client:
            while time.monotonic() < deadline:
                busy = [w for w, keys in client.processing().items() if keys]
                if busy:
                    return int(client.run(os.getpid, workers=busy[:1])[busy[0]])
                time.sleep(0.1)
        raise AssertionError("no worker ran a task within 30 s")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self.procs.clear()


def tls_exchange(port: int, context: ssl.SSLContext) -> None:
    """A TLS handshake with the scheduler and a first read (TLS 1.3 reports
    a refused client certificate there, not in the handshake)."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw) as tls,
    ):
        tls.settimeout(2)
        with contextlib.suppress(TimeoutError):  # let in: the scheduler waits for a message
            tls.recv(1)


@pytest.fixture(scope="module")
def survey_certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("certs")
    certs.make_certs(folder)
    return folder


@pytest.fixture
def cluster(tmp_path: Path, survey_certs: Path) -> Iterator[DaskCluster]:
    dask = DaskCluster(tmp_path, survey_certs)
    try:
        yield dask.start()
    finally:
        dask.stop()


def cluster_scan(tb: Testbed, output: Path, dask: DaskCluster, *extra: str) -> list[str]:
    return scan_args(
        tb, output, "--cluster", dask.address, "--cluster-certs", str(dask.certs),
        "--min-interval", str(MIN_INTERVAL), *extra,
    )  # fmt: skip


def start_slow_scan(tb: Testbed, output: Path, dask: DaskCluster) -> subprocess.Popen[str]:
    """A scan that takes about ten seconds, for a fault to land in its middle."""
    return subprocess.Popen(
        cluster_scan(tb, output, dask, "--rate", "500"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def rows(output: Path) -> list[tuple[object, ...]]:
    """Every row's domain, verdict and MX hosts with their verdicts, in domain order."""
    return (
        duckdb.connect()
        .execute(
            f"SELECT domain, verdict, [(h.host, h.verdict) FOR h IN mx_hosts] "
            f"FROM read_parquet({parts(output)!r}) ORDER BY domain, input_line"
        )
        .fetchall()
    )


def assert_each_domain_once(output: Path) -> None:
    domains = [row[0] for row in rows(output)]
    assert len(domains) == len(set(domains)) == DOMAINS


@pytest.fixture(scope="module")
def uninterrupted(
    bed: Testbed, tmp_path_factory: pytest.TempPathFactory, survey_certs: Path
) -> tuple[Path, dict[str, Any]]:
    """One scan of the testbed on the cluster, start to end, and what the
    testbed's mail hosts and MTA-STS sites saw of it (the first scan of the
    module's testbed, so the logs hold its connections only)."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    dask = DaskCluster(folder, survey_certs)
    try:
        dask.start()
        output = folder / "scan"
        done = subprocess.run(
            cluster_scan(bed, output, dask, "--rate", "2000"),
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    finally:
        dask.stop()
    seen = {}
    for side, extra in (("smtp", []), ("https", ["--https"])):
        done = subprocess.run(
            [sys.executable, "-m", "testbed.cli", "connections", "--dir", str(bed.directory),
             "--json", *extra],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        seen[side] = json.loads(done.stdout)
    return output, seen


def test_every_verdict_equals_truth(bed: Testbed, uninterrupted: tuple[Path, object]) -> None:
    output, _ = uninterrupted
    assert mismatches(bed, output) == []
    assert_each_domain_once(output)
    manifest = read_manifest(output)
    assert manifest is not None
    assert manifest.cluster is not None
    assert str(manifest.status) == "complete"
    assert len(manifest.cluster.workers) == WORKERS
    assert manifest.counts.written == DOMAINS


def test_each_address_is_contacted_by_one_worker_at_a_time(
    uninterrupted: tuple[Path, dict[str, Any]],
) -> None:
    output, both = uninterrupted
    seen = both["smtp"]
    assert seen["connections"], "the scan made no SMTP connections: nothing was checked"
    assert seen["max_concurrent"] == 1
    assert seen["over_limit"] == 0
    assert seen["min_gap_s"] is None or seen["min_gap_s"] >= MIN_INTERVAL - CLOCK_SLACK
    manifest = read_manifest(output)
    assert manifest is not None
    handshakes = manifest.counts.work["handshakes"]
    # Sessions went both to the task's own worker and to others: the route ran.
    assert handshakes["local"] > 0
    assert handshakes["remote"] > 0


def test_each_policy_site_is_fetched_from_one_worker_at_a_time(
    bed: Testbed, uninterrupted: tuple[Path, dict[str, Any]]
) -> None:
    """The testbed's MTA-STS sites share an address, as at a web hoster, and
    every task fetches from it: the owner of the address alone connects."""
    output, both = uninterrupted
    seen = both["https"]
    hosted = (
        duckdb.connect()
        .execute(f"SELECT count(*) FROM read_parquet({parts(output)!r}) WHERE mta_sts_fetch = 'ok'")
        .fetchone()
    )
    assert hosted is not None
    assert hosted[0] >= 2, "fewer than two policies fetched: nothing was checked"
    assert seen["connections"] >= hosted[0]
    assert seen["max_concurrent"] == 1
    # nginx's times are to the millisecond, the start derived from two of them.
    assert seen["min_gap_s"] is not None
    assert seen["min_gap_s"] >= MIN_INTERVAL - CLOCK_SLACK - 0.002
    manifest = read_manifest(output)
    assert manifest is not None
    route = manifest.counts.work["handshakes"]
    assert route["policy_local"] + route["policy_remote"] >= seen["connections"]


def test_without_the_survey_certificate_nobody_gets_in(
    cluster: DaskCluster, tmp_path: Path
) -> None:
    # A TLS client that trusts the survey's CA but shows no certificate: the
    # scheduler ends the handshake (Dask's own client will not even try).
    anonymous = ssl.create_default_context(cafile=str(cluster.certs / certs.CA_CERT))
    anonymous.check_hostname = False
    with pytest.raises(ssl.SSLError, match=r"CERTIFICATE_REQUIRED|certificate required"):
        tls_exchange(cluster.port, anonymous)
    member = ssl.create_default_context(cafile=str(cluster.certs / certs.CA_CERT))
    member.check_hostname = False
    member.load_cert_chain(*certs.member_files(cluster.certs, certs.CLIENT))
    tls_exchange(cluster.port, member)  # the same exchange, with the certificate: let in
    stranger = tmp_path / "stranger"
    certs.make_certs(stranger)  # a certificate, but from another CA
    with pytest.raises((OSError, TimeoutError)):
        Client(cluster.address, security=certs.security(stranger), timeout=5)
    with pytest.raises((OSError, TimeoutError)):
        Client(cluster.address.replace("tls://", "tcp://"), timeout=5)
    cluster.start_worker(WORKERS, folder=stranger)
    time.sleep(8)  # long enough for a worker to register, had it been let in
    with cluster.client() as client:
        assert len(client.scheduler_info()["workers"]) == WORKERS
    assert "error" in (tmp_path / f"worker-{WORKERS}.log").read_text().lower()


def test_a_worker_killed_mid_scan(
    bed: Testbed, cluster: DaskCluster, tmp_path: Path, uninterrupted: tuple[Path, object]
) -> None:
    output = tmp_path / "scan"
    scan = start_slow_scan(bed, output, cluster)
    time.sleep(4)
    os.kill(cluster.busy_worker_pid(), signal.SIGKILL)
    _, stderr = scan.communicate(timeout=600)
    assert scan.returncode == 0, stderr
    assert rows(output) == rows(uninterrupted[0])
    assert_each_domain_once(output)
    manifest = read_manifest(output)
    assert manifest is not None
    assert manifest.cluster is not None
    assert manifest.cluster.lost_workers >= 1
    assert manifest.cluster.attempts > manifest.cluster.tasks  # a task ran again


def test_a_killed_scheduler_ends_the_scan_and_resume_finishes_it(
    bed: Testbed, cluster: DaskCluster, tmp_path: Path, survey_certs: Path
) -> None:
    output = tmp_path / "scan"
    scan = start_slow_scan(bed, output, cluster)
    time.sleep(4)
    assert cluster.scheduler is not None
    os.killpg(cluster.scheduler.pid, signal.SIGKILL)
    _, stderr = scan.communicate(timeout=300)
    assert scan.returncode == 1
    assert "lost the Dask scheduler" in stderr
    manifest = read_manifest(output)
    assert manifest is not None
    assert str(manifest.status) == "failed"
    cluster.stop()

    again = DaskCluster(tmp_path / "again", survey_certs)
    again.folder.mkdir()
    try:
        again.start()
        done = subprocess.run(
            cluster_scan(bed, output, again, "--rate", "2000", "--resume"),
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
    finally:
        again.stop()
    assert done.returncode == 0, done.stderr
    assert mismatches(bed, output) == []
    assert_each_domain_once(output)

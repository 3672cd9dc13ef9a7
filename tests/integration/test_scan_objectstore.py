"""A dataset in an object store: scans write to ``s3://`` through fsspec
(s3fs) to an S3 endpoint on loopback (moto's server), with two worker
processes, killed and resumed, and on a local Dask cluster; the dataset
there has the layout a local scan writes, equals truth.parquet, holds each
domain once, and the analysis reads it from the same URL."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from analysis.load import load_domains
from scanner.resolve.managed import free_port
from tests.integration.support import Testbed
from tests.integration.test_scan_testbed import mismatches, scan_args

pytestmark = pytest.mark.testbed

s3fs = pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")

BUCKET = "survey"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "danescan", "AWS_SECRET_ACCESS_KEY": "danescan"}


class S3:
    """An S3 endpoint on 127.0.0.1 and the settings that point fsspec at it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=self.port)
        self.fs = s3fs.S3FileSystem(
            key="danescan", secret="danescan", client_kwargs={"endpoint_url": self.endpoint}
        )

    @property
    def env(self) -> dict[str, str]:
        """For a scan started as a process (fsspec reads FSSPEC_<PROTOCOL>_<ARG>)."""
        return {
            **CREDENTIALS,
            "AWS_DEFAULT_REGION": "us-east-1",
            "FSSPEC_S3_ENDPOINT_URL": self.endpoint,
            "NO_PROXY": "127.0.0.1",
        }

    def names(self, prefix: str) -> list[str]:
        try:
            found = self.fs.ls(f"{BUCKET}/{prefix}", refresh=True)
        except FileNotFoundError:
            return []
        return sorted(str(p).rsplit("/", 1)[-1] for p in found)

    def download(self, prefix: str, to: Path) -> Path:
        """The dataset's files (not the split) in a local folder, for duckdb."""
        to.mkdir(parents=True)
        for name in self.names(prefix):
            if name.startswith("part-") or name == "manifest.json":
                self.fs.get(f"{BUCKET}/{prefix}/{name}", str(to / name))
        return to


@pytest.fixture(scope="module")
def s3() -> Iterator[S3]:
    store = S3()
    store.server.start()
    try:
        store.fs.mkdir(BUCKET)
        yield store
    finally:
        store.server.stop()


@pytest.fixture
def fsspec_at(s3: S3, monkeypatch: pytest.MonkeyPatch) -> S3:
    """This process's fsspec pointed at the endpoint too (the analysis reads through it)."""
    import fsspec.config

    monkeypatch.setitem(
        fsspec.config.conf,
        "s3",
        {"endpoint_url": s3.endpoint, "key": "danescan", "secret": "danescan"},
    )
    return s3


def scan(
    tb: Testbed, s3: S3, url: str, *extra: str, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv(tb, url, *extra), capture_output=True, text=True, timeout=timeout, check=False,
        env={**os.environ, **s3.env},
    )  # fmt: skip


def argv(tb: Testbed, url: str, *extra: str) -> list[str]:
    """The testbed's scan command with ``url`` as its output."""
    args = scan_args(tb, Path("placeholder"), *extra)
    args[args.index("placeholder")] = url
    return args


def assert_equals_truth(tb: Testbed, s3: S3, prefix: str, local: Path) -> None:
    folder = s3.download(prefix, local)
    assert mismatches(tb, folder) == []
    domains = duckdb.sql(f"SELECT domain FROM '{folder}/part-*.parquet'").fetchall()
    assert len(domains) == len(set(domains)) == len(tb.truth)


def test_two_workers_write_the_dataset_to_an_object_store(
    testbed: Testbed, fsspec_at: S3, tmp_path: Path
) -> None:
    s3 = fsspec_at
    proc = scan(testbed, s3, f"s3://{BUCKET}/workers", "--rate", "5000", "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    names = s3.names("workers")
    assert "manifest.json" in names
    assert {n.split("-")[1] for n in names if n.startswith("part-")} == {"000", "001"}
    assert not [n for n in names if n.endswith(".tmp")]
    assert_equals_truth(testbed, s3, "workers", tmp_path / "copy")
    # The analysis reads the dataset where the scan wrote it.
    read = load_domains(f"s3://{BUCKET}/workers")
    assert read.dataset.manifest is not None
    assert read.domains.count("*").fetchall() == [(len(testbed.truth),)]


def test_a_scan_killed_while_writing_to_an_object_store_resumes(
    testbed: Testbed, s3: S3, tmp_path: Path
) -> None:
    url = f"s3://{BUCKET}/killed"
    proc = subprocess.Popen(
        argv(testbed, url, "--rate", "300", "--part-rows", "100"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **s3.env},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while len([n for n in s3.names("killed") if n.startswith("part-")]) < 3:
            assert proc.poll() is None, "the scan ended before it could be killed"
            assert time.monotonic() < deadline, "no parts appeared"
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    resumed = scan(testbed, s3, url, "--rate", "5000", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert_equals_truth(testbed, s3, "killed", tmp_path / "copy")


@pytest.mark.slow
def test_a_cluster_scan_writes_its_split_and_parts_to_an_object_store(
    testbed: Testbed, s3: S3, tmp_path: Path
) -> None:
    url = f"s3://{BUCKET}/cluster"
    proc = scan(testbed, s3, url, "--rate", "5000", "--cluster", "local:2", "--tasks", "3")
    assert proc.returncode == 0, proc.stderr
    assert s3.names("cluster/_tasks") == [
        "split.json", "task-0000.txt", "task-0001.txt", "task-0002.txt",
    ]  # fmt: skip
    parts = [n for n in s3.names("cluster") if n.startswith("part-")]
    assert {n.split("-")[1] for n in parts} == {"000", "001", "002"}
    assert_equals_truth(testbed, s3, "cluster", tmp_path / "copy")

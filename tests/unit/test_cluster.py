"""The cluster scan's own pieces, without a cluster: who owns an address, how
the input is split, the certificates, the manifest's cluster section, the
options, and the driver's sum of its tasks' progress."""

from __future__ import annotations

import datetime as dt
import os
import ssl
import subprocess
import sys
from collections import Counter
from pathlib import Path

import dask
import pytest
from cryptography import x509

from scanner.cluster import certs, owners
from scanner.cluster.driver import DASK_CONFIG, _by_task, _Progress, dask_settings
from scanner.cluster.split import read_split, task_names, task_of, write_split
from scanner.cluster.task import TaskReport
from scanner.config import ScanConfig
from scanner.ingest.reader import read_names
from scanner.output.manifest import Cluster, Manifest, ScanStatus
from scanner.output.store import LocalStore
from scanner.progress import Counters, Snapshot
from scanner.seen import KeySet, name_key

WORKERS = tuple(f"tls://10.0.0.{i}:9000" for i in range(1, 6))
ADDRESSES = [f"192.0.2.{i}" for i in range(256)] + [f"2001:db8::{i:x}" for i in range(256)]


# -- owners --------------------------------------------------------------------------


def test_every_address_has_one_owner_the_same_in_any_order() -> None:
    for address in ADDRESSES:
        owner = owners.owner(address, WORKERS)
        assert owner in WORKERS
        assert owners.owner(address, tuple(reversed(WORKERS))) == owner


def test_owners_are_stable_across_runs() -> None:
    # Fixed values: an address must not move between processes, machines or versions.
    owned = [owners.owner(a, WORKERS) for a in ("192.0.2.0", "192.0.2.1", "2001:db8::1")]
    assert owned == [WORKERS[3], WORKERS[0], WORKERS[2]]


def test_addresses_spread_over_the_workers() -> None:
    load = Counter(owners.owner(a, WORKERS) for a in ADDRESSES)
    assert set(load) == set(WORKERS)
    assert max(load.values()) < 2 * len(ADDRESSES) / len(WORKERS)


def test_a_worker_leaving_moves_only_its_own_addresses() -> None:
    gone = WORKERS[2]
    rest = tuple(w for w in WORKERS if w != gone)
    for address in ADDRESSES:
        before = owners.owner(address, WORKERS)
        after = owners.owner(address, rest)
        assert after == before or before == gone


def test_no_workers_no_owner() -> None:
    with pytest.raises(ValueError, match="no workers"):
        owners.owner("192.0.2.1", ())


# -- the split -----------------------------------------------------------------------


INPUT = "\n".join(
    [
        "# a comment",
        "Example.COM",
        "example.com.",
        "b.example",
        "not a name!",
        "",
        *(f"d{i}.example" for i in range(200)),
    ]
)


def test_the_split_keeps_every_name_with_its_line_and_spellings_together(
    tmp_path: Path,
) -> None:
    source = tmp_path / "in.txt"
    source.write_text(INPUT + "\n")
    store = LocalStore(tmp_path / "ds")
    split = write_split(str(source), store, 7)
    assert (split.tasks, split.lines) == (7, 204)
    assert read_split(store) == split
    read_back = [item for i in range(7) for item in task_names(store, split.name(i))]
    original = list(read_names(str(source)))
    assert sorted(read_back, key=lambda n: n.line) == original
    tasks_of_example = {
        i for i in range(7) for item in task_names(store, split.name(i))
        if item.result.domain == "example.com"
    }  # fmt: skip
    assert len(tasks_of_example) == 1
    # The task a name lands in is the one its key says.
    for i in range(7):
        assert all(task_of(item, 7) == i for item in task_names(store, split.name(i)))
    key = name_key("example.com")
    assert tasks_of_example == {key % 7}


def test_a_split_that_was_not_finished_is_not_reused(tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text(INPUT)
    store = LocalStore(tmp_path / "ds")
    split = write_split(str(source), store, 3)
    store.remove(split.name(1))
    assert read_split(store) is None
    assert read_split(LocalStore(tmp_path / "nowhere")) is None


# -- certificates --------------------------------------------------------------------


def test_members_are_certified_by_the_survey_ca_and_keys_are_private(tmp_path: Path) -> None:
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    written = certs.make_certs(tmp_path, ("scheduler", "client"), days=30, now=now)
    assert {p.name for p in written} == {
        "ca.pem", "ca-key.pem", "scheduler.pem", "scheduler-key.pem",
        "client.pem", "client-key.pem",
    }  # fmt: skip
    for path in written:
        if path.name.endswith("-key.pem"):
            assert path.stat().st_mode & 0o077 == 0, path
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes())
    client = x509.load_pem_x509_certificate((tmp_path / "client.pem").read_bytes())
    client.verify_directly_issued_by(ca)
    assert client.not_valid_after_utc == now + dt.timedelta(days=30)
    # What Dask's TLS will do with them: a context that loads the pair and trusts the CA.
    context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    context.load_cert_chain(*certs.member_files(tmp_path, "client"))


def test_the_ca_is_made_once_and_reused_for_new_members(tmp_path: Path) -> None:
    certs.make_certs(tmp_path, ("scheduler",))
    ca_before = (tmp_path / "ca.pem").read_bytes()
    written = certs.make_certs(tmp_path, ("worker-b",))
    assert (tmp_path / "ca.pem").read_bytes() == ca_before
    assert [p.name for p in written] == ["worker-b-key.pem", "worker-b.pem"]
    ca = x509.load_pem_x509_certificate(ca_before)
    worker = x509.load_pem_x509_certificate((tmp_path / "worker-b.pem").read_bytes())
    worker.verify_directly_issued_by(ca)


def test_a_folder_without_the_client_pair_is_refused(tmp_path: Path) -> None:
    certs.make_certs(tmp_path, ("scheduler",))
    with pytest.raises(certs.CertificateError, match=r"client\.pem is missing"):
        certs.security(tmp_path)
    certs.make_certs(tmp_path, ("client",))
    security = certs.security(tmp_path)
    assert security.require_encryption


# -- the manifest and the options ----------------------------------------------------


def test_the_manifest_says_which_cluster_ran_the_scan() -> None:
    cluster = Cluster("tls://s:8786", ("tls://a:1", "tls://b:1"), tasks=8, attempts=9,
                      lost_workers=1)  # fmt: skip
    manifest = Manifest("0.1.0", ScanStatus.COMPLETE, dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
                        cluster=cluster)  # fmt: skip
    assert Manifest.from_json(manifest.to_json()).cluster == cluster
    single = Manifest("0.1.0", ScanStatus.COMPLETE, None)
    assert Manifest.from_json(single.to_json()).cluster is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cluster": "tcp://10.0.0.1:8786"}, "only over TLS"),
        ({"cluster": "tls://10.0.0.1:8786"}, "needs --cluster-certs"),
        ({"cluster": "tls://10.0.0.1:8786", "cluster_certs": Path("c")}, "needs --resolver"),
        ({"cluster": "local:0"}, "local:N with N >= 1"),
        ({"cluster": "local:x"}, "local:N"),
        ({"cluster": "scheduler:8786"}, "expected tls://HOST:PORT or local:N"),
        ({"cluster": "local:2", "workers": 2}, "cannot be combined"),
        ({"cluster": "local:2", "input": "-"}, "needs an input file"),
        ({"tasks": 0}, "--tasks must be at least 1"),
    ],
)
def test_cluster_options_that_cannot_work_are_refused(
    options: dict[str, object], message: str
) -> None:
    fields: dict[str, object] = {"input": "in.txt", "output": Path("out"),
                                 "ehlo_name": "scanner.example.org", **options}  # fmt: skip
    with pytest.raises(ValueError, match=message):
        ScanConfig(**fields)  # type: ignore[arg-type]


def test_a_remote_cluster_with_certificates_and_a_resolver_is_accepted() -> None:
    config = ScanConfig(
        "in.txt", Path("out"), ehlo_name="scanner.example.org", cluster="tls://10.0.0.1:8786",
        cluster_certs=Path("certs"), resolvers=("10.0.0.53",),
    )  # fmt: skip
    assert config.cluster == "tls://10.0.0.1:8786"


# -- the driver's bookkeeping --------------------------------------------------------


def snapshot(concluded: int) -> Snapshot:
    counters = Counters()
    counters.concluded = concluded
    return Snapshot(counters, elapsed=1.0)


def event(task: int, attempt: str, concluded: int) -> tuple[float, dict[str, object]]:
    import pickle

    return (0.0, {"task": task, "attempt": attempt, "snapshot": pickle.dumps(snapshot(concluded))})


def test_progress_sums_finished_and_running_tasks_and_counts_their_attempts() -> None:
    progress = _Progress()
    progress.event(event(0, "a", 10))
    progress.event(event(1, "b", 5))
    progress.event(event(0, "c", 3))  # task 0 again, on another worker
    assert progress.total(2.0, None).counts.concluded == 8
    progress.finish(TaskReport(1, "b", "tls://w:1", snapshot(7), stopped=False))
    progress.event(event(1, "b", 6))  # a late event of a finished task changes nothing
    total = progress.total(4.0, 100)
    assert (total.counts.concluded, total.elapsed, total.total) == (10, 4.0, 100)
    assert progress.attempts == {(0, "a"), (1, "b"), (0, "c")}


def test_done_domains_go_to_the_task_that_owns_them() -> None:
    keys = KeySet(name_key(f"d{i}.example") for i in range(100))
    by_task = _by_task(keys, 6)
    assert sum(len(k) for k in by_task.values()) == 100
    for task, subset in by_task.items():
        assert all(key % 6 == task for key in subset)


# ---------------------------------------------------------------- Dask's settings


SURVEY_SETTINGS = {
    "distributed.admin.event-loop": "uvloop",
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.profile.enabled": False,
    "distributed.worker.memory.monitor-interval": "1s",
}


def test_the_survey_settings_change_only_their_own_keys() -> None:
    assert dask_settings() == SURVEY_SETTINGS
    default_stealing = dask.config.get("distributed.scheduler.work-stealing")
    with dask.config.set(dask_settings()):
        for key, value in SURVEY_SETTINGS.items():
            assert dask.config.get(key) == value
        # Set key by key: the rest of each section keeps Dask's defaults.
        assert dask.config.get("distributed.admin.tick.limit") == "3s"
        assert dask.config.get("distributed.scheduler.work-stealing") == default_stealing


def test_a_process_started_with_dask_config_has_them() -> None:
    """As the README starts remote schedulers and workers."""
    keys = list(SURVEY_SETTINGS)
    code = f"import dask, distributed; print([dask.config.get(k) for k in {keys!r}])"
    env = {**os.environ, "DASK_CONFIG": str(DASK_CONFIG)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == repr(list(SURVEY_SETTINGS.values()))

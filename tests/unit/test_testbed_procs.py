"""testbed.procs: binaries, ports, and the process table's start/stop rules."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.procs import ProcessTable, TestbedError, ensure_free, require_binary

# An address of its own: 127.0.0.1 carries other programs' ephemeral ports.
ADDRESS = f"127.{random.randrange(100, 200)}.{random.randrange(256)}.{random.randrange(1, 255)}"


def _alive(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _pids_with(marker: str) -> list[int]:
    """PIDs of live processes whose command line contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if marker.encode() in cmdline and _alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def _sleeper(marker: str, *, ignore_term: bool = False) -> list[str]:
    """A Python process that says "armed" once set up, then sleeps; ``marker``
    makes it findable in /proc."""
    setup = "signal.signal(signal.SIGTERM, signal.SIG_IGN); " if ignore_term else ""
    code = f"import signal, time; {setup}print('armed', flush=True); time.sleep(60)"
    return [sys.executable, "-c", code, marker]


@pytest.fixture
def table(tmp_path: Path) -> Iterator[ProcessTable]:
    procs = ProcessTable(tmp_path / "processes.json")
    yield procs
    procs.stop_all(timeout=1.0)


def test_require_binary_names_the_package() -> None:
    with pytest.raises(TestbedError, match="install the Debian package 'no-such-pkg'"):
        require_binary("danescan-no-such-binary", "no-such-pkg")


def test_require_binary_returns_the_path() -> None:
    assert Path(require_binary("sh", "dash")).name == "sh"


@pytest.mark.parametrize(
    ("kind", "proto"), [(socket.SOCK_DGRAM, "udp"), (socket.SOCK_STREAM, "tcp")]
)
def test_ensure_free_detects_a_taken_port(kind: socket.SocketKind, proto: str) -> None:
    with socket.socket(socket.AF_INET, kind) as taken:
        taken.bind((ADDRESS, 0))
        if kind == socket.SOCK_STREAM:
            taken.listen()
        port = taken.getsockname()[1]
        expected = rf"^{re.escape(ADDRESS)}:{port} is already in use \({proto}\)$"
        with pytest.raises(TestbedError, match=expected):
            ensure_free(ADDRESS, port)


def test_ensure_free_accepts_a_free_port_and_leaves_it_free() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((ADDRESS, 0))
        port = probe.getsockname()[1]
    ensure_free(ADDRESS, port)  # raises if it takes the port for a taken one
    # Its probes are closed again: the server it checked for can bind the port.
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as server:
            server.bind((ADDRESS, port))
            assert server.getsockname() == (ADDRESS, port)


def test_start_waits_for_ready_and_stop_all_kills(table: ProcessTable) -> None:
    marker = f"danescan-test-{uuid.uuid4()}"
    polls = iter([False, False, True])
    pid = table.start(
        "sleeper",
        _sleeper(marker),
        log=table.path.with_name("s.log"),
        ready=lambda: next(polls),
        timeout=5,
    )
    assert _pids_with(marker) == [pid]
    assert table.running() == {"sleeper": True}
    table.stop_all()
    assert not _alive(pid)
    assert table.running() == {}
    assert json.loads(table.path.read_text()) == {}


def test_stop_all_tolerates_a_dead_process(table: ProcessTable) -> None:
    log = table.path.with_name("s.log")
    dead = table.start("dead", _sleeper("danescan-dead"), log=log, ready=lambda: True, timeout=5)
    live = table.start("live", _sleeper("danescan-live"), log=log, ready=lambda: True, timeout=5)
    os.kill(dead, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while table.running()["dead"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert table.running() == {"dead": False, "live": True}
    table.stop_all()
    assert not _alive(live)


def test_stop_all_escalates_to_sigkill(table: ProcessTable) -> None:
    marker = f"danescan-stubborn-{uuid.uuid4()}"
    log = table.path.with_name("s.log")
    # Ready only once the SIGTERM handler is installed.
    pid = table.start(
        "stubborn",
        _sleeper(marker, ignore_term=True),
        log=log,
        ready=lambda: "armed" in log.read_text(),
        timeout=5,
    )
    started = time.monotonic()
    table.stop_all(timeout=0.3)
    assert not _alive(pid)
    assert time.monotonic() - started < 3


def test_a_table_read_back_stops_what_another_started(tmp_path: Path) -> None:
    path = tmp_path / "processes.json"
    first = ProcessTable(path)
    pid = first.start(
        "sleeper",
        _sleeper("danescan-reread"),
        log=tmp_path / "s.log",
        ready=lambda: True,
        timeout=5,
    )
    second = ProcessTable(path)
    assert second.running() == {"sleeper": True}
    second.stop_all()
    # Not the second table's child: it stops waiting once the process has let
    # go of its executable (it is exiting), and the kernel makes it a zombie
    # of the first table a moment later (seen once in CI as still running).
    deadline = time.monotonic() + 2
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _alive(pid)
    # The first table still holds the child handle: it reaps the zombie.
    first.stop_all()
    assert not Path(f"/proc/{pid}").exists()


def test_a_recycled_pid_is_never_signalled(tmp_path: Path) -> None:
    marker = f"danescan-stranger-{uuid.uuid4()}"
    with subprocess.Popen(_sleeper(marker)) as stranger:
        try:
            path = tmp_path / "processes.json"
            recorder = ProcessTable(path)
            recorder.record_external("old", stranger.pid)
            # Pretend the PID was recorded for a process that started at another time.
            data = json.loads(path.read_text())
            data["old"]["start_ticks"] += 1
            path.write_text(json.dumps(data))
            table = ProcessTable(path)
            assert table.running() == {"old": False}
            table.stop_all(timeout=0.2)
            assert stranger.poll() is None
        finally:
            stranger.kill()


def test_an_external_process_is_stopped(tmp_path: Path) -> None:
    # Not a process-group leader: stop_all must signal the process itself.
    with subprocess.Popen(_sleeper("danescan-external")) as external:
        table = ProcessTable(tmp_path / "processes.json")
        table.record_external("postfix", external.pid)
        assert table.running() == {"postfix": True}
        table.stop_all(timeout=2.0)
        assert external.wait(timeout=5) == -signal.SIGTERM


def test_record_external_rejects_a_missing_pid(table: ProcessTable) -> None:
    with subprocess.Popen(["true"]) as gone:
        gone.wait()
    with pytest.raises(TestbedError, match=f"no running process with pid {gone.pid}"):
        table.record_external("ghost", gone.pid)


def test_a_process_that_exits_raises_with_the_log_tail(table: ProcessTable) -> None:
    log = table.path.with_name("fail.log")
    argv = ["sh", "-c", "echo first line; echo 'bind: address in use' >&2; exit 3"]
    with pytest.raises(TestbedError, match=r"exited with status 3: .*bind: address in use"):
        table.start("failing", argv, log=log, ready=lambda: False, timeout=5)
    assert table.running() == {}


def test_a_process_never_ready_is_killed_with_its_children(table: ProcessTable) -> None:
    marker = f"danescan-child-{uuid.uuid4()}"
    log = table.path.with_name("slow.log")
    # The shell forks a worker, as NSD and Unbound do: neither may survive.
    script = f"{sys.executable} -c 'import time; time.sleep(60)' {marker} & echo waiting; wait"
    with pytest.raises(TestbedError, match=r"not ready after 0\.5 s \(killed\): waiting"):
        table.start("slow", ["sh", "-c", script, marker], log=log, ready=lambda: False, timeout=0.5)
    deadline = time.monotonic() + 5
    while _pids_with(marker) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _pids_with(marker) == []
    assert table.running() == {}


def test_a_missing_executable_is_a_clear_error(table: ProcessTable) -> None:
    with pytest.raises(TestbedError, match="cannot start x"):
        table.start(
            "x",
            ["/nonexistent/danescan"],
            log=table.path.with_name("x.log"),
            ready=lambda: True,
            timeout=1,
        )


def test_a_running_name_cannot_be_started_twice(table: ProcessTable) -> None:
    log = table.path.with_name("s.log")
    table.start("once", _sleeper("danescan-once"), log=log, ready=lambda: True, timeout=5)
    with pytest.raises(TestbedError, match="once is already running"):
        table.start("once", _sleeper("danescan-once"), log=log, ready=lambda: True, timeout=5)


def test_a_corrupt_table_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "processes.json"
    path.write_text('{"nsd": {"pid": "x"}}')
    with pytest.raises(TestbedError, match="not a valid process table"):
        ProcessTable(path)


def test_stop_stops_only_the_named_process(table: ProcessTable) -> None:
    log = table.path.with_name("s.log")
    first = table.start("first", _sleeper("danescan-first"), log=log, ready=lambda: True, timeout=5)
    table.start("second", _sleeper("danescan-second"), log=log, ready=lambda: True, timeout=5)
    table.stop("first")
    table.stop("never-started")
    assert not _alive(first)
    assert table.running() == {"second": True}


def test_an_interrupted_wait_leaves_no_process(table: ProcessTable) -> None:
    marker = f"danescan-interrupted-{uuid.uuid4()}"

    def interrupted() -> bool:
        assert table.running() == {"interrupted": True}  # recorded before it is ready
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        table.start(
            "interrupted",
            _sleeper(marker),
            log=table.path.with_name("i.log"),
            ready=interrupted,
            timeout=5,
        )
    assert _pids_with(marker) == []
    assert table.running() == {}

"""`testbed` on bad input: each a clear message, a non-zero exit and no stray process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from testbed import cli
from testbed.procs import TestbedError
from tests.integration.support import Testbed, run_module

pytestmark = pytest.mark.testbed


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_module("testbed.cli", *args, env=env)


def no_process_left(directory: Path) -> bool:
    table = directory / cli.PROCESS_FILE
    recorded = json.loads(table.read_text()) if table.exists() else {}
    pids = [entry["pid"] for entry in recorded.values()]
    return not recorded and not any(Path(f"/proc/{pid}").exists() for pid in pids)


def test_down_on_a_folder_never_set_up(tmp_path: Path) -> None:
    proc = run("down", "--dir", str(tmp_path))
    assert proc.returncode == 1
    assert "holds no testbed" in proc.stderr


def test_status_on_a_folder_never_set_up(tmp_path: Path) -> None:
    proc = run("status", "--dir", str(tmp_path))
    assert proc.returncode == 1
    assert "no testbed" in proc.stderr


@pytest.mark.parametrize("net", ["0", "255"])
def test_only_loopback_nets(tmp_path: Path, net: str) -> None:
    proc = run("up", "--dir", str(tmp_path), "--domains", "200", "--net", net)
    assert proc.returncode == 2
    assert "127.<net>" in proc.stderr


def test_missing_binary_names_the_debian_package(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python").symlink_to(sys.executable)
    env = {**os.environ, "PATH": str(bindir)}
    proc = run("up", "--dir", str(tmp_path / "tb"), "--domains", "200", "--net", "248", env=env)
    assert proc.returncode == 1
    assert "install the Debian package 'nsd'" in proc.stderr


def test_port_taken_midway_stops_what_was_started(tmp_path: Path) -> None:
    """Postfix starts last: with its port taken, NSD, Unbound and the responder
    are already running and must be stopped again."""
    with socket.socket() as blocker:
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(("127.247.255.25", 25))
        blocker.listen()
        proc = run("up", "--dir", str(tmp_path), "--domains", "200", "--net", "247", "--no-ipv6")
    assert proc.returncode == 1
    assert "127.247.255.25:25 is already in use" in proc.stderr
    assert no_process_left(tmp_path)


def test_second_up_in_the_same_folder_is_refused(testbed: Testbed) -> None:
    with pytest.raises(TestbedError, match="already running"):
        cli.up(testbed.directory, domains=200, seed=1, net=246, ipv6=False)


def test_status_of_a_running_testbed(testbed: Testbed) -> None:
    proc = run("status", "--dir", str(testbed.directory))
    assert proc.returncode == 0
    shown = json.loads(proc.stdout)
    assert shown["resolver"] == testbed.state["resolver"]
    assert set(shown["processes"]) >= {"nsd", "unbound", "responder", "postfix"}
    assert all(shown["processes"].values())

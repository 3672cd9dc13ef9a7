"""The internet-profile testbed a long benchmark scans (bench_flow, bench_soak):
brought up once in a folder of its own and reused by the next run while it
is up with the same settings, since building a million domains takes long."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from testbed.cli import STATE_FILE


def internet_testbed(directory: Path, *, net: int, domains: int, **knobs: float) -> dict[str, Any]:
    """The testbed.json of an internet-profile testbed of ``domains`` on loopback
    net ``net`` (IPv4 only, no Postfix) in ``directory``. ``knobs`` are `testbed
    up` options by their testbed.json key (latency_scale, dns_loss); a testbed
    already up with other settings is taken down first."""
    state_file = directory / STATE_FILE
    if state_file.exists():
        state: dict[str, Any] = json.loads(state_file.read_text())
        if state.get("domains") == domains and all(state.get(k) == v for k, v in knobs.items()):
            return state
        subprocess.run([sys.executable, "-m", "testbed.cli", "down", "--dir", str(directory)],
                       check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    options = [
        part for key, value in knobs.items() for part in (f"--{key.replace('_', '-')}", str(value))
    ]
    up = [sys.executable, "-m", "testbed.cli", "up", "--profile", "internet",
          "--domains", str(domains), *options, "--dir", str(directory),
          "--net", str(net), "--no-ipv6", "--no-postfix"]  # fmt: skip
    subprocess.run(up, check=True, stdout=subprocess.DEVNULL)
    loaded: dict[str, Any] = json.loads(state_file.read_text())
    return loaded


def add_testbed_options(parser: argparse.ArgumentParser, *, domains: int = 100_000) -> None:
    """The options of a benchmark that scans bench_flow's internet testbed."""
    parser.add_argument("--dir", type=Path, default=Path("/tmp/bench-flow"))
    parser.add_argument("--domains", type=int, default=domains)
    parser.add_argument("--rate", type=float, default=5000.0)
    parser.add_argument("--down", action="store_true", help="take the testbed down at the end")

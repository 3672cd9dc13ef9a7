"""What integration tests share besides fixtures: the Testbed they scan, a
testbed of a module's own, and the scanner's command line for a test scan."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from scanner.handshake.contact import ContactPolicy
from testbed import cli
from testbed.cli import allow_ranges, pkix_ca

# The EHLO name of the tests' scans.
EHLO = "scanner.danescan.test"


@dataclass(frozen=True)
class Testbed:
    directory: Path
    state: dict[str, object]
    truth: list[dict[str, object]]

    __test__ = False

    @property
    def resolver(self) -> tuple[str, int]:
        address, port = str(self.state["resolver"]).rsplit(":", 1)
        return address, int(port)

    @property
    def scan_args(self) -> list[str]:
        """What a scan of the testbed needs on its command line (testbed.json):
        the --allow-range options for its special-purpose (loopback) addresses
        and --pkix-ca with its WebPKI roots."""
        args = self.state["scan_args"]
        assert isinstance(args, list)
        return [str(arg) for arg in args]

    @property
    def allow_ranges(self) -> tuple[str, ...]:
        """The same, as ScanConfig.allow_ranges, for scans built in Python."""
        return allow_ranges(self.state)

    @property
    def pkix_ca(self) -> tuple[Path, ...]:
        """Its WebPKI roots, as ScanConfig.pkix_ca."""
        return pkix_ca(self.state)

    @property
    def contact_policy(self) -> ContactPolicy:
        """For a Handshaker of a test: the testbed's addresses allowed."""
        return ContactPolicy.build(allow=self.allow_ranges)

    def by_scenario(self, scenario: str) -> list[dict[str, object]]:
        return [row for row in self.truth if row["scenario"] == scenario]


@contextlib.contextmanager
def own_testbed(name: str, **options: Any) -> Iterator[Testbed]:
    """A testbed brought up with testbed.cli.up's ``options`` (net, domains,
    seed, ...) for the with block, then taken down and removed."""
    # Not under pytest's tmp_path: Postfix runs as its own user and needs every
    # parent folder to be searchable, which pytest's 0700 folders are not.
    directory = Path(tempfile.mkdtemp(prefix=f"danescan-{name}-"))
    directory.chmod(0o755)
    try:
        state = cli.up(directory, out=lambda _line: None, **options)
        truth = pq.read_table(str(state["truth_file"])).to_pylist()
        yield Testbed(directory, state, truth)
    finally:
        cli.down(directory)
        shutil.rmtree(directory, ignore_errors=True)


def module_testbed(name: str, **options: Any) -> Any:
    """A module-scoped fixture: a small testbed of the module's own, without
    Postfix or IPv6, on the loopback net its ``options`` give (a test module
    that takes a testbed down or stops its servers must not share one)."""

    @pytest.fixture(scope="module")
    def fixture() -> Iterator[Testbed]:
        """The module's own testbed."""
        with own_testbed(name, with_postfix=False, ipv6=False, **options) as bed:
            yield bed

    return fixture


def scan_options(tb: Testbed) -> list[str]:
    """The scanner's options for a quick test scan of ``tb``: its resolver and
    bogus probe, no pacing, short timeouts. Without the testbed's scan_args,
    which a scan adds unless it tests what they allow."""
    return [
        "--resolver", str(tb.state["resolver"]), "--bogus-probe", str(tb.state["bogus_probe"]),
        "--ehlo-name", EHLO, "--min-interval", "0", "--retry-backoff", "0.1", "--timeout", "4",
    ]  # fmt: skip


def run_module(
    module: str,
    *args: str,
    timeout: float = 300,
    env: dict[str, str] | None = None,
    wrapper: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """``python -m module args`` (under ``wrapper``, e.g. prlimit), its output captured."""
    return subprocess.run(
        [*wrapper, sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )

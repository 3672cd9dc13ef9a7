"""What integration tests share besides fixtures."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scanner.handshake.contact import ContactPolicy
from testbed.cli import allow_ranges


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
        the --allow-range options for its special-purpose (loopback) addresses."""
        args = self.state["scan_args"]
        assert isinstance(args, list)
        return [str(arg) for arg in args]

    @property
    def allow_ranges(self) -> tuple[str, ...]:
        """The same, as ScanConfig.allow_ranges, for scans built in Python."""
        return allow_ranges(self.state)

    @property
    def contact_policy(self) -> ContactPolicy:
        """For a Handshaker of a test: the testbed's addresses allowed."""
        return ContactPolicy.build(allow=self.allow_ranges)

    def by_scenario(self, scenario: str) -> list[dict[str, object]]:
        return [row for row in self.truth if row["scenario"] == scenario]

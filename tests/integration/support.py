"""What integration tests share besides fixtures."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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

    def by_scenario(self, scenario: str) -> list[dict[str, object]]:
        return [row for row in self.truth if row["scenario"] == scenario]

"""CPU accounting from /proc shared by the benchmarks: this process, its
children, the testbed's servers (by process group: NSD forks) and the
whole machine, at one instant; subtract two to measure a run."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")
_NSD = ("nsd", "nsd-root", "nsd-tld")


@dataclass(frozen=True, slots=True)
class Usage:
    """CPU seconds at one instant: this process, its children, the servers, the machine."""

    wall: float
    own: float
    children: float
    unbound: float
    nsd: float  # every NSD instance (the internet profile has three)
    relay: float  # the internet profile's DNS operators; 0 on loopback
    machine_busy: float  # CPU seconds all cores spent not idle
    machine_total: float

    @classmethod
    def now(cls, table: Path) -> Usage:
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        pids = json.loads(table.read_text())
        busy, total = machine_ticks()
        return cls(
            wall=time.monotonic(),
            own=own.ru_utime + own.ru_stime,
            children=kids.ru_utime + kids.ru_stime,
            unbound=group_cpu(int(pids["unbound"]["pid"])),
            nsd=sum(group_cpu(int(pids[n]["pid"])) for n in _NSD if n in pids),
            relay=group_cpu(int(pids["relay"]["pid"])) if "relay" in pids else 0.0,
            machine_busy=busy / _TICKS,
            machine_total=total / _TICKS,
        )


def busy_share(before: Usage, after: Usage) -> float:
    """Share of all cores' time spent busy between two instants."""
    total = after.machine_total - before.machine_total
    return (after.machine_busy - before.machine_busy) / total if total else 0.0


def group_cpu(pgid: int) -> float:
    """CPU seconds of every live process in a process group (NSD forks)."""
    ticks = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = Path(entry.path, "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == pgid:  # field 5, pgrp
                ticks += int(fields[11]) + int(fields[12])  # fields 14, 15: utime, stime
    return ticks / _TICKS


def machine_ticks() -> tuple[int, int]:
    values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return sum(values) - idle, sum(values)

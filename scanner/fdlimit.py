"""Open files: how many sockets the scan may hold, and what running out means.

Every SMTP connection and every DNS socket is a file descriptor, and a
process may hold at most RLIMIT_NOFILE of them (POSIX getrlimit; Linux
``ulimit -n``, often 1024 soft and far more hard, sometimes 256 in a
container). A scan that opens more gets EMFILE (or ENFILE, when the whole
system has run out) from socket() or connect(): that says nothing about the
server at the other end, yet unhandled it became a ``connect_refused``
and a wrong verdict.

So, as zmap and masscan do, the scan first raises its soft limit to the hard
one (``raise_soft_limit``), then sizes its concurrent connections to what is
left once the files it has open and a reserve are set aside
(``connection_cap``): one decision, applied to ``ScanConfig.max_connections``
(scanner.run), which the handshaker's semaphore enforces. What still slips
through (another library's files, a burst of DNS over TCP) is a local,
passing condition (``is_local_exhaustion``): the connect waits for a
descriptor to come free and tries again, never recording the remote as at
fault (scanner.handshake.session, scanner.resolve.client).
"""

from __future__ import annotations

import asyncio
import errno
import os
import resource
from dataclasses import dataclass

__all__ = [
    "LOCAL_EXHAUSTION",
    "FileBudget",
    "LocalWait",
    "connection_cap",
    "file_budget",
    "is_local_exhaustion",
    "raise_soft_limit",
]

# Errors of socket() and connect() that are about this machine, not the
# peer: no descriptor left in the process (EMFILE) or the system (ENFILE),
# no buffer or kernel memory for another socket (ENOBUFS, ENOMEM).
LOCAL_EXHAUSTION = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

# Descriptors kept back from SMTP connections for everything else a worker
# opens while it runs: part files and their temporaries, the JSON log, DNS
# queries retried over TCP after a truncated answer, multiprocessing's pipes,
# the event loop's own descriptors, and the modules and libraries that open
# files lazily (pyarrow, ssl). Measured: a 2,000-domain testbed scan held to
# 4 connections peaked at 29 descriptors, 21 of them neither connections nor
# DNS sockets. 32 leaves room for bursts of DNS over TCP, and a connect
# that finds none left waits rather than fails; a file that cannot be
# opened would stop the scan, so the reserve is not cut finer.
RESERVE = 32

# A hard limit of "unlimited" still stops at the kernel's nr_open (2^20 by
# default on Linux): ask for no more than that.
_UNLIMITED = 1 << 20


@dataclass(frozen=True, slots=True)
class FileBudget:
    """Descriptors of this process: the soft limit and how many are open."""

    limit: int
    open: int


def connection_cap(budget: FileBudget, *, dns_sockets: int, wanted: int) -> int:
    """SMTP connections the scan may hold open at once: ``wanted`` (the
    user's --max-connections) unless fewer descriptors are left after those
    open now, the DNS client's UDP sockets and RESERVE. Zero when none are
    left: the caller says so rather than scanning with no connection."""
    left = budget.limit - budget.open - dns_sockets - RESERVE
    return max(0, min(wanted, left))


def is_local_exhaustion(exc: BaseException) -> bool:
    """Whether ``exc`` says this machine ran out of descriptors or socket
    memory (LOCAL_EXHAUSTION): wait and try again, the peer is not at fault."""
    return isinstance(exc, OSError) and exc.errno in LOCAL_EXHAUSTION


class LocalWait:
    """The pause between connects while this machine is out of descriptors:
    short at first, doubled each time up to a second, since a connection
    frees its descriptor within its deadline and most within milliseconds.
    One per connect that waits."""

    __slots__ = ("_wait",)

    FIRST = 0.01
    MAX = 1.0

    def __init__(self) -> None:
        self._wait = self.FIRST

    async def __call__(self) -> None:
        await asyncio.sleep(self._wait)
        self._wait = min(self._wait * 2, self.MAX)


def raise_soft_limit() -> int:
    """Raise RLIMIT_NOFILE's soft limit to the hard one, which an
    unprivileged process may do, and return the soft limit now in force
    (children, the workers and the managed Unbound, inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _UNLIMITED if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (OSError, ValueError):
            pass  # above nr_open, or not allowed: live with the soft limit
    return _UNLIMITED if soft == resource.RLIM_INFINITY else soft


def file_budget() -> FileBudget:
    """This process's soft limit, raised first, and its open descriptors."""
    limit = raise_soft_limit()
    return FileBudget(limit, _count_open())


def _count_open() -> int:
    for folder in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(folder)) - 1  # less the listing's own
        except OSError:
            continue
    return 16  # no way to count: about what a started interpreter holds

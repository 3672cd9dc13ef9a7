"""scanner.fdlimit: connections sized to the open-file limit; running out of
descriptors told apart from a server's refusal."""

from __future__ import annotations

import asyncio
import errno
import resource
import socket

import pytest

from scanner.fdlimit import (
    RESERVE,
    FileBudget,
    LocalWait,
    connection_cap,
    is_local_exhaustion,
    raise_soft_limit,
)


@pytest.mark.parametrize(
    ("limit", "open_", "dns", "wanted", "cap"),
    [
        (1 << 20, 10, 4, 500, 500),  # plenty: the user's cap stands
        (1024, 10, 4, 500, 500),
        (256, 5, 4, 500, 256 - 5 - 4 - RESERVE),  # ulimit -n 256: throttled
        (256, 5, 4, 100, 100),  # the user asked for fewer still
        (256, 60, 8, 500, 256 - 60 - 8 - RESERVE),
        (5 + 4 + RESERVE + 1, 5, 4, 500, 1),
        (RESERVE + 8, 5, 4, 500, 0),  # nothing left: the caller refuses to scan
    ],
)
def test_connection_cap(limit: int, open_: int, dns: int, wanted: int, cap: int) -> None:
    assert connection_cap(FileBudget(limit, open_), dns_sockets=dns, wanted=wanted) == cap


@pytest.mark.parametrize(
    ("exc", "local"),
    [
        (OSError(errno.EMFILE, "Too many open files"), True),
        (OSError(errno.ENFILE, "Too many open files in system"), True),
        (OSError(errno.ENOBUFS, "No buffer space available"), True),
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), False),
        (OSError(errno.EHOSTUNREACH, "No route to host"), False),
        (TimeoutError(), False),
        (ValueError("EMFILE"), False),
    ],
)
def test_local_exhaustion(exc: BaseException, local: bool) -> None:
    assert is_local_exhaustion(exc) is local


def _exhaust(held: list[socket.socket]) -> OSError:
    """Open sockets until socket() fails; the error."""
    while True:
        try:
            held.append(socket.socket())
        except OSError as exc:
            return exc


def test_a_real_emfile_is_local() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    held: list[socket.socket] = []
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
        assert is_local_exhaustion(_exhaust(held))
    finally:
        for sock in held:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_soft_limit_is_raised_to_the_hard_one() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > 1 << 20:
        pytest.skip("an unlimited hard limit is capped at nr_open")
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
        assert raise_soft_limit() == hard
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_local_wait_doubles_up_to_its_maximum(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", sleep)

    async def waits() -> None:
        wait = LocalWait()
        for _ in range(9):
            await wait()

    asyncio.run(waits())
    assert slept == [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.0, 1.0]

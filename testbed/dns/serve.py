"""Running the testbed's DNS servers: NSD (one instance, or one per layer of
the tree) and then the validating Unbound, each started only once the one
before answers, and a standard-library probe that asks a server for the
root SOA (RFC 1035 section 4.1; the AD bit of RFC 4035 section 3.2.3 and
RFC 6840 section 5.7 tells whether the resolver validated it).
"""

from __future__ import annotations

import functools
import secrets
import socket
import struct
import time
from collections.abc import Callable

from testbed.dns.build import DnsBuild
from testbed.dns.conf import PORT
from testbed.dns.files import read_lines
from testbed.procs import ProcessTable, TestbedError, ensure_free, require_binary


def start_dns(
    build: DnsBuild,
    table: ProcessTable,
    *,
    auth_address: str | None = None,
    resolver_address: str | None = None,
    timeout: float = 300.0,
    before_resolver: Callable[[], None] | None = None,
) -> None:
    """Start NSD, then Unbound, and wait until each answers; on failure
    neither is left running. The addresses come from ``build`` (if given here
    they must agree with it). ``timeout`` applies to each server: NSD takes a
    while to load about a million names. ``before_resolver`` runs once NSD
    answers (the internet profile starts its DNS operators there, which
    Unbound's readiness check already goes through)."""
    for given, built in (
        (auth_address, build.auth_address),
        (resolver_address, build.resolver_address),
    ):
        if given is not None and given != built:
            raise TestbedError(f"the DNS configuration was built for {built}, not {given}")
    nsd = require_binary("nsd", "nsd")
    unbound = require_binary("unbound", "unbound")
    ensure_free(build.auth_address, PORT)
    ensure_free(build.resolver_address, PORT)
    try:
        ensure_free(build.lame_address, PORT)
    except TestbedError as exc:
        raise TestbedError(f"{exc}: lame delegations would not be lame") from None

    logs = build.workdir / "logs"
    nsd_log = logs / "nsd.log"
    # The logs are appended to: only this start's lines count.
    nsd_log_start = nsd_log.stat().st_size if nsd_log.exists() else 0
    table.start(
        "nsd",
        [nsd, "-d", "-c", str(build.nsd_conf)],
        log=nsd_log,
        ready=(
            functools.partial(_responds, build.auth_address)
            if build.layers
            else (lambda: _answers(build.auth_address, recursion=False, secure=False))
        ),
        timeout=timeout,
    )
    # NSD serves the zones it could load and only logs the others.
    problems = [line for line in read_lines(nsd_log, nsd_log_start) if "error" in line.lower()]
    if problems:
        table.stop("nsd")
        raise TestbedError(f"NSD could not load every zone: {problems[0]} (see {nsd_log})")
    try:
        for layer in build.layers:
            ensure_free(layer.address, PORT)
            table.start(
                layer.name,
                [nsd, "-d", "-c", str(layer.conf)],
                log=logs / f"{layer.name}.log",
                # Any answer: an instance without the root refuses its SOA.
                ready=functools.partial(_responds, layer.address),
                timeout=timeout,
            )
        if before_resolver is not None:
            before_resolver()
        table.start(
            "unbound",
            [unbound, "-d", "-c", str(build.unbound_conf)],
            log=logs / "unbound.log",
            # A secure root SOA: the trust anchor, the root key and NSD all work.
            ready=lambda: _answers(build.resolver_address, recursion=True, secure=True),
            timeout=timeout,
        )
    except BaseException:
        for layer in build.layers:
            table.stop(layer.name)
        table.stop("nsd")
        raise


def _responds(address: str) -> bool:
    """Any answer to a root SOA query: an NSD that does not serve the root refuses it."""
    return probe_dns(address, recursion=False) is not None


def _answers(address: str, *, recursion: bool, secure: bool) -> bool:
    result = probe_dns(address, recursion=recursion)
    return result is not None and result[0] == 0 and (result[1] or not secure)


def probe_dns(
    address: str, *, recursion: bool, port: int = PORT, timeout: float = 0.5
) -> tuple[int, bool] | None:
    """Ask ``address`` for the root SOA over UDP; return (RCODE, AD) or None
    if no matching answer came. Standard library only: the testbed needs no
    DNS library at run time."""
    qid = secrets.randbits(16)
    # RD when asking a resolver; AD asks it to report validation (RFC 6840 section 5.7).
    flags = (0x0100 if recursion else 0) | 0x0020
    query = struct.pack("!HHHHHH", qid, flags, 1, 0, 0, 0) + b"\0" + struct.pack("!HH", 6, 1)
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(query, (address, port))
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                answer = sock.recv(4096)
                if len(answer) >= 12:
                    rid, rflags = struct.unpack_from("!HH", answer)
                    if rid == qid and rflags & 0x8000:
                        return rflags & 0x000F, bool(rflags & 0x0020)
        except OSError:  # timeout, or ICMP port unreachable while the server starts
            return None
    return None

"""The resolver a scan trusts: a managed Unbound child process, and the check
that a resolver really validates before a scan relies on its AD bit.

RFC 7672 section 2.1 lets an SMTP client trust the AD bit of a validating
resolver it reaches over a secure channel, such as loopback. Without
``--resolver`` the scanner starts its own Unbound on a loopback port and stops
it at the end; its configuration (unbound_conf.py, every setting with its
reason) is made for recursing for millions of domains on the real internet.
Either way it first probes: a known-secure name must come back with AD, a
known-bogus name must fail; a resolver that does neither is refused unless
--allow-nonvalidating. A managed Unbound that exits during the scan is
started again on its port (``Supervisor``).

How long a question may take, end to end
----------------------------------------

Unbound waits unknown-server-time-limit (376 ms) for a name server it has not
measured yet, doubles the wait at each timeout and, once the wait reaches
infra-cache-max-rtt (3 s here, 120 s by default), counts the address as down
for that zone. A dead address therefore costs at most 0.376 + 0.752 + 1.504
+ 3 = 5.6 s (``unbound_conf.dead_address_bound``), and a zone whose every
address is dead gets its SERVFAIL after that much per address, tried one after
another (RFC 2182 section 5: a zone has two or more name servers). Unbound
then remembers the address as down for infra-host-ttl (900 s), so the same
question, or another name of the zone, is answered SERVFAIL at once. A lame
server (REFUSED) is dropped after outbound-msg-retry (5) answers.

Debian's Unbound 1.17.1-2+deb12u4 drops, unanswered, a reply that took longer
than discard-timeout (1900 ms, the DNSBomb fix), and keeps at most wait-limit
(1000) replies waiting per client address. Both would turn a slow or dead
zone into a client timeout, so the managed Unbound turns both off: it serves
only this scan, over loopback. A resolver given with --resolver may still
drop: the client's last attempt must then come after that resolver has given
up, when it answers from what it remembers.

So the scanner's DNS client (``ResolverSettings``) should never give up
before Unbound does, and its last attempt should come after Unbound gave up
on a zone with two dead addresses (11.3 s). A 2 s timeout, 3 retries and
backoff 2 send at 0, 2, 6 and 14 s and give up at 30 s, past the give-up
time of a zone with five dead addresses. On loopback a retry costs nothing:
Unbound joins it to the question already in flight. After a truncated answer
the TCP query is answered from Unbound's cache, unless the answer cannot be
cached (TTL 0) and Unbound must fetch it again: tcp_timeout 10 s covers that.

What this gives, measured on the internet testbed, is in benchmarks/RESULTS.md
("Managed Unbound: how long a question takes").
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from scanner.resolve.client import DnsClient, ResolverSettings
from scanner.resolve.message import RdType
from scanner.resolve.unbound_conf import Sizing, unbound_conf
from scanner.status import DnsOutcome
from scanner.terminal import printable

# The real root's trust anchor and name servers, as `make setup` installs
# them (Debian's dns-root-data, kept current by its updates), first found wins.
SYSTEM_TRUST_ANCHORS = (
    Path("/usr/share/dns/root.key"),  # Debian's dns-root-data
    Path("/var/lib/unbound/root.key"),  # unbound-anchor
)
SYSTEM_ROOT_HINTS = (Path("/usr/share/dns/root.hints"),)  # Debian's dns-root-data


@dataclass(frozen=True, slots=True)
class RootFiles:
    """What the managed Unbound starts from: the root's trust anchor (None:
    there is none, the scan cannot validate) and its hints (None: Unbound's
    compiled-in list)."""

    trust_anchor: Path | None
    root_hints: Path | None


def root_files(trust_anchor: Path | None, root_hints: Path | None) -> RootFiles:
    """The files given, else the system's for the real root. System hints
    go only with the system anchor: a --trust-anchor of a private root (a
    testbed) with the real root's servers would make every answer bogus."""
    hints = root_hints
    if trust_anchor is None and hints is None:
        hints = next((p for p in SYSTEM_ROOT_HINTS if p.exists()), None)
    anchor = trust_anchor or next((p for p in SYSTEM_TRUST_ANCHORS if p.exists()), None)
    return RootFiles(anchor, hints)


# Attempts to start Unbound when the port picked was taken meanwhile.
_START_ATTEMPTS = 3


class ResolverError(Exception):
    """The resolver cannot be started or does not validate; a one-line message."""


@dataclass(frozen=True, slots=True)
class ProbeResult:
    validating: bool
    detail: str


async def probe(server: str, secure_name: str, bogus_name: str | None) -> ProbeResult:
    """Whether ``server`` validates: AD on ``secure_name``, SERVFAIL on ``bogus_name``."""
    # The scan's own timing: on a cold cache the bogus name may take as long
    # as any question of the scan.
    settings = ResolverSettings(servers=(server,))
    async with DnsClient(settings) as client:
        secure = await client.query(secure_name, RdType.SOA)
        if secure.outcome in (DnsOutcome.TIMEOUT, DnsOutcome.REFUSED):
            return ProbeResult(False, f"{server} does not answer ({secure.outcome.value})")
        if not secure.ad:
            return ProbeResult(
                False, f"{server} did not set AD on {secure_name} ({secure.outcome.value})"
            )
        if bogus_name is None:
            return ProbeResult(True, f"AD on {secure_name}")
        bogus = await client.query(bogus_name, RdType.A)
        if bogus.outcome is not DnsOutcome.SERVFAIL:
            return ProbeResult(
                False,
                f"{server} answered {bogus.outcome.value} for the bogus name {bogus_name}",
            )
        return ProbeResult(True, f"AD on {secure_name}, SERVFAIL on {bogus_name}")


def free_port() -> int:
    """A loopback port free for both UDP and TCP: Unbound listens on both."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port: int = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _open_files_limit() -> int:
    """The hard RLIMIT_NOFILE: Unbound raises its own soft limit up to it."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 1 << 20 if hard == resource.RLIM_INFINITY else hard


def unbound_config(
    workdir: Path,
    port: int,
    trust_anchor: Path,
    root_hints: Path | None,
    threads: int | None = None,
) -> str:
    """The managed Unbound's configuration, every setting with its reason
    (unbound_conf.py); ``threads`` defaults to the CPUs this process may use."""
    cpus = threads if threads is not None else _usable_cpus()
    sizing = Sizing.for_machine(cpus, _open_files_limit())
    return unbound_conf(
        workdir=workdir, port=port, trust_anchor=trust_anchor, root_hints=root_hints,
        sizing=sizing,
    )  # fmt: skip


@contextlib.contextmanager
def managed_unbound(
    trust_anchor: Path | None, root_hints: Path | None, *, timeout: float = 15.0
) -> Iterator[str]:
    """Run a private Unbound for the scan; yields "127.0.0.1:PORT"."""
    binary = shutil.which("unbound")
    if binary is None:
        raise ResolverError("unbound not found: install the Debian package 'unbound'")
    files = root_files(trust_anchor, root_hints)
    anchor, root_hints = files.trust_anchor, files.root_hints
    if anchor is None:
        raise ResolverError(
            "no trust anchor: pass --trust-anchor FILE or install the Debian package "
            "'dns-root-data' (make setup does)"
        )
    with tempfile.TemporaryDirectory(prefix="danescan-unbound-") as tmp:
        workdir = Path(tmp)
        if anchor.name == "root.key":
            # auto-trust-anchor-file is rewritten by Unbound: use a private copy.
            shutil.copy(anchor, workdir / "root.key")
            anchor = workdir / "root.key"
        for attempt in range(1, _START_ATTEMPTS + 1):
            port = free_port()
            conf = workdir / "unbound.conf"
            conf.write_text(unbound_config(workdir, port, anchor, root_hints))
            try:
                proc = _launch(binary, conf, port, timeout, workdir)
            except ResolverError as exc:
                # Another process may take the port between our check and
                # Unbound's bind: pick another.
                if "could not open ports" in str(exc) and attempt < _START_ATTEMPTS:
                    continue
                raise
            break
        supervisor = Supervisor(proc, lambda: _launch(binary, conf, port, timeout, workdir))
        supervisor.start()
        try:
            yield f"127.0.0.1:{port}"
        finally:
            supervisor.stop()


class Supervisor(threading.Thread):
    """Restarts the managed Unbound when it exits during the scan.

    Unbound that crashed or was killed leaves the scan without a resolver:
    the scan's watchdog sees the outage and holds admission, and this
    thread starts Unbound again on the same port, with the same
    configuration (an empty cache), so the scan resumes within seconds.
    """

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        launch: Callable[[], subprocess.Popen[bytes]],
        *,
        interval: float = 0.5,
    ) -> None:
        super().__init__(name="unbound-supervisor", daemon=True)
        self.proc = proc
        self.restarts = 0
        self._launch = launch
        self._interval = interval
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        while not self._stopping.wait(self._interval):
            with self._lock:
                if self._stopping.is_set() or self.proc.poll() is None:
                    continue
                status = self.proc.returncode
                _stop(self.proc)
                try:
                    self.proc = self._launch()
                except ResolverError as exc:
                    print(f"scan: managed Unbound exited ({status}), restart failed: "
                          f"{printable(str(exc))}",
                          file=sys.stderr, flush=True)  # fmt: skip
                    continue  # tried again at the next interval
                self.restarts += 1
                print(f"scan: managed Unbound exited ({status}), restarted",
                      file=sys.stderr, flush=True)  # fmt: skip

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            _stop(self.proc)
        self.join()


def _launch(
    binary: str, conf: Path, port: int, timeout: float, workdir: Path
) -> subprocess.Popen[bytes]:
    """Unbound started with ``conf`` and answering on ``port``."""
    proc = subprocess.Popen(
        [binary, "-d", "-c", str(conf)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_ready(proc, port, timeout, workdir)
    except ResolverError:
        _stop(proc)
        raise
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stderr is not None:
        proc.stderr.close()


def _wait_ready(proc: subprocess.Popen[bytes], port: int, timeout: float, workdir: Path) -> None:
    query = bytes.fromhex("abcd01000001000000000000") + b"\x00\x00\x06\x00\x01"  # . SOA
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            logfile = workdir / "unbound.log"
            log = logfile.read_text(errors="replace")[-500:] if logfile.exists() else ""
            err = proc.stderr.read().decode(errors="replace")[-500:] if proc.stderr else ""
            raise ResolverError(f"unbound exited with status {proc.returncode}: {err or log}")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.3)
            try:
                sock.sendto(query, ("127.0.0.1", port))
                sock.recv(512)
                return
            except OSError:
                time.sleep(0.1)
    proc.kill()
    raise ResolverError(f"unbound did not answer on 127.0.0.1:{port} within {timeout:g} s")

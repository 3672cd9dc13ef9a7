"""The resolver a scan trusts: a managed Unbound child process, and the check
that a resolver really validates before a scan relies on its AD bit.

RFC 7672 section 2.1 lets an SMTP client trust the AD bit of a validating
resolver it reaches over a secure channel, such as loopback. Without
``--resolver`` the scanner starts its own Unbound on a loopback port with a
configuration tuned for scanning and stops it at the end. Either way it first
probes: a known-secure name must come back with AD, a known-bogus name must
fail; a resolver that does neither is refused unless --allow-nonvalidating.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from scanner.resolve.client import DnsClient, ResolverSettings
from scanner.resolve.wire import RdType
from scanner.status import DnsOutcome

SYSTEM_TRUST_ANCHORS = (
    Path("/usr/share/dns/root.key"),  # Debian's dns-root-data
    Path("/var/lib/unbound/root.key"),  # unbound-anchor
)


# Names Unbound 1.17 answers locally unless told not to (RFC 6761, RFC 8375).
_SPECIAL_USE = ("test.", "invalid.", "localhost.", "onion.", "home.arpa.", "example.")


class ResolverError(Exception):
    """The resolver cannot be started or does not validate; a one-line message."""


@dataclass(frozen=True, slots=True)
class ProbeResult:
    validating: bool
    detail: str


async def probe(server: str, secure_name: str, bogus_name: str | None) -> ProbeResult:
    """Whether ``server`` validates: AD on ``secure_name``, SERVFAIL on ``bogus_name``."""
    settings = ResolverSettings(servers=(server,), timeout=2.0, retries=2)
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


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def unbound_config(
    workdir: Path, port: int, trust_anchor: Path, root_hints: Path | None, threads: int = 2
) -> str:
    """A configuration for scanning: big caches, many outstanding queries, EDE on."""
    lines = [
        "server:",
        "  interface: 127.0.0.1",
        f"  port: {port}",
        "  do-ip6: yes",
        "  access-control: 127.0.0.0/8 allow",
        '  username: ""',
        '  chroot: ""',
        f'  directory: "{workdir}"',
        f'  pidfile: "{workdir}/unbound.pid"',
        "  use-syslog: no",
        f'  logfile: "{workdir}/unbound.log"',
        "  verbosity: 0",
        f"  num-threads: {threads}",
        "  msg-cache-size: 256m",
        "  rrset-cache-size: 512m",
        "  key-cache-size: 64m",
        "  outgoing-range: 8192",
        "  num-queries-per-thread: 4096",
        "  so-rcvbuf: 4m",
        "  ede: yes",
        "  val-log-level: 0",
        f'  auto-trust-anchor-file: "{trust_anchor}"'
        if trust_anchor.name == "root.key"
        else f'  trust-anchor-file: "{trust_anchor}"',
    ]
    if root_hints is not None:
        # A private root (the testbed) lives on loopback addresses and may
        # delegate names Unbound otherwise answers itself (RFC 6761 names).
        lines += [f'  root-hints: "{root_hints}"', "  do-not-query-localhost: no"]
        lines += [f'  local-zone: "{name}" nodefault' for name in _SPECIAL_USE]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def managed_unbound(
    trust_anchor: Path | None, root_hints: Path | None, *, timeout: float = 15.0
) -> Iterator[str]:
    """Run a private Unbound for the scan; yields "127.0.0.1:PORT"."""
    binary = shutil.which("unbound")
    if binary is None:
        raise ResolverError("unbound not found: install the Debian package 'unbound'")
    anchor = trust_anchor or next((p for p in SYSTEM_TRUST_ANCHORS if p.exists()), None)
    if anchor is None:
        raise ResolverError(
            "no trust anchor: pass --trust-anchor FILE or install the Debian package "
            "'dns-root-data'"
        )
    with tempfile.TemporaryDirectory(prefix="danescan-unbound-") as tmp:
        workdir = Path(tmp)
        if anchor.name == "root.key":
            # auto-trust-anchor-file is rewritten by Unbound: use a private copy.
            shutil.copy(anchor, workdir / "root.key")
            anchor = workdir / "root.key"
        port = _free_port()
        conf = workdir / "unbound.conf"
        conf.write_text(unbound_config(workdir, port, anchor, root_hints))
        proc = subprocess.Popen(
            [binary, "-d", "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            _wait_ready(proc, port, timeout, workdir)
            yield f"127.0.0.1:{port}"
        finally:
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
            log = (workdir / "unbound.log").read_text(errors="replace")[-500:]
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

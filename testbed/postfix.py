"""A real Postfix in the testbed: an SMTP server (RFC 5321) offering STARTTLS
(RFC 3207) with a testbed certificate chain, so the scanner is also checked
against a production MTA and not only against the testbed's own responder.

Each instance lives in its own work folder (configuration, queue, data, log)
and listens on port 25 of its own loopback address only; several instances
can run side by side. The instance never relays and has no local domains, so
it accepts no mail. Postfix runs from that folder with ``postfix -c DIR``,
without chroot, logging to a file (no syslog needed).
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import select
import shutil
import signal
import socket
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from testbed.procs import TestbedError, ensure_free, require_binary

__all__ = [
    "PostfixInstance",
    "configure_postfix",
    "master_pid",
    "start_postfix",
    "stop_postfix",
]

SMTP_PORT = 25
_SYSTEM_MASTER_CF = Path("/etc/postfix/master.cf")
_COMMAND_TIMEOUT = 30.0
_POLL_INTERVAL = 0.05
_LOG_TAIL_LINES = 10


@dataclass(frozen=True, slots=True)
class PostfixInstance:
    """One configured Postfix; all its files are under ``workdir``."""

    workdir: Path
    address: str
    hostname: str

    @property
    def config_dir(self) -> Path:
        return self.workdir / "etc"

    @property
    def queue_dir(self) -> Path:
        return self.workdir / "queue"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def maillog(self) -> Path:
        return self.workdir / "maillog"

    @property
    def pid_file(self) -> Path:
        return self.queue_dir / "pid" / "master.pid"


def configure_postfix(
    workdir: Path, *, address: str, hostname: str, chain_pem: Path, key_pem: Path
) -> PostfixInstance:
    """Write the configuration of a Postfix instance in ``workdir``.

    ``chain_pem`` holds the certificates (leaf first) and ``key_pem`` the leaf's
    private key; Postfix reads both as root when smtpd starts.
    """
    require_binary("postfix", "postfix")
    postconf = require_binary("postconf", "postfix")
    _check_address(address)
    if not hostname or any(c.isspace() for c in hostname):
        raise TestbedError(f"Postfix hostname {hostname!r} is empty or has white space")
    for path in (chain_pem, key_pem):
        if not path.is_file():
            raise TestbedError(f"Postfix TLS file {path} does not exist")
    try:
        owner = pwd.getpwnam("postfix")
    except KeyError:
        raise TestbedError("no 'postfix' user: install the Debian package 'postfix'") from None

    instance = PostfixInstance(workdir.resolve(), address, hostname)
    if master_pid(instance) is not None:
        raise TestbedError(f"a Postfix instance in {workdir} is running: stop it first")
    for folder in (instance.config_dir, instance.queue_dir, instance.data_dir):
        folder.mkdir(parents=True, exist_ok=True)
    # The daemons run as the postfix user and reach data_directory by its absolute path.
    instance.workdir.chmod(0o755)
    _check_traversable(instance.workdir)
    os.chown(instance.data_dir, owner.pw_uid, owner.pw_gid)

    # main.cf starts empty rather than as a copy of the machine's: the instance
    # must not inherit a relayhost, milters or content filters from it.
    (instance.config_dir / "main.cf").write_text("")
    shutil.copyfile(_SYSTEM_MASTER_CF, instance.config_dir / "master.cf")
    config = str(instance.config_dir)
    _run([postconf, "-c", config, "-e", *_main_cf(instance, chain_pem, key_pem)])
    # Postfix pauses before reading a main.cf modified less than a second or
    # two ago (it lets the file "cool down"), which costs every later postconf
    # and postfix command about 2 s: date it back, the content is complete.
    cooled = time.time() - 60
    os.utime(instance.config_dir / "main.cf", (cooled, cooled))
    _run([postconf, "-c", config, "-F", "*/*/chroot = n"])
    # Postfix refuses an inet_interfaces address that no interface carries
    # ("no local interface found"), and lo carries only 127.0.0.1. A service
    # bound to an explicit host:port in master.cf is not checked, so the only
    # network listener is that one; every other inet service (a local
    # submission or filter port) is removed so instances cannot collide.
    for service in _inet_services(postconf, config):
        _run([postconf, "-c", config, "-MX", f"{service}/inet"])
    endpoint = f"{address}:{SMTP_PORT}"
    _run([postconf, "-c", config, "-Me", f"{endpoint}/inet = {endpoint} inet n - n - - smtpd"])
    return instance


def _main_cf(instance: PostfixInstance, chain_pem: Path, key_pem: Path) -> list[str]:
    return [
        "compatibility_level = 3.6",
        f"queue_directory = {instance.queue_dir}",
        f"data_directory = {instance.data_dir}",
        f"maillog_file = {instance.maillog}",
        f"maillog_file_prefixes = {instance.workdir}",
        f"myhostname = {instance.hostname}",
        "myorigin = $myhostname",
        "smtpd_banner = $myhostname ESMTP Postfix",
        # Only the SMTP client would use this; the listener is set in master.cf.
        "inet_interfaces = 127.0.0.1",
        "inet_protocols = ipv4",
        # No local or relay domains and every recipient rejected: no mail is accepted.
        "mydestination =",
        "relay_domains =",
        "mynetworks = 127.0.0.0/8",
        "smtpd_relay_restrictions = reject",
        "smtpd_recipient_restrictions = reject",
        "local_recipient_maps =",
        "alias_maps =",
        "alias_database =",
        "biff = no",
        # Postfix wants the key first, then the certificates (leaf first).
        f"smtpd_tls_chain_files = {key_pem.resolve()}, {chain_pem.resolve()}",
        "smtpd_tls_security_level = may",
        "smtpd_tls_loglevel = 1",
    ]


def start_postfix(instance: PostfixInstance, *, timeout: float = 30.0) -> int:
    """Start the instance and wait for its 220 banner; return the master's PID."""
    postfix = require_binary("postfix", "postfix")
    if master_pid(instance) is not None:
        raise TestbedError(f"Postfix in {instance.workdir} is already running")
    ensure_free(instance.address, SMTP_PORT)
    code, output = _postfix(postfix, instance, "start")
    if code != 0:
        raise TestbedError(f"postfix start failed ({code}): {output} {_log_tail(instance)}")
    deadline = time.monotonic() + timeout
    while not _answers_220(instance.address):
        if time.monotonic() >= deadline:
            _postfix(postfix, instance, "stop")
            raise TestbedError(
                f"Postfix on {instance.address} gave no 220 banner within {timeout:g} s: "
                f"{_log_tail(instance)}"
            )
        time.sleep(_POLL_INTERVAL)
    pid = master_pid(instance)
    if pid is None:
        raise TestbedError(f"Postfix answered but {instance.pid_file} names no live master")
    return pid


def stop_postfix(instance: PostfixInstance, *, timeout: float = 10.0) -> None:
    """Stop the instance and make sure its master process is gone."""
    postfix = require_binary("postfix", "postfix")
    pid = master_pid(instance)
    if pid is None:
        return
    # "stop" is the orderly way; "abort" skips waiting for the children; a
    # master that ignores both is killed.
    for action in ("stop", "abort"):
        _postfix(postfix, instance, action)
        if _wait_gone(pid, timeout):
            return
    os.kill(pid, signal.SIGKILL)
    if not _wait_gone(pid, timeout):
        raise TestbedError(f"Postfix master {pid} did not exit")


def master_pid(instance: PostfixInstance) -> int | None:
    """The PID of the instance's running master process, or None."""
    try:
        pid = int(instance.pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _is_master(pid) else None


def _is_master(pid: int) -> bool:
    # A recycled PID names some other program; a zombie has already exited.
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    name = stat_line[stat_line.index("(") + 1 : stat_line.rindex(")")]
    state = stat_line[stat_line.rindex(")") + 2 :].split()[0]
    return name == "master" and state != "Z"


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _is_master(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_INTERVAL)
    return True


def _check_address(address: str) -> None:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise TestbedError(f"Postfix address {address!r} is not an IP address") from None
    if not (isinstance(ip, ipaddress.IPv4Address) and ip.is_loopback):
        raise TestbedError(f"Postfix address {address} is not an IPv4 address in 127.0.0.0/8")


def _check_traversable(folder: Path) -> None:
    """Raise unless every parent of ``folder`` lets other users (postfix) pass."""
    for parent in folder.parents:
        if not parent.stat().st_mode & stat.S_IXOTH:
            raise TestbedError(
                f"{parent} is not searchable by other users, so the postfix user cannot "
                f"reach {folder}: use a work folder elsewhere"
            )


def _inet_services(postconf: str, config: str) -> list[str]:
    listing = _run([postconf, "-c", config, "-M"])
    return [
        fields[0]
        for fields in (line.split() for line in listing.splitlines())
        if fields[1:2] == ["inet"]
    ]


def _run(argv: list[str]) -> str:
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=_COMMAND_TIMEOUT, check=False
    )
    if result.returncode != 0:
        raise TestbedError(f"{' '.join(argv[:4])} failed: {result.stderr.strip()}")
    return result.stdout


def _postfix(postfix: str, instance: PostfixInstance, action: str) -> tuple[int, str]:
    """Run ``postfix -c DIR action``; return its exit status and messages.

    The postfix command writes its errors to stderr only when stderr is a
    terminal (otherwise to syslog, which may not exist), so it gets a pty.
    """
    primary, secondary = os.openpty()
    try:
        result = subprocess.run(
            [postfix, "-c", str(instance.config_dir), action],
            stdin=subprocess.DEVNULL,
            stdout=secondary,
            stderr=secondary,
            timeout=_COMMAND_TIMEOUT,
            check=False,
        )
    finally:
        os.close(secondary)
    chunks: list[bytes] = []
    try:
        # A daemon that kept the pty open would block a plain read: poll instead.
        while select.select([primary], [], [], 0.1)[0]:
            chunk = os.read(primary, 4096)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError:
        pass  # EIO: every writer has closed the pty
    finally:
        os.close(primary)
    output = b"".join(chunks).decode(errors="replace")
    return result.returncode, " | ".join(line for line in output.splitlines() if line.strip())


def _answers_220(address: str) -> bool:
    try:
        with socket.create_connection((address, SMTP_PORT), timeout=1.0) as sock:
            answered = sock.recv(512).startswith(b"220")
            sock.sendall(b"QUIT\r\n")
            return answered
    except OSError:
        return False


def _log_tail(instance: PostfixInstance) -> str:
    try:
        lines = instance.maillog.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no maillog)"
    return "maillog: " + " | ".join(lines[-_LOG_TAIL_LINES:])

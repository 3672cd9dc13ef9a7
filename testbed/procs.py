"""Process management for the testbed: the daemons it starts (NSD, Unbound,
responders, Postfix) are recorded in a JSON table inside the testbed folder,
so a later ``testbed down`` in another process can stop exactly them.

A PID alone does not identify a process: the kernel recycles PIDs. Each entry
therefore also records the process start time (field 22 of /proc/<pid>/stat)
and its executable, and nothing is signalled unless both still match. The
command line is no identity: NSD retitles its processes ("nsd: xfrd").
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["ProcessTable", "TestbedError", "ensure_free", "require_binary"]

_POLL_INTERVAL = 0.05
_LOG_TAIL_LINES = 15


class TestbedError(Exception):
    """A failure the user can act on; the message is one clear line."""

    # Not a test class, whatever its name says.
    __test__ = False


def require_binary(cmd: str, package: str) -> str:
    """Return the path of ``cmd`` on PATH, or explain which Debian package provides it."""
    path = shutil.which(cmd)
    if path is None:
        raise TestbedError(f"{cmd} not found on PATH: install the Debian package {package!r}")
    return path


def ensure_free(address: str, port: int) -> None:
    """Raise TestbedError if ``address:port`` is taken for UDP or TCP."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    for kind, proto in ((socket.SOCK_DGRAM, "udp"), (socket.SOCK_STREAM, "tcp")):
        with socket.socket(family, kind) as sock:
            if kind == socket.SOCK_STREAM:
                # A TIME_WAIT leftover of an earlier run is not a listener.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((address, port))
            except OSError as exc:
                shown = f"[{address}]:{port}" if family == socket.AF_INET6 else f"{address}:{port}"
                if exc.errno == errno.EADDRINUSE:
                    raise TestbedError(f"{shown} is already in use ({proto})") from None
                raise TestbedError(f"cannot bind {shown} ({proto}): {exc.strerror}") from None


@dataclass(frozen=True, slots=True)
class _Entry:
    pid: int
    start_ticks: int
    exe: str
    log: str | None


def _read_identity(pid: int) -> tuple[int, str] | None:
    """(start time in clock ticks, executable) of a live process, or None if
    it is gone or a zombie (which has exited; only its parent can reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        # An upgrade that replaces the binary must not make the daemon a stranger.
        exe = os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name in field 2 may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[19]), exe


def _log_tail(log: Path | None) -> str:
    if log is None:
        return "(no log)"
    try:
        lines = log.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(log is empty)"
    tail = [line for line in lines[-_LOG_TAIL_LINES:] if line.strip()]
    return " | ".join(tail) if tail else "(log is empty)"


class _Child:
    """A daemon we spawned: its own session, output appended to a log.

    Not a subprocess.Popen: a Popen dropped while its process runs warns
    (ResourceWarning), and these daemons are meant to outlive the program that
    started them (`testbed up` returns, `testbed down` stops them).
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    @classmethod
    def spawn(cls, argv: Sequence[str], log: Path) -> _Child:
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        try:
            pid = os.posix_spawnp(
                argv[0],
                list(argv),
                os.environ,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, null, 0),
                    (os.POSIX_SPAWN_DUP2, out, 1),
                    (os.POSIX_SPAWN_DUP2, out, 2),
                ],
                setsid=True,
            )
        finally:
            os.close(out)
            os.close(null)
        return cls(pid)

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = -1  # reaped elsewhere
            else:
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        if self.returncode is None:
            try:
                _, status = os.waitpid(self.pid, 0)
                self.returncode = os.waitstatus_to_exitcode(status)
            except ChildProcessError:
                self.returncode = -1
        return self.returncode


class ProcessTable:
    """The daemons of one testbed, persisted in ``path`` (JSON).

    Processes started here run in their own session (so one signal to the
    process group reaches the children NSD and Unbound fork) and are reaped by
    this object when it stops them; processes found in the file were started
    by an earlier program run and are only signalled and watched.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._entries: dict[str, _Entry] = {}
        # Our own children, so that stopping them also reaps them.
        self._children: dict[str, _Child] = {}
        if path.exists():
            try:
                raw = json.loads(path.read_text())
                self._entries = {
                    name: _Entry(
                        pid=int(e["pid"]),
                        start_ticks=int(e["start_ticks"]),
                        exe=str(e["exe"]),
                        log=e.get("log"),
                    )
                    for name, e in raw.items()
                }
            except (ValueError, KeyError, TypeError) as exc:
                raise TestbedError(f"{path} is not a valid process table: {exc}") from None

    @property
    def path(self) -> Path:
        return self._path

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log: Path,
        ready: Callable[[], bool],
        timeout: float,
    ) -> int:
        """Start ``argv`` in the background with stdout and stderr appended to
        ``log`` and wait until ``ready()`` is true; return its PID. If the
        process exits or is not ready within ``timeout`` seconds it is killed
        and TestbedError quotes the tail of the log."""
        if name in self._entries and self._alive(self._entries[name]):
            raise TestbedError(f"{name} is already running (pid {self._entries[name].pid})")
        log.parent.mkdir(parents=True, exist_ok=True)
        try:
            proc = _Child.spawn(argv, log)
        except OSError as exc:
            raise TestbedError(f"cannot start {name} ({argv[0]}): {exc.strerror}") from None
        self._children[name] = proc
        # Recorded at once, so that a caller interrupted while we wait can
        # still stop it. Popen returns only after the exec, so this is the daemon.
        identity = _read_identity(proc.pid)
        if identity is not None:
            self._record(name, _Entry(proc.pid, identity[0], identity[1], str(log)))
        try:
            self._wait_ready(name, proc, ready, timeout, log)
        except BaseException:
            # Its whole process group, or workers it forked would survive it.
            self._kill_group(proc.pid)
            proc.wait()
            self._children.pop(name)
            self._entries.pop(name, None)
            self._save()
            raise
        return proc.pid

    @staticmethod
    def _wait_ready(
        name: str,
        proc: _Child,
        ready: Callable[[], bool],
        timeout: float,
        log: Path,
    ) -> None:
        deadline = time.monotonic() + timeout
        while True:
            code = proc.poll()
            if code is not None:
                raise TestbedError(f"{name} exited with status {code}: {_log_tail(log)}")
            try:
                if ready():
                    return
            except OSError:  # e.g. connection refused while the daemon starts
                pass
            if time.monotonic() >= deadline:
                raise TestbedError(
                    f"{name} not ready after {timeout:g} s (killed): {_log_tail(log)}"
                )
            time.sleep(_POLL_INTERVAL)

    def record_external(self, name: str, pid: int) -> None:
        """Record a daemon that forked itself away (Postfix's master), by its PID."""
        identity = _read_identity(pid)
        if identity is None:
            raise TestbedError(f"{name}: no running process with pid {pid}")
        self._record(name, _Entry(pid, identity[0], identity[1], None))

    def running(self) -> dict[str, bool]:
        """Whether each recorded process is still the same live process."""
        return {name: self._alive(entry) for name, entry in self._entries.items()}

    def stop_all(self, timeout: float = 5.0) -> None:
        """SIGTERM every recorded process group, SIGKILL what is left after
        ``timeout`` seconds, then forget them all. Processes already gone, or
        whose PID now belongs to another program, are skipped."""
        self._stop(list(self._entries), timeout)

    def stop(self, name: str, timeout: float = 5.0) -> None:
        """Stop one recorded process as stop_all does; an unknown name is no error."""
        self._stop([name], timeout)

    # -- internals -------------------------------------------------------------

    def _stop(self, names: Sequence[str], timeout: float) -> None:
        entries = [self._entries[name] for name in names if name in self._entries]
        ours = [entry for entry in entries if self._alive(entry)]
        for entry in ours:
            self._signal_group(entry.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while any(self._alive(e) for e in ours) and time.monotonic() < deadline:
            time.sleep(_POLL_INTERVAL)
        for entry in ours:
            if self._alive(entry):
                self._signal_group(entry.pid, signal.SIGKILL)
        # SIGKILL is delivered asynchronously: wait until /proc agrees.
        deadline = time.monotonic() + timeout
        while any(self._alive(e) for e in ours) and time.monotonic() < deadline:
            time.sleep(_POLL_INTERVAL)
        for name in names:
            child = self._children.pop(name, None)
            if child is not None:
                child.wait()
            self._entries.pop(name, None)
        self._save()

    def _alive(self, entry: _Entry) -> bool:
        self._reap()
        identity = _read_identity(entry.pid)
        return identity == (entry.start_ticks, entry.exe)

    def _reap(self) -> None:
        # Our own exited children stay zombies until waited for.
        for proc in self._children.values():
            proc.poll()

    @staticmethod
    def _signal_group(pid: int, sig: signal.Signals) -> None:
        # A process we start leads its own session, so its PID is also its
        # process group, and signalling the group reaches the workers it forked.
        # An external daemon may not lead a group: signal just the process.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(pid) == pid:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)

    @staticmethod
    def _kill_group(pid: int) -> None:
        # Only for a child we just started: it leads its own process group even
        # after it exited, as long as a worker it forked is still in the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)

    def _record(self, name: str, entry: _Entry) -> None:
        self._entries[name] = entry
        self._save()

    def _save(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        data = {name: asdict(e) for name, e in self._entries.items()}
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        tmp.replace(self._path)

"""What the tests of the testbed's STARTTLS responder share: the responder as
a subprocess on free 127.x.y.z addresses, their test chains, and a client's
view of SMTP replies (RFC 5321 section 4.2) and of the chain sent in TLS."""

from __future__ import annotations

import contextlib
import datetime as dt
import random
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from testbed.model import Listener
from testbed.pki import KeyType, Pki, write_chain
from testbed.procs import TestbedError, ensure_free
from testbed.responder import stop_responder
from testbed.responder_config import write_config

REPO = Path(__file__).resolve().parents[2]
HOSTNAME = "mx.responder.test"
BANNER = f"220 {HOSTNAME} ESMTP danescan-testbed\r\n".encode()
# Short, so that the idle and silent time-outs can be observed in a test.
IDLE_TIMEOUT = 3.0
SILENT_TIMEOUT = 3.0


def free_addresses(count: int) -> list[str]:
    """``count`` addresses of a random 127.B.C.0/24 (B in 100-200) where port 25 is free."""
    prefix = f"127.{random.randrange(100, 201)}.{random.randrange(256)}"
    found = []
    for host in random.sample(range(1, 255), 254):
        try:
            ensure_free(f"{prefix}.{host}", 25)
        except TestbedError:
            continue
        found.append(f"{prefix}.{host}")
        if len(found) == count:
            return found
    raise AssertionError(f"no {count} free addresses in {prefix}.0/24")


def start_responder(config: Path, workdir: Path) -> subprocess.Popen[bytes]:
    """The responder as a subprocess, returned once its ready file exists."""
    ready = workdir / f"{config.stem}.ready"
    log = workdir / f"{config.stem}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "testbed.responder", str(config), "--ready-file", str(ready)],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 20
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(f"responder did not become ready: {log.read_text()}")
        time.sleep(0.02)
    return proc


@contextlib.contextmanager
def serving(
    workdir: Path, listeners: Sequence[Listener], *, pki_dir: Path, **options: Any
) -> Iterator[None]:
    """The responder serving ``listeners`` for the with block, with the tests'
    host name and short time-outs; ``options`` add to its write_config."""
    config = workdir / "responder.json"
    write_config(
        config,
        listeners,
        pki_dir=pki_dir,
        hostname=HOSTNAME,
        idle_timeout=IDLE_TIMEOUT,
        silent_timeout=SILENT_TIMEOUT,
        **options,
    )
    proc = start_responder(config, workdir)
    try:
        yield
    finally:
        stop_responder(proc)


def run_to_exit(config: Path) -> subprocess.CompletedProcess[str]:
    """The responder on ``config`` as a subprocess that exits by itself (it
    refuses the configuration), with what it wrote."""
    return subprocess.run(
        [sys.executable, "-m", "testbed.responder", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def write_test_chains(pki_dir: Path) -> Path:
    """Chains ec-a, ec-b (ECDSA, for mx.a.test and mx.b.test) and rsa-c (mx.c.test)."""
    pki = Pki(seed=25, now=dt.datetime.now(dt.UTC))
    for kind, tag in ((KeyType.ECDSA, "ec"), (KeyType.RSA, "rsa")):
        root = pki.ca(f"Test Root {tag}", kind)
        inter = pki.ca(f"Test Intermediate {tag}", kind, issuer=root)
        names = ("a", "b") if kind is KeyType.ECDSA else ("c",)
        for name in names:
            leaf = pki.leaf([f"mx.{name}.test"], inter, kind, key_label=name)
            write_chain(pki_dir, f"{tag}-{name}", [leaf, inter, root])
    return pki_dir


def client_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def read_reply(sock: socket.socket, buffer: bytearray) -> list[bytes]:
    """The lines of one SMTP reply; bytes after it stay in ``buffer``."""
    lines: list[bytes] = []
    while True:
        while b"\n" not in buffer:
            chunk = sock.recv(4096)
            assert chunk, f"connection closed after {lines}"
            buffer += chunk
        line, _, rest = bytes(buffer).partition(b"\n")
        buffer[:] = rest
        lines.append(line.rstrip(b"\r"))
        if line[3:4] != b"-":
            return lines

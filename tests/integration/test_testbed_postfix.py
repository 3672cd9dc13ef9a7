"""The testbed's real Postfix (RFC 5321, RFC 3207): configured in its own
folder on an unused loopback address, it offers STARTTLS with the configured
chain, accepts no mail, and leaves no master process behind when stopped."""

from __future__ import annotations

import datetime as dt
import os
import random
import smtplib
import ssl
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanner.match.der import pem_certificates
from testbed.pki import KeyType, Pki, write_chain
from testbed.postfix import (
    PostfixInstance,
    configure_postfix,
    master_pid,
    start_postfix,
    stop_postfix,
)
from testbed.procs import TestbedError, ensure_free

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="Postfix is started as root")


def free_address() -> str:
    """A random 127.B.C.D (B in 100-200) where port 25 is free."""
    for _ in range(100):
        address = (
            f"127.{random.randrange(100, 201)}.{random.randrange(256)}.{random.randrange(1, 255)}"
        )
        try:
            ensure_free(address, 25)
        except TestbedError:
            continue
        return address
    raise AssertionError("no free loopback address found")


@pytest.fixture
def workdir() -> Iterator[Path]:
    # Not tmp_path: pytest's base folder is private to root, and the postfix
    # user must be able to reach the data folder inside.
    with tempfile.TemporaryDirectory(prefix="danescan-postfix-") as folder:
        Path(folder).chmod(0o755)
        yield Path(folder)


def make_chain(pki_dir: Path, name: str, kind: KeyType) -> tuple[Path, Path]:
    pki_dir.mkdir(parents=True, exist_ok=True)
    pki = Pki(seed=587, now=dt.datetime.now(dt.UTC))
    root = pki.ca("Postfix Test Root", kind)
    inter = pki.ca("Postfix Test Intermediate", kind, issuer=root)
    leaf = pki.leaf([name], inter, kind, key_label=name)
    write_chain(pki_dir, name, [leaf, inter, root])
    return pki_dir / f"{name}.pem", pki_dir / f"{name}.key"


def configure(workdir: Path, name: str, kind: KeyType) -> PostfixInstance:
    chain, key = make_chain(workdir / "pki", name, kind)
    return configure_postfix(
        workdir / "postfix", address=free_address(), hostname=name, chain_pem=chain, key_pem=key
    )


def is_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def client_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@pytest.mark.parametrize("kind", [KeyType.ECDSA, KeyType.RSA])
def test_postfix_offers_starttls_with_the_configured_chain(workdir: Path, kind: KeyType) -> None:
    instance = configure(workdir, "mx.postfix.test", kind)
    pid = start_postfix(instance)
    try:
        assert is_running(pid)
        assert master_pid(instance) == pid
        with smtplib.SMTP(instance.address, 25, "scanner.test", timeout=10) as smtp:
            code, reply = smtp.ehlo()
            assert code == 250
            assert reply.split(b"\n")[0] == b"mx.postfix.test"
            assert smtp.has_extn("starttls")
            assert smtp.starttls(context=client_context())[0] == 220
            assert smtp.ehlo()[0] == 250
            assert not smtp.has_extn("starttls")
            # It never relays, even for a client in mynetworks.
            assert smtp.mail("sender@example.test")[0] == 250
            assert smtp.rcpt("rcpt@example.test")[0] == 554

        result = subprocess.run(
            [
                *("openssl", "s_client", "-starttls", "smtp", "-showcerts"),
                *("-connect", f"{instance.address}:25", "-servername", "mx.postfix.test"),
            ],
            input=b"",
            capture_output=True,
            timeout=30,
            check=False,
        )
        expected = pem_certificates((workdir / "pki" / "mx.postfix.test.pem").read_bytes())
        assert len(expected) == 3
        assert pem_certificates(result.stdout) == expected
    finally:
        stop_postfix(instance)
    assert not is_running(pid)
    assert master_pid(instance) is None
    ensure_free(instance.address, 25)


def test_two_instances_side_by_side(workdir: Path) -> None:
    first = configure(workdir / "one", "mx1.postfix.test", KeyType.ECDSA)
    second = configure(workdir / "two", "mx2.postfix.test", KeyType.ECDSA)
    pids: list[int] = []
    try:
        pids = [start_postfix(first), start_postfix(second)]
        assert pids[0] != pids[1]
        for instance in (first, second):
            with smtplib.SMTP(instance.address, 25, "scanner.test", timeout=10) as smtp:
                assert smtp.ehlo()[1].split(b"\n")[0] == instance.hostname.encode()
        with pytest.raises(TestbedError, match="already running"):
            start_postfix(first)
    finally:
        stop_postfix(first)
        stop_postfix(second)
    assert pids
    assert not any(is_running(pid) for pid in pids)


def test_stop_when_not_running_is_harmless(workdir: Path) -> None:
    instance = configure(workdir, "mx.postfix.test", KeyType.ECDSA)
    stop_postfix(instance)
    assert master_pid(instance) is None


@pytest.mark.parametrize("address", ["192.0.2.25", "::1", "mx.example.test"])
def test_configure_refuses_non_loopback(workdir: Path, address: str) -> None:
    chain, key = make_chain(workdir / "pki", "mx.postfix.test", KeyType.ECDSA)
    with pytest.raises(TestbedError, match=r"127\.0\.0\.0/8|not an IP address"):
        configure_postfix(
            workdir / "postfix", address=address, hostname="h.test", chain_pem=chain, key_pem=key
        )

"""A mail server cannot drive the user's terminal (scanner.terminal): its
banner carries ANSI and OSC escape sequences, and `scan check`, run as the
user runs it, prints them escaped while the dataset keeps them as sent.

The testbed (its own net, 213) gives the DNS: a DANE domain whose MX host
has a secure address and TLSA but nothing listening (the ``connect_refused``
scenario). This test listens there with a server of its own that answers
with a hostile banner.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import dns.resolver
import pyarrow.parquet as pq
import pytest

from tests.integration.support import Testbed, module_testbed, scan_options

pytestmark = pytest.mark.testbed

NET = 213
ESC = b"\x1b"
# ANSI colours and screen clear, an OSC 8 hyperlink ended by BEL, an OSC 52
# clipboard write ended by ST, a C1 CSI sent as UTF-8, a bidi override: all
# on the first line, which is what the error string quotes.
BANNER = (
    b"554 mx "
    + ESC
    + b"[31mred"
    + ESC
    + b"[0m "
    + ESC
    + b"[2J"
    + ESC
    + b"[H "
    + ESC
    + b"]8;;http://evil.test/\x07click"
    + ESC
    + b"]8;;\x07 "
    + ESC
    + b"]52;c;cm0gLXJmIH4K"
    + ESC
    + b"\\ "
    + "\u009b31m \u202eevil\r\n".encode()
)


bed = module_testbed("terminal", net=NET, domains=100, seed=16)


def _address_of_mx(tb: Testbed, domain: str) -> str:
    host, port = tb.resolver
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.port = [host], port
    mx = resolver.resolve(domain, "MX")[0].exchange.to_text()
    return str(resolver.resolve(mx, "A")[0].address)


@pytest.fixture
def hostile_server(bed: Testbed) -> Iterator[tuple[str, list[bytes]]]:
    """Serves BANNER on port 25 of the connect_refused domain's MX address;
    yields the domain and what the clients sent."""
    domain = str(bed.by_scenario("connect_refused")[0]["domain"])
    listener = socket.create_server((_address_of_mx(bed, domain), 25))
    listener.settimeout(0.2)
    heard: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                conn.sendall(BANNER)
                with contextlib.suppress(OSError):
                    heard.append(conn.recv(1024))  # QUIT, if anything

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield domain, heard
    finally:
        stop.set()
        thread.join()
        listener.close()


def _scan_args(tb: Testbed) -> list[str]:
    return [*scan_options(tb), "--retries", "0", *tb.scan_args]


def test_check_prints_a_hostile_banner_escaped(
    bed: Testbed, hostile_server: tuple[str, list[bytes]], tmp_path: Path
) -> None:
    domain, heard = hostile_server
    proc = subprocess.run(
        [sys.executable, "-m", "scanner.cli", "check", domain, *_scan_args(bed)],
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert heard, "the scan did not reach the hostile server"
    shown = proc.stdout.decode()
    assert proc.returncode == 1, shown + proc.stderr.decode()
    for stream in (proc.stdout, proc.stderr):
        assert ESC not in stream
        assert b"\x07" not in stream
        assert "\u009b".encode() not in stream
        assert "\u202e".encode() not in stream
    assert "banner_error" in shown
    assert (
        "banner 554 mx \\x1b[31mred\\x1b[0m \\x1b[2J\\x1b[H "
        "\\x1b]8;;http://evil.test/\\x07click\\x1b]8;;\\x07 "
        "\\x1b]52;c;cm0gLXJmIH4K\\x1b\\ \\x9b31m \\u202eevil"
    ) in shown

    # The dataset keeps the banner as received.
    (tmp_path / "one.txt").write_text(domain + "\n")
    scan = subprocess.run(
        [sys.executable, "-m", "scanner.cli", str(tmp_path / "one.txt"), "-o",
         str(tmp_path / "out"), "-q", "--log-json", str(tmp_path / "log.jsonl"),
         *_scan_args(bed)],
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert scan.returncode == 0, scan.stderr.decode()
    assert ESC not in scan.stderr
    row = pq.read_table(str(next((tmp_path / "out").glob("part-*.parquet")))).to_pylist()[0]
    errors = [a["error"] for h in row["mx_hosts"] for a in h["addresses"]]
    assert any("\x1b[31mred\x1b[0m" in e and "\u202eevil" in e for e in errors), errors
    assert json.loads((tmp_path / "log.jsonl").read_text().splitlines()[0])["domain"] == domain

"""The testbed responder's configuration (testbed.responder_config) and how
its process starts and stops: what it refuses to serve (exit status 2), and a
clean exit on SIGTERM or SIGINT with the open connections in the log."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
from pathlib import Path

import pytest

from testbed.connlog import Outcome, read_log
from testbed.model import Behavior, Listener, Pushback
from testbed.procs import ensure_free
from testbed.responder import stop_responder
from testbed.responder_config import (
    CONFIG_VERSION,
    ResponderConfig,
    ResponderError,
    is_loopback,
    load_config,
    write_config,
)
from tests.integration.responder_support import free_addresses, run_to_exit, start_responder

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="binding port 25 needs root")


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.255.255.254", True),
        ("::1", True),
        ("128.0.0.1", False),
        ("0.0.0.0", False),
        ("::", False),
        ("::ffff:127.0.0.1", False),
        ("192.0.2.1", False),
        ("localhost", False),
    ],
)
def test_is_loopback(address: str, loopback: bool) -> None:
    assert is_loopback(address) is loopback


def test_write_config_refuses_non_loopback(tmp_path: Path) -> None:
    with pytest.raises(ResponderError, match=re.escape("192.0.2.1")):
        write_config(
            tmp_path / "r.json", [Listener("192.0.2.1", Behavior.SILENT)], pki_dir=tmp_path
        )
    assert not (tmp_path / "r.json").exists()


def test_config_round_trip(tmp_path: Path) -> None:
    listeners = [
        Listener("127.1.2.3", Behavior.STARTTLS, {"mx.a.test": "a", "mx.b.test": "b"}, "a"),
        Listener("::1", Behavior.STARTTLS_454),
    ]
    write_config(tmp_path / "r.json", listeners, pki_dir=tmp_path, port=2525, hostname="h.test")
    config = load_config(tmp_path / "r.json")
    assert config.listeners == tuple(listeners)
    assert (config.port, config.hostname, config.pki_dir) == (2525, "h.test", tmp_path.resolve())
    assert (config.connection_log, config.tarpit_interval) == (None, 1.0)
    # A listener without pushback writes none: a loopback config stays small.
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["version"] == CONFIG_VERSION
    assert all("pushback" not in item for item in document["listeners"])


def test_config_round_trip_with_pushback(tmp_path: Path) -> None:
    listeners = [
        Listener(
            "127.1.2.3",
            Behavior.STARTTLS,
            {},
            "a",
            Pushback(
                greeting_delay=1.5,
                greylist_window=0.0,
                max_concurrent=2,
                max_per_minute=30,
                tls_delay=0.25,
                reset_first_handshake=True,
            ),
        ),
        Listener("127.1.2.4", Behavior.TARPIT, {}, "a", Pushback(max_concurrent=1)),
        Listener("127.1.2.5", Behavior.TLS_RESET),
    ]
    log = tmp_path / "connections.jsonl"
    write_config(
        tmp_path / "r.json", listeners, pki_dir=tmp_path, connection_log=log, tarpit_interval=0.5
    )
    config = load_config(tmp_path / "r.json")
    assert config.listeners == tuple(listeners)
    assert (config.connection_log, config.tarpit_interval) == (log.resolve(), 0.5)
    # Only the fields that differ from no pushback are written.
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["listeners"][1]["pushback"] == {"max_concurrent": 1}


@pytest.mark.parametrize(
    ("pushback", "message"),
    [
        ({"max_concurrent": 0}, "at least 1"),
        ({"greylist_window": -1}, "negative"),
        ({"greeting_delay": "soon"}, "soon"),
        ({"reset_first_handshake": 1}, "true or false"),
        ({"tarpit": True}, "unknown pushback fields"),
    ],
)
def test_load_config_refuses_bad_pushback(
    tmp_path: Path, pushback: dict[str, object], message: str
) -> None:
    config = tmp_path / "r.json"
    write_config(config, [Listener("127.1.2.3", Behavior.NO_STARTTLS)], pki_dir=tmp_path)
    document = json.loads(config.read_text())
    document["listeners"][0]["pushback"] = pushback
    config.write_text(json.dumps(document))
    with pytest.raises(ResponderError, match=message):
        load_config(config)


def test_chain_rules(tmp_path: Path) -> None:
    # A tarpit is a STARTTLS host, only slow: it needs a chain. A host that
    # resets every handshake never presents one.
    with pytest.raises(ResponderError, match="tarpit listener needs a default_chain"):
        ResponderConfig((Listener("127.1.2.3", Behavior.TARPIT),), pki_dir=tmp_path)
    ResponderConfig((Listener("127.1.2.3", Behavior.TLS_RESET),), pki_dir=tmp_path)
    with pytest.raises(ResponderError, match="tarpit_interval"):
        ResponderConfig((), pki_dir=tmp_path, tarpit_interval=0)


@pytest.mark.parametrize("address", ["192.0.2.1", "0.0.0.0", "::ffff:127.0.0.1"])
def test_process_refuses_non_loopback_address(tmp_path: Path, address: str) -> None:
    config = tmp_path / "r.json"
    write_config(config, [Listener("127.0.0.1", Behavior.SILENT)], pki_dir=tmp_path)
    document = json.loads(config.read_text())
    document["listeners"][0]["address"] = address
    config.write_text(json.dumps(document))
    result = run_to_exit(config)
    assert result.returncode == 2
    assert f"refusing to listen on {address!r}" in result.stderr
    assert "ready" not in result.stdout


def test_process_refuses_missing_chain(tmp_path: Path) -> None:
    config = tmp_path / "r.json"
    write_config(config, [Listener("127.0.0.1", Behavior.STARTTLS, {}, "absent")], pki_dir=tmp_path)
    result = run_to_exit(config)
    assert result.returncode == 2
    assert "absent.pem" in result.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_exits_cleanly_on_signal(tmp_path: Path, signum: signal.Signals) -> None:
    (address,) = free_addresses(1)
    config = tmp_path / "r.json"
    log = tmp_path / "connections.jsonl"
    write_config(
        config, [Listener(address, Behavior.NO_STARTTLS)], pki_dir=tmp_path, connection_log=log
    )
    proc = start_responder(config, tmp_path)
    try:
        # An open connection must not hold the process up.
        with socket.create_connection((address, 25), timeout=10) as sock:
            assert sock.recv(3) == b"220"
            proc.send_signal(signum)
            assert proc.wait(timeout=10) == 0
    finally:
        stop_responder(proc)
    ensure_free(address, 25)
    assert "stopped: 1 connections" in (tmp_path / "r.log").read_text()
    # The connection open at the end is in the log, flushed at exit.
    (record,) = read_log(log)
    assert (record.server, record.outcome) == (address, Outcome.ABORTED)

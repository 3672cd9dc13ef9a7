"""The responder's configuration: what every listener serves and how it
pushes back, validated (loopback addresses only, chain ids that are plain file
stems), written as JSON by ``testbed up`` and read by the responder process
(testbed.responder).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed.model import NO_PUSHBACK, Behavior, Listener, Pushback
from testbed.tlscontexts import chain_paths

CONFIG_VERSION = 2
DEFAULT_HOSTNAME = "responder.danescan-testbed.test"
# Chain ids become file names under the PKI folder: no separators, no "..".
_CHAIN_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
_LOOPBACK_V4 = ipaddress.IPv4Network("127.0.0.0/8")
_LOOPBACK_V6 = ipaddress.IPv6Address("::1")
_NEEDS_CHAIN = (Behavior.STARTTLS, Behavior.TARPIT)


class ResponderError(Exception):
    """The configuration cannot be served (reported, exit status 2)."""


@dataclass(frozen=True, slots=True)
class ResponderConfig:
    """Everything the responder process needs; see ``write_config``."""

    listeners: tuple[Listener, ...]
    pki_dir: Path
    port: int = 25
    hostname: str = DEFAULT_HOSTNAME
    # A client that sends nothing for this long is told 421 and disconnected.
    idle_timeout: float = 30.0
    # A silent host keeps an accepted connection open this long, then closes it.
    silent_timeout: float = 60.0
    # Longest command line (RFC 5321 section 4.5.3.1.4 allows 512 octets).
    max_line: int = 4096
    # Chain contexts kept loaded; each costs about 30 KB and 1.5 ms to build.
    context_cache_size: int = 4096
    # Where every connection is recorded (testbed.connlog); None: nowhere.
    connection_log: Path | None = None
    # Seconds between the bytes a TARPIT host writes.
    tarpit_interval: float = 1.0

    def __post_init__(self) -> None:
        validate_config(self)

    def chain_paths(self, chain_id: str) -> tuple[Path, Path]:
        """The certificate chain (leaf first) and private key files of a chain id."""
        return chain_paths(self.pki_dir, chain_id)


def is_loopback(address: str) -> bool:
    """True for an IPv4 address in 127.0.0.0/8 or the IPv6 address ::1."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv4Address):
        return ip in _LOOPBACK_V4
    return ip == _LOOPBACK_V6


def validate_config(config: ResponderConfig) -> None:
    """Raise ResponderError unless every listener can be served safely.

    Addresses outside loopback are refused so that a mistaken configuration can
    never expose a fake mail host on a real network.
    """
    if not 0 < config.port < 65536:
        raise ResponderError(f"port {config.port} is out of range")
    hostname = config.hostname
    if not hostname or not hostname.isascii() or any(c.isspace() for c in hostname):
        raise ResponderError(f"hostname {hostname!r} is empty, not ASCII or has white space")
    if (
        min(config.idle_timeout, config.silent_timeout, config.tarpit_interval) <= 0
        or config.max_line < 512
    ):
        raise ResponderError(
            "timeouts and tarpit_interval must be positive and max_line at least 512"
        )
    if config.context_cache_size < 1:
        raise ResponderError("context_cache_size must be at least 1")
    seen: set[str] = set()
    for listener in config.listeners:
        address = listener.address
        if not is_loopback(address):
            raise ResponderError(
                f"refusing to listen on {address!r}: only 127.0.0.0/8 and ::1 are allowed"
            )
        canonical = str(ipaddress.ip_address(address))
        if canonical in seen:
            raise ResponderError(f"address {address} is listed twice")
        seen.add(canonical)
        chain_ids = [*listener.chains.values()]
        if listener.default_chain is not None:
            chain_ids.append(listener.default_chain)
        for chain_id in chain_ids:
            if not _CHAIN_ID.match(chain_id):
                raise ResponderError(f"{address}: chain id {chain_id!r} is not a plain file stem")
        # A tarpit is a STARTTLS host that is slow to say so: a client patient
        # enough to get there is served a certificate. TLS_RESET never gets to
        # a certificate and needs none.
        if listener.behavior in _NEEDS_CHAIN and listener.default_chain is None:
            raise ResponderError(
                f"{address}: a {listener.behavior.value} listener needs a default_chain"
            )


def missing_chain_files(config: ResponderConfig) -> list[Path]:
    """The certificate and key files the configuration names that do not exist."""
    chain_ids: set[str] = set()
    for listener in config.listeners:
        chain_ids.update(listener.chains.values())
        if listener.default_chain is not None:
            chain_ids.add(listener.default_chain)
    return [
        path
        for chain_id in sorted(chain_ids)
        for path in config.chain_paths(chain_id)
        if not path.is_file()
    ]


def write_config(
    path: Path,
    listeners: Sequence[Listener],
    *,
    pki_dir: Path,
    port: int = 25,
    hostname: str = DEFAULT_HOSTNAME,
    idle_timeout: float = 30.0,
    silent_timeout: float = 60.0,
    connection_log: Path | None = None,
    tarpit_interval: float = 1.0,
) -> None:
    """Validate and write the responder configuration as JSON (atomically).

    A listener's ``pushback`` is written only when it pushes back at all, and
    then only its fields that differ from the default, so that the
    configuration of a loopback testbed stays as small as before.
    """
    config = ResponderConfig(
        listeners=tuple(listeners),
        pki_dir=pki_dir.resolve(),
        port=port,
        hostname=hostname,
        idle_timeout=idle_timeout,
        silent_timeout=silent_timeout,
        connection_log=None if connection_log is None else connection_log.resolve(),
        tarpit_interval=tarpit_interval,
    )
    document = {
        "version": CONFIG_VERSION,
        "pki_dir": str(config.pki_dir),
        "port": config.port,
        "hostname": config.hostname,
        "idle_timeout": config.idle_timeout,
        "silent_timeout": config.silent_timeout,
        "connection_log": None if config.connection_log is None else str(config.connection_log),
        "tarpit_interval": config.tarpit_interval,
        "listeners": [_listener_document(listener) for listener in config.listeners],
    }
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(document, separators=(",", ":")))
    os.replace(temporary, path)


def _listener_document(listener: Listener) -> dict[str, Any]:
    document: dict[str, Any] = {
        "address": listener.address,
        "behavior": listener.behavior.value,
        "chains": listener.chains,
        "default_chain": listener.default_chain,
    }
    if listener.tls_extensions:
        document["tls_extensions"] = list(listener.tls_extensions)
    if not listener.pushback.is_default:
        document["pushback"] = {
            item.name: getattr(listener.pushback, item.name)
            for item in dataclasses.fields(Pushback)
            if getattr(listener.pushback, item.name) != getattr(NO_PUSHBACK, item.name)
        }
    return document


def _optional(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else convert(value)


def _strict_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{value!r} is not true or false")
    return value


# How each Pushback field is read back from JSON.
_PUSHBACK_FIELDS: dict[str, Callable[[Any], Any]] = {
    "greeting_delay": float,
    "greylist_window": _optional(float),
    "max_concurrent": _optional(int),
    "max_per_minute": _optional(int),
    "tls_delay": float,
    "reset_first_handshake": _strict_bool,
}


def _pushback(document: dict[str, Any] | None) -> Pushback:
    if not document:
        return NO_PUSHBACK
    unknown = set(document) - set(_PUSHBACK_FIELDS)
    if unknown:
        raise ValueError(f"unknown pushback fields {sorted(unknown)}")
    return Pushback(**{name: _PUSHBACK_FIELDS[name](value) for name, value in document.items()})


def load_config(path: Path) -> ResponderConfig:
    """Read a configuration written by ``write_config``; raise ResponderError if invalid."""
    try:
        document = json.loads(path.read_text())
        if document.get("version") != CONFIG_VERSION:
            raise ResponderError(f"{path}: unsupported config version {document.get('version')}")
        listeners = tuple(
            Listener(
                address=str(item["address"]),
                behavior=Behavior(item["behavior"]),
                chains={str(k): str(v) for k, v in item["chains"].items()},
                default_chain=None if item["default_chain"] is None else str(item["default_chain"]),
                pushback=_pushback(item.get("pushback")),
                tls_extensions=tuple(str(k) for k in item.get("tls_extensions", ())),
            )
            for item in document["listeners"]
        )
        connection_log = document["connection_log"]
        return ResponderConfig(
            listeners=listeners,
            pki_dir=Path(document["pki_dir"]),
            port=int(document["port"]),
            hostname=str(document["hostname"]),
            idle_timeout=float(document["idle_timeout"]),
            silent_timeout=float(document["silent_timeout"]),
            connection_log=None if connection_log is None else Path(connection_log),
            tarpit_interval=float(document["tarpit_interval"]),
        )
    except (OSError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ResponderError(f"{path}: cannot read responder config: {exc!r}") from exc

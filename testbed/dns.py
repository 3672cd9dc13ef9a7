"""The DNS half of the testbed: a private, DNSSEC-signed DNS tree on loopback.

From a list of zones (testbed.model) this writes zone files with delegations,
glue and DS records (RFC 1034 section 4.2, RFC 4035 section 2.4), signs them
with ldns-signzone (RFC 4033-4035, NSEC), and configures NSD to serve them and
a validating Unbound that trusts the private root.

Every signed zone uses the same ECDSA P-256 key (algorithm 13, RFC 6605) as a
combined signing key (flags 257, SEP bit set: RFC 4034 section 2.1.1), derived
from the seed. So every DS (RFC 4034 section 5.1.4, SHA-256 digest type 2 per
RFC 4509) and the root trust anchor are known before anything is signed, and
all zones can be signed at the same time.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import functools
import hashlib
import ipaddress
import json
import os
import re
import secrets
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from testbed.model import DsMode, Zone
from testbed.procs import ProcessTable, TestbedError, ensure_free, require_binary

__all__ = [
    "DnsBuild",
    "ZoneKey",
    "build_dns",
    "derive_key",
    "probe_dns",
    "start_dns",
]

ALGORITHM = 13  # ECDSAP256SHA256, RFC 6605
DIGEST_SHA256 = 2  # RFC 4509
CSK_FLAGS = 257  # zone key + secure entry point: the one key signs everything
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

TTL = 3600
# SOA refresh, retry, expire, minimum. The minimum is the negative-caching TTL
# (RFC 2308), kept short so that a rebuilt testbed is seen soon.
_SOA_TIMERS = "3600 900 604800 300"
# Validity window of the signatures, relative to the start of the UTC day of
# `now` so that rebuilding on the same day yields the same signer input and
# the cache is hit. Expired zones end a week ago: Unbound tolerates up to a
# day of clock skew (val-sig-skew-max), so "just expired" would still validate.
_VALID_FROM = dt.timedelta(days=-1)
_VALID_UNTIL = dt.timedelta(days=90)
_EXPIRED_FROM = dt.timedelta(days=-37)
_EXPIRED_UNTIL = dt.timedelta(days=-7)

_LABEL = re.compile(r"[a-z0-9_-]{1,63}")
_MANIFEST = "manifest.json"
_PORT = 53


@dataclass(frozen=True, slots=True)
class ZoneKey:
    """The ECDSA P-256 key shared by all signed zones."""

    private_value: int
    public_key: bytes  # x || y, 64 bytes (RFC 6605 section 4)

    @property
    def dnskey_rdata(self) -> bytes:
        return struct.pack("!HBB", CSK_FLAGS, 3, ALGORITHM) + self.public_key

    @property
    def dnskey_text(self) -> str:
        return f"{CSK_FLAGS} 3 {ALGORITHM} {base64.b64encode(self.public_key).decode()}"

    @property
    def key_tag(self) -> int:
        """RFC 4034 appendix B."""
        acc = 0
        for i, byte in enumerate(self.dnskey_rdata):
            acc += byte if i & 1 else byte << 8
        acc += (acc >> 16) & 0xFFFF
        return acc & 0xFFFF

    @property
    def base_name(self) -> str:
        """The file name stem ldns-signzone expects (BIND convention)."""
        return f"Kdanescan+{ALGORITHM:03d}+{self.key_tag:05d}"

    def ds_digest(self, owner: str) -> bytes:
        """SHA-256 over the owner's canonical wire name and the DNSKEY RDATA."""
        return hashlib.sha256(wire_name(owner) + self.dnskey_rdata).digest()

    def ds_text(self, owner: str, *, wrong: bool = False) -> str:
        """DS RDATA in presentation format. ``wrong`` flips the digest's first
        byte: the key tag and algorithm still point at the child's key, so the
        resolver tries it and finds the mismatch (bogus, not insecure)."""
        digest = bytearray(self.ds_digest(owner))
        if wrong:
            digest[0] ^= 0xFF
        return f"{self.key_tag} {ALGORITHM} {DIGEST_SHA256} {digest.hex().upper()}"

    def private_file_text(self) -> str:
        """The BIND private-key format that ldns-signzone reads."""
        scalar = base64.b64encode(self.private_value.to_bytes(32, "big")).decode()
        return (
            "Private-key-format: v1.3\n"
            f"Algorithm: {ALGORITHM} (ECDSAP256SHA256)\n"
            f"PrivateKey: {scalar}\n"
        )


def derive_key(seed: int) -> ZoneKey:
    """The zone key for ``seed``: the same seed always gives the same key."""
    material = hashlib.sha256(b"danescan-testbed-key" + str(seed).encode()).digest()
    private_value = int.from_bytes(material, "big") % _P256_ORDER
    if private_value == 0:  # probability 2**-256, but zero is not a key
        private_value = 1
    numbers = ec.derive_private_key(private_value, ec.SECP256R1()).public_key().public_numbers()
    return ZoneKey(private_value, numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big"))


def wire_name(name: str) -> bytes:
    """Uncompressed wire format of an absolute, lower-case name (RFC 1035 section 3.1)."""
    labels = [label for label in name.rstrip(".").split(".") if label]
    return b"".join(bytes([len(label)]) + label.encode("ascii") for label in labels) + b"\0"


@dataclass(frozen=True, slots=True)
class DnsBuild:
    """What build_dns wrote, for start_dns and for the testbed's state file."""

    workdir: Path
    nsd_conf: Path  # the instance on auth_address
    unbound_conf: Path
    trust_anchor: Path  # the root DS, one line in zone-file format
    auth_address: str
    resolver_address: str
    lame_address: str
    zones: int  # zones served by NSD (lame zones are delegated but not served)
    signed: int  # zones signed by this build
    reused: int  # zones whose signed file from an earlier build was still current
    signing_seconds: float
    build_seconds: float
    # Further NSD instances, one per layer of the tree (see build_dns).
    layers: tuple[NsdLayer, ...] = ()

    def server_for(self, origin: str) -> str:
        """The NSD address that serves zone ``origin``."""
        depth = layer_of(origin)
        for layer in self.layers:
            if layer.depth == depth:
                return layer.address
        return self.auth_address


@dataclass(frozen=True, slots=True)
class NsdLayer:
    """An NSD instance serving the zones of one depth of the tree."""

    name: str  # in the process table, and the stem of its files
    depth: int  # 0 the root, 1 the TLDs
    address: str
    conf: Path


def layer_of(origin: str) -> int:
    """0 for the root, 1 for a TLD, 2 for anything deeper."""
    return min(2, origin.rstrip(".").count(".") + 1) if origin != "." else 0


@dataclass(frozen=True, slots=True)
class _Delegation:
    origin: str
    address: str
    ds: str | None


@dataclass(frozen=True, slots=True)
class _Job:
    """One served zone file: ``source`` as rendered, and ``served``, which is
    the signed output when ``window`` (inception, expiration) is set."""

    zone: Zone
    text: str
    digest: str  # of everything the served file depends on: the cache key
    stem: str
    source: Path
    served: Path
    window: tuple[str, str] | None


def build_dns(
    zones: Sequence[Zone],
    workdir: Path,
    *,
    auth_address: str,
    resolver_address: str,
    lame_address: str,
    seed: int,
    now: dt.datetime,
    jobs: int = 2,
    internet: bool = False,
    layer_addresses: tuple[str, str] | None = None,
) -> DnsBuild:
    """Write, sign and configure the DNS tree for ``zones`` in ``workdir``.

    ``now`` (timezone-aware, the wall clock: Unbound checks signatures against
    its own clock) places the signature validity windows. Zones whose input
    and key are unchanged since the last build in ``workdir`` are not signed
    again. ``jobs`` signers run at once. ``internet`` tunes Unbound for
    servers that answer slowly or not at all (the internet profile).

    With ``layer_addresses`` (root, TLDs) the root and the TLD zones are
    served by NSD instances of their own at those addresses, and only deeper
    zones by the one on ``auth_address``. A server that holds a parent zone
    and its child answers for the child itself instead of referring to it,
    so on the internet profile, where a child is delegated to another DNS
    operator, one NSD for all would let the resolver skip that operator.
    """
    started = time.monotonic()
    for label, address in (
        ("auth", auth_address),
        ("resolver", resolver_address),
        ("lame", lame_address),
    ):
        _require_loopback(label, address)
    if len({auth_address, resolver_address, lame_address}) != 3:
        raise TestbedError("the auth, resolver and lame addresses must all differ")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if jobs < 1:
        raise ValueError("jobs must be at least 1")
    signer = require_binary("ldns-signzone", "ldnsutils")

    key = derive_key(seed)
    workdir = workdir.resolve()
    zone_dir = workdir / "zones"
    zone_dir.mkdir(parents=True, exist_ok=True)
    key_base = _write_key(workdir / "keys", key)
    trust_anchor = workdir / "root.ds"
    _write_if_changed(trust_anchor, f". {TTL} IN DS {key.ds_text('.')}\n")

    by_origin = _index(zones)
    served = _jobs(
        by_origin,
        zone_dir,
        auth_address=auth_address,
        lame_address=lame_address,
        key=key,
        day=now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0),
    )
    todo = _stale(served, zone_dir / _MANIFEST)
    sign_started = time.monotonic()
    _sign_all(
        [job for job in todo if job.window is not None],
        signer=signer,
        key_base=key_base,
        parallel=jobs,
        scratch=workdir,
    )
    signing_seconds = time.monotonic() - sign_started
    for job in todo:
        if job.zone.corrupt_rrsets:
            _corrupt(job.served, job.zone)
    _write_manifest(zone_dir / _MANIFEST, {job.stem: job.digest for job in served})

    layers: list[NsdLayer] = []
    if layer_addresses is not None:
        for depth, (name, address) in enumerate(
            zip(("nsd-root", "nsd-tld"), layer_addresses, strict=True)
        ):
            _require_loopback(name, address)
            conf = workdir / f"{name}.conf"
            zones_here = [job for job in served if layer_of(job.zone.origin) == depth]
            _write_if_changed(conf, _nsd_conf(workdir, address, zones_here, name=name))
            layers.append(NsdLayer(name, depth, address, conf))
    deepest = 0 if layer_addresses is None else 2
    nsd_conf = workdir / "nsd.conf"
    _write_if_changed(
        nsd_conf,
        _nsd_conf(workdir, auth_address, [j for j in served if layer_of(j.zone.origin) >= deepest]),
    )
    root_hints = workdir / "root.hints"
    _write_if_changed(root_hints, _root_hints(by_origin["."].server or auth_address))
    unbound_conf = workdir / "unbound.conf"
    _write_if_changed(
        unbound_conf,
        _unbound_conf(
            workdir,
            resolver_address=resolver_address,
            auth_address=auth_address,
            root_hints=root_hints,
            trust_anchor=trust_anchor,
            tlds=sorted(o for o in by_origin if o.count(".") == 1 and o != "."),
            internet=internet,
        ),
    )
    signed_now = sum(1 for job in todo if job.window is not None)
    return DnsBuild(
        workdir=workdir,
        nsd_conf=nsd_conf,
        unbound_conf=unbound_conf,
        trust_anchor=trust_anchor,
        auth_address=auth_address,
        resolver_address=resolver_address,
        lame_address=lame_address,
        zones=len(served),
        signed=signed_now,
        reused=sum(1 for job in served if job.window is not None) - signed_now,
        signing_seconds=signing_seconds,
        build_seconds=time.monotonic() - started,
        layers=tuple(layers),
    )


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
    ensure_free(build.auth_address, _PORT)
    ensure_free(build.resolver_address, _PORT)
    try:
        ensure_free(build.lame_address, _PORT)
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
    problems = [line for line in _read_lines(nsd_log, nsd_log_start) if "error" in line.lower()]
    if problems:
        table.stop("nsd")
        raise TestbedError(f"NSD could not load every zone: {problems[0]} (see {nsd_log})")
    try:
        for layer in build.layers:
            ensure_free(layer.address, _PORT)
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
    address: str, *, recursion: bool, port: int = _PORT, timeout: float = 0.5
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


# -- zone data ----------------------------------------------------------------


def _require_loopback(label: str, address: str) -> None:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise TestbedError(f"{label} address {address!r} is not an IP address") from None
    if not ip.is_loopback:
        raise TestbedError(
            f"{label} address {address} is not loopback: the testbed stays on 127.0.0.0/8 or ::1"
        )


def _index(zones: Iterable[Zone]) -> dict[str, Zone]:
    by_origin: dict[str, Zone] = {}
    stems: dict[str, str] = {}
    for zone in zones:
        origin = zone.origin
        if origin != "." and not (
            origin.endswith(".") and all(_LABEL.fullmatch(x) for x in origin[:-1].split("."))
        ):
            raise TestbedError(f"zone origin {origin!r} is not an absolute lower-case name")
        if origin in by_origin:
            raise TestbedError(f"zone {origin} is defined twice")
        stem = _file_stem(origin)
        if stem in stems:
            raise TestbedError(f"zones {stems[stem]} and {origin} would share a file")
        stems[stem] = origin
        if zone.server is not None:
            _require_loopback(f"the server of zone {origin}", zone.server)
        by_origin[origin] = zone
    if "." not in by_origin:
        raise TestbedError("no root zone: the zone list must contain '.'")
    if by_origin["."].lame or not by_origin["."].signed:
        raise TestbedError("the root zone must be signed and served")
    return by_origin


def _file_stem(origin: str) -> str:
    return "_root" if origin == "." else origin[:-1]


def _parent(origin: str, origins: dict[str, Zone]) -> str:
    """The longest other origin that is a proper suffix of ``origin``."""
    rest = origin
    while True:
        rest = rest.split(".", 1)[1] or "."
        if rest in origins:
            return rest


def _delegations(
    by_origin: dict[str, Zone], *, auth_address: str, lame_address: str, key: ZoneKey
) -> dict[str, list[_Delegation]]:
    """For each parent origin, the child zones it delegates."""
    result: dict[str, list[_Delegation]] = {}
    for origin, zone in by_origin.items():
        if origin == ".":
            continue
        ds: str | None = None
        # An unsigned child has no key, so no DS whatever the mode says.
        if zone.signed and zone.parent_ds is not DsMode.NONE:
            ds = key.ds_text(origin, wrong=zone.parent_ds is DsMode.WRONG)
        address = lame_address if zone.lame else (zone.server or auth_address)
        result.setdefault(_parent(origin, by_origin), []).append(_Delegation(origin, address, ds))
    return result


def _address_type(address: str) -> str:
    return "AAAA" if ":" in address else "A"


def _render(zone: Zone, children: Iterable[_Delegation], *, address: str, key: ZoneKey) -> str:
    """The zone file: apex SOA, NS and its address, the DNSKEY if signed, the
    zone's records, then one delegation (NS, glue, DS) per child. Every name is
    absolute, so no $ORIGIN is needed."""
    origin = zone.origin
    ns = f"ns1.{origin}" if origin != "." else "ns1."
    lines = [
        f"{origin} {TTL} IN SOA {ns} hostmaster.{origin if origin != '.' else ''} 1 {_SOA_TIMERS}",
        f"{origin} {TTL} IN NS {ns}",
        f"{ns} {TTL} IN {_address_type(address)} {address}",
    ]
    if zone.signed:
        lines.append(f"{origin} {TTL} IN DNSKEY {key.dnskey_text}")
    suffix = "." + origin if origin != "." else ""
    for r in zone.records:
        if suffix and r.owner != origin and not r.owner.endswith(suffix):
            raise TestbedError(f"record {r.owner} {r.rtype} is outside zone {origin}")
        lines.append(f"{r.owner} {r.ttl} IN {r.rtype} {r.rdata}")
    for child in children:
        child_ns = f"ns1.{child.origin}"
        lines.append(f"{child.origin} {TTL} IN NS {child_ns}")
        lines.append(f"{child_ns} {TTL} IN {_address_type(child.address)} {child.address}")
        if child.ds is not None:
            lines.append(f"{child.origin} {TTL} IN DS {child.ds}")
    lines.append("")
    return "\n".join(lines)


def _jobs(
    by_origin: dict[str, Zone],
    zone_dir: Path,
    *,
    auth_address: str,
    lame_address: str,
    key: ZoneKey,
    day: dt.datetime,
) -> list[_Job]:
    """Render every zone that NSD serves (a lame zone is only delegated, to
    an address where nothing listens)."""
    delegations = _delegations(
        by_origin, auth_address=auth_address, lame_address=lame_address, key=key
    )
    key_digest = hashlib.sha256(key.private_file_text().encode()).hexdigest()
    result = []
    for origin, zone in by_origin.items():
        if zone.lame:
            continue
        # The zone's own NS address is its operator's too: a resolver that
        # believes the child's NS RRset must not bypass the operator.
        address = zone.server or auth_address
        text = _render(zone, delegations.get(origin, ()), address=address, key=key)
        window = _window(day, expired=zone.expired) if zone.signed else None
        inputs = [text, key_digest if zone.signed else "", repr(window)]
        inputs.append(repr(sorted(zone.corrupt_rrsets)))
        stem = _file_stem(origin)
        result.append(
            _Job(
                zone=zone,
                text=text,
                digest=hashlib.sha256("\0".join(inputs).encode()).hexdigest(),
                stem=stem,
                source=zone_dir / f"{stem}.txt",
                served=zone_dir / (f"{stem}.signed" if zone.signed else f"{stem}.txt"),
                window=window,
            )
        )
    return result


def _stale(jobs: Sequence[_Job], manifest_path: Path) -> list[_Job]:
    """The jobs whose served file is missing or was made from other input,
    with their input written out and their old output removed. Files of
    zones no longer in the build are deleted."""
    old = _read_manifest(manifest_path)
    current = {job.stem: job.digest for job in jobs}
    zone_dir = manifest_path.parent
    for stem in set(old) - set(current):
        for suffix in (".txt", ".signed"):
            (zone_dir / f"{stem}{suffix}").unlink(missing_ok=True)
    # Forget changed zones before touching their files: a build that fails
    # halfway must not leave a file that the next build takes as current.
    _write_manifest(manifest_path, {s: d for s, d in old.items() if current.get(s) == d})
    stale = [job for job in jobs if old.get(job.stem) != job.digest or not job.served.exists()]
    for job in stale:
        job.served.unlink(missing_ok=True)
        job.source.write_text(job.text)
    return stale


def _window(day: dt.datetime, *, expired: bool) -> tuple[str, str]:
    """(inception, expiration) for ldns-signzone."""
    start, end = (_EXPIRED_FROM, _EXPIRED_UNTIL) if expired else (_VALID_FROM, _VALID_UNTIL)
    return _ldns_time(day + start), _ldns_time(day + end)


# -- signing --------------------------------------------------------------------


def _ldns_time(moment: dt.datetime) -> str:
    return moment.strftime("%Y%m%d%H%M%S")


def _write_key(key_dir: Path, key: ZoneKey) -> Path:
    """Write the private key (and, for people and ldns tools, the root's
    public key file); return the base path ldns-signzone takes."""
    key_dir.mkdir(parents=True, exist_ok=True)
    base = key_dir / key.base_name
    private = base.with_name(base.name + ".private")
    _write_if_changed(private, key.private_file_text())
    private.chmod(0o600)
    _write_if_changed(base.with_name(base.name + ".key"), f". {TTL} IN DNSKEY {key.dnskey_text}\n")
    return base


def _sign_all(
    jobs: Sequence[_Job], *, signer: str, key_base: Path, parallel: int, scratch: Path
) -> None:
    """Run ldns-signzone on every job, ``parallel`` processes at a time.

    ldns-signzone signs one zone per process, and most of its time is process
    start-up (dynamic linking, OpenSSL initialisation), so each run is exec'd
    directly (no shell) and pointed at an empty OpenSSL configuration, which
    measured about 30 % less time per small zone than the system one.
    """
    if not jobs:
        return
    env = dict(os.environ, OPENSSL_CONF=os.devnull)

    def sign(job: _Job) -> None:
        assert job.window is not None
        inception, expiration = job.window
        argv = [
            signer,
            "-i",
            inception,
            "-e",
            expiration,
            "-o",
            job.zone.origin,
            "-f",
            str(job.served),
            str(job.source),
            str(key_base),
        ]
        done = subprocess.run(
            argv, env=env, cwd=scratch, stdin=subprocess.DEVNULL, capture_output=True, check=False
        )
        if done.returncode != 0 or not job.served.exists():
            detail = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
            raise TestbedError(
                f"ldns-signzone failed for zone {job.zone.origin}: "
                + (detail[-1] if detail else f"exit status {done.returncode}")
            )

    # Largest zones first, so one big TLD does not start last and finish alone.
    ordered = sorted(jobs, key=lambda job: len(job.text), reverse=True)
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        futures = [pool.submit(sign, job) for job in ordered]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for future in done:
            error = future.exception()
            if error is not None:
                for pending in futures:
                    pending.cancel()
                raise error


def _corrupt(path: Path, zone: Zone) -> None:
    """Flip one byte of the signature over each (owner, type) in
    ``zone.corrupt_rrsets``: that RRset, and only it, fails validation."""
    wanted = {(owner.lower(), rtype.upper()) for owner, rtype in zone.corrupt_rrsets}
    found: set[tuple[str, str]] = set()
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        fields = line.split()
        # ldns-signzone writes: owner ttl class RRSIG covered alg labels ttl exp inc tag signer sig
        if len(fields) < 13 or fields[3] != "RRSIG":
            continue
        target = (fields[0].lower(), fields[4].upper())
        if target in wanted:
            signature = bytearray(base64.b64decode("".join(fields[12:])))
            signature[len(signature) // 2] ^= 0x01
            lines[i] = "\t".join([*fields[:12], base64.b64encode(signature).decode()])
            found.add(target)
    missing = wanted - found
    if missing:
        owner, rtype = sorted(missing)[0]
        raise TestbedError(f"zone {zone.origin} has no signed {owner} {rtype} RRset to corrupt")
    path.write_text("\n".join(lines) + "\n")


def _read_manifest(path: Path) -> dict[str, str]:
    try:
        raw = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}


def _write_manifest(path: Path, manifest: dict[str, str]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, sort_keys=True))
    tmp.replace(path)


def _write_if_changed(path: Path, text: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        if path.read_text() == text:
            return
    path.write_text(text)


def _read_lines(path: Path, offset: int = 0) -> list[str]:
    try:
        with path.open("rb") as stream:
            stream.seek(offset)
            return stream.read().decode(errors="replace").splitlines()
    except FileNotFoundError:
        return []


# -- server configuration --------------------------------------------------------


def _nsd_conf(workdir: Path, address: str, zones: Sequence[_Job], name: str = "nsd") -> str:
    six = ":" in address
    head = f"""# Written by testbed.dns: NSD serving the private tree.
server:
    ip-address: {address}
    port: {_PORT}
    do-ip4: {"no" if six else "yes"}
    do-ip6: {"yes" if six else "no"}
    # One server process: Unbound, not NSD, is the bottleneck on two cores.
    server-count: 1
    tcp-count: 256
    username: ""
    chroot: ""
    zonesdir: "{workdir}"
    # No compiled database, no zone file writes, no mtime checks: faster start.
    database: ""
    zonefiles-check: no
    zonefiles-write: 0
    zonelistfile: "{workdir}/{name}.zonelist"
    xfrdfile: "{workdir}/{name}.xfrd.state"
    xfrdir: "{workdir}"
    pidfile: "{workdir}/{name}.pid"
    # The only client is our Unbound: response rate limiting would starve a scan.
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
    rrl-size: 1
    receive-buffer-size: 4194304
    send-buffer-size: 4194304
    hide-version: yes
    verbosity: 1

remote-control:
    control-enable: no
"""
    body = "".join(
        f'\nzone:\n    name: "{job.zone.origin}"\n    zonefile: "{job.served}"\n' for job in zones
    )
    return head + body


def _root_hints(auth_address: str) -> str:
    return f". 3600000 IN NS ns1.\nns1. 3600000 IN {_address_type(auth_address)} {auth_address}\n"


# How Unbound times out its servers, per profile (the text goes into unbound.conf).
_LOOPBACK_TIMING = """\
    # A lame delegation (nothing listens) would otherwise cost about 40 s of
    # retries, and Unbound drops the client's query unanswered after 1.9 s
    # (discard-timeout): after one timeout a server is down for that zone and
    # the answer is a quick SERVFAIL. Loopback servers answer in well under a
    # millisecond, and keep-probing lets one that was merely overloaded back in.
    infra-cache-max-rtt: 700
    infra-keep-probing: yes
"""
_INTERNET_TIMING = """\
    # The internet profile's operators answer in up to a few hundred ms with
    # a tail to seconds, and lose queries. Unbound backs a server's timeout
    # off from 376 ms, doubling it at each loss, and gives up on the server
    # once it would exceed this ceiling: 3 s gives a dead operator's zones a
    # SERVFAIL after 0.376 + 0.752 + 1.5 + 3 s, about 5.6 s, as the
    # scanner's managed Unbound does (scanner.resolve.managed); Unbound's
    # default (120 s) would hold such a question for minutes. (1.17 probes a
    # server it gave up on only with a ceiling of 12 s or more:
    # NLnetLabs/unbound#1241.)
    infra-cache-max-rtt: 3000
    # Unbound drops, unanswered, a reply that took longer than this (1.9 s
    # by default, against DNSBomb): a dead operator's SERVFAIL must reach
    # the client, as a resolver of the real internet's does within seconds.
    discard-timeout: 15000
    # ... and drops a client's questions beyond 1,000 waiting for recursion
    # (the same fix): a scanner's client has thousands in flight when every
    # answer takes a round trip to an operator. 0: no such limit.
    wait-limit: 0
"""


def _unbound_conf(
    workdir: Path,
    *,
    resolver_address: str,
    auth_address: str,
    root_hints: Path,
    trust_anchor: Path,
    tlds: Sequence[str],
    internet: bool = False,
) -> str:
    six = ":" in auth_address or ":" in resolver_address
    # Unbound answers some special-use TLDs itself (RFC 6761: test., invalid.,
    # localhost.; RFC 7686: onion.). nodefault hands them back to the root;
    # for any other name it does nothing, so it is applied to every TLD.
    nodefault = "".join(f'    local-zone: "{tld}" nodefault\n' for tld in tlds)
    return f"""# Written by testbed.dns: a validating resolver for the private root.
server:
    interface: {resolver_address}
    port: {_PORT}
    interface-automatic: no
    do-ip4: yes
    do-ip6: {"yes" if six else "no"}
    access-control: 127.0.0.0/8 allow
    access-control: ::1 allow
    username: ""
    chroot: ""
    directory: "{workdir}"
    pidfile: "{workdir}/unbound.pid"
    logfile: ""
    use-syslog: no
    log-time-ascii: yes
    verbosity: 1
    module-config: "validator iterator"
    root-hints: "{root_hints}"
    trust-anchor-file: "{trust_anchor}"
    trust-anchor-signaling: no
    root-key-sentinel: no
    # The servers are on 127.0.0.0/8, which Unbound would otherwise never ask.
    do-not-query-localhost: no
{nodefault}    # Report why an answer is bogus (extended DNS errors, RFC 8914).
    ede: yes
    val-log-level: 2
    log-servfail: yes
    # Tuned for a scan: about a million names, thousands of queries in flight.
    num-threads: 2
    msg-cache-slabs: 2
    rrset-cache-slabs: 2
    infra-cache-slabs: 2
    key-cache-slabs: 2
    msg-cache-size: 512m
    rrset-cache-size: 1024m
    key-cache-size: 128m
    neg-cache-size: 64m
    num-queries-per-thread: 4096
    outgoing-range: 8192
    incoming-num-tcp: 256
    outgoing-num-tcp: 128
    so-rcvbuf: 4m
    so-sndbuf: 4m
    # Every delegation carries its glue: no extra queries for name server
    # addresses, and no query minimisation (a scan wants fewer round trips).
    target-fetch-policy: "0 0 0 0 0"
    qname-minimisation: no
    prefetch: no
{_INTERNET_TIMING if internet else _LOOPBACK_TIMING}
remote-control:
    control-enable: no
"""

"""Signing the testbed's zones with ldns-signzone (RFC 4033-4035, NSEC), and
the cache that keeps a zone's signed file while its input is unchanged.

Each served zone is a job whose digest covers everything its served file
depends on (text, key, validity window, corrupted RRsets); a manifest of
those digests lets a rebuild sign only what changed.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import subprocess
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from testbed.dns.files import write_if_changed
from testbed.dns.keys import ZoneKey
from testbed.dns.zones import TTL, delegations_by_parent, file_stem, render_zone
from testbed.model import Zone
from testbed.procs import TestbedError

# Validity window of the signatures, relative to the start of the UTC day of
# `now` so that rebuilding on the same day yields the same signer input and
# the cache is hit. Expired zones end a week ago: Unbound tolerates up to a
# day of clock skew (val-sig-skew-max), so "just expired" would still validate.
_VALID_FROM = dt.timedelta(days=-1)
_VALID_UNTIL = dt.timedelta(days=90)
_EXPIRED_FROM = dt.timedelta(days=-37)
_EXPIRED_UNTIL = dt.timedelta(days=-7)


MANIFEST = "manifest.json"


@dataclass(frozen=True, slots=True)
class ZoneJob:
    """One served zone file: ``source`` as rendered, and ``served``, which is
    the signed output when ``window`` (inception, expiration) is set."""

    zone: Zone
    text: str
    digest: str  # of everything the served file depends on: the cache key
    stem: str
    source: Path
    served: Path
    window: tuple[str, str] | None


def zone_jobs(
    by_origin: dict[str, Zone],
    zone_dir: Path,
    *,
    auth_address: str,
    lame_address: str,
    key: ZoneKey,
    day: dt.datetime,
) -> list[ZoneJob]:
    """Render every zone that NSD serves (a lame zone is only delegated, to
    an address where nothing listens)."""
    delegations = delegations_by_parent(
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
        text = render_zone(zone, delegations.get(origin, ()), address=address, key=key)
        window = _window(day, expired=zone.expired) if zone.signed else None
        inputs = [text, key_digest if zone.signed else "", repr(window)]
        inputs.append(repr(sorted(zone.corrupt_rrsets)))
        stem = file_stem(origin)
        result.append(
            ZoneJob(
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


def stale_jobs(jobs: Sequence[ZoneJob], manifest_path: Path) -> list[ZoneJob]:
    """The jobs whose served file is missing or was made from other input,
    with their input written out and their old output removed. Files of
    zones no longer in the build are deleted."""
    old = read_manifest(manifest_path)
    current = {job.stem: job.digest for job in jobs}
    zone_dir = manifest_path.parent
    for stem in set(old) - set(current):
        for suffix in (".txt", ".signed"):
            (zone_dir / f"{stem}{suffix}").unlink(missing_ok=True)
    # Forget changed zones before touching their files: a build that fails
    # halfway must not leave a file that the next build takes as current.
    write_manifest(manifest_path, {s: d for s, d in old.items() if current.get(s) == d})
    stale = [job for job in jobs if old.get(job.stem) != job.digest or not job.served.exists()]
    for job in stale:
        job.served.unlink(missing_ok=True)
        job.source.write_text(job.text)
    return stale


def _window(day: dt.datetime, *, expired: bool) -> tuple[str, str]:
    """(inception, expiration) for ldns-signzone."""
    start, end = (_EXPIRED_FROM, _EXPIRED_UNTIL) if expired else (_VALID_FROM, _VALID_UNTIL)
    return _ldns_time(day + start), _ldns_time(day + end)


def _ldns_time(moment: dt.datetime) -> str:
    return moment.strftime("%Y%m%d%H%M%S")


def write_key(key_dir: Path, key: ZoneKey) -> Path:
    """Write the private key (and, for people and ldns tools, the root's
    public key file); return the base path ldns-signzone takes."""
    key_dir.mkdir(parents=True, exist_ok=True)
    base = key_dir / key.base_name
    private = base.with_name(base.name + ".private")
    write_if_changed(private, key.private_file_text())
    private.chmod(0o600)
    write_if_changed(base.with_name(base.name + ".key"), f". {TTL} IN DNSKEY {key.dnskey_text}\n")
    return base


def sign_all(
    jobs: Sequence[ZoneJob], *, signer: str, key_base: Path, parallel: int, scratch: Path
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

    def sign(job: ZoneJob) -> None:
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


def corrupt_signatures(path: Path, zone: Zone) -> None:
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


def read_manifest(path: Path) -> dict[str, str]:
    try:
        raw = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}


def write_manifest(path: Path, manifest: dict[str, str]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, sort_keys=True))
    tmp.replace(path)

"""Building the testbed's DNS tree: from a list of zones (testbed.model),
write the zone files, sign them, and write the NSD and Unbound configurations
(the zones: testbed.dns.zones; signing: testbed.dns.signing; the servers'
configuration: testbed.dns.conf).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from testbed.dns import signing
from testbed.dns.conf import nsd_conf_text, root_hints_text, unbound_conf_text
from testbed.dns.files import write_if_changed
from testbed.dns.keys import derive_key
from testbed.dns.zones import TTL, index_zones, layer_of, require_loopback
from testbed.model import Zone
from testbed.procs import TestbedError, require_binary


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
        require_loopback(label, address)
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
    key_base = signing.write_key(workdir / "keys", key)
    trust_anchor = workdir / "root.ds"
    write_if_changed(trust_anchor, f". {TTL} IN DS {key.ds_text('.')}\n")

    by_origin = index_zones(zones)
    served = signing.zone_jobs(
        by_origin,
        zone_dir,
        auth_address=auth_address,
        lame_address=lame_address,
        key=key,
        day=now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0),
    )
    todo = signing.stale_jobs(served, zone_dir / signing.MANIFEST)
    sign_started = time.monotonic()
    signing.sign_all(
        [job for job in todo if job.window is not None],
        signer=signer,
        key_base=key_base,
        parallel=jobs,
        scratch=workdir,
    )
    signing_seconds = time.monotonic() - sign_started
    for job in todo:
        if job.zone.corrupt_rrsets:
            signing.corrupt_signatures(job.served, job.zone)
    signing.write_manifest(zone_dir / signing.MANIFEST, {job.stem: job.digest for job in served})

    layers: list[NsdLayer] = []
    if layer_addresses is not None:
        for depth, (name, address) in enumerate(
            zip(("nsd-root", "nsd-tld"), layer_addresses, strict=True)
        ):
            require_loopback(name, address)
            conf = workdir / f"{name}.conf"
            zones_here = [job for job in served if layer_of(job.zone.origin) == depth]
            write_if_changed(conf, nsd_conf_text(workdir, address, zones_here, name=name))
            layers.append(NsdLayer(name, depth, address, conf))
    deepest = 0 if layer_addresses is None else 2
    nsd_conf = workdir / "nsd.conf"
    deep = [job for job in served if layer_of(job.zone.origin) >= deepest]
    write_if_changed(nsd_conf, nsd_conf_text(workdir, auth_address, deep))
    root_hints = workdir / "root.hints"
    write_if_changed(root_hints, root_hints_text(by_origin["."].server or auth_address))
    unbound_conf = workdir / "unbound.conf"
    write_if_changed(
        unbound_conf,
        unbound_conf_text(
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

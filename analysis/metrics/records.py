"""Every secure TLSA record checked against the certificates the host presented.

RFC 6698 section 2.1 gives a record's meaning: its selector picks the whole
certificate (0) or its SubjectPublicKeyInfo (1), its matching type says how
that is compared (0 exact, 1 SHA-256, 2 SHA-512). For each record of each
secure TLSA RRset, the certificates of the chains its host's addresses
presented are compared that way, at every depth, whatever the usage: so a
record that matches nothing (a next key published ahead of use, RFC 7671
section 8, or a stale one left behind) is found even on hosts that pass
thanks to another record, and a DANE-TA record (RFC 7672 section 3.1.2) is
tied to the certificate it pins.

The scan does that comparison (scanner.match.depths, with the matcher's
digests) and writes, from schema version 4, each record's lowest matching
depth (``tlsa.depth``); here the depth only points at the certificate to
name. A dataset without the column (versions 2 and 3, read with null depths
by analysis.legacy), or a host the scan left untested by a bug, has its
digests computed here with the scanner's own
:class:`scanner.match.batch.CertPool` and :func:`scanner.match.depths.record_depth`,
each certificate hashed once per selector and matching type; so does the
rare host whose addresses presented different certificates at the matching
depth, to tell which one matched. This module is the only place in analysis
that hashes certificates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import duckdb
import pandas as pd
from cryptography.x509.oid import NameOID

from analysis.metrics.sql import frame, query, secure_hosts
from scanner.match.batch import CertPool
from scanner.match.certificates import cert_info
from scanner.match.depths import record_depth
from scanner.tlsa import TlsaRecord

__all__ = ["RecordChecks", "check_records", "tlsa_records"]


@dataclass(frozen=True, slots=True)
class _Anchor:
    name: str
    organization: str
    kind: Literal["root", "intermediate", "leaf"]


def _anchor(der: bytes, depth: int) -> _Anchor:
    """Name and kind of the certificate a record matched at ``depth``."""
    info = cert_info(der)
    if info is None:
        return _Anchor("(unparsable certificate)", "", "leaf" if depth == 0 else "intermediate")
    subject = info.cert.subject
    common = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    name = str(common[0].value) if common else subject.rfc4514_string()
    kind: Literal["root", "intermediate", "leaf"] = (
        "leaf" if depth == 0 else "root" if info.self_issued else "intermediate"
    )
    return _Anchor(name, str(orgs[0].value) if orgs else "", kind)


@dataclass(frozen=True, slots=True)
class RecordChecks:
    """Secure RRsets checked against the chains their hosts presented.

    The costly step behind :func:`tlsa_records` and the tables of
    analysis.metrics.rollover (two queries and a parse of every certificate
    presented): make it once with :func:`check_records` and pass it to each as
    ``checks=`` when computing several.
    """

    records: pd.DataFrame  # as returned by tlsa_records
    pairs: pd.DataFrame  # (domain, base): which domains use which RRset

    def domains(self, bases: Iterable[str]) -> int:
        """Distinct domains with an MX host using one of ``bases``."""
        return int(self.pairs.loc[self.pairs["base"].isin(set(bases)), "domain"].nunique())


def check_records(scan: duckdb.DuckDBPyRelation) -> RecordChecks:
    """Check every secure TLSA RRset against the chains its hosts presented."""
    # The scanner resolves and connects once per host, so every domain row shows
    # the same RRset and chains for a host: any one row stands for all of them.
    rrsets = query(
        scan,
        f"""
        WITH {
            secure_hosts(
                "h.tlsa AS tlsa",
                "h.verdict AS verdict",
                "[a.chain FOR a IN h.addresses IF len(a.chain) > 0] AS chains",
            )
        }
        SELECT base, any_value({{'tlsa': tlsa, 'chains': chains,
                                 'verdict': CAST(verdict AS VARCHAR)}}) AS host
        FROM secure GROUP BY base ORDER BY base
        """,
    ).to_arrow_table()
    pairs = frame(scan, f"WITH {secure_hosts()} SELECT DISTINCT domain, base FROM secure")
    per_base = pairs.groupby("base")["domain"].nunique().to_dict()
    # One host's row per base (not fields of several): its depths describe its chains.
    hosts = [{"base": r["base"], **r["host"]} for r in rrsets.to_pylist()]
    return RecordChecks(_check_rrsets(hosts, per_base), pairs)


def tlsa_records(
    scan: duckdb.DuckDBPyRelation, *, checks: RecordChecks | None = None
) -> pd.DataFrame:
    """Every record of every secure TLSA RRset, checked against what the host presented.

    For each record, the certificates of the chains the host's addresses
    presented are compared as the record's selector and matching type say (by
    the scan, see the module docstring), and the lowest depth that matches is
    noted. Columns: ``base`` (TLSA base domain),
    ``triplet``, ``usage``, ``selector``, ``mtype``, ``presented`` (a chain
    was obtained from some address), ``matches`` (the record matches a
    presented certificate), ``depth`` (lowest matching depth, -1 for none),
    ``anchor`` / ``anchor_org`` / ``anchor_kind`` (the matching certificate's
    subject CN and O, and leaf, intermediate or root), ``host_verdict``,
    ``domains`` (domains with an MX host using this RRset).
    """
    return (checks or check_records(scan)).records


def _depth(record: Mapping[str, Any], chains: Sequence[Sequence[bytes]], pool: CertPool) -> int:
    """The lowest depth at which ``record`` matches a certificate of ``chains``, -1 for none:
    the scan's (``tlsa.depth``), or computed here when the dataset has none."""
    depth = record.get("depth")
    if depth is not None:
        return int(depth)
    if not chains:
        return -1
    fields = (record["usage"], record["selector"], record["mtype"], record["data"])
    return record_depth(TlsaRecord(*fields), chains, pool)


def _certificate(
    record: Mapping[str, Any], depth: int, chains: Sequence[Sequence[bytes]], pool: CertPool
) -> bytes | None:
    """The certificate ``record`` matches at ``depth``: the one ``chains`` (sorted) hold
    there, or when they hold several, the first that matches (hashed to tell)."""
    found = list(dict.fromkeys(chain[depth] for chain in chains if len(chain) > depth))
    if len(found) == 1:
        return found[0]
    selector, mtype, data = record["selector"], record["mtype"], record["data"]
    return next((cert for cert in found if pool.digest(cert, selector, mtype) == data), None)


def _check_rrsets(rrsets: Sequence[Mapping[str, Any]], per_base: Mapping[str, int]) -> pd.DataFrame:
    # One pool and one name cache for the whole call: providers present the same
    # certificates on every host, so each is hashed (if at all) and parsed once.
    pool = CertPool()
    anchors: dict[tuple[bytes, int], _Anchor] = {}
    rows: list[dict[str, Any]] = []
    for obs in rrsets:
        chains = sorted({tuple(chain) for chain in obs["chains"] or ()})
        for record in obs["tlsa"] or ():
            depth = _depth(record, chains, pool)
            cert = _certificate(record, depth, chains, pool) if depth >= 0 else None
            anchor = None
            if cert is not None:
                if (cert, depth) not in anchors:
                    anchors[cert, depth] = _anchor(cert, depth)
                anchor = anchors[cert, depth]
            rows.append(
                {
                    "base": obs["base"],
                    "triplet": f"{record['usage']} {record['selector']} {record['mtype']}",
                    "usage": record["usage"],
                    "selector": record["selector"],
                    "mtype": record["mtype"],
                    "presented": bool(chains),
                    "matches": depth >= 0,
                    "depth": depth,
                    "anchor": anchor.name if anchor else None,
                    "anchor_org": anchor.organization if anchor else None,
                    "anchor_kind": anchor.kind if anchor else None,
                    "host_verdict": obs["verdict"],
                    "domains": int(per_base.get(obs["base"], 0)),
                }
            )
    out = pd.DataFrame(rows, columns=_RECORD_COLUMNS)
    for column in ("usage", "selector", "mtype", "depth", "domains"):
        out[column] = out[column].astype("int64")
    for column in ("presented", "matches"):
        out[column] = out[column].astype("bool")
    return out


_RECORD_COLUMNS = (
    "base", "triplet", "usage", "selector", "mtype", "presented", "matches", "depth",
    "anchor", "anchor_org", "anchor_kind", "host_verdict", "domains",
)  # fmt: skip

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

This compares digests that the scan already had in hand: the dataset keeps,
per MX host, only the record that authenticated (``matched``,
``match_depth``), not the lowest depth each record matches at. Until the
dataset carries that per record, the digests are recomputed here with the
scanner's own :class:`scanner.match.batch.CertPool`, each certificate hashed
once per selector and matching type, and this module is the only place in
analysis that does so.
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
        SELECT base, any_value(tlsa) AS tlsa, any_value(chains) AS chains,
               any_value(CAST(verdict AS VARCHAR)) AS verdict
        FROM secure GROUP BY base ORDER BY base
        """,
    ).to_arrow_table()
    pairs = frame(scan, f"WITH {secure_hosts()} SELECT DISTINCT domain, base FROM secure")
    per_base = pairs.groupby("base")["domain"].nunique().to_dict()
    return RecordChecks(_check_rrsets(rrsets.to_pylist(), per_base), pairs)


def tlsa_records(
    scan: duckdb.DuckDBPyRelation, *, checks: RecordChecks | None = None
) -> pd.DataFrame:
    """Every record of every secure TLSA RRset, checked against what the host presented.

    For each record, the certificates of the chains the host's addresses
    presented are hashed as the record's selector and matching type say, and
    the depths that match are noted. Columns: ``base`` (TLSA base domain),
    ``triplet``, ``usage``, ``selector``, ``mtype``, ``presented`` (a chain
    was obtained from some address), ``matches`` (the record matches a
    presented certificate), ``depth`` (lowest matching depth, -1 for none),
    ``anchor`` / ``anchor_org`` / ``anchor_kind`` (the matching certificate's
    subject CN and O, and leaf, intermediate or root), ``host_verdict``,
    ``domains`` (domains with an MX host using this RRset).
    """
    return (checks or check_records(scan)).records


def _lowest_match(
    record: Mapping[str, Any], chains: Sequence[Sequence[bytes]], pool: CertPool
) -> tuple[int, bytes] | None:
    """(depth, certificate) of the lowest certificate presented that ``record`` matches."""
    selector, mtype = record["selector"], record["mtype"]
    if selector not in (0, 1) or mtype not in (0, 1, 2):
        return None  # an unknown selector or type matches nothing (RFC 6698 section 2.1)
    found: tuple[int, bytes] | None = None
    for chain in chains:
        for depth, cert in enumerate(chain):
            if pool.digest(cert, selector, mtype) == record["data"]:
                if found is None or depth < found[0]:
                    found = (depth, cert)
                break
    return found


def _check_rrsets(rrsets: Sequence[Mapping[str, Any]], per_base: Mapping[str, int]) -> pd.DataFrame:
    # One pool and one name cache for the whole call: providers present the same
    # certificates on every host, so each is hashed and parsed once.
    pool = CertPool()
    anchors: dict[tuple[bytes, int], _Anchor] = {}
    rows: list[dict[str, Any]] = []
    for obs in rrsets:
        chains = sorted({tuple(chain) for chain in obs["chains"] or ()})
        for record in obs["tlsa"] or ():
            found = _lowest_match(record, chains, pool)
            anchor = None
            if found is not None:
                depth, cert = found
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
                    "matches": found is not None,
                    "depth": found[0] if found else -1,
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

"""How secure TLSA RRsets are prepared for a change of key or of CA.

RFC 7671 section 8 (TLSA publisher requirements) has the record of the next
key published before the key is used; a "3 1 1" record kept together with a
"2 1 1" record for the issuing CA lets either the key or the CA change
without leaving the RRset without a match. Which records match which
certificate comes from analysis.metrics.records, so stale records are found
even on hosts that pass thanks to another record. A DANE-TA record (RFC 7672
section 3.1.2) that pins an intermediate CA certificate (say a Let's Encrypt
intermediate) breaks when the CA moves its leaf certificates to another
intermediate, unless a DANE-EE record or a pinned root also matches:
:func:`ta_exposure` counts those RRsets, :func:`ta_anchors` names the pinned
certificates.

Every table here counts secure RRsets only, so it gives the same result on
``Scan.dane`` as on every row; pass one :class:`~analysis.metrics.records.RecordChecks`
as ``checks=`` to compute several from one look at the chains.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from analysis.metrics.records import RecordChecks, check_records

__all__ = ["UNMATCHED_ANCHOR", "rollover_readiness", "ta_anchors", "ta_exposure"]

UNMATCHED_ANCHOR = "(matches no certificate presented)"

_EXPOSURES = ("ee_backup", "root_anchor", "intermediate_only", "unmatched", "no_chain")


def rollover_readiness(
    scan: duckdb.DuckDBPyRelation, *, checks: RecordChecks | None = None
) -> pd.DataFrame:
    """How secure TLSA RRsets are prepared for a key or certificate change.

    Measures, each over distinct RRsets: ``rrsets`` (all); ``single_record``;
    ``multiple_records`` (two or more); ``ee_and_ta`` (a "3 1 1" and a "2 1 1"
    record); ``two_ee_keys`` (two or more DANE-EE SPKI records: current and
    next key); and, among RRsets whose host presented a chain
    (``with_chain``), ``unmatched_record`` (some record matches no certificate
    presented: a next key published ahead, or a stale record left behind) and
    ``nothing_matches`` (no record matches: broken). Columns:
    ``measure``, ``rrsets``, ``share`` (of ``rrsets``, or of ``with_chain`` for
    the last two), ``domains`` (distinct domains with such an RRset).
    """
    checks = checks or check_records(scan)
    records = checks.records
    per = (
        records.assign(
            ee=records["triplet"] == "3 1 1",
            ta=records["triplet"] == "2 1 1",
            ee_key=(records["usage"] == 3) & (records["selector"] == 1),
        )
        .groupby("base")
        .agg(
            n=("triplet", "size"),
            ee=("ee", "any"),
            ta=("ta", "any"),
            ee_keys=("ee_key", "sum"),
            presented=("presented", "any"),
            all_match=("matches", "all"),
            any_match=("matches", "any"),
        )
    )
    per["ee_ta"] = per["ee"] & per["ta"]
    with_chain = per[per["presented"]]
    measures: list[tuple[str, pd.Index, int]] = [
        ("rrsets", per.index, len(per)),
        ("single_record", per.index[per["n"] == 1], len(per)),
        ("multiple_records", per.index[per["n"] >= 2], len(per)),
        ("ee_and_ta", per.index[per["ee_ta"].astype(bool)], len(per)),
        ("two_ee_keys", per.index[per["ee_keys"] >= 2], len(per)),
        ("with_chain", with_chain.index, len(per)),
        ("unmatched_record", with_chain.index[~with_chain["all_match"]], len(with_chain)),
        ("nothing_matches", with_chain.index[~with_chain["any_match"]], len(with_chain)),
    ]
    return pd.DataFrame(
        {
            "measure": [m for m, _, _ in measures],
            "rrsets": [len(index) for _, index, _ in measures],
            "share": [len(index) / whole if whole else 0.0 for _, index, whole in measures],
            "domains": [checks.domains(index) for _, index, _ in measures],
        }
    )


def _exposures(records: pd.DataFrame) -> pd.Series:
    """Exposure class (:func:`ta_exposure`) of every RRset holding a DANE-TA record."""
    ta_match = (records["usage"] == 2) & records["matches"]
    flags = (
        pd.DataFrame(
            {
                "base": records["base"],
                "ta": records["usage"] == 2,
                "presented": records["presented"],
                "ee_backup": (records["usage"] == 3) & (records["depth"] == 0),
                "root_anchor": ta_match & (records["anchor_kind"] == "root"),
                "intermediate_only": ta_match & (records["anchor_kind"] == "intermediate"),
            }
        )
        .groupby("base")
        .any()
    )
    flags = flags[flags["ta"]]
    # First matching class wins, in the order of the ta_exposure docstring.
    classes = np.select(
        [~flags["presented"], flags["ee_backup"], flags["root_anchor"], flags["intermediate_only"]],
        ["no_chain", "ee_backup", "root_anchor", "intermediate_only"],
        default="unmatched",
    )
    return pd.Series(classes, index=flags.index, dtype="str")


def ta_exposure(
    scan: duckdb.DuckDBPyRelation, *, checks: RecordChecks | None = None
) -> pd.DataFrame:
    """What happens to RRsets with DANE-TA records when the CA changes intermediates.

    Every RRset holding a DANE-TA(2) record is put in one class, first match:
    ``no_chain`` (no certificate was presented: cannot tell); ``ee_backup``
    (a DANE-EE record matches the leaf: survives if the key is kept);
    ``root_anchor`` (a DANE-TA record matches a root); ``intermediate_only``
    (only intermediates match: breaks when the CA issues from another
    intermediate); ``unmatched`` (no DANE-TA record matches a presented
    certificate: a stale pin, or an anchor published only in DNS).
    Columns: ``exposure``, ``rrsets``, ``domains``, ``share`` (of RRsets).
    """
    checks = checks or check_records(scan)
    classes = _exposures(checks.records)
    total = len(classes)
    rrsets = [int((classes == e).sum()) for e in _EXPOSURES]
    return pd.DataFrame(
        {
            "exposure": list(_EXPOSURES),
            "rrsets": rrsets,
            "domains": [checks.domains(classes.index[classes == e]) for e in _EXPOSURES],
            "share": [n / total if total else 0.0 for n in rrsets],
        }
    )


def ta_anchors(
    scan: duckdb.DuckDBPyRelation, *, checks: RecordChecks | None = None
) -> pd.DataFrame:
    """Which certificates DANE-TA records pin, and how many RRsets depend on each.

    One row per pinned certificate (by subject CN and O, and whether it is a
    root or an intermediate), plus one row, ``anchor`` =
    :data:`UNMATCHED_ANCHOR` and ``anchor_kind = 'unmatched'``, for DANE-TA
    records that match no certificate presented. ``rrsets`` / ``domains``
    count RRsets pinning it and the domains using them; ``at_risk_rrsets`` /
    ``at_risk_domains`` those whose only match is this intermediate
    (``intermediate_only`` in :func:`ta_exposure`): they break when the CA
    issues from another intermediate. Columns: ``anchor``, ``anchor_org``,
    ``anchor_kind``, ``rrsets``, ``domains``, ``at_risk_rrsets``,
    ``at_risk_domains``; most RRsets first.
    """
    checks = checks or check_records(scan)
    classes = _exposures(checks.records)
    at_risk = set(classes.index[classes == "intermediate_only"])
    ta = checks.records[checks.records["usage"] == 2].fillna(
        {"anchor": UNMATCHED_ANCHOR, "anchor_org": "", "anchor_kind": "unmatched"}
    )
    keys = ["anchor", "anchor_org", "anchor_kind"]
    rows = []
    for (anchor, org, kind), group in ta.groupby(keys, sort=False):
        bases = set(group["base"])
        risky = bases & at_risk if kind == "intermediate" else set()
        counts = (len(bases), checks.domains(bases), len(risky), checks.domains(risky))
        rows.append((anchor, org, kind, *counts))
    columns = [*keys, "rrsets", "domains", "at_risk_rrsets", "at_risk_domains"]
    out = pd.DataFrame(rows, columns=columns)
    return out.sort_values(
        ["rrsets", "anchor"], ascending=[False, True], kind="stable"
    ).reset_index(drop=True)

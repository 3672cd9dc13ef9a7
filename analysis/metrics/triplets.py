"""Which TLSA parameters DANE domains publish: usage, selector and matching
type (RFC 6698 section 2.1; RFC 7672 section 3.1 recommends "3 1 1" and
"2 1 1" for SMTP), counted per record, per RRset and per domain.

Only secure TLSA RRsets (``tlsa_state = 'records'``) count, so the function
gives the same result on ``Scan.dane`` as on every row.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from analysis.metrics.sql import frame, secure_hosts, share

__all__ = ["tlsa_triplets"]


def tlsa_triplets(scan: duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """Usage, selector and matching type of secure TLSA records, in three units.

    ``unit = 'record'``: each record of each distinct RRset once; ``'rrset'``:
    RRsets holding at least one record with the triplet; ``'domain'``: domains
    with at least one such record on any MX host. Shares are of all records,
    all RRsets and all domains with secure TLSA records; per RRset and per
    domain they do not sum to 1 (an RRset can hold several triplets).
    Columns: ``triplet`` ("3 1 1"), ``usage``, ``selector``, ``mtype``,
    ``unit``, ``count``, ``share``; largest first within each unit.
    """
    query = f"""
        WITH {secure_hosts("h.tlsa AS tlsa")},
        rrsets AS (SELECT base, any_value(tlsa) AS tlsa FROM secure GROUP BY base),
        records AS (SELECT base, unnest(tlsa) AS r FROM rrsets),
        domain_records AS (SELECT DISTINCT domain, r.usage, r.selector, r.mtype
                           FROM (SELECT domain, unnest(tlsa) AS r FROM secure))
        SELECT 'record' AS unit, r.usage AS usage, r.selector AS selector, r.mtype AS mtype,
               count(*) AS count, (SELECT count(*) FROM records) AS total
        FROM records GROUP BY ALL
        UNION ALL
        SELECT 'rrset', r.usage, r.selector, r.mtype, count(DISTINCT base),
               (SELECT count(*) FROM rrsets)
        FROM records GROUP BY ALL
        UNION ALL
        SELECT 'domain', usage, selector, mtype, count(*),
               (SELECT count(DISTINCT domain) FROM secure)
        FROM domain_records GROUP BY ALL
    """
    raw = frame(scan, query)
    out = pd.DataFrame(
        {
            "triplet": [
                f"{u} {s} {m}"
                for u, s, m in zip(raw["usage"], raw["selector"], raw["mtype"], strict=True)
            ],
            "usage": raw["usage"].astype("int64"),
            "selector": raw["selector"].astype("int64"),
            "mtype": raw["mtype"].astype("int64"),
            "unit": pd.Categorical(raw["unit"], ["record", "rrset", "domain"], ordered=True),
            "count": raw["count"].astype("int64"),
            "share": share(raw["count"], raw["total"]),
        }
    )
    return out.sort_values(
        ["unit", "count", "triplet"], ascending=[True, False, True], kind="stable"
    ).reset_index(drop=True)

"""Who operates the MX hosts of DANE domains, and how concentrated they are.

The operator of an MX host is its registered domain. Without a public suffix
list offline, it is approximated by the last two labels of the host name:
exact for names under ``.com``, ``.de`` or ``.nl``, too short under
multi-label suffixes such as ``.co.uk`` (``mx.example.co.uk`` gives
``co.uk``), which groups unrelated operators there.

Only MX hosts with secure TLSA records (RFC 7672 section 2.2) count, so the
function gives the same result on ``Scan.dane`` as on every row.
"""

from __future__ import annotations

from typing import Literal

import duckdb
import pandas as pd

from analysis.metrics.sql import frame, secure_hosts, share

__all__ = ["provider_concentration"]

_OPERATOR = (
    "CASE WHEN contains(host, '.') THEN regexp_extract(host, '[^.]+\\.[^.]+$') ELSE host END"
)


def provider_concentration(
    scan: duckdb.DuckDBPyRelation,
    *,
    by: Literal["operator", "host"] = "operator",
    top: int | None = None,
) -> pd.DataFrame:
    """Who operates the MX hosts of DANE domains, largest first.

    Counts MX hosts with secure TLSA records and the domains they serve, per
    host name (``by='host'``) or per operator (``by='operator'``, the
    registered domain approximated by the last two labels: see the module
    docstring). ``share`` is of all domains with an MX host with secure TLSA
    records; a domain whose hosts belong to two operators counts for both, so
    ``cumulative_share`` can exceed 1 at the tail. Columns: ``rank``,
    ``provider``, ``hosts``, ``domains``, ``dane_valid`` (of those domains),
    ``share``, ``cumulative_share``.
    """
    key = "host" if by == "host" else _OPERATOR
    query = f"""
        WITH {secure_hosts()},
        keyed AS (SELECT domain, domain_verdict, host, {key} AS provider FROM secure)
        SELECT provider, count(DISTINCT host) AS hosts, count(DISTINCT domain) AS domains,
               count(DISTINCT domain) FILTER (domain_verdict = 'dane_valid') AS dane_valid,
               (SELECT count(DISTINCT domain) FROM secure) AS total
        FROM keyed GROUP BY provider
        ORDER BY domains DESC, provider
    """
    raw = frame(scan, query)
    total = int(raw["total"].max()) if len(raw) else 0
    out = pd.DataFrame(
        {
            "rank": pd.RangeIndex(1, len(raw) + 1),
            "provider": raw["provider"].astype("str"),
            "hosts": raw["hosts"].astype("int64"),
            "domains": raw["domains"].astype("int64"),
            "dane_valid": raw["dane_valid"].astype("int64"),
        }
    )
    out["share"] = share(out["domains"], total)
    out["cumulative_share"] = out["share"].cumsum()
    return out.head(top) if top is not None else out

"""The SQL every topic of analysis.metrics shares: a query over one relation,
shares of a whole, and the rows of the MX hosts where DANE applies.

The per-host fragments follow RFC 7672 section 2.2: DANE applies only to MX
hosts reached through a DNSSEC-secure MX RRset (section 2.2.1) whose TLSA
RRset, at the TLSA base domain (the host name or its CNAME expansion, section
2.2.2), is secure and non-empty (``tlsa_state = 'records'``).
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb
import pandas as pd

# One row per (domain, MX host), the host as the struct ``h``.
HOSTS = "SELECT domain, verdict AS domain_verdict, unnest(mx_hosts) AS h FROM scan"

# DANE applies only under a secure MX RRset (RFC 7672 section 2.2.1): the per-host
# lambda runs on those few rows only, which saves most of its cost on a large scan.
SECURE_TLSA = (
    "CASE WHEN mx_dnssec = 'secure' "
    "THEN coalesce(list_bool_or([h.tlsa_state = 'records' for h in mx_hosts]), false) "
    "ELSE false END"
)


def secure_hosts(*columns: str) -> str:
    """The CTE ``secure``: one row per (domain, MX host with secure TLSA records)."""
    extra = "".join(f", {c}" for c in columns)
    return f"""
    secure AS (
        SELECT domain, domain_verdict, h.host AS host,
               coalesce(h.tlsa_base, h.host) AS base{extra}
        FROM ({HOSTS}) WHERE h.tlsa_state = 'records'
    )
    """


def query(
    relation: duckdb.DuckDBPyRelation, sql: str, name: str = "scan"
) -> duckdb.DuckDBPyRelation:
    """``sql`` over ``relation``, which it sees as the table ``name``."""
    result = relation.query(name, sql)
    if result is None:  # only for statements that return nothing, never a SELECT
        raise ValueError(f"query returned no relation: {sql[:60]}")
    return result


def frame(scan: duckdb.DuckDBPyRelation, sql: str) -> pd.DataFrame:
    """Run ``sql`` with the relation visible as the table ``scan``, as a DataFrame."""
    return query(scan, sql).df()


def sql_list(values: Iterable[str]) -> str:
    """A SQL list literal of known constant strings (never user input)."""
    return "(" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + ")"


def share(part: pd.Series, whole: pd.Series | int | float) -> pd.Series:
    """part / whole as floats, 0 where the whole is 0."""
    whole_series = pd.Series(whole, index=part.index) if not isinstance(whole, pd.Series) else whole
    out = part.astype("float64") / whole_series.astype("float64").where(whole_series != 0)
    return out.fillna(0.0)

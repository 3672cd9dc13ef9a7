"""How the DANE state of each domain changed between two scans.

A domain's state in one scan follows RFC 7672 section 2.2: DANE can only
fail under a DNSSEC-secure MX RRset (section 2.2.1), so a failing MX host
counts only there; a bogus MX RRset is a state of its own. Both functions
count every domain, so they need every row (``ScanDomains.domains`` is
enough), and both relations must belong to one DuckDB connection.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import duckdb
import pandas as pd

from analysis.metrics.sql import query, sql_list
from analysis.metrics.verdicts import FAILING_HOST_VERDICTS

__all__ = ["CHANGES", "changed_domains", "scan_diff"]

# (DANE state in the old scan, in the new scan) -> what happened (see scan_diff).
CHANGES: Mapping[tuple[str, str], str] = MappingProxyType(
    {
        ("none", "valid"): "adopted",
        ("none", "failing"): "adopted broken",
        ("valid", "failing"): "broke",
        ("valid", "bogus"): "broke",
        ("failing", "valid"): "fixed",
        ("bogus", "valid"): "fixed",
        ("valid", "none"): "dropped",
        ("failing", "none"): "dropped",
    }
)


def _states(scan: duckdb.DuckDBPyRelation, name: str) -> duckdb.DuckDBPyRelation:
    failing = sql_list(FAILING_HOST_VERDICTS)
    return query(
        scan,
        f"""
        SELECT domain, CASE
            WHEN verdict = 'dane_valid' THEN 'valid'
            WHEN verdict IN ('dane_partial', 'dane_invalid') THEN 'failing'
            WHEN verdict = 'dnssec_bogus' THEN 'bogus'
            -- A host can fail DANE only under a secure MX RRset (see sql.SECURE_TLSA).
            WHEN mx_dnssec = 'secure' THEN CASE
                WHEN coalesce(list_bool_or([h.verdict IN {failing} FOR h IN mx_hosts]), false)
                THEN 'failing' ELSE 'none' END
            ELSE 'none' END AS {name}
        FROM scan
        """,
    )


def _joined_states(
    old: duckdb.DuckDBPyRelation, new: duckdb.DuckDBPyRelation, how: str
) -> duckdb.DuckDBPyRelation:
    # Aliases: a relation compared with itself (or two over one table) would clash.
    left = _states(old, "old_state").set_alias("old_states")
    right = _states(new, "new_state").set_alias("new_states")
    return left.join(right, "domain", how=how)


def _change(old: str, new: str) -> str:
    if old == "absent":
        return "only in new"
    if new == "absent":
        return "only in old"
    if old == new:
        return "unchanged"
    return CHANGES.get((old, new), "other")


def scan_diff(old: duckdb.DuckDBPyRelation, new: duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """How the DANE state of each domain changed between two scans.

    A domain's state in one scan is ``valid`` (verdict ``dane_valid``),
    ``failing`` (a DANE verdict other than valid, or an MX host whose DANE
    check failed), ``bogus`` (MX RRset failed DNSSEC validation), ``none``, or
    ``absent`` (not in that scan). Pairs of states are named by
    :data:`CHANGES` (adopted, adopted broken, broke, fixed, dropped), and
    ``unchanged``, ``only in old``, ``only in new``, ``other``. Both relations
    must belong to the same DuckDB connection. Columns: ``change``,
    ``old_state``, ``new_state``, ``domains``; one row per pair of states seen.
    """
    joined = _joined_states(old, new, how="outer")
    raw = query(
        joined,
        "SELECT coalesce(old_state, 'absent') AS old_state, "
        "coalesce(new_state, 'absent') AS new_state, count(*) AS domains FROM j GROUP BY ALL",
        "j",
    ).df()
    raw.insert(
        0,
        "change",
        [_change(o, n) for o, n in zip(raw["old_state"], raw["new_state"], strict=True)],
    )
    raw["domains"] = raw["domains"].astype("int64")
    return raw.sort_values(["change", "old_state", "new_state"], kind="stable").reset_index(
        drop=True
    )


def changed_domains(
    old: duckdb.DuckDBPyRelation,
    new: duckdb.DuckDBPyRelation,
    change: str,
    *,
    limit: int | None = 1000,
) -> pd.DataFrame:
    """The domains behind one ``change`` of :func:`scan_diff`, sorted by name.

    Columns: ``domain``, ``old_state``, ``new_state``.
    """
    pairs = [pair for pair, name in CHANGES.items() if name == change]
    if not pairs:
        raise ValueError(f"unknown change {change!r}: one of {sorted(set(CHANGES.values()))}")
    condition = " OR ".join(f"(old_state = '{o}' AND new_state = '{n}')" for o, n in pairs)
    joined = _joined_states(old, new, how="inner")
    sql = f"SELECT domain, old_state, new_state FROM j WHERE {condition} ORDER BY domain"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return query(joined, sql, "j").df()

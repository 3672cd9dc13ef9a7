"""The columns beside DANE (schema 5, issue 19) as DuckDB relations.

They are flat, per-domain columns, so they are read apart from the DANE
projection of analysis.load (which only the domains where DANE is in play
need): every domain's MTA-STS record, fetch and mode, TLS-RPT record, the
effective policy and its outcome, the relaxed verdict (RFC 7672 s2.2.1) and
the verdicts ``--days-ahead`` days later. A part of an earlier schema (4)
has none of these columns: they read as null there (pyarrow's dataset fills
a column a file lacks), so the metrics count such domains as "not looked up".

The per-host MTA-STS judgements are nested in ``mx_hosts``; they are read
only for the domains whose ``_mta-sts`` record is valid, a small share of a
survey.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow.compute as pc
import pyarrow.dataset as pads

from analysis.load import Dataset
from analysis.metrics.sql import query
from scanner.output.schema import SCHEMA

BESIDE_COLUMNS: tuple[str, ...] = (
    "domain",
    "verdict",
    "verdict_relaxed",
    "mta_sts_record",
    "mta_sts_fetch",
    "mta_sts_mode",
    "mta_sts_policy_error",
    "tlsrpt_record",
    "effective_policy",
    "effective_outcome",
    "days_ahead",
    "verdict_ahead",
    "effective_outcome_ahead",
)


@dataclass(frozen=True, slots=True)
class Beside:
    """``domains``: a row per domain with BESIDE_COLUMNS; ``sts_hosts``: a row
    per (domain with a valid MTA-STS record, MX host) with ``domain``,
    ``mode``, ``host`` and ``mta_sts`` (the host's StsHostStatus)."""

    domains: duckdb.DuckDBPyRelation
    sts_hosts: duckdb.DuckDBPyRelation


def load_beside(dataset: Dataset, connection: duckdb.DuckDBPyConnection) -> Beside:
    """Read the columns beside DANE of every part of ``dataset`` into ``connection``."""
    parts = pads.dataset(list(dataset.parts), schema=SCHEMA, filesystem=dataset.filesystem)
    domains = parts.to_table(columns=list(BESIDE_COLUMNS))
    with_sts = parts.to_table(
        columns=["domain", "mta_sts_mode", "mx_hosts"],
        filter=pc.field("mta_sts_record") == "valid",
    )
    hosts = query(
        connection.from_arrow(with_sts),
        "SELECT domain, mta_sts_mode AS mode, h.host AS host, h.mta_sts AS mta_sts "
        "FROM (SELECT domain, mta_sts_mode, unnest(mx_hosts) AS h FROM d)",
        "d",
    )
    return Beside(connection.from_arrow(domains), hosts)

"""The adoption funnel: how many domains reach each step towards DANE.

The stages, RFC 7672 section 2.2 in order: all domains; domains with mail
hosts (an MX RRset with hosts, or an implicit MX, RFC 5321 section 5.1); with
a DNSSEC-secure MX RRset (without it DANE cannot apply, RFC 7672 section
2.2.1); with at least one MX host whose TLSA RRset is secure and non-empty
(``tlsa_state = 'records'``); and DANE-valid (DomainVerdict ``dane_valid``:
every MX host that accepts connections authenticates). Each stage is a subset
of the one before, by construction. Domains without an MX RRset that use their
implicit MX carry the verdict ``no_mx_record`` and so never count as DANE-valid.

Both functions count every domain, so they need every row (``Scan.domains``).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd

from analysis.metrics.sql import SECURE_TLSA, frame, share

__all__ = ["FUNNEL_STAGES", "Stage", "funnel", "funnel_by_tld"]


@dataclass(frozen=True, slots=True)
class Stage:
    """One stage of the adoption funnel."""

    key: str
    label: str


FUNNEL_STAGES: tuple[Stage, ...] = (
    Stage("domains", "domains"),
    Stage("with_mx", "with MX"),
    Stage("secure_mx", "with secure MX"),
    Stage("secure_tlsa", "MX host with secure TLSA"),
    Stage("dane_valid", "DANE-valid"),
)

_TLD = "lower(split_part(domain, '.', -1))"


def _funnel_counts(scan: duckdb.DuckDBPyRelation, by: str | None) -> pd.DataFrame:
    group = f"{by} AS tld," if by else ""
    query = f"""
        WITH flags AS (
            SELECT {group}
                mx_kind IN ('hosts', 'implicit') AS with_mx,
                mx_dnssec = 'secure' AS secure,
                {SECURE_TLSA} AS tlsa,
                verdict = 'dane_valid' AS valid
            FROM scan
        )
        SELECT {"tld," if by else ""}
            count(*) AS domains,
            count(*) FILTER (with_mx) AS with_mx,
            count(*) FILTER (with_mx AND secure) AS secure_mx,
            count(*) FILTER (with_mx AND secure AND tlsa) AS secure_tlsa,
            count(*) FILTER (with_mx AND secure AND tlsa AND valid) AS dane_valid
        FROM flags
        {"GROUP BY tld" if by else ""}
    """
    return frame(scan, query)


def _long_funnel(wide: pd.DataFrame, ids: list[str]) -> pd.DataFrame:
    """Stage columns to rows, with each stage's share of the first and of the previous."""
    keys = [stage.key for stage in FUNNEL_STAGES]
    counts = wide[keys].astype("int64").to_numpy()
    previous = counts[:, [0, *range(len(keys) - 1)]]
    columns = {column: wide[column].repeat(len(keys)).to_numpy() for column in ids}
    long = pd.DataFrame(
        {
            **columns,
            "stage": pd.Categorical(keys * len(wide), categories=keys, ordered=True),
            "domains": counts.ravel(),
        }
    )
    long["share_of_all"] = share(long["domains"], pd.Series(counts[:, [0] * len(keys)].ravel()))
    long["share_of_previous"] = share(long["domains"], pd.Series(previous.ravel()))
    return long


def funnel(scan: duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """The adoption funnel over every domain (stages: :data:`FUNNEL_STAGES`).

    Columns: ``stage`` (ordered categorical of stage keys), ``label``,
    ``domains``, ``share_of_all`` (of all domains), ``share_of_previous``
    (of the stage before; 1 for the first stage).
    """
    wide = _funnel_counts(scan, None)
    long = _long_funnel(wide, [])
    labels = {s.key: s.label for s in FUNNEL_STAGES}
    long.insert(1, "label", long["stage"].map(labels).astype("str"))
    return long


def funnel_by_tld(scan: duckdb.DuckDBPyRelation, *, top: int | None = None) -> pd.DataFrame:
    """The funnel per top-level domain (the last label of the domain name).

    TLDs are ordered by their number of domains, largest first; ``top`` keeps
    the largest ones. Columns: ``tld``, ``stage``, ``domains``,
    ``share_of_all`` (of the TLD's domains), ``share_of_previous``.
    """
    wide = _funnel_counts(scan, _TLD)
    wide = wide.sort_values(["domains", "tld"], ascending=[False, True], kind="stable")
    if top is not None:
        wide = wide.head(top)
    order = list(wide["tld"])
    long = _long_funnel(wide, ["tld"])
    long["tld"] = pd.Categorical(long["tld"], categories=order, ordered=True)
    return long.sort_values(["tld", "stage"], kind="stable").reset_index(drop=True)

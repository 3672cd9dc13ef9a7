"""Beside DANE: MTA-STS (RFC 8461) and TLS-RPT (RFC 8460) adoption, their
overlap with DANE, the policy a sender applies, the relaxed DANE reading
(RFC 7672 s2.2.1) and what breaks within ``--days-ahead`` days.

Every function takes the relation of analysis.beside (``Beside.domains``, a
row per domain; :func:`sts_host_statuses` ``Beside.sts_hosts``) and counts
*domains* unless it says otherwise. A domain whose row has no value (a scan
with ``--no-mta-sts``, or a dataset of schema 4) counts as
``not_looked_up``. Definitions:

- MTA-STS *adopted*: a valid ``_mta-sts`` record (s3.1); *usable*: and a
  policy fetched and parsed (s3.2, s3.3) whose mode is enforce or testing.
- DANE *adopted*: a domain verdict other than no_dane and the verdicts of
  domains without mail or without a lookup result (the funnel's
  "secure TLSA" stage: analysis.metrics.funnel).
"""

from __future__ import annotations

import duckdb
import pandas as pd

from analysis.metrics.sql import frame, share

__all__ = [
    "breaking_within",
    "dane_sts_overlap",
    "effective_policies",
    "mta_sts_adoption",
    "relaxed_dane",
    "sts_host_statuses",
    "tlsrpt_adoption",
]

_NOT_LOOKED_UP = "'not_looked_up'"
# Domains that have mail to protect (the verdicts of a domain with MX hosts).
_WITH_MAIL = "verdict NOT IN ('nxdomain', 'null_mx', 'input_error', 'dns_error', 'internal_error')"
_DANE = "verdict IN ('dane_valid', 'dane_partial', 'dane_invalid', 'not_tested', 'undetermined')"
_STS_USABLE = "mta_sts_record = 'valid' AND mta_sts_mode IN ('enforce', 'testing')"


def _with_shares(counts: pd.DataFrame, column: str = "domains") -> pd.DataFrame:
    counts["share"] = share(counts[column], int(counts[column].sum()))
    return counts


def mta_sts_adoption(beside: duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """Domains per MTA-STS state: the record (s3.1), then for a valid one the
    fetch (FetchStatus, s3.3), then for a fetched one the mode or
    ``syntax_error`` (s3.2).

    Columns: ``record``, ``fetch_status``, ``mode``, ``domains``, ``share`` (of all).
    """
    counts = frame(
        beside,
        f"""SELECT coalesce(mta_sts_record, {_NOT_LOOKED_UP}) AS record,
                   coalesce(mta_sts_fetch, '') AS fetch_status,
                   CASE WHEN mta_sts_fetch = 'ok'
                        THEN coalesce(mta_sts_mode, 'syntax_error') ELSE '' END AS mode,
                   count(*) AS domains
            FROM scan GROUP BY ALL ORDER BY domains DESC, record, fetch_status, mode""",
    )
    return _with_shares(counts)


def tlsrpt_adoption(beside: duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """Domains per TLS-RPT record state (RFC 8460 s3).

    Columns: ``record``, ``domains``, ``share``.
    """
    counts = frame(
        beside,
        f"""SELECT coalesce(tlsrpt_record, {_NOT_LOOKED_UP}) AS record, count(*) AS domains
            FROM scan GROUP BY ALL ORDER BY domains DESC, record""",
    )
    return _with_shares(counts)


def dane_sts_overlap(beside: duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """Domains with mail, by the protections they publish: DANE only,
    MTA-STS only (usable: enforce or testing), both, neither.

    Columns: ``published``, ``domains``, ``share`` (of domains with mail).
    """
    counts = frame(
        beside,
        f"""SELECT CASE WHEN {_DANE} AND {_STS_USABLE} THEN 'both'
                        WHEN {_DANE} THEN 'dane_only'
                        WHEN {_STS_USABLE} THEN 'mta_sts_only'
                        ELSE 'neither' END AS published,
                   count(*) AS domains
            FROM scan WHERE {_WITH_MAIL} GROUP BY ALL""",
    )
    order = ["dane_only", "mta_sts_only", "both", "neither"]
    full = pd.DataFrame({"published": order}).merge(counts, on="published", how="left")
    full["domains"] = full["domains"].fillna(0).astype("int64")
    return _with_shares(full)


def effective_policies(beside: duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """Domains per effective policy and outcome of a sender that implements
    DANE and MTA-STS (scanner.effective: RFC 8461 s2, DANE first).

    Columns: ``policy``, ``outcome``, ``domains``, ``share`` (of domains with
    an effective policy).
    """
    counts = frame(
        beside,
        """SELECT effective_policy AS policy, effective_outcome AS outcome, count(*) AS domains
           FROM scan WHERE effective_policy IS NOT NULL
           GROUP BY ALL ORDER BY domains DESC, policy, outcome""",
    )
    return _with_shares(counts)


def sts_host_statuses(sts_hosts: duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """(domain, MX host) pairs under a valid MTA-STS record, per policy mode
    and StsHostStatus (RFC 8461 s4: the mx patterns, then PKIX); ``not_judged``
    where the host was not contacted or no policy applies.

    Columns: ``mode``, ``status``, ``pairs``, ``share`` (of all pairs).
    """
    counts = frame(
        sts_hosts,
        """SELECT coalesce(mode, 'no_policy') AS mode,
                  coalesce(mta_sts, 'not_judged') AS status, count(*) AS pairs
           FROM scan GROUP BY ALL ORDER BY pairs DESC, mode, status""",
    )
    return _with_shares(counts, "pairs")


def relaxed_dane(beside: duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """Domains whose verdict a sender that also uses DANE under an insecure
    MX RRset (RFC 7672 s2.2.1; Postfix's default) sees otherwise: strict
    verdict, relaxed verdict, domains. The rows with ``verdict = no_dane``
    and a relaxed ``dane_valid`` are the unsigned domains a DANE provider
    protects in practice.

    Columns: ``verdict``, ``verdict_relaxed``, ``domains``.
    """
    return frame(
        beside,
        """SELECT verdict, verdict_relaxed, count(*) AS domains FROM scan
           WHERE verdict_relaxed IS NOT NULL AND verdict_relaxed <> verdict
           GROUP BY ALL ORDER BY domains DESC, verdict, verdict_relaxed""",
    )


def breaking_within(beside: duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """Domains whose verdict or effective outcome changes ``days_ahead`` days
    after the scan with the same records and chains (certificate expiry):
    ``what`` is ``dane`` (verdict -> verdict_ahead) or ``effective``
    (effective_outcome -> effective_outcome_ahead). Empty for a scan
    without ``--days-ahead``.

    Columns: ``days``, ``what``, ``today``, ``later``, ``domains``.
    """
    return frame(
        beside,
        """SELECT days_ahead AS days, 'dane' AS what, verdict AS today, verdict_ahead AS later,
                  count(*) AS domains
           FROM scan WHERE days_ahead IS NOT NULL AND verdict_ahead <> verdict GROUP BY ALL
           UNION ALL
           SELECT days_ahead, 'effective', effective_outcome, effective_outcome_ahead, count(*)
           FROM scan WHERE days_ahead IS NOT NULL
                AND effective_outcome_ahead <> effective_outcome GROUP BY ALL
           ORDER BY what, domains DESC, today, later""",
    )

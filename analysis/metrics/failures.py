"""DANE failures, sorted into the categories of the literature.

Lee et al., "A Longitudinal and Comprehensive Study of the DANE Ecosystem in
Email" (USENIX Security 2020), sort DANE misconfigurations into six
categories. The dataset records finer outcomes (RFC 7672 section 2.2 for the
DNS side, section 3 for the records and the chain); they map as follows
(:data:`FAILURE_STATUSES`):

==============  =================================================================
Lee et al.      danescan status
==============  =================================================================
no TLSA         ``no_tlsa_on_host``: an MX host with a secure proof of no TLSA
                (``no_dane_absent``) in a domain where another MX host has TLSA
no certificate  ``fail_no_tls``: no certificate obtained (no STARTTLS, refused,
                connection or TLS failure)
no DS           ``tlsa_insecure``: TLSA records answered without DNSSEC validation
                (``tlsa_state = 'insecure'`` with records): published in a zone
                whose delegation has no DS, so senders cannot use them
bogus           ``dnssec_bogus`` (domain: the MX RRset failed validation) and
                ``fail_dns`` (host: TLSA lookup bogus or SERVFAIL under a secure
                host, so mail is deferred)
invalid fields  ``unusable``: only PKIX usages (0, 1) or malformed records
no match        ``fail_no_match``, ``fail_ta_name``, ``fail_ta_expired``,
                ``fail_chain``: records present and usable, the chain presented
                does not authenticate with them
==============  =================================================================

"No DS" is seen only where the scanner looked the TLSA RRset up under an
insecure answer, so the category counts what the scan saw, not every such
domain. A failed MX lookup without a validation error (``dns_error``) proves
nothing about DANE and is in no category.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import duckdb
import pandas as pd

from analysis.metrics.sql import HOSTS, frame, share, sql_list
from analysis.metrics.verdicts import FAILING_HOST_VERDICTS
from scanner.status import DaneVerdict, DomainVerdict

__all__ = [
    "FAILURE_STATUSES",
    "LEE_CATEGORIES",
    "FailureStatus",
    "failure_categories",
    "failure_taxonomy",
]


@dataclass(frozen=True, slots=True)
class FailureStatus:
    """A failure status of the dataset and the Lee et al. category it belongs to."""

    status: str
    category: str  # Lee et al. 2020
    level: Literal["domain", "host"]


FAILURE_STATUSES: tuple[FailureStatus, ...] = (
    FailureStatus("no_tlsa_on_host", "no TLSA", "host"),
    FailureStatus(DaneVerdict.FAIL_NO_TLS.value, "no certificate", "host"),
    FailureStatus("tlsa_insecure", "no DS", "host"),
    FailureStatus(DomainVerdict.DNSSEC_BOGUS.value, "bogus", "domain"),
    FailureStatus(DaneVerdict.FAIL_DNS.value, "bogus", "host"),
    FailureStatus(DaneVerdict.UNUSABLE.value, "invalid fields", "host"),
    FailureStatus(DaneVerdict.FAIL_NO_MATCH.value, "no match", "host"),
    FailureStatus(DaneVerdict.FAIL_TA_NAME.value, "no match", "host"),
    FailureStatus(DaneVerdict.FAIL_TA_EXPIRED.value, "no match", "host"),
    FailureStatus(DaneVerdict.FAIL_CHAIN.value, "no match", "host"),
)
LEE_CATEGORIES: tuple[str, ...] = tuple(dict.fromkeys(f.category for f in FAILURE_STATUSES))


def _failure_rows() -> str:
    host_statuses = sql_list(
        f.status
        for f in FAILURE_STATUSES
        if f.level == "host" and f.status in FAILING_HOST_VERDICTS
    )
    return f"""
        WITH hosts AS ({HOSTS}),
        dane_domains AS (SELECT DISTINCT domain FROM hosts WHERE h.tlsa_state = 'records'),
        statuses AS (
            SELECT domain, h.host AS host, CAST(h.verdict AS VARCHAR) AS status
            FROM hosts WHERE h.verdict IN {host_statuses}
            UNION ALL
            SELECT domain, h.host, 'tlsa_insecure' FROM hosts
            WHERE h.tlsa_state = 'insecure' AND len(h.tlsa) > 0
            UNION ALL
            SELECT domain, h.host, 'no_tlsa_on_host' FROM hosts
            WHERE h.verdict = 'no_dane_absent' AND domain IN (SELECT domain FROM dane_domains)
            UNION ALL
            SELECT domain, NULL, 'dnssec_bogus' FROM scan WHERE verdict = 'dnssec_bogus'
        )
    """


def failure_taxonomy(scan: duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """Failures per danescan status, with the Lee et al. category of each.

    One row per entry of :data:`FAILURE_STATUSES` (zero included). ``domains``
    counts distinct domains with the status, ``hosts`` distinct MX host names
    (0 for domain-level statuses). A domain with two failing hosts is counted
    under both statuses. Columns: ``category``, ``status``, ``level``,
    ``domains``, ``hosts``.
    """
    counts = frame(
        scan,
        _failure_rows()
        + "SELECT status, count(DISTINCT domain) AS domains, count(DISTINCT host) AS hosts "
        "FROM statuses GROUP BY status",
    )
    table = pd.DataFrame(
        {
            "category": [f.category for f in FAILURE_STATUSES],
            "status": [f.status for f in FAILURE_STATUSES],
            "level": [f.level for f in FAILURE_STATUSES],
        }
    )
    table = table.merge(counts, on="status", how="left")
    table[["domains", "hosts"]] = table[["domains", "hosts"]].fillna(0).astype("int64")
    return table


def failure_categories(scan: duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """Distinct domains per Lee et al. category (every category, zero included).

    A domain with failures of two categories counts in both; ``share`` is of
    the domains with any failure. Columns: ``category``, ``domains``, ``share``.
    """
    mapping = " ".join(f"WHEN '{f.status}' THEN '{f.category}'" for f in FAILURE_STATUSES)
    counts = frame(
        scan,
        _failure_rows()
        + f"""
        , categorised AS (SELECT domain, CASE status {mapping} END AS category FROM statuses)
        SELECT category, count(DISTINCT domain) AS domains,
               (SELECT count(DISTINCT domain) FROM statuses) AS total
        FROM categorised GROUP BY category
        """,
    )
    total = int(counts["total"].max()) if len(counts) else 0
    table = pd.DataFrame({"category": list(LEE_CATEGORIES)}).merge(
        counts[["category", "domains"]], on="category", how="left"
    )
    table["domains"] = table["domains"].fillna(0).astype("int64")
    table["share"] = share(table["domains"], total)
    return table

"""Who operates the MX hosts of DANE domains, and how concentrated they are.

The operator of an MX host is its registered domain: the public suffix of its
name (the Public Suffix List's longest matching rule, ``co.uk``, ``com.au``,
``com``) and one label more, so ``mx1.provider.co.uk`` is operated by
``provider.co.uk`` and ``mx.example.com`` by ``example.com``. The list is the
one shipped in the ``publicsuffixlist`` wheel, read offline; its version is the
wheel's. Only the list's ICANN section counts: its private section splits one
provider's names into per-customer suffixes (``blogspot.com``, cloud regions),
which would make each customer's host an operator of its own, whereas the
question here is which registrant runs the mail servers. A name with no label
beyond a public suffix (``co.uk`` itself, or a single label such as
``localhost``) is its own operator.

Only MX hosts with secure TLSA records (RFC 7672 section 2.2) count, so the
function gives the same result on ``Scan.dane`` as on every row.
"""

from __future__ import annotations

from functools import cache
from typing import Literal

import duckdb
import pandas as pd
from publicsuffixlist import PublicSuffixList

from analysis.metrics.sql import frame, secure_hosts, share
from scanner.names import key

__all__ = ["operator", "provider_concentration"]


@cache
def _suffixes() -> PublicSuffixList:
    # Parsed once a process (about 0.1 s): the list ships in the wheel.
    return PublicSuffixList(only_icann=True)


def operator(host: str) -> str:
    """The registered domain of ``host`` (see the module docstring), in lower case,
    without the root's dot; the name itself where it has none."""
    name = key(host)
    return _suffixes().privatesuffix(name) or name


def provider_concentration(
    scan: duckdb.DuckDBPyRelation,
    *,
    by: Literal["operator", "host"] = "operator",
    top: int | None = None,
) -> pd.DataFrame:
    """Who operates the MX hosts of DANE domains, largest first.

    Counts MX hosts with secure TLSA records and the domains they serve, per
    host name (``by='host'``) or per operator (``by='operator'``, the
    registered domain: see :func:`operator`). ``share`` is of all domains with
    an MX host with secure TLSA records; a domain whose hosts belong to two
    operators counts for both, so ``cumulative_share`` can exceed 1 at the
    tail. Columns: ``rank``, ``provider``, ``hosts``, ``domains``,
    ``dane_valid`` (of those domains), ``share``, ``cumulative_share``.
    """
    pairs = frame(
        scan,
        f"""
        WITH {secure_hosts()}
        SELECT DISTINCT domain, host,
               coalesce(domain_verdict = 'dane_valid', false) AS valid
        FROM secure
        """,
    )
    hosts = pairs["host"]
    if by == "host":
        pairs["provider"] = hosts
    else:
        # A provider's hosts repeat over its domains: each name is looked up once.
        pairs["provider"] = hosts.map({name: operator(name) for name in hosts.unique()})
    per = pairs.groupby("provider", sort=False)
    counts = pd.DataFrame(
        {
            "hosts": per["host"].nunique(),
            "domains": per["domain"].nunique(),
            "dane_valid": pairs[pairs["valid"]].groupby("provider")["domain"].nunique(),
        }
    ).fillna(0)
    counts = counts.rename_axis("provider").reset_index()
    counts = counts.sort_values(
        ["domains", "provider"], ascending=[False, True], kind="stable"
    ).reset_index(drop=True)
    out = pd.DataFrame(
        {
            "rank": pd.RangeIndex(1, len(counts) + 1),
            "provider": counts["provider"].astype("str"),
            "hosts": counts["hosts"].astype("int64"),
            "domains": counts["domains"].astype("int64"),
            "dane_valid": counts["dane_valid"].astype("int64"),
        }
    )
    out["share"] = share(out["domains"], pairs["domain"].nunique())
    out["cumulative_share"] = out["share"].cumsum()
    return out.head(top) if top is not None else out

"""How many domains and MX hosts end in each verdict.

The verdicts are the scanner's (scanner.status): DomainVerdict per domain,
DaneVerdict per MX host (RFC 7672 section 2.2). Every known value is listed,
zero included, in the enums' order; a value the enums do not know (a dataset
of a newer scanner) is kept after them, and a missing verdict is counted as
``'null'``. Both functions count every domain, so they need every row
(``Scan.domains``).
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pandas as pd

from analysis.metrics.sql import HOSTS, frame, share
from scanner.status import DaneVerdict, DomainVerdict

__all__ = ["FAILING_HOST_VERDICTS", "domain_verdicts", "host_verdicts"]

# The MX host verdicts that mean DANE was attempted and failed (records there, and
# the host not authenticated, or nothing usable among them).
FAILING_HOST_VERDICTS: tuple[str, ...] = (
    *(v.value for v in DaneVerdict if v.is_failure),
    DaneVerdict.UNUSABLE.value,
)


def _complete(counts: pd.DataFrame, key: str, known: Sequence[str]) -> pd.DataFrame:
    """Every known value (zero when absent), in enum order, then any unknown ones."""
    seen = [v for v in counts[key].astype("str") if v not in known]
    order = [*known, *sorted(seen)]
    full = pd.DataFrame({key: order}).merge(counts, on=key, how="left")
    count_columns = [c for c in full.columns if c != key]
    full[count_columns] = full[count_columns].fillna(0).astype("int64")
    return full


def domain_verdicts(scan: duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """Domains per DomainVerdict (every value, zero included).

    Columns: ``verdict``, ``domains``, ``share`` (of all domains).
    """
    counts = frame(
        scan,
        "SELECT coalesce(CAST(verdict AS VARCHAR), 'null') AS verdict, count(*) AS domains "
        "FROM scan GROUP BY 1",
    )
    full = _complete(counts, "verdict", [v.value for v in DomainVerdict])
    full["share"] = share(full["domains"], int(full["domains"].sum()))
    return full


def host_verdicts(scan: duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """MX host outcomes per DaneVerdict (every value, zero included).

    ``pairs`` counts (domain, MX host) pairs, as a sender delivering to every
    domain would meet them; ``hosts`` counts distinct host names with that
    verdict (a host reached from signed and from unsigned domains can have two
    verdicts, so ``hosts`` does not sum to the number of hosts). Columns:
    ``verdict``, ``pairs``, ``hosts``, ``share`` (of all pairs).
    """
    counts = frame(
        scan,
        f"""
        SELECT coalesce(CAST(h.verdict AS VARCHAR), 'null') AS verdict,
               count(*) AS pairs, count(DISTINCT h.host) AS hosts
        FROM ({HOSTS}) GROUP BY 1
        """,
    )
    full = _complete(counts, "verdict", [v.value for v in DaneVerdict])
    full["share"] = share(full["pairs"], int(full["pairs"].sum()))
    return full

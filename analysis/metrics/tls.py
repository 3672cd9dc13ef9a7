"""What TLS the MX hosts of DANE domains negotiate: versions and cipher suites.

The protocol version (TLS 1.3, RFC 8446; TLS 1.2, RFC 5246) and the cipher
suite each endpoint (one MX host, one address) agreed with the scanner after
STARTTLS (RFC 3207). Only MX hosts with secure TLSA records count (RFC 7672
section 2.2), so the functions give the same result on ``Scan.dane`` as on
every row.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from analysis.metrics.sql import frame, secure_hosts, share

__all__ = ["tls_ciphers", "tls_versions"]


def _tls_breakdown(scan: duckdb.DuckDBPyRelation, column: str) -> pd.DataFrame:
    raw = frame(
        scan,
        f"""
        WITH {secure_hosts("h.addresses AS addresses")},
        endpoints AS (
            SELECT domain, host, unnest(addresses) AS a FROM secure
        ),
        ok AS (
            SELECT domain, host || ' ' || a.address AS endpoint,
                   CAST(a.{column} AS VARCHAR) AS value
            FROM endpoints WHERE a.smtp_status = 'tls_ok'
        )
        SELECT coalesce(value, 'unknown') AS {column}, count(DISTINCT endpoint) AS endpoints,
               count(DISTINCT domain) AS domains,
               (SELECT count(DISTINCT endpoint) FROM ok) AS total
        FROM ok GROUP BY 1 ORDER BY endpoints DESC, 1
        """,
    )
    out = raw[[column, "endpoints", "domains"]].copy()
    out[column] = out[column].astype("str")
    out["share"] = share(raw["endpoints"], raw["total"])
    return out.reset_index(drop=True)


def tls_versions(scan: duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """TLS versions negotiated by the endpoints of MX hosts with secure TLSA records.

    Only endpoints where STARTTLS and the handshake succeeded. Columns:
    ``tls_version``, ``endpoints``, ``domains``, ``share`` (of endpoints).
    """
    return _tls_breakdown(scan, "tls_version")


def tls_ciphers(scan: duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """Cipher suites negotiated on the same endpoints as :func:`tls_versions`.

    Columns: ``cipher``, ``endpoints``, ``domains``, ``share`` (of endpoints).
    """
    return _tls_breakdown(scan, "cipher")

"""analysis.metrics.tls: TLS versions and cipher suites of DANE endpoints."""

from __future__ import annotations

import duckdb
import pytest
from metrics_rows import as_dict

from analysis import metrics


def test_tls_versions_count_endpoints_once(scan: duckdb.DuckDBPyRelation) -> None:
    out = metrics.tls_versions(scan)
    # Endpoints: mx1.prov.nl x2 (in c.nl and d.nl, counted once), mx.e.de, h.org,
    # mx.l.com on 1.3; mx2.prov.nl, mx1.i.org on 1.2; mx.m.com has no TLS.
    assert as_dict(out, "tls_version", "endpoints") == {"TLSv1.3": 5, "TLSv1.2": 2}
    assert as_dict(out, "tls_version", "domains") == {"TLSv1.3": 5, "TLSv1.2": 2}
    assert out["share"].tolist() == pytest.approx([5 / 7, 2 / 7])


def test_tls_ciphers(scan: duckdb.DuckDBPyRelation) -> None:
    out = metrics.tls_ciphers(scan)
    assert as_dict(out, "cipher", "endpoints") == {
        "TLS_AES_256_GCM_SHA384": 5,
        "ECDHE-RSA-AES256-GCM-SHA384": 2,
    }

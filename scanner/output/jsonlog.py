"""``--log-json FILE``: one JSON object per domain, a line each (JSON Lines),
for tools that tail a running scan; the Parquet dataset stays the record."""

from __future__ import annotations

import json

from scanner import names
from scanner.results import DomainResult


def domain_json(result: DomainResult) -> str:
    mx = result.mx
    document = {
        "domain": result.domain,
        "line": result.input_line,
        "verdict": result.verdict.value,
        "error": result.error or None,
        "mx": {"kind": mx.kind.value, "dnssec": mx.dnssec.value} if mx else None,
        "hosts": [
            {
                "host": names.relative(h.host),
                "verdict": h.verdict.value,
                "reason": h.reason,
                "tlsa": h.resolution.tlsa.state.value,
                "addresses": [
                    {
                        "address": a.session.address,
                        "smtp": a.session.status.value,
                        "tls": a.session.tls_version or None,
                        "verdict": a.verdict.value,
                    }
                    for a in h.addresses
                ],
            }
            for h in result.hosts
        ],
        "scanned_at": result.scanned_at.isoformat(),
        "duration_ms": round(result.duration_ms, 1),
    }
    return json.dumps(document, separators=(",", ":"))

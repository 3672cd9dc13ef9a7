"""DomainResult -> a row of scanner.output.schema (plain Python values)."""

from __future__ import annotations

from typing import Any

from scanner.handshake.smtp import offers
from scanner.resolve.wire import Tlsa
from scanner.results import AddressResult, DomainResult, HostResult

Row = dict[str, Any]


def _name(name: str | None) -> str | None:
    return None if name is None else name.rstrip(".")


def _value(enum: object | None) -> str | None:
    return None if enum is None else str(getattr(enum, "value", enum))


def tlsa_text(record: Tlsa) -> str:
    return f"{record.usage} {record.selector} {record.mtype} {record.data.hex()}"


def _address(a: AddressResult) -> Row:
    s = a.session
    return {
        "address": s.address,
        "family": 6 if ":" in s.address else 4,
        "smtp_status": s.status.value,
        "error": s.error or None,
        "verdict": _value(a.verdict),
        "reason": a.reason or None,
        "banner": s.banner.summary(200) if s.banner else None,
        "starttls_offered": offers(s.ehlo_keywords, "STARTTLS") if s.transcript.ehlo else None,
        "tls_version": s.tls_version or None,
        "cipher": s.cipher or None,
        "chain": list(s.chain),
        "connect_ms": s.connect_ms,
        "tls_ms": s.tls_ms,
        "total_ms": s.total_ms,
        "attempts": s.attempts,
    }


def _host(h: HostResult) -> Row:
    r = h.resolution
    return {
        "host": _name(h.host),
        "preference": h.preference,
        "verdict": _value(h.verdict),
        "reason": h.reason or None,
        "address_dnssec": r.addresses.dnssec.value,
        "cname_target": _name(r.addresses.expanded),
        "address_ttl": r.addresses.ttl,
        "address_error": r.addresses.error or None,
        "tlsa_base": _name(r.tlsa.base),
        "tlsa_state": r.tlsa.state.value,
        "tlsa_ttl": r.tlsa.ttl,
        "tlsa_error": r.tlsa.error or None,
        "tlsa": [
            {"usage": t.usage, "selector": t.selector, "mtype": t.mtype, "data": t.data}
            for t in r.tlsa.records
        ],
        "matched": h.matched,
        "match_depth": h.match_depth,
        "addresses": [_address(a) for a in h.addresses],
    }


def domain_row(result: DomainResult) -> Row:
    mx = result.mx
    return {
        "domain": result.domain,
        "input_line": result.input_line,
        "verdict": _value(result.verdict),
        "error": result.error or None,
        "mx_kind": _value(mx.kind) if mx else None,
        "mx_dnssec": _value(mx.dnssec) if mx else None,
        "mx_ttl": result.mx_ttl,
        "mx_error": (mx.error or None) if mx else None,
        "mx_hosts": [_host(h) for h in result.hosts],
        "scanned_at": result.scanned_at,
        "duration_ms": result.duration_ms,
    }

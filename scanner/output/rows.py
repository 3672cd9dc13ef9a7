"""DomainResult -> a row of scanner.output.schema (plain Python values).

A row is a tuple whose items are the schema's fields in order, structs nested
as tuples and lists as lists: pyarrow converts tuples to structs positionally,
about a third faster than dicts, and building them is cheaper too. This runs
once per domain, so it avoids per-value function calls and property lookups;
``ROW_TYPE`` is the schema as one struct, for ``pa.array(rows, type=ROW_TYPE)``.
Enum members are StrEnums, so ``str(member)`` is their value (a C call, unlike
``member.value``). tests/unit/test_output.py checks the field order against
the schema by round-tripping every field.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from scanner import names
from scanner.effective import Effective
from scanner.mailpolicy import Policies, requiretls_offered
from scanner.output.schema import SCHEMA
from scanner.results import AddressResult, DomainResult, HostResult

Row = tuple[Any, ...]

ROW_TYPE = pa.struct(list(SCHEMA))


def _address(a: AddressResult) -> Row:
    s = a.session
    address = s.address
    banner = s.transcript.banner
    return (
        address,
        6 if ":" in address else 4,
        str(s.status),
        s.error or None,
        str(a.verdict),
        a.reason or None,
        None if banner is None else banner.summary(200),
        s.starttls_offered,
        s.tls_version or None,
        s.cipher or None,
        list(s.chain),
        s.connect_ms,
        s.tls_ms,
        s.total_ms,
        s.attempts,
        requiretls_offered(s),
    )


def _host(h: HostResult) -> Row:
    r = h.resolution
    addresses = r.addresses
    tlsa = r.tlsa
    expanded = addresses.expanded
    matched, depth = h.first_match
    records = tlsa.records
    depths = h.depths or (None,) * len(records)
    return (
        names.relative(h.host),
        h.preference,
        str(h.verdict),
        h.reason or None,
        str(addresses.dnssec),
        None if expanded is None else names.relative(expanded),
        addresses.ttl,
        addresses.error or None,
        names.relative(tlsa.base),
        str(tlsa.state),
        tlsa.ttl,
        tlsa.error or None,
        [(t.usage, t.selector, t.mtype, t.data, d) for t, d in zip(records, depths, strict=True)],
        matched,
        depth,
        [_address(a) for a in h.addresses],
        None if h.sts is None else str(h.sts.status),
        None if h.sts is None else (h.sts.error or None),
        h.requiretls,
        [str(sign) for sign in h.downgrade],
        None if h.verdict_ahead is None else str(h.verdict_ahead),
        None if h.verdict_relaxed is None else str(h.verdict_relaxed),
    )


_NO_POLICIES: Row = (None,) * 13


def _policies(p: Policies | None) -> Row:
    """The MTA-STS and TLS-RPT columns, in the schema's order."""
    if p is None:
        return _NO_POLICIES
    sts, fetch, tlsrpt = p.sts, p.sts.fetch, p.tlsrpt
    policy = sts.policy
    parsed = policy if policy is not None and policy.ok else None
    return (
        str(sts.record.status),
        sts.record.id or None,
        sts.record.error or None,
        None if fetch is None else str(fetch.status),
        None if fetch is None else (fetch.error or None),
        None if fetch is None else fetch.http_status,
        None if parsed is None or parsed.mode is None else str(parsed.mode),
        None if parsed is None else parsed.max_age,
        None if parsed is None else list(parsed.mx),
        None if policy is None or policy.ok else policy.error,
        str(tlsrpt.status),
        list(tlsrpt.rua) if tlsrpt.rua else None,
        tlsrpt.error or None,
    )


def _effective(e: Effective | None) -> Row:
    return (None, None, None) if e is None else (str(e.policy), str(e.outcome), e.reason)


def domain_row(result: DomainResult) -> Row:
    mx = result.mx
    return (
        result.domain,
        result.input_line,
        str(result.verdict),
        result.error or None,
        None if mx is None else str(mx.kind),
        None if mx is None else str(mx.dnssec),
        result.mx_ttl,
        None if mx is None else (mx.error or None),
        [_host(h) for h in result.hosts],
        result.scanned_at,
        result.duration_ms,
        result.attempts,
        result.transient,
        None if result.verdict_relaxed is None else str(result.verdict_relaxed),
        *_policies(result.policies),
        *_effective(result.effective),
        result.days_ahead,
        None if result.verdict_ahead is None else str(result.verdict_ahead),
        None if result.effective_ahead is None else str(result.effective_ahead.outcome),
    )

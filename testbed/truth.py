"""The expected outcome of a scan of the testbed, as D/truth.parquet.

One row per domain: ``domain`` (no trailing dot, as in the domains file),
``scenario``, ``verdict`` (a DomainVerdict value) and ``mx_hosts``, a list of
structs with ``host`` (no trailing dot) and ``verdict`` (a DaneVerdict value).

Where a verdict depends on how a scanner retries (the internet profile's
greylisting, limits, resets and lossy operators), it is the verdict of a
scanner that follows the retry policy named in the file's metadata under
``POLICY_KEY`` (testbed.profile.RetryPolicy, as JSON).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from testbed.builder import DomainTruth
from testbed.profile import RetryPolicy

POLICY_KEY = b"danescan.truth_policy"

HOST_TYPE = pa.struct([("host", pa.string()), ("verdict", pa.string())])
SCHEMA = pa.schema(
    [
        ("domain", pa.string()),
        ("scenario", pa.string()),
        ("verdict", pa.string()),
        ("mx_hosts", pa.list_(HOST_TYPE)),
        # The domain's verdict as a sender that also uses DANE under an
        # insecure MX RRset sees it (RFC 7672 s2.2.1); null: not stated.
        ("verdict_relaxed", pa.string()),
        # Beside DANE (testbed.builder.BesideTruth); null: not stated.
        ("verdict_in_30_days", pa.string()),
        ("mta_sts_record", pa.string()),
        ("mta_sts_fetch", pa.string()),
        ("mta_sts_mode", pa.string()),
        ("tlsrpt_record", pa.string()),
        ("effective_policy", pa.string()),
        ("effective_outcome", pa.string()),
        ("host_mta_sts", pa.list_(pa.string())),
        ("host_requiretls", pa.list_(pa.bool_())),
        ("host_downgrade", pa.list_(pa.list_(pa.string()))),
    ]
)
_BESIDE = [f.name for f in SCHEMA][5:]


def truth_table(truth: Sequence[DomainTruth]) -> pa.Table:
    return pa.table(
        {
            "domain": [t.domain.rstrip(".") for t in truth],
            "scenario": [t.scenario for t in truth],
            "verdict": [t.verdict.value for t in truth],
            "mx_hosts": [
                [{"host": h.host.rstrip("."), "verdict": h.verdict.value} for h in t.mx_hosts]
                for t in truth
            ],
            "verdict_relaxed": [
                None if t.verdict_relaxed is None else t.verdict_relaxed.value for t in truth
            ],
            **{name: [_plain(getattr(t.beside, name)) for t in truth] for name in _BESIDE},
        },
        schema=SCHEMA,
    )


def write_truth(path: Path, truth: Sequence[DomainTruth], policy: RetryPolicy) -> None:
    table = truth_table(truth)
    table = table.replace_schema_metadata({POLICY_KEY: policy.to_json().encode()})
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)


def read_policy(path: Path) -> dict[str, object]:
    """The retry policy a truth file assumes, as written."""
    metadata = pq.read_schema(path).metadata or {}
    document: dict[str, object] = json.loads(metadata[POLICY_KEY])
    return document


def _plain(value: object) -> object:
    """A BesideTruth value as Arrow takes it (enums as their values, tuples as lists)."""
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value

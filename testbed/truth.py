"""The expected outcome of a scan of the testbed, as D/truth.parquet.

One row per domain: ``domain`` (no trailing dot, as in the domains file),
``scenario``, ``verdict`` (a DomainVerdict value) and ``mx_hosts``, a list of
structs with ``host`` (no trailing dot) and ``verdict`` (a DaneVerdict value).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from testbed.builder import DomainTruth

HOST_TYPE = pa.struct([("host", pa.string()), ("verdict", pa.string())])
SCHEMA = pa.schema(
    [
        ("domain", pa.string()),
        ("scenario", pa.string()),
        ("verdict", pa.string()),
        ("mx_hosts", pa.list_(HOST_TYPE)),
    ]
)


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
        },
        schema=SCHEMA,
    )


def write_truth(path: Path, truth: Sequence[DomainTruth]) -> None:
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(truth_table(truth), tmp)
    tmp.replace(path)

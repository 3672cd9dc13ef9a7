"""Writing a synthetic scan: schema-conformant datasets of any size, with known counts.

The benchmark needs ten million domains in minutes and the tests need small
datasets whose every number is known, and neither can wait for a real scan.
A dataset is written in the layout of a scan (``part-*.parquet`` plus
``manifest.json``) from the variants of testbed.synth.variants, one per
scenario of the testbed's catalogue: a dataset of N domains allocates each
variant its share of N, shuffles the assignment, and materialises the rows
with Arrow's ``take`` plus a vectorised rewrite of the names, so generation
costs no Python work per domain. Signed domains draw their TLD from the
TLDs whose registries encouraged signing; provider popularity is Zipf.

Every variant states its funnel membership by hand and takes its verdicts
from its scenario (never from the generated rows), so :class:`SynthSummary`
is an independent oracle for the metrics. ``truth.parquet`` in the testbed's
format (testbed.truth) can be written next to the dataset, so the same checks
run against the testbed and against this.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from scanner.output.manifest import Counts, Manifest, ScanStatus, write_manifest
from scanner.output.schema import MX_HOST, SCHEMA
from testbed.synth.rows import DOMAIN, PROVIDER, Certs
from testbed.synth.variants import Variant, all_variants
from testbed.truth import SCHEMA as TRUTH_SCHEMA

_GENERAL_TLDS: Mapping[str, float] = {
    "com": 0.46,
    "de": 0.08,
    "net": 0.06,
    "org": 0.05,
    "uk": 0.04,
    "nl": 0.03,
    "ru": 0.03,
    "br": 0.02,
    "fr": 0.02,
    "cz": 0.01,
    "se": 0.01,
    "info": 0.19,
}
# DNSSEC, and so DANE, concentrates in TLDs whose registries encouraged signing
# (.nl, .se, .cz, ...), so signed domains draw their TLD from this mix.
_SIGNED_TLDS: Mapping[str, float] = {
    "nl": 0.25,
    "de": 0.20,
    "com": 0.15,
    "cz": 0.10,
    "se": 0.08,
    "org": 0.06,
    "net": 0.06,
    "eu": 0.05,
    "ch": 0.05,
}


@dataclass(frozen=True, slots=True)
class SynthSummary:
    """What was written: domains per variant, and the counts that follow."""

    path: Path
    domains: int
    parts: int
    variants: tuple[tuple[Variant, int], ...] = field(repr=False)  # (variant, domains)

    @property
    def per_variant(self) -> dict[str, int]:
        return {v.name: n for v, n in self.variants if n}

    def count(self, predicate: Literal["with_mx", "secure_mx", "secure_tlsa", "dane_valid"]) -> int:
        """Domains of the variants for which the flag ``predicate`` is true."""
        return sum(n for v, n in self.variants if getattr(v, predicate))

    def funnel(self) -> dict[str, int]:
        """The funnel of analysis.metrics, from the hand-stated flags."""
        return {
            "domains": self.domains,
            "with_mx": self.count("with_mx"),
            "secure_mx": self.count("secure_mx"),
            "secure_tlsa": self.count("secure_tlsa"),
            "dane_valid": self.count("dane_valid"),
        }

    def verdicts(self) -> dict[str, int]:
        """Domains per DomainVerdict."""
        out: dict[str, int] = {}
        for v, n in self.variants:
            if n:
                out[v.verdict] = out.get(v.verdict, 0) + n
        return out

    def host_verdicts(self) -> dict[str, int]:
        """(domain, MX host) pairs per DaneVerdict."""
        out: dict[str, int] = {}
        for v, n in self.variants:
            for verdict in v.host_verdicts:
                if n:
                    out[verdict] = out.get(verdict, 0) + n
        return out


def _template_table(variants: Sequence[Variant]) -> pa.Table:
    return pa.Table.from_pylist([dict(v.row) for v in variants], schema=SCHEMA)


def _allocate(variants: Sequence[Variant], n: int) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Domains per variant: each its share but at least its minimum, the bulk
    variants split what is left in proportion to their weights."""
    counts = np.array(
        [0 if v.bulk else max(int(n * v.weight), v.minimum) for v in variants], dtype=np.int64
    )
    bulk = [i for i, v in enumerate(variants) if v.bulk]
    left = n - int(counts.sum())
    if left < len(bulk):
        raise ValueError(f"{n} domains cannot hold every variant: ask for more")
    total = sum(variants[i].weight for i in bulk)
    for i in bulk[:-1]:
        counts[i] = int(left * variants[i].weight / total)
    counts[bulk[-1]] = n - int(counts.sum())
    return counts


def _substitute(names: pa.Array, values: pa.Array, placeholder: str) -> pa.Array:
    """Replace ``placeholder`` in each name by the value aligned with it."""
    has = pc.match_substring(names, placeholder)
    filled = pc.replace_substring(names, placeholder, "")
    joined = pc.binary_join_element_wise(filled, values, "")
    return pc.if_else(has, joined, names)


def _fill_hosts(mx_hosts: pa.ListArray, domains: pa.Array, providers: pa.Array) -> pa.ListArray:
    """Rewrite the placeholders in host names and TLSA base names, vectorised."""
    parents = pc.list_parent_indices(mx_hosts)
    values = mx_hosts.values
    domain_of = domains.take(parents)
    provider_of = providers.take(parents)
    columns = {}
    for index, f in enumerate(MX_HOST):
        column = values.field(index)
        if f.name in ("host", "cname_target", "tlsa_base"):
            column = _substitute(column, domain_of, DOMAIN)
            column = _substitute(column, provider_of, PROVIDER)
        columns[f.name] = column
    struct = pa.StructArray.from_arrays(list(columns.values()), fields=list(MX_HOST))
    return pa.ListArray.from_arrays(mx_hosts.offsets, struct, type=pa.list_(MX_HOST))


def _choice(
    rng: np.random.Generator, weights: Mapping[str, float], size: int
) -> pa.DictionaryArray:
    labels = list(weights)
    p = np.array([weights[k] for k in labels], dtype=np.float64)
    picked = rng.choice(len(labels), size=size, p=p / p.sum()).astype(np.int32)
    return pa.DictionaryArray.from_arrays(pa.array(picked), pa.array(labels))


def _providers(
    rng: np.random.Generator, variants: Sequence[Variant], kinds: np.ndarray[Any, Any]
) -> pa.Array:
    """The provider (registered domain of the MX hosts) of each row, "" for none.

    Popularity within a pool is Zipf(1.1), truncated: a few operators take most
    domains and a long tail the rest.
    """
    labels = [""]
    picked = np.zeros(len(kinds), dtype=np.int64)
    for index, v in enumerate(variants):
        rows = np.flatnonzero(kinds == index)
        if v.pool is None or not len(rows):
            continue
        p = np.arange(1, v.pool_size + 1, dtype=np.float64) ** -1.1
        picked[rows] = len(labels) + rng.choice(v.pool_size, size=len(rows), p=p / p.sum())
        labels.extend(f"{v.pool}-{k:04d}.example" for k in range(1, v.pool_size + 1))
    return pa.array(labels, pa.string()).take(pa.array(picked))


@dataclass(frozen=True, slots=True)
class _Slice:
    """One part's rows: the variant of each, and the variant its name was drawn for."""

    kinds: np.ndarray[Any, np.dtype[np.int64]]
    name_kinds: np.ndarray[Any, np.dtype[np.int64]]
    first_line: int
    seed: int


def _batch(
    templates: pa.Table, variants: Sequence[Variant], part: _Slice, started: dt.datetime
) -> pa.Table:
    kinds = part.kinds
    n = len(kinds)
    # Names come from their own stream, drawn for the variant before any churn, so
    # a domain keeps its name in every scan generated with the same seed.
    names_rng = np.random.default_rng([part.seed, part.first_line, 0])
    rng = np.random.default_rng([part.seed, part.first_line, 1])
    rows = templates.take(pa.array(kinds))
    line = np.arange(part.first_line, part.first_line + n, dtype=np.int64)
    signed = np.array([v.signed_tlds for v in variants])[part.name_kinds]
    tld = pc.if_else(
        pa.array(signed),
        _choice(names_rng, _SIGNED_TLDS, n).cast(pa.string()),
        _choice(names_rng, _GENERAL_TLDS, n).cast(pa.string()),
    )
    domains = pc.binary_join_element_wise("d", pc.cast(pa.array(line), pa.string()), ".", tld, "")
    providers = _providers(rng, variants, kinds)
    mx_hosts = _fill_hosts(rows.column("mx_hosts").combine_chunks(), domains, providers)
    epoch_ms = int(started.timestamp() * 1000)
    scanned = pa.array(epoch_ms + line * 3, pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
    duration = pa.array(rng.gamma(2.0, 120.0, n).astype(np.float32))
    columns = {
        "domain": domains,
        "input_line": pa.array(line),
        "mx_hosts": mx_hosts,
        "scanned_at": scanned,
        "duration_ms": duration,
    }
    return pa.Table.from_arrays(
        [columns.get(f.name, rows.column(f.name)) for f in SCHEMA], schema=SCHEMA
    )


def write_synthetic(
    directory: Path | str,
    domains: int,
    *,
    seed: int = 1,
    churn: float = 0.0,
    rows_per_part: int = 200_000,
    truth: Path | str | None = None,
) -> SynthSummary:
    """Write a synthetic scan of ``domains`` domains into ``directory``.

    ``churn`` makes a later scan of the same domains: that share of the
    domains, drawn at random, swap variants among themselves, so proportions
    stay, names stay, and some domains adopt, drop, break or fix DANE.
    ``truth``, when given, receives a truth.parquet in the testbed's format
    (testbed/truth.py). Returns how many domains each variant got.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    variants = all_variants(Certs(seed))
    templates = _template_table(variants)
    counts = _allocate(variants, domains)
    rng = np.random.default_rng(seed)
    name_kinds = np.repeat(np.arange(len(variants), dtype=np.int64), counts)
    rng.shuffle(name_kinds)
    kinds = name_kinds
    if churn > 0:
        moved = rng.choice(domains, size=int(domains * churn), replace=False)
        kinds = name_kinds.copy()
        kinds[moved] = kinds[rng.permutation(moved)]
    started = dt.datetime(2026, 3, 1, tzinfo=dt.UTC) + dt.timedelta(days=30 if churn else 0)
    truth_writer = None
    if truth is not None:
        truth_writer = pq.ParquetWriter(str(truth), TRUTH_SCHEMA)
    parts = 0
    try:
        for parts, first in enumerate(range(0, domains, rows_per_part), start=1):
            part = _Slice(
                kinds[first : first + rows_per_part],
                name_kinds[first : first + rows_per_part],
                first + 1,
                seed,
            )
            table = _batch(templates, variants, part, started)
            path = out / f"part-0-{parts - 1:05d}.parquet"
            tmp = path.with_suffix(".parquet.tmp")
            pq.write_table(table, tmp, compression="zstd")
            tmp.replace(path)
            if truth_writer is not None:
                truth_writer.write_table(_truth_rows(table, variants, part.kinds))
    finally:
        if truth_writer is not None:
            truth_writer.close()
    allocated = tuple((v, int(n)) for v, n in zip(variants, counts, strict=True))
    summary = SynthSummary(out, domains, parts, allocated)
    _write_manifest(out, summary, started, seed, churn)
    return summary


def _truth_rows(
    table: pa.Table, variants: Sequence[Variant], kinds: np.ndarray[Any, np.dtype[np.int64]]
) -> pa.Table:
    hosts = table.column("mx_hosts").combine_chunks()
    values = hosts.values
    pairs = pa.StructArray.from_arrays(
        [values.field("host"), values.field("verdict")], names=["host", "verdict"]
    )
    scenario = pa.array([v.name for v in variants]).take(pa.array(kinds))
    return pa.Table.from_arrays(
        [
            table.column("domain"),
            scenario,
            table.column("verdict"),
            pa.ListArray.from_arrays(hosts.offsets, pairs),
            # The relaxed reading and what is beside DANE: not stated.
            *(pa.nulls(table.num_rows, f.type) for f in list(TRUTH_SCHEMA)[4:]),
        ],
        schema=TRUTH_SCHEMA,
    )


def _write_manifest(
    out: Path, summary: SynthSummary, started: dt.datetime, seed: int, churn: float
) -> None:
    # The scanner's manifest, as a scan that wrote these rows would have left
    # it; "synthetic" for the version, so no report mistakes it for a scan.
    manifest = Manifest(
        scanner_version="synthetic",
        status=ScanStatus.COMPLETE,
        started_at=started,
        finished_at=started,
        config={
            "generator": "testbed.synth",
            "seed": seed,
            "churn": churn,
            "variants": summary.per_variant,
        },
        counts=Counts(
            domains=summary.domains, written=summary.domains, verdicts=summary.verdicts()
        ),
    )
    write_manifest(out, manifest)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m testbed.synth DIR N [--seed S] [--truth PATH]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m testbed.synth", description=__doc__)
    parser.add_argument("directory", type=Path)
    parser.add_argument("domains", type=int)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--churn", type=float, default=0.0, help="share of domains that change")
    parser.add_argument("--rows-per-part", type=int, default=200_000)
    parser.add_argument("--truth", type=Path)
    args = parser.parse_args(argv)
    summary = write_synthetic(
        args.directory,
        args.domains,
        seed=args.seed,
        churn=args.churn,
        rows_per_part=args.rows_per_part,
        truth=args.truth,
    )
    print(json.dumps({"domains": summary.domains, "parts": summary.parts}))
    return 0

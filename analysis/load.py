"""Opening scan datasets: schema-checked, projected reads into DuckDB relations.

A dataset is a folder ``results/<scan-id>/`` of ``part-<worker>-<n>.parquet``
files and a ``manifest.json`` (scanner.output). :func:`open_dataset` finds the
parts on the local disk, at any URL fsspec opens (``s3://``, ``gs://``,
``memory://``: the locations the scanner writes to), or on a
``pyarrow.fs.FileSystem`` given explicitly,
reads the manifest, and checks the schema version of the manifest and of every
part's footer (``danescan.schema_version``) against the version this package
understands, so an analysis never silently reads a layout it does not know.

Why the read is projected. DuckDB scans a Parquet ``list<struct>`` column
whole: it cannot skip the struct fields a query does not touch, and the MX
hosts column carries every address's certificate chain, so every query that
looks at one field of one MX host decodes every chain of every domain (about
25 s per query for ten million domains). pyarrow reads single nested leaf
columns, so :func:`load` reads each part once, in parallel, keeping only the
leaves the analysis needs, and exposes two in-memory relations:

- ``Scan.domains``: every domain, with the fields that place it in the funnel
  and in the verdict distributions (:data:`DOMAIN_COLUMNS`); enum strings stay
  dictionary-encoded, so ten million domains take under 1 GiB.
- ``Scan.dane``: only the domains where DANE is in play (an MX host with TLSA
  records or a TLSA lookup failure, a DANE verdict other than "no DANE", or a
  bogus MX RRset), with the fields of the DANE metrics (:data:`DANE_COLUMNS`).
  At internet scale this is one or two per cent of the rows. Enum strings and
  certificates stay dictionary-encoded here too (DuckDB reads them as VARCHAR
  and BLOB).

Both relations keep the dataset's column names and nesting (structs with fewer
fields), so every function of analysis.metrics accepts either one, or a
relation over the complete dataset (:func:`full_relation`): the DANE metrics
give the same answer on ``Scan.dane`` as on the full dataset, only faster.
:func:`load_domains` reads only ``domains`` (a :class:`ScanDomains`), which
is all the earlier scan of a comparison needs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from analysis.legacy import READABLE, upgrade
from scanner.output.manifest import MANIFEST, Manifest, ManifestError
from scanner.output.schema import SCHEMA, VERSION_KEY
from scanner.resolve.policy import TlsaState
from scanner.status import DaneVerdict, DomainVerdict

__all__ = [
    "DANE_COLUMNS",
    "DOMAIN_COLUMNS",
    "Dataset",
    "DatasetError",
    "Manifest",
    "Scan",
    "ScanDomains",
    "SchemaVersionError",
    "full_relation",
    "load",
    "load_domains",
    "load_many",
    "open_dataset",
]

PART_PREFIX = "part-"

_HOST = "mx_hosts.list.element."
_TLSA = _HOST + "tlsa.list.element."
_ADDRESS = _HOST + "addresses.list.element."

# Leaf column paths as Parquet names them (pyarrow writes lists as list/element).
DOMAIN_COLUMNS: tuple[str, ...] = (
    "domain",
    "verdict",
    "mx_kind",
    "mx_dnssec",
    _HOST + "host",
    _HOST + "verdict",
    _HOST + "tlsa_state",
)
# Every nested leaf costs about 0.3 to 0.5 s per ten million domains to decode,
# whatever the share of rows kept, so this is what the metrics read and no more;
# ``load(extra_columns=...)`` adds leaves (``reason``, ``matched``, ``banner``...).
DANE_COLUMNS: tuple[str, ...] = (
    *DOMAIN_COLUMNS,
    _HOST + "tlsa_base",
    _TLSA + "usage",
    _TLSA + "selector",
    _TLSA + "mtype",
    _TLSA + "data",
    _TLSA + "depth",  # where the record matches, so the metrics need not hash chains
    _ADDRESS + "address",
    _ADDRESS + "smtp_status",
    _ADDRESS + "tls_version",
    _ADDRESS + "cipher",
    _ADDRESS + "chain.list.element",
)
# Read dictionary-encoded: few distinct values, so decoding them to strings per
# row would cost time and memory for nothing. Chains repeat across the domains of
# a provider, and are the largest values of the dataset.
_DICTIONARY_COLUMNS: frozenset[str] = frozenset(
    {
        "verdict",
        "mx_kind",
        "mx_dnssec",
        "error",
        _HOST + "verdict",
        _HOST + "tlsa_state",
        _HOST + "reason",
        _HOST + "address_dnssec",
        _HOST + "tlsa_error",
        _HOST + "matched",
        _ADDRESS + "smtp_status",
        _ADDRESS + "verdict",
        _ADDRESS + "reason",
        _ADDRESS + "tls_version",
        _ADDRESS + "cipher",
        _ADDRESS + "chain.list.element",
    }
)

# A domain is in Scan.dane when any of these holds; the rest are "no DANE" rows
# whose every MX host was insecure or had a secure proof of no TLSA.
_QUIET_HOST_VERDICTS = (DaneVerdict.NO_DANE_INSECURE.value, DaneVerdict.NO_DANE_ABSENT.value)
_QUIET_TLSA_STATES = (
    TlsaState.NOT_LOOKED_UP.value,
    TlsaState.NXDOMAIN.value,
    TlsaState.NODATA.value,
    TlsaState.INSECURE.value,  # with records it is "no DS": the tlsa list tells
)
_DANE_DOMAIN_VERDICTS = (
    DomainVerdict.DANE_VALID.value,
    DomainVerdict.DANE_PARTIAL.value,
    DomainVerdict.DANE_INVALID.value,
    DomainVerdict.DNSSEC_BOGUS.value,
)


class DatasetError(ValueError):
    """The location holds no readable danescan dataset.

    Raised when reading for analysis; scanner.output.writer.UnreadablePart is
    the scanner's, raised when a folder's parts cannot be resumed or rewritten.
    """


class SchemaVersionError(DatasetError):
    """A manifest or part file was written with a schema version this package does not read."""


@dataclass(frozen=True, slots=True)
class Dataset:
    """The files of one scan, checked: where they are and what the manifest says."""

    location: str
    filesystem: pafs.FileSystem = field(repr=False)
    parts: tuple[str, ...]
    manifest: Manifest | None
    schema_version: str

    @property
    def local(self) -> bool:
        return isinstance(self.filesystem, pafs.LocalFileSystem)


def _resolve(
    location: str | os.PathLike[str], filesystem: pafs.FileSystem | None
) -> tuple[pafs.FileSystem, str]:
    text = os.fspath(location)
    if filesystem is not None:
        return filesystem, text
    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower() in ("file", "local"):
        return pafs.LocalFileSystem(), str(Path(rest if sep else text).resolve())
    # Any other URL through fsspec, as the scanner writes it (scanner.output.store).
    import fsspec.core

    fs, path = fsspec.core.url_to_fs(text)
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path


def _part_version(filesystem: pafs.FileSystem, path: str) -> str | None:
    with filesystem.open_input_file(path) as handle:
        metadata = pq.read_metadata(handle).metadata or {}
    value = metadata.get(VERSION_KEY)
    return None if value is None else value.decode()


def open_dataset(
    location: str | os.PathLike[str], filesystem: pafs.FileSystem | None = None
) -> Dataset:
    """Find and check the parts of the scan at ``location``.

    ``location`` is a dataset folder or a single Parquet file, as a local path
    or a URL fsspec opens; ``filesystem`` overrides the URL's scheme (then
    ``location`` is a path on it). Raises :class:`SchemaVersionError` when the
    manifest or any part declares a schema version other than those
    analysis.legacy.READABLE lists, and :class:`DatasetError` when there
    is nothing to read.
    """
    fs, path = _resolve(location, filesystem)
    info = fs.get_file_info(path)
    manifest: Manifest | None = None
    if info.type == pafs.FileType.File:
        parts: tuple[str, ...] = (path,)
    elif info.type == pafs.FileType.Directory:
        found = fs.get_file_info(pafs.FileSelector(path, recursive=False))
        parts = tuple(
            sorted(
                f.path
                for f in found
                if f.type == pafs.FileType.File
                and f.base_name.startswith(PART_PREFIX)
                and f.base_name.endswith(".parquet")
            )
        )
        manifest_path = f"{path.rstrip('/')}/{MANIFEST}"
        if fs.get_file_info(manifest_path).type == pafs.FileType.File:
            with fs.open_input_stream(manifest_path) as stream:
                try:
                    manifest = Manifest.from_json(stream.read())
                except ManifestError as exc:
                    raise DatasetError(f"{location}: {exc}") from None
    else:
        raise DatasetError(f"{location}: no such file or folder")
    if not parts:
        raise DatasetError(f"{location}: no {PART_PREFIX}*.parquet files")
    if manifest is not None and manifest.schema_version not in (None, *READABLE):
        raise SchemaVersionError(
            f"{location}: manifest declares schema version {manifest.schema_version}, "
            f"this analysis reads versions {', '.join(READABLE)}"
        )
    versions = set()
    for part in parts:
        version = _part_version(fs, part)
        if version not in READABLE:
            raise SchemaVersionError(
                f"{part}: schema version {version or 'missing'}, "
                f"this analysis reads versions {', '.join(READABLE)}"
            )
        versions.add(version)
    return Dataset(os.fspath(location), fs, parts, manifest, "+".join(sorted(versions)))


# -- projected reading ---------------------------------------------------------------


def _narrow(array: pa.Array) -> pa.Array:
    """A dictionary array with int8 indices when its few values allow it.

    Enum columns have at most a dozen values; int8 instead of pyarrow's int32
    indices saves about 175 MiB per ten million domains.
    """
    if pa.types.is_dictionary(array.type) and len(array.dictionary) <= 127:
        return array.cast(pa.dictionary(pa.int8(), array.type.value_type))
    return array


def _select_host_fields(hosts: pa.ListArray, names: Iterable[str]) -> pa.ListArray:
    """The MX hosts list with only the struct fields ``names`` (zero copy but enums)."""
    values = hosts.values
    keep = [f.name for f in values.type if f.name in set(names)]
    arrays = [_narrow(values.field(name)) for name in keep]
    struct = pa.StructArray.from_arrays(arrays, names=keep, mask=values.is_null())
    return pa.ListArray.from_arrays(hosts.offsets, struct, mask=hosts.is_null())


def _among(array: pa.Array, values: Sequence[str]) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Which elements are one of ``values`` (null: no), as a numpy mask."""
    if pa.types.is_dictionary(array.type):
        # Test the few distinct values once, then look the answer up per element.
        hits = pc.is_in(array.dictionary, pa.array(values, array.type.value_type))
        found = hits.take(array.indices)
    else:
        found = pc.is_in(array, pa.array(values, array.type))
    return np.asarray(pc.fill_null(found, False), dtype=np.bool_)


def _dane_rows(table: pa.Table, hosts: pa.ListArray) -> pa.Array:
    """Indices of the rows that belong in Scan.dane (see the module docstring)."""
    flat = hosts.flatten()
    records = np.asarray(pc.fill_null(pc.list_value_length(flat.field("tlsa")), 0))
    noisy = (
        ~_among(flat.field("verdict"), _QUIET_HOST_VERDICTS)
        | ~_among(flat.field("tlsa_state"), _QUIET_TLSA_STATES)
        | (records > 0)
    )
    rows = _among(table.column("verdict").combine_chunks(), _DANE_DOMAIN_VERDICTS)
    rows[np.asarray(pc.list_parent_indices(hosts))[noisy]] = True
    return pa.array(np.flatnonzero(rows))


@dataclass(frozen=True, slots=True)
class _Part:
    """What one part contributes: its rows of Scan.domains, and of Scan.dane if read."""

    domains: pa.Table
    dane: pa.Table | None


def _split(table: pa.Table, dane: bool) -> _Part:
    host_names = {c.removeprefix(_HOST) for c in DOMAIN_COLUMNS if c.startswith(_HOST)}
    top = [c for c in DOMAIN_COLUMNS if "." not in c]
    hosts = table.column("mx_hosts").combine_chunks()
    domains = pa.Table.from_arrays(
        [_narrow(table.column(c).combine_chunks()) for c in top]
        + [_select_host_fields(hosts, host_names)],
        names=[*top, "mx_hosts"],
    )
    if not dane:
        return _Part(domains, None)
    return _Part(domains, table.take(_dane_rows(table, hosts)))


def _read_part(
    dataset: Dataset, columns: Sequence[str], use_threads: bool, dane: bool, path: str
) -> _Part:
    dictionary = [c for c in columns if c in _DICTIONARY_COLUMNS]
    with contextlib.ExitStack() as stack:
        source: Any = path
        if not dataset.local:
            source = stack.enter_context(dataset.filesystem.open_input_file(path))
        parquet = pq.ParquetFile(source, read_dictionary=dictionary)
        table = parquet.read(columns=list(columns), use_threads=use_threads)
        version = (parquet.metadata.metadata or {}).get(VERSION_KEY, b"").decode() or None
        table = upgrade(table, version, lambda: parquet.read(columns=["error"]).column("error"))
    return _split(table, dane)


def _concat(tables: Sequence[pa.Table]) -> pa.Table:
    # Dictionaries differ from part to part; "permissive" unifies the types, not the values.
    return pa.concat_tables(tables, promote_options="permissive")


def _frame(relation: duckdb.DuckDBPyRelation, query: str) -> pd.DataFrame:
    result = relation.query("d", query)
    if result is None:  # only for statements that return nothing, never a SELECT
        raise ValueError("query returned no relation")
    return result.df()


# The flat views of ScanDomains.domains_df and Scan.hosts_df, enums as strings.
_DOMAINS_DF = (
    "SELECT domain, CAST(verdict AS VARCHAR) AS verdict, "
    "CAST(mx_kind AS VARCHAR) AS mx_kind, CAST(mx_dnssec AS VARCHAR) AS mx_dnssec, "
    "len(mx_hosts) AS mx_hosts FROM d"
)
_HOSTS_DF = (
    "SELECT domain, CAST(verdict AS VARCHAR) AS domain_verdict, "
    "h.host, h.verdict, h.tlsa_state, h.tlsa_base, len(h.tlsa) AS tlsa_records, "
    "len(h.addresses) AS addresses "
    "FROM (SELECT domain, verdict, unnest(mx_hosts) AS h FROM d)"
)


@dataclass(frozen=True, slots=True)
class ScanDomains:
    """One loaded scan's domains: its files and ``domains`` (see the module docstring)."""

    name: str
    dataset: Dataset
    connection: duckdb.DuckDBPyConnection = field(repr=False)
    domains: duckdb.DuckDBPyRelation = field(repr=False)

    def domains_df(self) -> pd.DataFrame:
        """One row per domain: domain, verdict, mx_kind, mx_dnssec, mx_hosts (count)."""
        return _frame(self.domains, _DOMAINS_DF)


@dataclass(frozen=True, slots=True)
class Scan(ScanDomains):
    """One loaded scan: its domains, and ``dane``, the domains where DANE is in play."""

    dane: duckdb.DuckDBPyRelation = field(repr=False)

    def hosts_df(self) -> pd.DataFrame:
        """One row per (DANE-relevant domain, MX host), the MX host's fields as columns."""
        return _frame(self.dane, _HOSTS_DF)


def load(
    location: str | os.PathLike[str],
    *,
    name: str = "scan",
    connection: duckdb.DuckDBPyConnection | None = None,
    filesystem: pafs.FileSystem | None = None,
    threads: int = 2,
    extra_columns: Sequence[str] = (),
) -> Scan:
    """Open, check and read the scan at ``location`` (see :func:`open_dataset`).

    ``threads`` parts are read at once, each by one thread (pyarrow releases
    the GIL; with one, pyarrow decodes the columns of a part in parallel
    instead). ``extra_columns`` adds leaf paths, as Parquet names them (say
    ``mx_hosts.list.element.reason``), to ``Scan.dane``. The relations live in
    ``connection`` (a new in-memory DuckDB by default); load two scans into
    one connection to compare them.
    """
    columns = list(dict.fromkeys([*DANE_COLUMNS, *extra_columns]))
    dataset, con, parts = _open_and_read(location, filesystem, connection, threads, columns)
    domains = _concat([p.domains for p in parts])
    dane = _concat([p.dane for p in parts if p.dane is not None])
    return Scan(name, dataset, con, con.from_arrow(domains), con.from_arrow(dane))


def load_domains(
    location: str | os.PathLike[str],
    *,
    name: str = "scan",
    connection: duckdb.DuckDBPyConnection | None = None,
    filesystem: pafs.FileSystem | None = None,
    threads: int = 2,
) -> ScanDomains:
    """Like :func:`load`, but only ``domains``: enough for the funnel, the verdicts
    and :func:`analysis.metrics.scan_diff`, in about a third of the time."""
    dataset, con, parts = _open_and_read(location, filesystem, connection, threads, None)
    domains = _concat([p.domains for p in parts])
    return ScanDomains(name, dataset, con, con.from_arrow(domains))


def load_many(
    locations: Mapping[str, str | os.PathLike[str]],
    *,
    connection: duckdb.DuckDBPyConnection | None = None,
    threads: int = 2,
) -> dict[str, Scan]:
    """Several scans by name, in one DuckDB connection (so they can be joined)."""
    con = connection if connection is not None else duckdb.connect()
    for location in locations.values():
        open_dataset(location)  # every one checked before any is read
    return {
        name: load(location, name=name, connection=con, threads=threads)
        for name, location in locations.items()
    }


def _open_and_read(
    location: str | os.PathLike[str],
    filesystem: pafs.FileSystem | None,
    connection: duckdb.DuckDBPyConnection | None,
    threads: int,
    dane_columns: Sequence[str] | None,
) -> tuple[Dataset, duckdb.DuckDBPyConnection, list[_Part]]:
    """The checked dataset, the connection to hold its relations, and its parts read:
    with ``dane_columns`` for Scan.domains and Scan.dane, without for Scan.domains only."""
    dataset = open_dataset(location, filesystem)
    con = connection if connection is not None else duckdb.connect()
    if dane_columns is None:
        return dataset, con, _read(dataset, DOMAIN_COLUMNS, threads, dane=False)
    return dataset, con, _read(dataset, dane_columns, threads, dane=True)


def _read(dataset: Dataset, columns: Sequence[str], threads: int, *, dane: bool) -> list[_Part]:
    read = partial(_read_part, dataset, columns, threads <= 1, dane)
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        parts = list(pool.map(read, dataset.parts))
    # Each part's full projection is garbage now; hand its pages back to the system
    # rather than leave them in the allocator's cache for the rest of the session.
    pa.default_memory_pool().release_unused()
    return parts


def full_relation(
    dataset: Dataset, connection: duckdb.DuckDBPyConnection | None = None
) -> duckdb.DuckDBPyRelation:
    """Every column of every domain, read lazily by DuckDB on each query.

    Complete but slow on large scans (see the module docstring): use it to look
    at fields the projected relations leave out, with a filter.
    """
    con = connection if connection is not None else duckdb.connect()
    if dataset.local:
        return con.read_parquet(list(dataset.parts))
    arrow = pads.dataset(list(dataset.parts), schema=SCHEMA, filesystem=dataset.filesystem)
    return con.from_arrow(arrow)

"""Parts written with an earlier schema version, read as the current one.

Versions 2 and 3 had no ``depth`` in a TLSA record (version 4, the lowest
chain depth at which the record matches, scanner.match.depths): it is read
as null, and analysis.metrics.records computes it from the chains.

Version 2 wrote null where version 3 writes an explicit verdict
(scanner.output.schema). The nulls meant, and are read as:

- a domain's: ``internal_error`` when the row has an ``error`` (a bug stopped
  the domain), else ``undetermined`` when one of its MX hosts was tested for
  DANE (pass, a failure, unusable) and ``not_tested`` when none was;
- an MX host's: ``not_tested`` (a secure TLSA RRset, no address tested);
- an address's: the verdict of its host when DNS alone decided that host
  (``no_dane_insecure``, ``no_dane_absent``, ``fail_dns``), else
  ``not_tested`` (the address was not contacted).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from scanner.output.schema import SCHEMA_VERSION
from scanner.status import DaneVerdict, DomainVerdict

READABLE = ("2", "3", "4", SCHEMA_VERSION)

_DNS_DECIDED = [
    DaneVerdict.NO_DANE_INSECURE.value,
    DaneVerdict.NO_DANE_ABSENT.value,
    DaneVerdict.FAIL_DNS.value,
]
_TESTED = [
    v.value
    for v in DaneVerdict
    if v is DaneVerdict.PASS or v is DaneVerdict.UNUSABLE or v.is_failure
    if v is not DaneVerdict.FAIL_DNS
]


def upgrade(table: pa.Table, version: str | None, errors: Callable[[], pa.Array]) -> pa.Table:
    """``table`` (any projection of a part) as the current version has it;
    ``errors`` reads the part's ``error`` column, needed only for a version 2 part."""
    if version in ("4", SCHEMA_VERSION):
        # 5 added columns only (beside DANE); a projection of 4's columns reads alike.
        return table
    if version != "3":
        table = _explicit_verdicts(table, errors)
    return _null_depths(table)


def _null_depths(table: pa.Table) -> pa.Table:
    """A null ``depth`` in every TLSA record of a projection that reads them (version 3)."""
    if "mx_hosts" not in table.column_names:
        return table
    hosts = table.column("mx_hosts").combine_chunks()
    values = hosts.values
    if "tlsa" not in values.type.names:
        return table
    tlsa = values.field("tlsa")
    records = tlsa.values
    if "depth" in records.type.names:
        return table
    fields = {name: records.field(name) for name in records.type.names}
    fields["depth"] = pa.nulls(len(records), pa.int8())
    records = pa.StructArray.from_arrays(
        list(fields.values()), names=list(fields), mask=records.is_null()
    )
    tlsa = pa.ListArray.from_arrays(tlsa.offsets, records, mask=tlsa.is_null())
    host_fields = {name: values.field(name) for name in values.type.names}
    host_fields["tlsa"] = tlsa
    struct = pa.StructArray.from_arrays(
        list(host_fields.values()), names=list(host_fields), mask=values.is_null()
    )
    hosts = pa.ListArray.from_arrays(hosts.offsets, struct, mask=hosts.is_null())
    return table.set_column(table.column_names.index("mx_hosts"), "mx_hosts", hosts)


def _explicit_verdicts(table: pa.Table, errors: Callable[[], pa.Array]) -> pa.Table:
    """Version 2's null verdicts as version 3 writes them (the module docstring)."""
    if "verdict" not in table.column_names:
        return table
    hosts = table.column("mx_hosts").combine_chunks() if "mx_hosts" in table.column_names else None
    verdict = table.column("verdict").combine_chunks()
    if verdict.null_count:
        tested = np.zeros(len(table), dtype=np.bool_)
        if hosts is not None and "verdict" in hosts.type.value_type.names:
            flat = hosts.flatten().field("verdict")
            hits = np.asarray(
                pc.fill_null(pc.is_in(flat.cast(pa.string()), pa.array(_TESTED)), False)
            )
            tested[np.asarray(pc.list_parent_indices(hosts))[hits]] = True
        guess = np.where(
            pc.is_valid(errors()).to_numpy(),
            DomainVerdict.INTERNAL_ERROR.value,
            np.where(tested, DomainVerdict.UNDETERMINED.value, DomainVerdict.NOT_TESTED.value),
        )
        filled = pc.coalesce(verdict.cast(pa.string()), pa.array(guess, pa.string()))
        table = table.set_column(
            table.column_names.index("verdict"), "verdict", _like(verdict, filled)
        )
    if hosts is not None:
        table = table.set_column(
            table.column_names.index("mx_hosts"), "mx_hosts", _upgrade_hosts(hosts)
        )
    return table


def _upgrade_hosts(hosts: pa.ListArray) -> pa.ListArray:
    values = hosts.values
    names = values.type.names
    if "verdict" not in names:
        return hosts
    host_verdict = values.field("verdict").cast(pa.string())
    fields = {name: values.field(name) for name in names}
    filled = pc.fill_null(host_verdict, DaneVerdict.NOT_TESTED.value)
    fields["verdict"] = _like(values.field("verdict"), filled)
    if "addresses" in names and "verdict" in values.field("addresses").type.value_type.names:
        fields["addresses"] = _upgrade_addresses(values.field("addresses"), host_verdict)
    struct = pa.StructArray.from_arrays(
        list(fields.values()), names=list(fields), mask=values.is_null()
    )
    return pa.ListArray.from_arrays(hosts.offsets, struct, mask=hosts.is_null())


def _upgrade_addresses(addresses: pa.ListArray, host_verdict: pa.Array) -> pa.ListArray:
    values = addresses.values
    names = values.type.names
    owner = host_verdict.take(pc.list_parent_indices(addresses))
    decided = pc.fill_null(pc.is_in(owner, pa.array(_DNS_DECIDED)), False)
    guess = pc.if_else(decided, owner, DaneVerdict.NOT_TESTED.value)
    fields = {name: values.field(name) for name in names}
    verdict = values.field("verdict")
    fields["verdict"] = _like(verdict, pc.coalesce(verdict.cast(pa.string()), guess))
    struct = pa.StructArray.from_arrays(
        list(fields.values()), names=list(fields), mask=values.is_null()
    )
    return pa.ListArray.from_arrays(addresses.offsets, struct, mask=addresses.is_null())


def _like(original: pa.Array, values: pa.Array) -> pa.Array:
    """``values`` dictionary-encoded when ``original`` was (see analysis.load)."""
    if pa.types.is_dictionary(original.type):
        return pc.dictionary_encode(values)
    return values

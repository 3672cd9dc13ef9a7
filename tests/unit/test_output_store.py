"""Dataset stores (scanner.output.store): files published whole or not at
all, in a local folder and through fsspec (its in-memory filesystem, an
object store in this process, and its local filesystem, which has no
whole-object writes and goes through a temporary name)."""

from __future__ import annotations

import pickle
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import fsspec
import pyarrow.parquet as pq
import pytest

from scanner.output.manifest import Manifest, ScanStatus, read_manifest, write_manifest
from scanner.output.rows import domain_row
from scanner.output.store import DatasetStore, FsspecStore, LocalStore, open_store
from scanner.output.writer import PartWriter, drop_transient, part_files, read_done
from scanner.seen import name_key
from tests.unit.test_output import WHEN, dane_result


@pytest.fixture(params=["local", "memory", "fsspec-file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DatasetStore]:
    kind = request.param
    if kind == "local":
        yield open_store(tmp_path / "ds")
    elif kind == "memory":
        url = f"memory://danescan-{uuid.uuid4().hex}/ds"
        yield open_store(url)
        fsspec.filesystem("memory").rm(
            url.removeprefix("memory://").rsplit("/", 1)[0], recursive=True
        )
    else:
        yield FsspecStore(f"file://{tmp_path}/ds")


def test_open_store_decides_by_the_location(tmp_path: Path) -> None:
    assert open_store(tmp_path) == LocalStore(tmp_path)
    assert open_store(str(tmp_path)) == LocalStore(tmp_path)
    assert open_store(f"file://{tmp_path}") == LocalStore(tmp_path)
    assert isinstance(open_store("memory://bucket/scan"), FsspecStore)
    with pytest.raises(ValueError, match="Protocol not known"):
        open_store("nosuchscheme://x/y")


def write_half_then_fail(store: DatasetStore, name: str) -> None:
    with store.open_write(name) as out:
        out.write(b"half of it")
        raise RuntimeError("killed mid-write")


def test_files_are_published_whole_or_not_at_all(store: DatasetStore) -> None:
    store.prepare()
    assert store.list() == []
    store.write_bytes("a.txt", b"one")
    with pytest.raises(RuntimeError, match="killed"):
        write_half_then_fail(store, "b.txt")
    assert store.list() == ["a.txt"]  # no b.txt, and no temporary file either
    assert not store.exists("b.txt")
    assert store.read_bytes("a.txt") == b"one"
    store.write_bytes("a.txt", b"two")  # replaced whole
    assert store.read_bytes("a.txt") == b"two"
    store.write_bytes("sub/c.txt", b"three")
    assert store.list("sub") == ["sub/c.txt"]
    assert store.list() == ["a.txt"]  # files directly in the root only
    store.remove("a.txt")
    store.remove("a.txt")  # nothing there: nothing to do
    assert store.list() == []
    with pytest.raises(FileNotFoundError):
        store.read_bytes("a.txt")
    assert store.list("nowhere") == []


def test_a_dataset_round_trips_through_every_store(store: DatasetStore) -> None:
    store.prepare()
    writer = PartWriter(store, 2)
    writer.add(domain_row(dane_result("a.example", 1)))
    assert writer.flush() == "part-002-000000.parquet"
    writer.add(domain_row(replace(dane_result("b.example", 2), transient=True)))
    writer.flush()
    assert part_files(store) == ["part-002-000000.parquet", "part-002-000001.parquet"]
    with store.open_read("part-002-000000.parquet") as handle:
        assert pq.read_table(handle).column("domain").to_pylist() == ["a.example"]
    assert drop_transient(store) == 1
    done = read_done(store)
    assert set(done.domains) == {name_key("a.example")}
    assert done.next_part == {2: 2}
    manifest = Manifest("1.2.3", ScanStatus.COMPLETE, WHEN, config={"rate": 5.0})
    write_manifest(store, manifest)
    assert read_manifest(store) == manifest


def test_a_store_pickles_as_its_location(store: DatasetStore) -> None:
    store.prepare()
    store.write_bytes("x", b"1")
    again = pickle.loads(pickle.dumps(store))
    assert again == store
    assert again.read_bytes("x") == b"1"

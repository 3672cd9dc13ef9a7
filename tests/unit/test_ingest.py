"""Ingest: normalising names (a table) and reading lists in every supported form."""

from __future__ import annotations

import bz2
import gzip
import lzma
import subprocess
import sys
from pathlib import Path

import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from scanner.ingest.normalise import normalise
from scanner.ingest.reader import InputError, read_names


@pytest.mark.parametrize(
    ("raw", "domain"),
    [
        ("example.com", "example.com"),
        ("  Example.COM.  ", "example.com"),
        ("Bücher.Example", "xn--bcher-kva.example"),
        ("straße.de", "xn--strae-oqa.de"),  # non-transitional UTS 46: ß kept
        ("Ⓑ.com", "b.com"),  # UTS 46 mapping
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("a-b.c-d.example", "a-b.c-d.example"),
        ("123.example", "123.example"),
        ("x" * 63 + ".com", "x" * 63 + ".com"),
    ],
)
def test_valid_names(raw: str, domain: str) -> None:
    assert normalise(raw).domain == domain
    assert normalise(raw).error is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("com", "one label"),
        ("a..com", "empty label"),
        ("-a.com", "not a valid host name label"),
        ("a-.com", "not a valid host name label"),
        ("a_b.com", "not a valid host name label"),
        ("x" * 64 + ".com", "not a valid host name label"),
        (("a" * 60 + ".") * 5 + "com", "longer than 253"),
        ("192.0.2.1", "numeric"),
        ("http://example.com", "not a valid host name label"),
        ("xn--zz.com", "punycode"),
        ("☃.net", "internationalised"),
        ("a" * 2000, "too long"),
    ],
)
def test_invalid_names(raw: str, reason: str) -> None:
    result = normalise(raw)
    assert result.domain is None
    assert result.error is not None
    assert reason in result.error


@given(st.text(max_size=300))
def test_normalise_never_raises_and_is_idempotent(raw: str) -> None:
    result = normalise(raw)
    assert (result.domain is None) != (result.error is None)
    if result.domain is not None:
        assert normalise(result.domain).domain == result.domain


LIST = "# a comment\nexample.com\n\nBücher.example\nnot a domain\nexample.com.\n"
EXPECTED = [
    (2, "example.com"),
    (4, "xn--bcher-kva.example"),
    (5, None),
    (6, "example.com"),
]


@pytest.mark.parametrize(
    ("suffix", "compress"),
    [
        (".txt", lambda b: b),
        (".gz", gzip.compress),
        (".bz2", bz2.compress),
        (".xz", lzma.compress),
        (".zst", lambda b: zstandard.ZstdCompressor().compress(b)),
        ("", gzip.compress),  # recognised by magic bytes, not by name
    ],
)
def test_read_plain_and_compressed(tmp_path: Path, suffix: str, compress: object) -> None:
    path = tmp_path / f"list{suffix}"
    assert callable(compress)
    path.write_bytes(compress(LIST.encode()))
    got = [(n.line, n.result.domain) for n in read_names(str(path))]
    assert got == EXPECTED


def test_tranco_csv_without_header(tmp_path: Path) -> None:
    path = tmp_path / "tranco.csv"
    path.write_text("1,google.com\n2,Example.ORG\n3,\n")
    got = [(n.raw, n.result.domain) for n in read_names(str(path))]
    assert got == [("google.com", "google.com"), ("Example.ORG", "example.org"), ("", None)]


def test_csv_with_a_domain_header(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text('domain,note\nexample.com,"a, b"\nexample.net,x\n')
    assert [n.result.domain for n in read_names(str(path))] == ["example.com", "example.net"]


def test_stdin() -> None:
    code = (
        "from scanner.ingest.reader import read_names\n"
        "print([n.result.domain for n in read_names('-')])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        input=b"a.example\nb.example\n",
        capture_output=True,
        check=True,
    )
    assert proc.stdout.decode().strip() == "['a.example', 'b.example']"


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        list(read_names(str(tmp_path / "nope.txt")))


def test_corrupt_compression_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.gz"
    path.write_bytes(gzip.compress(b"a.example\n" * 1000)[:-30])
    with pytest.raises(InputError, match="cannot read"):
        list(read_names(str(path)))


def test_invalid_utf8_is_a_bad_line_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"ok.example\nb\xfcrger.example\n")
    results = [n.result for n in read_names(str(path))]
    assert results[0].domain == "ok.example"
    assert results[1].domain is None


def test_an_endless_line_is_cut_not_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "long.txt"
    path.write_text("x" * 1_000_000 + "\nok.example\n")
    results = [(n.line, n.result.domain) for n in read_names(str(path))]
    assert results == [(1, None), (2, "ok.example")]

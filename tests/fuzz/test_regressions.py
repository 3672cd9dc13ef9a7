"""Every input that fuzzing found to break a parser's contract, as a table:
the bytes, and the documented outcome the parser now gives for them.

A new finding goes here (and its file into tests/fuzz/corpus/<target>/, so the
fuzzers start from it too) together with the fix in the parser.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from scanner import tlsa
from scanner.ingest.reader import InputError, read_names
from scanner.match import certificates, dane, der, records
from scanner.match.batch import CertPool
from scanner.status import DaneVerdict
from tests.fuzz.harnesses import TARGETS

# A certificate of the test PKI with version 0x20: cryptography raises
# InvalidVersion, not ValueError, so cert_info let it out (found by the der
# harness, tests/fuzz/test_fuzz.py's seeded mutations).
_BAD_VERSION = bytes.fromhex(
    "3082018230820129a003020120020103300a06082a8648ce3d04030230163114301206035504030c0b546573"
    "7420497373756572301e170d3235303530323132303030305a170d3235303733313132303030305a30163114"
    "301206035504030c0b6578616d706c652e636f6d3059301306072a8648ce3d020106082a8648ce3d03010703"
    "4200041a49b159f96cc7930c10e4c417d87faaeacc8e302b88b17e8d4d107352d2c07440257c714e66c962ee"
    "059873a8380859e619c864dab2df1373949bb35643d828a3683066301d0603551d0e041604143628938786f3"
    "de38de23464fd0c1c7ca03ad4195301f0603551d230418301680149dabe8e1d013f5f1cd880579366e088146"
    "88eaf7300c0603551d130101ff0402300030160603551d11040f300d820b6578616d706c652e636f6d300a06"
    "082a8648ce3d0403020347003044022014b1b701d32975327787532b9f94e8fc28b129d673740ca16d0ccce5"
    "b7c32f8702206c6752d43b63fe52081ffb8c0a885b6fbe91f83ed852c416838b7320edf41dc0"
)
# An issuer attribute (OID 2.5.4.12) with a BIT STRING value: cryptography
# raises TypeError when the issuer is first read (found by atheris, der and
# tlsa harnesses: the same bytes as a DANE-TA(2) Cert(0) Full(0) record).
_BAD_NAME_TYPE = bytes.fromhex(
    "3082018230820129a003020102020103300a06082a8648ce3d040302301631143012060355040c030b546573"
    "7420497373756572301e170d3235303530323132303030305a170d3235303733313132303030305a30163114"
    "301206035504030c0b6578616d706c652e636f6d3059301306072a8648ce3d020106082a8648ce3d03010703"
    "4200041a49b159f96cc7930c10e4c417d87faaeacc8e302b88b17e8d4d107352d2c07440257c714e66c962ee"
    "059873a8380859e619c864dab2df1373949bb35643d828a3683066301d0603551d0e041604143628938786f3"
    "de38de23464fd0c1c7ca03ad4195301f0603551d230418803016149dabe8e1ffffffffffffff01366e088146"
    "88eaf7300c0603551d130101ff0402300030160603551d11040f300d820b6578616d706c652e636f6d300a06"
    "082a8648ce3d0403020347003044022014b1b701d32975327787532b9f94e8fc28b129d673740ca16d0ccce5"
    "b7c32f8702206c6752d43b63fe52081ffb8c0a885b6fbe91f83ed852c416838b7320edf41dc0"
)
# gzip whose first deflate block has an invalid type: GzipFile raises
# zlib.error, which read_names did not turn into InputError (seeded mutations).
_BAD_DEFLATE = bytes.fromhex(
    "1f8b0800000000000203ffad48cc2dc849d54bcecfe54a85b2f38bd2b9008714b57b18000000"
)


def _cert_unreadable(data: bytes, _: Path) -> None:
    assert certificates.cert_info(data) is None
    # The DER walker still finds the key: only the full parse refuses.
    assert isinstance(der.spki(data), bytes)


def _tlsa_rdata_unusable(data: bytes, _: Path) -> None:
    # A Cert(0) Full(0) record whose certificate cannot be read is unusable.
    record = tlsa.TlsaRecord(data[0], data[1], data[2], data[3:])
    chain = der.pem_certificates((Path(__file__).parent / "chain.pem").read_bytes())
    now = datetime(2025, 6, 1, tzinfo=UTC)
    result = dane.match_chain(chain, [record], ["example.com"], now, CertPool())
    assert result.verdict is not DaneVerdict.PASS
    assert records.unusable_records([record])


def _input_error(data: bytes, tmp_path: Path) -> None:
    path = tmp_path / "list.gz"
    path.write_bytes(data)
    with pytest.raises(InputError, match="cannot read"):
        list(read_names(str(path)))


REGRESSIONS: list[tuple[str, str, bytes, Callable[[bytes, Path], None]]] = [
    ("cert-version-0x20", "der", _BAD_VERSION, _cert_unreadable),
    ("cert-name-bit-string", "der", _BAD_NAME_TYPE, _cert_unreadable),
    ("tlsa-2-0-0-name-bit-string", "tlsa", b"\x02\x00\x00" + _BAD_NAME_TYPE, _tlsa_rdata_unusable),
    ("tlsa-3-0-0-name-bit-string", "tlsa", b"\x03\x00\x00" + _BAD_NAME_TYPE, _tlsa_rdata_unusable),
    ("gzip-bad-deflate-block", "reader", _BAD_DEFLATE, _input_error),
]


@pytest.mark.parametrize(
    ("target", "data", "outcome"),
    [pytest.param(target, data, outcome, id=name) for name, target, data, outcome in REGRESSIONS],
)
def test_regression(
    target: str, data: bytes, outcome: Callable[[bytes, Path], None], tmp_path: Path
) -> None:
    outcome(data, tmp_path)
    TARGETS[target](data)  # and the harness's whole contract holds

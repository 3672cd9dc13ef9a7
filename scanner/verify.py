"""`scan verify`: check one certificate chain against TLSA records, offline.

Like ``ldns-dane verify`` for debugging one host: the chain comes from a PEM
file (leaf first, as the server sends it), the records from the command line,
and the verdict is the scanner's own (scanner.match), so what this prints is
exactly what a scan would record for the same inputs.

Exit status: 0 when the verdict is ``pass``, 1 for any other verdict (every
``fail_*`` and ``unusable``), 2 for bad input (unreadable PEM, a malformed
record) with a one-line message on stderr.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from scanner.match import der
from scanner.match.batch import MatchJob, match_batch
from scanner.match.outcome import MatchResult
from scanner.match.records import unusable_records
from scanner.status import DaneVerdict
from scanner.terminal import printable
from scanner.tlsa import TlsaRecord, parse_tlsa

__all__ = ["BadInput", "VerifyRequest", "result_json", "run"]


class BadInput(Exception):
    """Input that cannot be checked at all; the message is one line."""


@dataclass(frozen=True, slots=True)
class VerifyRequest:
    chain_file: Path
    tlsa: Sequence[str]  # "U S M HEX" each
    names: Sequence[str]
    now: datetime
    ee_name_checks: bool = False
    ca_file: Path | None = None
    json: bool = False


def _read_certificates(path: Path, what: str) -> list[bytes]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    try:
        certs = der.pem_certificates(data)
    except ValueError as exc:
        raise BadInput(f"{what} {path}: {exc}") from exc
    if not certs:
        raise BadInput(f"{what} {path}: no PEM certificate found")
    return certs


def _parse_records(texts: Sequence[str]) -> list[TlsaRecord]:
    records = []
    for text in texts:
        parsed = parse_tlsa(text)
        if not isinstance(parsed, TlsaRecord):
            raise BadInput(f"bad --tlsa {text!r}: {parsed.message}")
        records.append(parsed)
    return records


def _result_dict(result: MatchResult) -> dict[str, Any]:
    return {
        "verdict": result.verdict.value,
        "match_depth": result.depth,
        "matched": result.record.to_text() if result.record else None,
        "reason": result.reason,
        "openssl_code": result.code,
    }


def result_json(
    result: MatchResult, request: VerifyRequest, records: Sequence[TlsaRecord]
) -> dict[str, Any]:
    """The object ``--json`` prints."""
    out = _result_dict(result)
    out["names"] = list(request.names)
    out["now"] = request.now.isoformat()
    out["unusable"] = [
        {"record": record.to_text(), "problem": problem}
        for record, problem in unusable_records(records)
    ]
    out["pkix"] = _result_dict(result.pkix) if result.pkix else None
    return out


def _text(result: MatchResult, records: Sequence[TlsaRecord]) -> str:
    lines = [f"verdict: {result.verdict.value}"]
    if result.record is not None:
        lines.append(f"matched: {result.record.to_text()} (depth {result.depth})")
    lines.append(f"reason:  {result.reason}")
    for record, problem in unusable_records(records):
        lines.append(f"skipped: {record.label()}: {problem}")
    if result.pkix is not None:
        pkix = result.pkix
        lines.append(f"pkix:    {pkix.verdict.value} (OpenSSL code {pkix.code}): {pkix.reason}")
    return "\n".join(lines)


def run(request: VerifyRequest, out: TextIO, err: TextIO) -> int:
    """Check, print, and return the exit status."""
    try:
        records = _parse_records(request.tlsa)
        chain = _read_certificates(request.chain_file, "chain file")
        ca_store = (
            _read_certificates(request.ca_file, "CA file") if request.ca_file is not None else None
        )
    except BadInput as exc:
        print(f"scan verify: {printable(str(exc))}", file=err)
        return 2
    job = MatchJob(chain=chain, records=records, names=list(request.names))
    (result,) = match_batch(
        [job], request.now, ee_name_checks=request.ee_name_checks, ca_store=ca_store
    )
    if request.json:
        print(json.dumps(result_json(result, request, records), indent=2), file=out)
    else:
        # A chain captured from a server carries its names: escaped for the terminal.
        print("\n".join(printable(line) for line in _text(result, records).splitlines()), file=out)
    return 0 if result.verdict is DaneVerdict.PASS else 1

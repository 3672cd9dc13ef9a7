"""Command line of danescan: argument parsing only.

``scan <command> ...`` dispatches on the first argument through COMMANDS; each
command has its own argparse parser (so ``scan verify --help`` works) and hands
its parsed arguments to the module that does the work. Add a command by writing
a parser function and a runner and registering both in COMMANDS. A later
default form (``scan INPUT -o DIR`` when the first argument is not a command)
goes where ``main`` now reports an unknown command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from scanner import __version__

__all__ = ["COMMANDS", "main"]


@dataclass(frozen=True, slots=True)
class Command:
    summary: str
    parser: Callable[[], argparse.ArgumentParser]
    run: Callable[[argparse.Namespace], int]


class _OneLineError(Exception):
    """Bad input detected while converting arguments: exit 2 with one line."""


def _iso8601(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise _OneLineError(
            f"bad --now {text!r}: expected ISO 8601, e.g. 2025-01-31T12:00:00Z"
        ) from exc
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


# --------------------------------------------------------------------------- verify


def _verify_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scan verify",
        description=(
            "Offline DANE check of one certificate chain against TLSA records, like "
            "'ldns-dane verify': prints the verdict the scanner would record. Exit status "
            "0 for pass, 1 for any other verdict, 2 for bad input."
        ),
    )
    parser.add_argument(
        "--chain", required=True, type=Path, metavar="FILE.pem", help="PEM chain, leaf first"
    )
    parser.add_argument(
        "--tlsa",
        required=True,
        action="append",
        metavar='"U S M HEX"',
        help="a TLSA record in presentation form; repeat for an RRset",
    )
    parser.add_argument(
        "--name",
        required=True,
        action="append",
        metavar="HOST",
        help="reference identifier (TLSA base domain, MX host name); repeatable",
    )
    parser.add_argument(
        "--now",
        metavar="ISO8601",
        help="check validity at this time instead of the current time (UTC if no offset)",
    )
    parser.add_argument(
        "--ee-name-checks",
        action="store_true",
        help="also check names for DANE-EE(3), as OpenSSL does by default (RFC 7672: do not)",
    )
    parser.add_argument(
        "--ca-file",
        type=Path,
        metavar="FILE",
        help="PEM CA bundle: also evaluate PKIX-TA/EE(0/1) records against it (statistics only)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def _run_verify(args: argparse.Namespace) -> int:
    from scanner import verify  # the matcher and cryptography load only for this command

    now = _iso8601(args.now) if args.now else datetime.now(UTC)
    request = verify.VerifyRequest(
        chain_file=args.chain,
        tlsa=args.tlsa,
        names=args.name,
        now=now,
        ee_name_checks=args.ee_name_checks,
        ca_file=args.ca_file,
        json=args.json,
    )
    return verify.run(request, sys.stdout, sys.stderr)


COMMANDS: dict[str, Command] = {
    "verify": Command("check one chain against TLSA records, offline", _verify_parser, _run_verify),
}


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [
        f"usage: scan <command> [options]   (danescan {__version__})",
        "",
        "Surveys of DANE for SMTP (RFC 6698, 7671, 7672).",
        "",
        "commands:",
        *(f"  {name:<{width}}  {command.summary}" for name, command in COMMANDS.items()),
        "",
        "'scan <command> --help' describes a command.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args:
        print(_usage(), file=sys.stderr)
        return 2
    first = args[0]
    if first in ("-h", "--help"):
        print(_usage())
        return 0
    if first == "--version":
        print(f"danescan {__version__}")
        return 0
    command = COMMANDS.get(first)
    if command is None:
        known = ", ".join(COMMANDS)
        print(
            f"scan: unknown command {first!r} (known: {known}); see 'scan --help'", file=sys.stderr
        )
        return 2
    try:
        return command.run(command.parser().parse_args(args[1:]))
    except SystemExit as exc:  # argparse: --help exits 0, a usage error 2
        return exc.code if isinstance(exc.code, int) else 2
    except _OneLineError as exc:
        print(f"scan {first}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""Command line of danescan: argument parsing only.

``scan <command> ...`` dispatches on the first argument through COMMANDS; each
command has its own argparse parser (so ``scan verify --help`` works) and hands
its parsed arguments to the module that does the work. Add a command by writing
a parser function and a runner and registering both in COMMANDS. When the
first argument is not a command, it is the input of the main form,
``scan INPUT -o DIR [options]``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from datetime import UTC, datetime
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scanner import __version__

if TYPE_CHECKING:
    from scanner.config import ScanConfig

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


# --------------------------------------------------------------------------- scan


def _defaults() -> dict[str, Any]:
    """ScanConfig's defaults: the one place each of them is set."""
    from scanner.config import ScanConfig

    return {f.name: f.default for f in fields(ScanConfig) if f.default is not MISSING}


# Options of _add_common whose value is the ScanConfig field of the same name.
_COMMON_FIELDS = (
    "trust_anchor",
    "root_hints",
    "allow_nonvalidating",
    "secure_probe",
    "exclude",
    "timeout",
    "max_mx",
    "max_addresses",
    "min_interval",
    "max_connections",
    "retry_backoff",
    "retries",
)
# ... and of the scan's own options.
_SCAN_FIELDS = (
    "input",
    "output",
    "rate",
    "workers",
    "resume",
    "quiet",
    "log_json",
    "part_rows",
    "retry_transient",
    "resolver_patience",
    "cluster",
    "cluster_certs",
    "tasks",
)


def _add_common(parser: argparse.ArgumentParser) -> None:
    """Resolver, politeness and SMTP options shared by scanning and `check`."""
    add = parser.add_argument
    default = _defaults()
    add(
        "--resolver",
        action="append",
        default=[],
        metavar="ADDR[:PORT]",
        help="validating resolver (repeatable); default: start a private Unbound",
    )
    add(
        "--trust-anchor",
        type=Path,
        metavar="FILE",
        help="DNSSEC trust anchor for the private Unbound (default: the root's, "
        "/usr/share/dns/root.key from Debian's dns-root-data)",
    )
    add(
        "--root-hints",
        type=Path,
        metavar="FILE",
        help="root hints for the private Unbound, for a private root such as the testbed "
        "(default: /usr/share/dns/root.hints with the default trust anchor)",
    )
    add(
        "--allow-nonvalidating",
        action="store_true",
        help="use a resolver even if it fails the DNSSEC probe",
    )
    add(
        "--secure-probe",
        default=default["secure_probe"],
        metavar="NAME",
        help="a name whose answer must carry AD (default: the root)",
    )
    add(
        "--bogus-probe",
        default=default["bogus_probe"],
        metavar="NAME",
        help="a name that must fail validation ('' to skip; default %(default)s)",
    )
    add(
        "--ehlo-name",
        default=None,
        metavar="FQDN",
        help="this scanner's real FQDN for EHLO (default: the machine's FQDN if it has one)",
    )
    add("--exclude", type=Path, metavar="FILE", help="CIDRs and domains never to contact")
    add(
        "--allow-range",
        action="append",
        default=[],
        metavar="CIDR",
        help="contact special-purpose addresses (RFC 6890: private, loopback, ...) in CIDR "
        "all the same (repeatable; for a private testbed: its testbed.json scan_args)",
    )
    add(
        "--no-mta-sts",
        dest="mta_sts",
        action="store_false",
        help="skip the MTA-STS and TLS-RPT lookups and policy fetches (DANE only)",
    )
    add(
        "--days-ahead",
        type=int,
        default=None,
        metavar="N",
        help="also judge every verdict as it will be N days from now, with the same "
        "records and chains (certificate expiry)",
    )
    add(
        "--pkix-ca",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="extra PEM roots trusted for MTA-STS policy fetches and PKIX checks, e.g. a "
        "private testbed's (repeatable)",
    )
    add(
        "--starttls",
        choices=["dane", "all", "none"],
        default=default["starttls"].value,
        help="which MX hosts get a STARTTLS handshake (default: dane)",
    )
    for option, kind, text in (
        ("--timeout", float, "SMTP session deadline in seconds"),
        ("--max-mx", int, "MX hosts per domain, most preferred first"),
        ("--max-addresses", int, "addresses tried per MX host"),
        ("--min-interval", float, "seconds between connections to one address"),
        ("--max-connections", int, "open SMTP connections in all"),
    ):
        name = option[2:].replace("-", "_")
        add(option, type=kind, default=default[name], help=f"{text} (default %(default)s)")
    add(
        "--retry-backoff",
        type=float,
        default=default["retry_backoff"],
        metavar="SECONDS",
        help="pause before trying again after a transient outcome, tripled at each "
        "attempt (greylisting and 421 set their own; default %(default)s)",
    )
    add(
        "--retries",
        type=int,
        default=default["retries"],
        metavar="N",
        help="tries after the first for a transient outcome: a DNS timeout or SERVFAIL "
        "without a validation error, an SMTP 4xx or 421, a TLS reset (default %(default)s)",
    )
    add("--now", metavar="ISO8601", help=argparse.SUPPRESS)  # reproducible tests


def _scan_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scan",
        description=(
            "Survey DANE for SMTP over a list of domains: MX, DNSSEC, TLSA, STARTTLS, "
            "certificate chains and verdicts, written as a Parquet dataset. Exit status "
            "0 when the input was scanned to the end, 1 when the scan could not run, "
            "2 for bad arguments, 130 when interrupted (continue with --resume)."
        ),
        epilog="Other commands: " + ", ".join(COMMANDS) + " ('scan <command> --help').",
    )
    add = parser.add_argument
    default = _defaults()
    add(
        "input",
        help="domain list: a file (plain, .gz, .bz2, .xz, .zst, Tranco CSV) "
        "or - for standard input",
    )
    add(
        "-o",
        "--output",
        required=True,
        metavar="DIR",
        help="dataset folder (part files and manifest.json): a path, or a URL "
        "fsspec opens, e.g. s3://bucket/scan (its fsspec package installed)",
    )
    add(
        "--rate",
        type=float,
        default=default["rate"],
        help="domains admitted per second (default %(default)s)",
    )
    add(
        "--workers",
        type=int,
        default=default["workers"],
        help="processes, each scanning its own shard",
    )
    add("--resume", action="store_true", help="continue the scan in DIR where its parts end")
    add("--shard", metavar="I/N", help="scan only shard I of N of the input")
    add("-q", "--quiet", action="store_true", help="no progress display")
    add("--log-json", type=Path, metavar="FILE", help="also write one JSON line per domain")
    add("--part-rows", type=int, default=default["part_rows"], help=argparse.SUPPRESS)
    # Benchmarks only: bounds on the flow control's windows ("150:150" fixes one).
    add("--domains-in-flight", type=_bounds, help=argparse.SUPPRESS)
    add("--queries-in-flight", type=_bounds, help=argparse.SUPPRESS)
    add(
        "--retry-transient",
        action="store_true",
        help="with --resume: redo the domains whose rows were left transient",
    )
    add(
        "--resolver-patience",
        type=float,
        default=default["resolver_patience"],
        metavar="SECONDS",
        help="end the scan as failed when the resolver stays down this long (default %(default)s)",
    )
    add(
        "--cluster",
        metavar="tls://HOST:PORT|local:N",
        help="run on a Dask cluster: its scheduler (TLS only; see the README first), "
        "or N worker processes started here",
    )
    add(
        "--cluster-certs",
        type=Path,
        metavar="DIR",
        help="the survey's cluster certificates (scan cluster-certs): ca.pem, client.pem",
    )
    add("--tasks", type=int, help="tasks a cluster scan splits its input into (default: by size)")
    _add_common(parser)
    return parser  # fmt: skip


def _config(args: argparse.Namespace, **extra: Any) -> ScanConfig:
    """The ScanConfig from the options of _add_common plus command-specific ``extra`` fields."""
    from scanner.config import ScanConfig, StartTlsMode, default_ehlo_name

    try:
        return ScanConfig(
            resolvers=tuple(args.resolver),
            bogus_probe=args.bogus_probe or None,
            ehlo_name=args.ehlo_name if args.ehlo_name is not None else default_ehlo_name(),
            allow_ranges=tuple(args.allow_range),
            pkix_ca=tuple(args.pkix_ca),
            mta_sts=args.mta_sts,
            days_ahead=args.days_ahead,
            starttls=StartTlsMode(args.starttls),
            now_override=_iso8601(args.now).isoformat() if args.now else None,
            **{name: getattr(args, name) for name in _COMMON_FIELDS},
            **extra,
        )
    except ValueError as exc:
        raise _OneLineError(str(exc)) from None


def _bounds(text: str) -> tuple[int, int]:
    low, _, high = text.partition(":")
    try:
        return int(low), int(high or low)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN:MAX, got {text!r}") from None


def _window_fields(args: argparse.Namespace) -> dict[str, int]:
    fields = {}
    if args.domains_in_flight is not None:
        fields["min_domains_in_flight"], fields["max_domains_in_flight"] = args.domains_in_flight
    if args.queries_in_flight is not None:
        fields["min_queries_in_flight"], fields["max_queries_in_flight"] = args.queries_in_flight
    return fields


def _scan_config(args: argparse.Namespace) -> ScanConfig:
    from scanner.config import Shard

    try:
        shard = Shard.parse(args.shard) if args.shard else None
    except ValueError as exc:
        raise _OneLineError(str(exc)) from None
    return _config(
        args,
        shard=shard,
        **{name: getattr(args, name) for name in _SCAN_FIELDS},
        **_window_fields(args),
    )


def _run_scan(args: argparse.Namespace) -> int:
    from scanner.run import run_scan

    return run_scan(_scan_config(args))


# --------------------------------------------------------------------------- cluster-certs


def _certs_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scan cluster-certs",
        description=(
            "Make the certificates of a survey's Dask cluster: a CA (made once, then "
            "reused) and a certificate and key per member, for Dask's mutual TLS. Give "
            "each host ca.pem and its own pair; keep ca-key.pem off the cluster."
        ),
    )
    parser.add_argument("folder", type=Path, help="where the files go")
    parser.add_argument(
        "--member",
        action="append",
        metavar="NAME",
        help="a member to certify (repeatable; default: scheduler, worker, client)",
    )
    parser.add_argument("--days", type=int, default=825, help="validity (default %(default)s)")
    return parser


def _run_certs(args: argparse.Namespace) -> int:
    from scanner.cluster.certs import DEFAULT_MEMBERS, CertificateError, make_certs

    try:
        written = make_certs(args.folder, tuple(args.member or DEFAULT_MEMBERS), days=args.days)
    except (OSError, CertificateError) as exc:
        raise _OneLineError(str(exc)) from None
    for path in written:
        print(path)
    return 0


# --------------------------------------------------------------------------- check


def _check_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scan check",
        description=(
            "Check one domain and explain each step: MX and its DNSSEC status, addresses, "
            "TLSA, STARTTLS and the certificate chain, which record matched or why none "
            "did. Exit status 0 dane_valid; 1 DANE fails (partial, invalid, bogus, DNS "
            "error); 3 no DANE to check; 2 bad input."
        ),
    )
    parser.add_argument("domain", help="the mail domain")
    _add_common(parser)
    return parser


def _run_check(args: argparse.Namespace) -> int:
    import uvloop

    from scanner import check
    from scanner.handshake.contact import ContactPolicyError
    from scanner.ingest.normalise import normalise
    from scanner.resolve.managed import ResolverError
    from scanner.run import ScanError, resolver_for
    from scanner.terminal import printable

    name = normalise(args.domain)
    if name.domain is None:
        raise _OneLineError(f"{args.domain!r} is not a domain name: {name.error}")
    config = _config(args, input=name.domain, output=".")
    try:
        with resolver_for(config) as ready:
            result = uvloop.run(check.check(ready, name.domain))
    except (ScanError, ResolverError, ContactPolicyError) as exc:
        print(f"scan check: {printable(str(exc))}", file=sys.stderr)
        return 1
    check.print_explanation(result, sys.stdout)
    return check.exit_status(result)


# --------------------------------------------------------------------------- report


def _report_parser() -> argparse.ArgumentParser:
    _require_analysis_extra()
    from analysis import report

    return report.parser()


def _run_report(args: argparse.Namespace) -> int:
    from analysis import report

    return report.run(args)


def _require_analysis_extra() -> None:
    missing = [m for m in ("duckdb", "pandas", "matplotlib") if find_spec(m) is None]
    if missing:
        raise _OneLineError(
            f"needs the analysis extra (pip install 'danescan[analysis]'): no {', '.join(missing)}"
        )


COMMANDS: dict[str, Command] = {
    "check": Command("check one domain, explained step by step", _check_parser, _run_check),
    "cluster-certs": Command("certificates for a survey's Dask cluster", _certs_parser, _run_certs),
    "report": Command("an HTML report of a dataset", _report_parser, _run_report),
    "verify": Command("check one chain against TLSA records, offline", _verify_parser, _run_verify),
}
SCAN = Command("scan a list of domains", _scan_parser, _run_scan)


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [
        f"usage: scan INPUT -o DIR [options]   (danescan {__version__})",
        "       scan <command> [options]",
        "",
        "Surveys of DANE for SMTP (RFC 6698, 7671, 7672). 'scan INPUT --help' lists the",
        "options of a scan.",
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
        # The main form: `scan INPUT -o DIR ...`
        command, first, rest = SCAN, "", args
    else:
        rest = args[1:]
    try:
        return command.run(command.parser().parse_args(rest))
    except SystemExit as exc:  # argparse: --help exits 0, a usage error 2
        return exc.code if isinstance(exc.code, int) else 2
    except _OneLineError as exc:
        from scanner.terminal import printable  # an argument may hold anything

        print(f"scan{' ' + first if first else ''}: {printable(str(exc))}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""`testbed up|status|down|connections`: the simulated internet's command line.

`up` plans the testbed (testbed.plan) for a profile (testbed.profile), writes
its certificates, WebPKI roots, domain list and truth, builds and signs the
zones, and starts NSD, on the internet profile the DNS operators' relay,
Unbound, the STARTTLS responder, Postfix and, when scenarios lay out
mta-sts.<domain> sites, nginx (testbed.nginx), each tracked in
D/processes.json; any failure stops whatever was started. Everything binds
to 127.<net>.0.0/16 (and ::1).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from testbed import connlog, dns, nginx, postfix, relay, responder_config
from testbed.builder import BOGUS_PROBE
from testbed.pki import write_chain, write_roots
from testbed.plan import Plan, PostfixPlan, make_plan
from testbed.procs import ProcessTable, TestbedError, ensure_free, require_binary
from testbed.profile import Profile
from testbed.scenarios import Scenario
from testbed.truth import write_truth

STATE_FILE = "testbed.json"
PROCESS_FILE = "processes.json"
OPERATORS_FILE = "operators.json"
RELAY_STATS = "relay.stats.json"
CONNECTION_LOG = "logs/connections.log"
WEBPKI_ROOTS = "webpki-roots.pem"
DEFAULT_NET = 10
REQUIRED = (
    ("nsd", "nsd"),
    ("unbound", "unbound"),
    ("ldns-signzone", "ldnsutils"),
    ("postfix", "postfix"),
)


# The options testbed.json's scan_args may hold, each with one value.
SCAN_OPTIONS = ("--allow-range", "--pkix-ca")


def _scan_option(state: dict[str, object], option: str) -> tuple[str, ...]:
    args = state["scan_args"]
    if (
        not isinstance(args, list)
        or len(args) % 2
        or any(name not in SCAN_OPTIONS for name in args[::2])
    ):
        raise ValueError(f"scan_args holds more than {' and '.join(SCAN_OPTIONS)}: {args!r}")
    return tuple(
        str(value) for name, value in zip(args[::2], args[1::2], strict=True) if name == option
    )


def allow_ranges(state: dict[str, object]) -> tuple[str, ...]:
    """The ``scan_args`` of a testbed.json as ScanConfig.allow_ranges, for a
    scan configured in Python rather than on the command line."""
    return _scan_option(state, "--allow-range")


def pkix_ca(state: dict[str, object]) -> tuple[Path, ...]:
    """The same as ScanConfig.pkix_ca: the testbed's WebPKI roots."""
    return tuple(Path(pem) for pem in _scan_option(state, "--pkix-ca"))


def up(
    directory: Path,
    *,
    domains: int,
    seed: int,
    net: int,
    with_postfix: bool = True,
    ipv6: bool = True,
    profile: Profile = Profile.LOOPBACK,
    latency_scale: float = 1.0,
    dns_loss: float = 0.0,
    scenarios: Sequence[Scenario] | None = None,
    out: Callable[[str], None] = print,
) -> dict[str, object]:
    """Bring the testbed up in ``directory``; return what testbed.json holds.
    ``scenarios`` replaces the catalogue (a test's own layouts)."""
    directory.mkdir(parents=True, exist_ok=True)
    directory = directory.resolve()
    table = ProcessTable(directory / PROCESS_FILE)
    if any(table.running().values()):
        raise TestbedError(
            f"a testbed is already running in {directory}: run `testbed down --dir {directory}`"
        )
    for command, package in REQUIRED:
        if command != "postfix" or with_postfix:
            require_binary(command, package)
    started = time.monotonic()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    plan = make_plan(
        n=domains,
        seed=seed,
        net=net,
        now=now,
        ipv6=ipv6,
        postfix=with_postfix,
        profile=profile,
        latency_scale=latency_scale,
        dns_loss=dns_loss,
        scenarios=scenarios,
    )
    for address in (plan.auth_address, plan.resolver_address):
        ensure_free(address, 53)
    out(
        f"planned {domains} domains, {len(plan.zones)} zones, {len(plan.listeners)} mail hosts"
        + (f", {len(plan.operators)} DNS operators" if plan.operators else "")
    )
    paths = _write_data(directory, plan)
    try:
        build = dns.build_dns(
            plan.zones,
            directory / "dns",
            auth_address=plan.auth_address,
            resolver_address=plan.resolver_address,
            lame_address=plan.lame_address,
            seed=seed,
            now=now,
            internet=bool(plan.operators),
            layer_addresses=plan.layer_addresses,
        )
        out(f"signed and wrote {len(plan.zones)} zones")
        dns.start_dns(
            build,
            table,
            auth_address=plan.auth_address,
            resolver_address=plan.resolver_address,
            before_resolver=_relay_starter(directory, plan, build, table),
        )
        out(f"NSD on {plan.auth_address}:53, validating Unbound on {plan.resolver_address}:53")
        if plan.operators:
            out(f"{len(plan.operators)} DNS operators, delays x{latency_scale:g}")
        _start_responder(directory, plan, table)
        out(f"STARTTLS responder on {len(plan.listeners)} addresses, port 25")
        if any(site.served for site in plan.sites):
            served = nginx.start_nginx(directory, plan.sites, table)
            out(f"nginx: {len(plan.sites)} mta-sts sites on {served} addresses, port 443")
        if plan.postfix is not None:
            _start_postfix(directory, plan.postfix, table)
            out(f"Postfix on {plan.postfix.address}:25 as {plan.postfix.hostname}")
    except BaseException:
        _stop(directory, table)
        raise
    state: dict[str, object] = {
        "resolver": f"{plan.resolver_address}:53",
        "trust_anchor": str(build.trust_anchor),
        "root_hints": str(build.workdir / "root.hints"),
        "bogus_probe": BOGUS_PROBE.rstrip("."),
        "domains_file": str(paths["domains"]),
        "truth_file": str(paths["truth"]),
        "auth_server": f"{plan.auth_address}:53",
        "postfix": (
            {"address": plan.postfix.address, "host": plan.postfix.hostname.rstrip(".")}
            if plan.postfix is not None
            else None
        ),
        "domains": domains,
        "seed": seed,
        "net": net,
        "profile": plan.profile.value,
        "latency_scale": plan.latency_scale,
        "dns_loss": dns_loss,
        "truth_policy": json.loads(plan.policy.to_json()),
        "operators_file": str(paths["operators"]) if plan.operators else None,
        "relay_stats": str(directory / RELAY_STATS) if plan.operators else None,
        "connection_log": str(directory / CONNECTION_LOG),
        "mail_addresses": len(plan.listeners),
        "ipv6": ipv6,
        # Extra arguments a scan of this testbed needs: `scan ... $scan_args`.
        "scan_args": [*plan.scan_args, "--pkix-ca", str(paths["webpki_roots"])],
        "https_sites": len(plan.sites),
        "zones": len(plan.zones),
        "started_at": now.isoformat(),
        "up_seconds": round(time.monotonic() - started, 1),
    }
    (directory / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")
    return state


def _write_data(directory: Path, plan: Plan) -> dict[str, Path]:
    pki_dir = directory / "pki"
    pki_dir.mkdir(exist_ok=True)
    for chain_id, chain in plan.chains.items():
        write_chain(pki_dir, chain_id, chain)
    roots = directory / WEBPKI_ROOTS
    write_roots(roots, plan.webpki_roots)
    domains = directory / "domains.txt"
    domains.write_text("".join(f"{d}\n" for d in plan.domains))
    truth = directory / "truth.parquet"
    write_truth(truth, plan.truth, plan.policy)
    operators = directory / OPERATORS_FILE
    if plan.operators:
        _write_operators(operators, plan)
    return {
        "domains": domains,
        "truth": truth,
        "pki": pki_dir,
        "operators": operators,
        "webpki_roots": roots,
    }


def _write_operators(path: Path, plan: Plan) -> None:
    """The DNS operators and the zones each serves, for people and tests."""
    zones: dict[str, list[str]] = {}
    for zone in plan.zones:
        if zone.server is not None:
            zones.setdefault(zone.server, []).append(zone.origin)
    document = [
        {**op.to_json(), "zones": len(served), "zone_names": served}
        for op in plan.operators
        for served in [zones.get(op.address, [])]
    ]
    path.write_text(json.dumps(document, indent=1) + "\n")


def _relay_starter(
    directory: Path, plan: Plan, build: dns.DnsBuild, table: ProcessTable
) -> Callable[[], None] | None:
    """What starts the DNS operators once NSD answers, if the profile has any."""
    if not plan.operators:
        return None
    return lambda: _start_relay(directory, plan, build, table)


def _start_relay(directory: Path, plan: Plan, build: dns.DnsBuild, table: ProcessTable) -> None:
    """The relay, each operator routed to the NSD instance that holds its zones."""
    config = directory / "relay.json"
    for op in plan.operators:
        ensure_free(op.address, 53)
    first_zone: dict[str, str] = {}
    for zone in plan.zones:
        if zone.server is not None:
            first_zone.setdefault(zone.server, zone.origin)
    # An operator without zones (a small one on a small testbed) answers
    # like any hosting operator: from the instance of the deepest layer.
    routes = tuple(
        relay.Route(op, (build.server_for(first_zone.get(op.address, "a.b.")), 53))
        for op in plan.operators
    )
    relay.write_config(config, relay.RelayConfig(routes=routes, stats_file=directory / RELAY_STATS))
    _start_server(directory, table, "relay", config, timeout=60.0)


def _start_responder(directory: Path, plan: Plan, table: ProcessTable) -> None:
    config = directory / "responder.json"
    log = directory / CONNECTION_LOG
    log.parent.mkdir(parents=True, exist_ok=True)
    responder_config.write_config(
        config, plan.listeners, pki_dir=directory / "pki", connection_log=log
    )
    _start_server(directory, table, "responder", config, timeout=120.0)


def _start_server(
    directory: Path, table: ProcessTable, name: str, config: Path, *, timeout: float
) -> None:
    """Start testbed.<name> on ``config``; it is ready once it writes its ready file."""
    ready = directory / f"{name}.ready"
    ready.unlink(missing_ok=True)
    table.start(
        name,
        [sys.executable, "-m", f"testbed.{name}", str(config), "--ready-file", str(ready)],
        log=directory / "logs" / f"{name}.log",
        ready=ready.exists,
        timeout=timeout,
    )


def _start_postfix(directory: Path, plan: PostfixPlan, table: ProcessTable) -> None:
    ensure_free(plan.address, 25)
    pki = directory / "pki"
    instance = postfix.configure_postfix(
        directory / "postfix",
        address=plan.address,
        hostname=plan.hostname.rstrip("."),
        chain_pem=pki / f"{plan.chain_id}.pem",
        key_pem=pki / f"{plan.chain_id}.key",
    )
    pid = postfix.start_postfix(instance)
    table.record_external("postfix", pid)


def _stop(directory: Path, table: ProcessTable) -> None:
    """Stop Postfix the orderly way (it forked away from us), then the rest."""
    instance = postfix.PostfixInstance(directory / "postfix", address="", hostname="")
    if instance.pid_file.exists():
        postfix.stop_postfix(instance)
    table.stop_all()


def status(directory: Path) -> tuple[dict[str, object], dict[str, bool]]:
    state_path = directory / STATE_FILE
    if not state_path.exists():
        raise TestbedError(f"no testbed in {directory} (no {STATE_FILE}): run `testbed up` first")
    state = json.loads(state_path.read_text())
    return state, ProcessTable(directory / PROCESS_FILE).running()


def restart_unbound(directory: Path) -> None:
    """Replace the testbed's Unbound by a new one, whose cache is empty (for
    benchmarks: a scan of new domains meets a cold resolver)."""
    state, _ = status(directory)
    table = ProcessTable(directory / PROCESS_FILE)
    table.stop("unbound")
    address = str(state["resolver"]).rsplit(":", 1)[0]
    workdir = directory / "dns"
    table.start(
        "unbound",
        [require_binary("unbound", "unbound"), "-d", "-c", str(workdir / "unbound.conf")],
        log=workdir / "logs" / "unbound.log",
        # A secure root SOA: validating and serving.
        ready=lambda: dns.probe_dns(address, recursion=True) == (0, True),
        timeout=60.0,
    )


def connections(directory: Path, *, https: bool = False) -> connlog.Summary:
    """What the testbed's mail hosts saw of their clients (testbed.connlog):
    counts, concurrency and gaps per client and address, refusals; with
    ``https``, what its MTA-STS sites saw (testbed.nginx's request log)."""
    if https:
        requests = directory / nginx.FOLDER / nginx.REQUEST_LOG
        try:
            with requests.open(encoding="utf-8", newline="") as file:
                records = nginx.request_records(file)
        except FileNotFoundError:
            records = []
        except (OSError, ValueError) as exc:
            raise TestbedError(f"cannot read the request log {requests}: {exc}") from None
        return connlog.summarise(records, now=time.time())
    state, _ = status(directory)
    log = Path(str(state.get("connection_log") or directory / CONNECTION_LOG))
    if not log.exists():
        return connlog.summarise([], now=time.time())
    try:
        return connlog.summary_for(log)
    except (OSError, ValueError) as exc:
        raise TestbedError(f"cannot read the connection log {log}: {exc}") from None


def _print_connections(summary: connlog.Summary) -> None:
    gap = summary["min_gap_s"]
    print(
        f"{summary['connections']} connections, at most {summary['max_concurrent']} at once "
        f"from one client to one address, shortest gap "
        f"{'-' if gap is None else f'{gap:.3f} s'}, {summary['over_limit']} refused over a limit"
    )
    for row in summary["per_address"]:
        gap = row["min_gap_s"]
        print(
            f"  {row['address']:<16} {row['connections']:>7} connections  "
            f"max {row['max_concurrent']} at once  "
            f"gap {'-' if gap is None else f'{gap:.3f} s':>9}  over limit {row['over_limit']}"
        )


def down(directory: Path) -> list[str]:
    """Stop every process of the testbed in ``directory``; return their names."""
    if not (directory / STATE_FILE).exists() and not (directory / PROCESS_FILE).exists():
        raise TestbedError(f"nothing to stop: {directory} holds no testbed")
    table = ProcessTable(directory / PROCESS_FILE)
    names = sorted(table.running())
    _stop(directory, table)
    (directory / STATE_FILE).unlink(missing_ok=True)
    return names


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="testbed",
        description="A private DNSSEC-signed internet with STARTTLS mail hosts on loopback.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="build and start a testbed")
    p_up.add_argument("--domains", type=int, default=2000, help="number of mail domains")
    p_up.add_argument("--seed", type=int, default=1, help="the same seed gives the same testbed")
    p_up.add_argument("--dir", type=Path, required=True, help="folder for its files and state")
    p_up.add_argument(
        "--net",
        type=int,
        default=DEFAULT_NET,
        help="addresses are 127.NET.x.y (1-254); two testbeds need two nets",
    )
    p_up.add_argument("--no-postfix", action="store_true", help="leave the real Postfix out")
    p_up.add_argument(
        "--no-ipv6",
        action="store_true",
        help="leave out the scenario on ::1 (port 25 on ::1 is one per machine)",
    )
    p_up.add_argument(
        "--profile",
        type=Profile,
        choices=list(Profile),
        default=Profile.LOOPBACK,
        help="loopback: instant answers, no faults; internet: DNS operators with latency, "
        "loss and faults, mail hosts that pause, greylist and limit (README)",
    )
    p_up.add_argument(
        "--latency-scale",
        type=float,
        default=1.0,
        metavar="F",
        help="multiply every delay of the internet profile by F (0: no delays, "
        "every other behaviour kept)",
    )
    p_up.add_argument(
        "--dns-loss",
        type=float,
        default=0.0,
        metavar="P",
        help="internet profile: lose a further share P of the queries to every DNS "
        "operator over UDP (soak tests)",
    )
    for name, text in (("status", "show a testbed and its processes"), ("down", "stop it")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--dir", type=Path, required=True)
    p_conn = sub.add_parser(
        "connections", help="what the mail hosts saw: connections, concurrency, gaps, refusals"
    )
    p_conn.add_argument("--dir", type=Path, required=True)
    p_conn.add_argument("--json", action="store_true", help="one JSON object")
    p_conn.add_argument(
        "--https", action="store_true", help="what the MTA-STS sites (nginx) saw instead"
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            if not 1 <= args.net <= 254:
                raise ValueError("--net must be in 1..254: addresses are 127.<net>.x.y")
            state = up(
                args.dir,
                domains=args.domains,
                seed=args.seed,
                net=args.net,
                with_postfix=not args.no_postfix,
                ipv6=not args.no_ipv6,
                profile=args.profile,
                latency_scale=args.latency_scale,
                dns_loss=args.dns_loss,
                out=lambda line: print(line, file=sys.stderr),
            )
            print(json.dumps(state, indent=2))
        elif args.command == "connections":
            summary = connections(args.dir, https=args.https)
            if args.json:
                print(json.dumps(summary))
            else:
                _print_connections(summary)
        elif args.command == "status":
            state, procs = status(args.dir)
            print(json.dumps({**state, "processes": procs}, indent=2))
            return 0 if procs and all(procs.values()) else 1
        else:
            stopped = down(args.dir)
            print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    except TestbedError as exc:
        print(f"testbed: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"testbed: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

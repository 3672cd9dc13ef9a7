"""What the testbed's server processes share (testbed.responder, testbed.relay):
their command line (``python -m testbed.NAME CONFIG.json [--ready-file PATH]``),
their exit statuses, stopping on SIGTERM or SIGINT, and announcing readiness
to the parent that waits for them (testbed.procs)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

import uvloop

# Exit status for a configuration the server refuses to serve.
EXIT_CONFIG = 2
# Exit status when the configuration is fine but the sockets cannot be bound.
EXIT_BIND = 1

_Config = TypeVar("_Config")
_Totals = TypeVar("_Totals")


def run(
    argv: Sequence[str] | None,
    name: str,
    description: str | None,
    load: Callable[[Path], _Config],
    serve: Callable[[_Config, Path | None], Coroutine[Any, Any, _Totals]],
    report: Callable[[_Totals], None],
    config_errors: tuple[type[Exception], ...],
    /,
) -> int:
    """Run ``python -m testbed.NAME``: parse the command line, ``load`` the
    configuration (an error of ``config_errors`` exits with EXIT_CONFIG),
    ``serve`` it on uvloop until stopped (an OSError exits with EXIT_BIND),
    then ``report`` the totals. ``description`` (the module's docstring) is
    the --help text."""
    parser = argparse.ArgumentParser(
        prog=f"python -m testbed.{name}",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", type=Path, help="the configuration (JSON) to serve")
    parser.add_argument(
        "--ready-file", type=Path, help="written once every socket is bound and serving"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"{name}: %(message)s", stream=sys.stderr)
    log = logging.getLogger(f"testbed.{name}")
    try:
        config = load(args.config)
    except config_errors as exc:
        log.error("%s", exc)
        return EXIT_CONFIG
    try:
        totals = uvloop.run(serve(config, args.ready_file))
    except OSError as exc:
        log.error("%s", exc)
        return EXIT_BIND
    report(totals)
    return 0


def stop_event() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT: the server stops cleanly on either."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop


def write_json(path: Path, document: object) -> None:
    """Replace ``path`` at once: a reader never sees half a document."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(document))
    os.replace(temporary, path)


def announce_ready(ready_file: Path | None, status: dict[str, object]) -> None:
    """Tell the parent the server is serving: in ``ready_file`` and on stdout."""
    if ready_file is not None:
        write_json(ready_file, status)
    print(f"ready {json.dumps(status)}", flush=True)

"""The testbed's HTTPS side: nginx (Debian's nginx-light) serving the
``mta-sts.<domain>`` sites that scenarios lay out (testbed.model.HttpsSite),
each answering ``/.well-known/mta-sts.txt`` as its StsServe says, so a
scanner's policy fetch (RFC 8461 section 3.3) meets a real web server.

Everything lives in ``D/https``: the configuration, the bodies (one file per
distinct body), the pid file, the logs and nginx's temporary folders; nginx
runs in the foreground under the testbed's ProcessTable, never as a system
service. One server block per site, on port 443 of its loopback address (and of
::1 for a site with an AAAA), chosen by SNI; the first block of an address
answers a client without SNI.

``logs/requests.log`` holds one JSON line per request, with the time nginx
accepted its connection (``$msec - $connection_time``), so that
``testbed connections --https`` shows how politely a scanner fetched, as
the responder's connection log does for SMTP. A connection that ended before
a request (a client that refused the certificate) leaves no line.
"""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Iterable, Sequence
from pathlib import Path

from testbed.connlog import ConnectionRecord, Outcome
from testbed.dns.zones import require_loopback
from testbed.model import HttpsSite, StsServe
from testbed.procs import ProcessTable, TestbedError, ensure_free, require_binary

POLICY_PATH = "/.well-known/mta-sts.txt"
PORT = 443
FOLDER = "https"
REQUEST_LOG = "logs/requests.log"  # in FOLDER
# One request a line; $connection_time is how long its connection has been open.
_REQUEST_FORMAT = (
    "log_format requests escape=json '{"
    '"server":"$server_addr","client":"$remote_addr","end":$msec,'
    '"open_s":$connection_time,"status":$status,"sni":"$ssl_server_name"'
    "}';"
)
_TEMP_KINDS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
# The media type of each kind of site's body (RFC 8461 section 3.3: text/plain).
_MEDIA_TYPE = {StsServe.WRONG_MEDIA_TYPE: "text/html"}


def _body_file(bodies: Path, body: str) -> Path:
    """Sites with the same body share its file (a million-domain testbed has few)."""
    return bodies / f"{hashlib.sha256(body.encode()).hexdigest()[:24]}.txt"


def _policy_location(site: HttpsSite, bodies: Path) -> str:
    if site.serve is StsServe.NOT_FOUND:
        return "return 404;"
    if site.serve is StsServe.REDIRECT:
        if site.location is None:
            raise TestbedError(f"{site.name}: a redirect without a location")
        return f"return 301 {site.location};"
    media = _MEDIA_TYPE.get(site.serve, "text/plain")
    return f"default_type {media}; alias {_body_file(bodies, site.body)};"


def render_config(sites: Sequence[HttpsSite], *, folder: Path, pki_dir: Path) -> str:
    """nginx.conf for ``sites`` (those that serve HTTPS), all paths in ``folder``."""
    bodies = folder / "bodies"
    temp = "\n".join(f"    {kind}_temp_path {folder / 'tmp' / kind};" for kind in _TEMP_KINDS)
    lines = [
        "daemon off;",
        "worker_processes 1;",
        f"pid {folder / 'nginx.pid'};",
        f"error_log {folder / 'logs' / 'error.log'} notice;",
        "events { worker_connections 1024; }",
        "http {",
        f"    {_REQUEST_FORMAT}",
        f"    access_log {folder / REQUEST_LOG} requests;",
        temp,
        # No extension decides a media type: each location names its own.
        "    types { }",
        "    server_tokens off;",
        "    server_names_hash_max_size 1048576;",
        "    server_names_hash_bucket_size 128;",
        "    ssl_protocols TLSv1.2 TLSv1.3;",
    ]
    for site in sites:
        if not site.served:
            continue
        if site.address is None or site.chain_id is None:
            raise TestbedError(f"{site.name}: served without an address or a certificate")
        lines.append("    server {")
        for address in site.addresses:
            require_loopback(f"the HTTPS site {site.name}", address)
            listen = f"[{address}]" if ":" in address else address
            lines.append(f"        listen {listen}:{PORT} ssl;")
        lines += [
            f"        server_name {site.name};",
            f"        ssl_certificate {pki_dir / f'{site.chain_id}.pem'};",
            f"        ssl_certificate_key {pki_dir / f'{site.chain_id}.key'};",
            f"        location = {POLICY_PATH} {{ {_policy_location(site, bodies)} }}",
            "        location / { return 404; }",
            "    }",
        ]
    lines += ["}", ""]
    return "\n".join(lines)


def write_config(folder: Path, sites: Sequence[HttpsSite], *, pki_dir: Path) -> Path:
    """Write nginx.conf, the bodies and the folders nginx needs; return the config."""
    bodies = folder / "bodies"
    for sub in (bodies, folder / "logs", *(folder / "tmp" / k for k in _TEMP_KINDS)):
        sub.mkdir(parents=True, exist_ok=True)
    for site in sites:
        if site.served and site.body:
            path = _body_file(bodies, site.body)
            if not path.exists():
                # newline="" keeps the policy's CRLF line ends as written.
                path.write_text(site.body, encoding="utf-8", newline="")
                # nginx's workers drop root for nobody: they must read it.
                path.chmod(0o644)
    config = folder / "nginx.conf"
    config.write_text(render_config(sites, folder=folder, pki_dir=pki_dir))
    return config


def addresses(sites: Sequence[HttpsSite]) -> list[str]:
    """The addresses nginx listens on, in the order laid out."""
    return list(dict.fromkeys(a for s in sites if s.served for a in s.addresses))


def _listening(address: str) -> bool:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((address, PORT)) == 0


def start_nginx(directory: Path, sites: Sequence[HttpsSite], table: ProcessTable) -> int:
    """Configure and start nginx for ``sites``; ready once every address
    accepts on port 443. Returns how many addresses it serves."""
    nginx = require_binary("nginx", "nginx-light")
    listen = addresses(sites)
    for address in listen:
        ensure_free(address, PORT)
    folder = directory / FOLDER
    config = write_config(folder, sites, pki_dir=directory / "pki")
    error_log = folder / "logs" / "error.log"
    table.start(
        "nginx",
        # -e: nginx opens its error log before it reads the configuration.
        [nginx, "-p", str(folder), "-c", str(config), "-e", str(error_log)],
        log=folder / "logs" / "nginx.log",
        ready=lambda: all(_listening(a) for a in listen),
        timeout=60.0,
    )
    return len(listen)


def request_records(lines: Iterable[str]) -> list[ConnectionRecord]:
    """The connections of the request log's lines, one per request (a
    scanner's policy fetch makes one request per connection), as
    testbed.connlog summarises them. A last line without its newline is one
    nginx is still writing and is skipped; any other line that is not a
    request line is an error (ValueError)."""
    records = []
    for number, line in enumerate(lines, 1):
        if not line.endswith("\n"):
            break
        try:
            entry = json.loads(line)
            end = float(entry["end"])
            records.append(
                ConnectionRecord(
                    server=str(entry["server"]),
                    client=str(entry["client"]),
                    start=round(end - float(entry["open_s"]), 6),
                    end=end,
                    outcome=Outcome.TLS,
                    sni=str(entry["sni"]),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"line {number} is not a request log line: {exc!r}") from exc
    return records

"""The floor under the handshake stage: client CPU of a bare TLS handshake.

What one session of the scanner cannot go below, whatever its Python does:
a full TLS handshake (no resumption) made by Python's ``ssl`` module, the one
the handshake stage uses (``StreamWriter.start_tls``), with the scanner's own
client context (``scanner.handshake.session.client_context``), the chain
captured with ``peer_chain``. No sockets, no event loop, no SMTP: client and
server are ``SSLObject`` pairs over memory BIOs in this process, and only the
client's calls are timed (``time.process_time``); the server's are not.

Per key type (ECDSA P-256, RSA-2048) with the leaf alone and with the chain
of three (leaf, intermediate, root) that bench_handshake.py serves. Compare
its "client CPU per session" with these figures.

    .venv/bin/python benchmarks/bench_tls_floor.py [--handshakes 2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import ssl
import tempfile
import time
from pathlib import Path

from scanner.handshake.session import client_context, peer_chain
from testbed.pki import KeyType, Pki, write_chain


def server_context(pki_dir: Path, chain_id: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki_dir / f"{chain_id}.pem", pki_dir / f"{chain_id}.key")
    return context


def handshake(client: ssl.SSLContext, server: ssl.SSLContext) -> tuple[float, int, str]:
    """One handshake: the client's CPU seconds in it, the chain it saw, the TLS version."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    tls_client = client.wrap_bio(c_in, c_out, server_hostname="mx.bench.test")
    tls_server = server.wrap_bio(s_in, s_out, server_side=True)
    spent = 0.0
    client_done = server_done = False
    while not (client_done and server_done):
        if not client_done:
            start = time.process_time()
            try:
                tls_client.do_handshake()
                client_done = True
            except ssl.SSLWantReadError:
                pass
            spent += time.process_time() - start
        s_in.write(c_out.read())
        if not server_done:
            try:
                tls_server.do_handshake()
                server_done = True
            except ssl.SSLWantReadError:
                pass
        c_in.write(s_out.read())
    start = time.process_time()
    chain = peer_chain(tls_client)
    spent += time.process_time() - start
    return spent, len(chain), tls_client.version() or "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--handshakes", type=int, default=2000, help="per timing run")
    parser.add_argument("--repeat", type=int, default=3, help="timing runs; the median counts")
    args = parser.parse_args()
    print(f"{ssl.OPENSSL_VERSION}; client CPU per handshake, median of {args.repeat} runs")
    print(f"{'chain':<30}{'TLS':>8}{'client ms':>11}")
    pki = Pki(seed=4, now=dt.datetime.now(dt.UTC))
    client = client_context()
    with tempfile.TemporaryDirectory() as tmp:
        pki_dir = Path(tmp)
        for kind in (KeyType.ECDSA, KeyType.RSA):
            root = pki.ca(f"Floor Root {kind.value}", kind)
            inter = pki.ca(f"Floor Intermediate {kind.value}", kind, issuer=root)
            leaf = pki.leaf(["mx.bench.test"], inter, kind, key_label=kind.value)
            chains = {f"{kind.value}-leaf": [leaf], kind.value: [leaf, inter, root]}
            for chain_id, chain in chains.items():
                write_chain(pki_dir, chain_id, chain)
                server = server_context(pki_dir, chain_id)
                runs = []
                for _ in range(args.repeat):
                    total = 0.0
                    for _ in range(args.handshakes):
                        spent, seen, version = handshake(client, server)
                        assert seen == len(chain), (seen, len(chain))
                        total += spent
                    runs.append(total / args.handshakes)
                label = f"{kind.value}, {len(chain)} certificate(s)"
                print(f"{label:<30}{version:>8}{sorted(runs)[len(runs) // 2] * 1e3:>11.3f}")


if __name__ == "__main__":
    main()

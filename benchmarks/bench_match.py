"""Throughput of the DANE matcher on a survey-like batch, against two baselines.

    python benchmarks/bench_match.py [--pairs 20000] [--leaves 2000] [--repeat 3]

The batch imitates a survey: providers each with an intermediate CA, leaves
under them (a SAN for the host and a wildcard for the provider's domain), and
MX hosts with their own names that share leaves (Zipf-like: a few big
providers, a long tail), so many (chain, RRset) pairs repeat certificates but
not names. RRsets: 75% DANE-EE
``3 1 1`` (a quarter of them with a second, pre-published ``3 1 1`` for a
rollover), 15% DANE-TA ``2 1 1`` of the intermediate, 10% that fail (a stale
``3 1 1``, or a stale one plus a malformed record). Leaves are ECDSA P-256,
with 5% RSA-2048.

Three runs over the same pairs, side by side:

- batched: ``scanner.match.batch.match_batch`` with a fresh CertPool (full
  RFC 7672 verdicts: DANE-TA paths are built, signatures, names and validity
  checked; certificates deduplicated, each digest computed once);
- naive: per pair, parse every certificate with cryptography, re-encode its
  key with ``public_bytes`` for selector 1, hash per record, and for a DANE-TA
  match verify the signatures with ``verify_directly_issued_by`` and check the
  names: no deduplication, no memo;
- hashlib: only hashing, with the selector bytes sliced out beforehand: one
  hash per (pair, record) over the same bytes, no deduplication (the cost of
  the digests alone, without any certificate handling).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import platform
import random
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from scanner.match import der
from scanner.match.batch import CertPool, MatchJob, match_batch
from scanner.status import DaneVerdict
from scanner.tlsa import TlsaRecord

NOW = datetime(2025, 6, 1, tzinfo=UTC)
Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _cert(
    cn: str, key: Key, issuer: tuple[x509.Certificate, Key] | None, ca: bool, domain: str = ""
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=30))
        .not_valid_after(NOW + timedelta(days=60))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(cn), x509.DNSName("*." + domain)]), False
        )
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def _spki_sha256(cert: bytes) -> bytes:
    data = der.spki(cert)
    assert isinstance(data, bytes)
    return hashlib.sha256(data).digest()


def build(pairs: int, leaves: int, seed: int) -> list[MatchJob]:
    rng = random.Random(seed)
    providers = max(1, leaves // 40)
    roots = []
    for p in range(providers):
        key = ec.generate_private_key(ec.SECP256R1())
        root = _cert(f"Root {p}", key, None, ca=True)
        ikey = ec.generate_private_key(ec.SECP256R1())
        roots.append((_cert(f"Issuer {p}", ikey, (root, key), ca=True), ikey))
    chains = []
    for n in range(leaves):
        intermediate, ikey = roots[n % providers]
        rsa_leaf = n % 20 == 0
        key: Key = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if rsa_leaf
            else ec.generate_private_key(ec.SECP256R1())
        )
        domain = f"provider{n % providers}.example"
        leaf = _cert(f"mx{n}.{domain}", key, (intermediate, ikey), ca=False, domain=domain)
        chains.append(
            (domain, [leaf.public_bytes(Encoding.DER), intermediate.public_bytes(Encoding.DER)])
        )
    weights = [1 / (i + 1) for i in range(leaves)]  # Zipf: a few leaves serve many hosts
    jobs = []
    for _ in range(pairs):
        domain, chain = rng.choices(chains, weights)[0]
        host = f"mx{rng.randrange(10_000)}.{domain}"  # MX names differ, chains repeat
        kind = rng.random()
        stale = TlsaRecord(3, 1, 1, rng.randbytes(32))
        if kind < 0.75:
            records = [TlsaRecord(3, 1, 1, _spki_sha256(chain[0]))]
            if kind < 0.19:
                records.append(stale)  # rollover: next key pre-published
        elif kind < 0.90:
            records = [TlsaRecord(2, 1, 1, _spki_sha256(chain[1]))]
        elif kind < 0.95:
            records = [stale]
        else:
            records = [stale, TlsaRecord(3, 1, 1, rng.randbytes(20))]
        jobs.append(MatchJob(chain, records, [host]))
    return jobs


# --------------------------------------------------------------------------- baselines

_HASH = {1: hashlib.sha256, 2: hashlib.sha512}


def naive(jobs: Sequence[MatchJob]) -> list[bool]:
    """Parse everything, re-encode keys, hash per record, verify per pair: no reuse."""
    out = []
    for job in jobs:
        certs = [x509.load_der_x509_certificate(c) for c in job.chain]
        passed = False
        for record in job.records:
            if record.usage not in (2, 3) or record.selector not in (0, 1):
                continue
            if record.mtype not in (0, 1, 2) or (
                record.mtype and len(record.data) != 32 * record.mtype
            ):
                continue
            depths = [0] if record.usage == 3 else range(1, len(certs))
            for depth in depths:
                cert = certs[depth]
                data = (
                    cert.public_bytes(Encoding.DER)
                    if record.selector == 0
                    else cert.public_key().public_bytes(
                        Encoding.DER, PublicFormat.SubjectPublicKeyInfo
                    )
                )
                digest = _HASH[record.mtype](data).digest() if record.mtype else data
                if digest != record.data:
                    continue
                passed = record.usage == 3 or _naive_chain(certs[: depth + 1], job.names)
                break
            if passed:
                break
        out.append(passed)
    return out


def _naive_chain(path: list[x509.Certificate], names: Sequence[str]) -> bool:
    for child, parent in itertools.pairwise(path):
        try:
            child.verify_directly_issued_by(parent)
        except Exception:
            return False
    if any(not (c.not_valid_before_utc <= NOW < c.not_valid_after_utc) for c in path[:-1]):
        return False
    san = path[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    patterns = san.get_values_for_type(x509.DNSName)
    for name in (n.lower() for n in names):
        parent = name.partition(".")[2]
        if any(p == name or (p.startswith("*.") and p[2:] == parent) for p in patterns):
            return True
    return False


def hash_only(prepared: Sequence[Sequence[tuple[Callable[[bytes], object], bytes, bytes]]]) -> int:
    """One hash per (pair, record) over bytes sliced beforehand; count the matches."""
    matches = 0
    for pair in prepared:
        for fn, data, want in pair:
            if fn(data).digest() == want:  # type: ignore[attr-defined]
                matches += 1
    return matches


def prepare_hash_only(
    jobs: Sequence[MatchJob],
) -> list[list[tuple[Callable[[bytes], object], bytes, bytes]]]:
    prepared = []
    for job in jobs:
        items = []
        for record in job.records:
            if record.mtype not in (1, 2) or len(record.data) != 32 * record.mtype:
                continue
            for cert in job.chain[:1] if record.usage == 3 else job.chain[1:]:
                data = cert if record.selector == 0 else der.spki(cert)
                assert isinstance(data, bytes)
                items.append((_HASH[record.mtype], data, record.data))
        prepared.append(items)
    return prepared


def best_of(repeat: int, fn: Callable[[], object]) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=20_000)
    parser.add_argument("--leaves", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    jobs = build(args.pairs, args.leaves, args.seed)
    built = time.perf_counter() - start
    distinct = len({c for job in jobs for c in job.chain})
    print(f"{len(jobs)} pairs, {distinct} distinct certificates (built in {built:.1f} s)")
    print(f"python {platform.python_version()}, {platform.machine()}, best of {args.repeat}")

    pools: list[CertPool] = []

    def batched(subset: Sequence[MatchJob]) -> list[bool]:
        pool = CertPool()
        pools.append(pool)
        return [r.verdict is DaneVerdict.PASS for r in match_batch(subset, NOW, pool=pool)]

    rows = []
    for label, subset in (
        ("all pairs", jobs),
        ("DANE-EE RRsets only", [j for j in jobs if j.records[0].usage == 3]),
        ("DANE-TA RRsets only", [j for j in jobs if j.records[0].usage == 2]),
    ):
        prepared = prepare_hash_only(subset)
        t_batch, passes = best_of(args.repeat, lambda s=subset: batched(s))
        t_naive, naive_passes = best_of(args.repeat, lambda s=subset: naive(s))
        t_hash, _ = best_of(args.repeat, lambda p=prepared: hash_only(p))
        if passes != naive_passes:
            raise SystemExit(f"{label}: naive and batched verdicts disagree")
        if label == "all pairs":
            stats, total_passes = pools[-1].stats, sum(passes)  # type: ignore[arg-type]
            hashes_naive = sum(len(p) for p in prepared)
        rows.append((label, len(subset), t_batch, t_naive, t_hash))

    print()
    print(
        "| pairs | n | batched µs/pair | batched pairs/s | naive µs/pair | naive pairs/s "
        "| hashlib-only µs/pair | batched vs naive |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, n, t_batch, t_naive, t_hash in rows:
        print(
            f"| {label} | {n} | {1e6 * t_batch / n:.1f} | {n / t_batch:,.0f} "
            f"| {1e6 * t_naive / n:.1f} | {n / t_naive:,.0f} | {1e6 * t_hash / n:.2f} "
            f"| {t_naive / t_batch:.1f}x |"
        )
    print()
    print(
        f"all pairs: {total_passes} pass, {len(jobs) - total_passes} other; one batched run: "
        f"{stats.certificates} certificates, {stats.digests} digests, {stats.parses} parses, "
        f"{stats.signatures} signature checks (hashlib-only run: {hashes_naive} hashes)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

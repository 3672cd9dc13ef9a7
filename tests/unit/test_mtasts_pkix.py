"""PKIX validation of an MX host's chain under MTA-STS (RFC 8461 section 4.2),
with a CA, intermediates and leaves made here."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import Store

from scanner.mtasts.pkix import PkixResult, check_chain, load_trust_store
from scanner.mtasts.policy import StsHostStatus

NOW = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
Key = ec.EllipticCurvePrivateKey


def key() -> Key:
    return ec.generate_private_key(ec.SECP256R1())


def make(
    subject: str,
    key_: Key,
    issuer: str,
    issuer_key: Key,
    *,
    ca: bool = False,
    sans: tuple[str, ...] = (),
    days: tuple[int, int] = (-10, 10),
) -> x509.Certificate:
    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    builder = (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(name(issuer))
        .public_key(key_.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW + days[0] * DAY)
        .not_valid_after(NOW + days[1] * DAY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key_.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
    )
    if ca:
        usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
        builder = builder.add_extension(usage, critical=True)
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), False
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
    return builder.sign(issuer_key, hashes.SHA256())


def der(*certificates: x509.Certificate) -> tuple[bytes, ...]:
    return tuple(c.public_bytes(serialization.Encoding.DER) for c in certificates)


ROOT_KEY, OTHER_KEY, INTER_KEY, LEAF_KEY = key(), key(), key(), key()
ROOT = make("Test Root", ROOT_KEY, "Test Root", ROOT_KEY, ca=True)
OTHER_ROOT = make("Other Root", OTHER_KEY, "Other Root", OTHER_KEY, ca=True)
INTER = make("Test Inter", INTER_KEY, "Test Root", ROOT_KEY, ca=True)
OLD_INTER = make("Test Inter", INTER_KEY, "Test Root", ROOT_KEY, ca=True, days=(-20, -1))


def leaf(
    *sans: str, issuer: str = "Test Inter", by: Key = INTER_KEY, days: tuple[int, int] = (-10, 10)
) -> x509.Certificate:
    return make("mx", LEAF_KEY, issuer, by, sans=sans or ("mx.example.com",), days=days)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    path = tmp_path_factory.mktemp("roots") / "root.pem"
    path.write_bytes(ROOT.public_bytes(serialization.Encoding.PEM))
    return load_trust_store([path], system=None)


V = StsHostStatus
CASES = [
    ("valid via intermediate", der(leaf(), INTER), "mx.example.com.", V.VALID),
    ("name is case-insensitive", der(leaf(), INTER), "MX.Example.COM", V.VALID),
    (
        "leaf straight from the root",
        der(leaf(issuer="Test Root", by=ROOT_KEY)),
        "mx.example.com",
        V.VALID,
    ),
    ("wildcard, one label", der(leaf("*.example.net"), INTER), "mx1.example.net", V.VALID),
    (
        "wildcard, two labels",
        der(leaf("*.example.net"), INTER),
        "a.mx1.example.net",
        V.NAME_MISMATCH,
    ),
    ("wildcard, no label", der(leaf("*.example.net"), INTER), "example.net", V.NAME_MISMATCH),
    ("other name", der(leaf("other.example.com"), INTER), "mx.example.com", V.NAME_MISMATCH),
    ("leaf expired", der(leaf(days=(-20, -1)), INTER), "mx.example.com", V.EXPIRED),
    ("leaf not yet valid", der(leaf(days=(1, 20)), INTER), "mx.example.com", V.EXPIRED),
    ("intermediate expired", der(leaf(), OLD_INTER), "mx.example.com", V.EXPIRED),
    # the verifier meets the leaf's validity before its name
    (
        "expired and other name",
        der(leaf("x.example.com", days=(-20, -1)), INTER),
        "mx.example.com",
        V.EXPIRED,
    ),
    ("intermediate missing", der(leaf()), "mx.example.com", V.UNTRUSTED),
    (
        "untrusted root",
        der(leaf(issuer="Other Root", by=OTHER_KEY), OTHER_ROOT),
        "mx.example.com",
        V.UNTRUSTED,
    ),
    (
        "self-signed leaf",
        der(make("mx", LEAF_KEY, "mx", LEAF_KEY, sans=("mx.example.com",))),
        "mx.example.com",
        V.UNTRUSTED,
    ),
    ("garbage leaf", (b"\x30\x03\x02\x01",), "mx.example.com", V.UNTRUSTED),
    ("garbage intermediate", (der(leaf())[0], b"not DER at all"), "mx.example.com", V.UNTRUSTED),
    ("empty chain", (), "mx.example.com", V.NO_TLS),
]


@pytest.mark.parametrize(
    ("chain", "host", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_check_chain(
    chain: tuple[bytes, ...], host: str, expected: StsHostStatus, store: Store
) -> None:
    result = check_chain(chain, host, NOW, store)
    assert result.status is expected
    assert (result.error == "") is (expected is V.VALID)


def test_time_is_passed_in(store: Store) -> None:
    chain = der(leaf(days=(-10, 10)), INTER)
    assert check_chain(chain, "mx.example.com", NOW, store) == PkixResult(V.VALID)
    assert check_chain(chain, "mx.example.com", NOW + 30 * DAY, store).status is V.EXPIRED


def test_load_trust_store(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.pem"
    pem = ROOT.public_bytes(serialization.Encoding.PEM)
    broken = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    bundle.write_bytes(broken + pem + b"trailing text\n")
    store = load_trust_store([bundle], system=None)
    assert check_chain(der(leaf(), INTER), "mx.example.com", NOW, store).status is V.VALID
    empty = tmp_path / "empty.pem"
    empty.write_bytes(broken)
    with pytest.raises(ValueError, match="empty"):
        load_trust_store([empty], system=None)
    with pytest.raises(OSError, match="missing"):
        load_trust_store([tmp_path / "missing.pem"], system=None)


def test_the_system_bundle_loads() -> None:
    system = load_trust_store()
    # the system's roots do not know the test root
    assert check_chain(der(leaf(), INTER), "mx.example.com", NOW, system).status is V.UNTRUSTED

"""The certificates of a survey's cluster: one CA, one certificate per member.

A Dask scheduler runs whatever its clients send, so a reachable one without
authentication hands every host of the survey to whoever finds it. Dask's
TLS (``distributed.security.Security``) authenticates both ends of every
connection against a CA: the scheduler, each worker and the scanning client
present a certificate it signed, and a peer without one is refused during
the TLS handshake. ``scan cluster-certs DIR`` makes the CA and the
members' certificates; the CA's key stays where it was made (it is needed
only to add members) and each host gets ``ca.pem`` and its own pair.

Keys are ECDSA P-256 (fast handshakes), written readable by their owner only.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

if TYPE_CHECKING:
    from distributed.security import Security

CA_CERT, CA_KEY = "ca.pem", "ca-key.pem"
CLIENT = "client"  # the member the scanning client presents
DEFAULT_MEMBERS = ("scheduler", "worker", CLIENT)


class CertificateError(Exception):
    """The certificate folder cannot be used; a one-line message."""


def member_files(folder: Path, member: str) -> tuple[Path, Path]:
    return folder / f"{member}.pem", folder / f"{member}-key.pem"


def make_certs(
    folder: Path,
    members: Sequence[str] = DEFAULT_MEMBERS,
    *,
    days: int = 825,
    now: dt.datetime | None = None,
) -> list[Path]:
    """A CA in ``folder`` (made once, reused after) and a certificate for each
    member; returns the files written."""
    now = now if now is not None else dt.datetime.now(dt.UTC)
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    ca_cert_path, ca_key_path = folder / CA_CERT, folder / CA_KEY
    if ca_cert_path.exists() and ca_key_path.exists():
        ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
        loaded = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise CertificateError(f"{ca_key_path} is not the EC key this command makes")
        ca_key = loaded
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "danescan survey CA")])
        ca_cert = (
            _builder(name, name, ca_key.public_key(), now, days)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_ca_usage(), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        written += [_write_key(ca_key_path, ca_key), _write_cert(ca_cert_path, ca_cert)]
    for member in members:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, member)])
        cert = (
            _builder(subject, ca_cert.subject, key.public_key(), now, days)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(member)]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        cert_path, key_path = member_files(folder, member)
        written += [_write_key(key_path, key), _write_cert(cert_path, cert)]
    return written


def security(folder: Path, member: str = CLIENT) -> Security:
    """Dask's Security for ``member`` of the cluster whose certificates are in ``folder``."""
    from distributed.security import Security

    cert, key = member_files(folder, member)
    for path in (folder / CA_CERT, cert, key):
        if not path.is_file():
            raise CertificateError(
                f"{path} is missing: make the survey's certificates with 'scan cluster-certs'"
            )
    return Security(
        tls_ca_file=str(folder / CA_CERT),
        tls_client_cert=str(cert),
        tls_client_key=str(key),
        require_encryption=True,
    )


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    key: ec.EllipticCurvePublicKey,
    now: dt.datetime,
    days: int,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
    )


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(path, 0o600)
    return path


def _write_cert(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path

"""Whether an MX host's certificate chain is PKIX-valid for its name
(RFC 8461 section 4.2), as a sender applying an MTA-STS policy checks it.

Section 4.2 asks for a chain that builds to a trusted root (RFC 5280) and a
leaf whose DNS-ID matches the MX host name by the rules of RFC 6125, with a
wildcard only as the complete leftmost label, standing for one label.
cryptography's X.509 verifier does both (``build_server_verifier`` with a
``DNSName``); this module does not build chains of its own. That verifier
applies the CA/Browser Forum profile on top of RFC 5280 (for instance a
leaf must carry a subjectAltName), which is the WebPKI's rule for the
certificates MTA-STS relies on.

The verifier stops at the first failure it meets, and meets them in this
order: the leaf's validity period, the leaf's name, then the chain (an
issuer in the store, each intermediate within its validity). That first
failure is the host's status: ``expired`` (a certificate outside its
validity at ``now``; also not yet valid), ``name_mismatch``, else
``untrusted``. An empty chain is ``no_tls``; bytes that are no certificate
are ``untrusted`` (no chain can be built from them). ``now`` is passed in,
so ``--days-ahead`` asks the same question of a later time.

The trust store is built once, by ``load_trust_store``, from PEM files: the
system's bundle and, for a private testbed, its own roots. This is the one
function here that reads files; it runs at start-up, on the operator's
files, and raises (OSError, ValueError) on a missing file or a store with
no certificate, since a scan cannot go on without its trust anchors.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from scanner.mtasts.policy import StsHostStatus

SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
_PEM_END = b"-----END CERTIFICATE-----"


@dataclass(frozen=True, slots=True)
class PkixResult:
    status: StsHostStatus  # valid, untrusted, expired, name_mismatch or no_tls
    error: str = ""


def load_trust_store(extra: Sequence[Path] = (), *, system: Path | None = SYSTEM_BUNDLE) -> Store:
    """The roots of the system bundle (unless ``system`` is None) and of each
    file in ``extra``. A block that does not parse is skipped, so one odd
    certificate in a bundle does not empty the store."""
    roots: list[x509.Certificate] = []
    for path in ([system] if system is not None else []) + list(extra):
        roots.extend(_pem_certificates(path.read_bytes()))
    return Store(roots)  # ValueError when no certificate was read


def _pem_certificates(data: bytes) -> list[x509.Certificate]:
    certificates = []
    for block in data.split(_PEM_END)[:-1]:
        try:
            # Old roots with a non-positive serial still parse, with a
            # deprecation warning that is no concern of a scan.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CryptographyDeprecationWarning)
                certificates.append(x509.load_pem_x509_certificate(block + _PEM_END + b"\n"))
        except ValueError:
            continue
    return certificates


def check_chain(chain: Sequence[bytes], host: str, now: dt.datetime, store: Store) -> PkixResult:
    """Whether ``chain`` (DER, leaf first, as the server sent it) is PKIX-valid
    for the MX host name ``host`` at ``now`` (UTC) against ``store``."""
    if not chain:
        return PkixResult(StsHostStatus.NO_TLS, "no certificate chain")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            certificates = [x509.load_der_x509_certificate(der) for der in chain]
    except ValueError as exc:
        return PkixResult(StsHostStatus.UNTRUSTED, f"unparseable certificate: {exc}")
    name = host.rstrip(".").lower()
    try:
        verifier = PolicyBuilder().store(store).time(now).build_server_verifier(x509.DNSName(name))
        verifier.verify(certificates[0], certificates[1:])
    except ValueError as exc:  # a host name the verifier will not take
        return PkixResult(StsHostStatus.NAME_MISMATCH, f"host name {name!r}: {exc}")
    except VerificationError as exc:
        return PkixResult(_status(str(exc)), str(exc))
    return PkixResult(StsHostStatus.VALID)


def _status(message: str) -> StsHostStatus:
    """The status of the verifier's first failure, from its message (the
    unit tests pin each message to the certificates that cause it)."""
    if "not valid at validation time" in message:
        return StsHostStatus.EXPIRED
    if "subjectAltName" in message:
        return StsHostStatus.NAME_MISMATCH
    return StsHostStatus.UNTRUSTED

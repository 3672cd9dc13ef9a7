"""The TLS server contexts of the responder's mail hosts (RFC 3207 upgrades):
one per certificate chain, and per SNI map a dispatcher that picks the chain
from the name the client sends (RFC 6066 section 3).
"""

from __future__ import annotations

import logging
import ssl
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from testbed.model import Listener

LOG = logging.getLogger("testbed.responder")


def chain_paths(pki_dir: Path, chain_id: str) -> tuple[Path, Path]:
    """The certificate chain (leaf first) and private key files of a chain id."""
    return pki_dir / f"{chain_id}.pem", pki_dir / f"{chain_id}.key"


def _server_context() -> ssl.SSLContext:
    """A server context for TLS 1.2 and 1.3; the stock cipher list covers ECDSA and RSA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    return context


def _normalise_sni(name: str) -> str:
    # Python hands over the A-label form; the model keys are lower case without the root dot.
    return name.rstrip(".").lower()


# A listener's certificate choice, as a hashable cache key: the default chain
# and the sorted (SNI name, chain id) pairs that differ from it.
_SniKey = tuple[str, tuple[tuple[str, str], ...]]


class TlsContexts:
    """SSL contexts per chain id, built on first use and kept in an LRU cache.

    Building one costs about 1.5 ms (PEM decoding in OpenSSL 3), so building
    thousands at startup would delay readiness by seconds; they are built
    lazily instead. A listener whose SNI names all map to its default chain
    uses the chain's context directly. Any other listener gets a certificate-
    less dispatcher context whose ``sni_callback`` knows the listener's map and
    switches the connection to the chosen chain's context. Dispatchers are
    shared by listeners with the same map; OpenSSL invokes the callback even
    when the client sends no SNI, so the default chain is chosen there too.
    """

    def __init__(self, pki_dir: Path, cache_size: int) -> None:
        self._pki_dir = pki_dir
        self._cache_size = cache_size
        self._chains: OrderedDict[str, ssl.SSLContext] = OrderedDict()
        self._dispatchers: OrderedDict[_SniKey, ssl.SSLContext] = OrderedDict()

    def for_chain(self, chain_id: str) -> ssl.SSLContext:
        context = self._chains.get(chain_id)
        if context is not None:
            self._chains.move_to_end(chain_id)
            return context
        context = _server_context()
        certificates, key = chain_paths(self._pki_dir, chain_id)
        context.load_cert_chain(certificates, key)
        self._chains[chain_id] = context
        if len(self._chains) > self._cache_size:
            self._chains.popitem(last=False)
        return context

    def for_listener(self, listener: Listener) -> ssl.SSLContext:
        """The context a STARTTLS handshake on this listener starts with."""
        if listener.default_chain is None:
            raise ValueError(f"{listener.address}: no default chain")
        default = listener.default_chain
        overrides = tuple(
            sorted((name, chain) for name, chain in listener.chains.items() if chain != default)
        )
        if not overrides:
            return self.for_chain(default)
        key: _SniKey = (default, overrides)
        dispatcher = self._dispatchers.get(key)
        if dispatcher is not None:
            self._dispatchers.move_to_end(key)
            return dispatcher
        dispatcher = _server_context()
        dispatcher.sni_callback = self._sni_callback(default, dict(overrides))
        self._dispatchers[key] = dispatcher
        if len(self._dispatchers) > self._cache_size:
            self._dispatchers.popitem(last=False)
        return dispatcher

    def _sni_callback(
        self, default: str, overrides: dict[str, str]
    ) -> Callable[[ssl.SSLObject, str | None, ssl.SSLContext], int | None]:
        def choose(
            ssl_object: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext
        ) -> int | None:
            chain_id = default
            if server_name is not None:
                chain_id = overrides.get(_normalise_sni(server_name), default)
            try:
                ssl_object.context = self.for_chain(chain_id)
            except (OSError, ssl.SSLError) as exc:
                LOG.error("chain %s cannot be loaded: %s", chain_id, exc)
                return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
            return None

        return choose

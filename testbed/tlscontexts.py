"""The TLS server contexts of the responder's mail hosts (RFC 3207 upgrades):
one per certificate chain, and per SNI map a dispatcher that picks the chain
from the name the client sends (RFC 6066 section 3). Every context records
that name for the connection log.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import weakref
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

    Every context's ``sni_callback`` records the name the client sent in
    ``sni_names``, keyed by the connection's SSLObject, for the connection log.
    """

    def __init__(self, pki_dir: Path, cache_size: int) -> None:
        self._pki_dir = pki_dir
        self._cache_size = cache_size
        self._chains: OrderedDict[str, ssl.SSLContext] = OrderedDict()
        self._dispatchers: OrderedDict[_SniKey, ssl.SSLContext] = OrderedDict()
        self._probe: ssl.SSLContext | None = None
        # Entries leave with their connection's SSLObject.
        self.sni_names: weakref.WeakKeyDictionary[ssl.SSLObject, str] = weakref.WeakKeyDictionary()

    def for_chain(self, chain_id: str) -> ssl.SSLContext:
        context = self._chains.get(chain_id)
        if context is not None:
            self._chains.move_to_end(chain_id)
            return context
        context = _server_context()
        certificates, key = chain_paths(self._pki_dir, chain_id)
        context.load_cert_chain(certificates, key)
        context.sni_callback = self._record_sni
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

    def sni_of(self, ssl_object: ssl.SSLObject | None) -> str:
        """The SNI name sent on a connection whose handshake has run ("" for none)."""
        return "" if ssl_object is None else self.sni_names.get(ssl_object, "")

    def probe_sni(self, hello: bytes) -> str:
        """The SNI name in the first bytes of a TLS handshake ("" if none or cut short).

        OpenSSL parses the hello in a throw-away SSLObject whose context stops
        the handshake from its ``sni_callback``, before any key exchange.
        """
        if self._probe is None:
            self._probe = _server_context()
            self._probe.sni_callback = self._record_and_stop
        incoming = ssl.MemoryBIO()
        incoming.write(hello)
        probe = self._probe.wrap_bio(incoming, ssl.MemoryBIO(), server_side=True)
        # Stopped by the callback, or not (all of) a TLS hello.
        with contextlib.suppress(ssl.SSLError):
            probe.do_handshake()
        return self.sni_names.pop(probe, "")

    def _record_sni(
        self, ssl_object: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        self.sni_names[ssl_object] = server_name or ""

    def _record_and_stop(
        self, ssl_object: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext
    ) -> int:
        self._record_sni(ssl_object, server_name, context)
        return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE

    def _sni_callback(
        self, default: str, overrides: dict[str, str]
    ) -> Callable[[ssl.SSLObject, str | None, ssl.SSLContext], int | None]:
        def choose(
            ssl_object: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext
        ) -> int | None:
            self._record_sni(ssl_object, server_name, context)
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

"""What one listener remembers about its clients to push back on them as its
``Pushback`` says (testbed.model): greylisting, Postfix anvil-style connection
limits and the reset of each client's first TLS handshake.

Pure: no I/O and no clock of its own. The responder passes the event loop's
monotonic time in, so the rules can be tested with made-up times. A client is
one source address; the replies that go with these decisions (RFC 5321
section 4.2.3 codes 421 and 450) are in testbed.dialogue.
"""

from __future__ import annotations

from collections import OrderedDict, deque

from testbed.model import Pushback

# The span Postfix's anvil counts connection rates over
# (smtpd_client_connection_rate_limit is per anvil_rate_time_unit, 60 s).
RATE_WINDOW = 60.0
# Clients remembered per listener. The testbed has a handful of clients (the
# scanner's source addresses); the bound only keeps a stray flood of
# addresses from growing the state without limit.
DEFAULT_MAX_CLIENTS = 4096


class _Client:
    """What one listener knows about one client address."""

    __slots__ = ("admitted", "allowed", "first_seen", "open", "reset_done")

    def __init__(self, max_per_minute: int | None) -> None:
        # Connections admitted and not yet released.
        self.open = 0
        # Start times of the latest admitted connections, at most as many as
        # the rate limit: if the oldest of them is under a minute old, one
        # more would exceed the limit.
        self.admitted: deque[float] | None = (
            None if max_per_minute is None else deque(maxlen=max_per_minute)
        )
        # Greylisting: when the client was first seen, and whether it passed.
        self.first_seen: float | None = None
        self.allowed = False
        self.reset_done = False


class ClientPushback:
    """The per-client state of one listener's ``Pushback``.

    Clients are kept in least-recently-used order and the oldest is forgotten
    beyond ``max_clients``: a forgotten client is greylisted again, has its
    first handshake reset again and starts its connection counts from zero,
    as if an anvil or greylisting database had expired its entry.
    """

    def __init__(self, pushback: Pushback, max_clients: int = DEFAULT_MAX_CLIENTS) -> None:
        if max_clients < 1:
            raise ValueError("max_clients must be at least 1")
        self.pushback = pushback
        self._max_clients = max_clients
        self._clients: OrderedDict[str, _Client] = OrderedDict()

    def __len__(self) -> int:
        return len(self._clients)

    def _client(self, address: str) -> _Client:
        client = self._clients.get(address)
        if client is not None:
            self._clients.move_to_end(address)
            return client
        client = _Client(self.pushback.max_per_minute)
        self._clients[address] = client
        if len(self._clients) > self._max_clients:
            self._clients.popitem(last=False)
        return client

    def admit(self, address: str, now: float) -> bool:
        """Whether a new connection from ``address`` is within the limits.

        An admitted connection counts as open until ``release``. A refused one
        counts toward neither limit, as Postfix's anvil counts only the
        connections smtpd serves: the rate, too, counts admitted connections
        only, so a client that keeps retrying too fast is still let in once
        its admitted connections of the last minute fall below the limit.
        """
        limits = self.pushback
        if limits.max_concurrent is None and limits.max_per_minute is None:
            return True
        client = self._client(address)
        if limits.max_concurrent is not None and client.open + 1 > limits.max_concurrent:
            return False
        admitted = client.admitted
        if (
            admitted is not None
            and len(admitted) == admitted.maxlen
            and now - admitted[0] < RATE_WINDOW
        ):
            return False
        client.open += 1
        if admitted is not None:
            admitted.append(now)
        return True

    def release(self, address: str) -> None:
        """An admitted connection from ``address`` has closed."""
        client = self._clients.get(address)
        # A client forgotten while connected has nothing left to release.
        if client is not None and client.open > 0:
            client.open -= 1

    def greylist_remaining(self, address: str, now: float) -> float | None:
        """None when a connection from ``address`` starting at ``now`` passes
        greylisting; else the seconds until a new connection would pass (0 or
        more: a window of 0 greylists only the first connection).

        The first connection is "first seen"; the first connection at or after
        first seen + window passes, and the client is allowed from then on.
        """
        window = self.pushback.greylist_window
        if window is None:
            return None
        client = self._client(address)
        if client.allowed:
            return None
        if client.first_seen is None:
            client.first_seen = now
            return window
        remaining = client.first_seen + window - now
        if remaining <= 0:
            client.allowed = True
            return None
        return remaining

    def resets_handshake(self, address: str) -> bool:
        """Whether a TLS handshake from ``address`` is to be reset: until one
        has been (``handshake_reset``), when the listener resets first handshakes."""
        if not self.pushback.reset_first_handshake:
            return False
        return not self._client(address).reset_done

    def handshake_reset(self, address: str) -> None:
        """A handshake from ``address`` was reset: its next ones succeed."""
        self._client(address).reset_done = True

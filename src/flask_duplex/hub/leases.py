"""Leases: who runs a deployment-wide task (``tasks.py``), behind one small interface.

A lease has a name and, while held, a holder's token and an expiry. Whoever
asks first takes it; the holder renews it before it expires and releases it
when done; a holder that died loses it at the expiry. :class:`MemoryLeases`
serves one process (the in-process hub); ``RedisLeases``
(:mod:`~flask_duplex.hub.redis_leases`) a whole deployment.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

__all__ = ["Leases", "MemoryLeases"]


class Leases(Protocol):
    """Named leases with an expiry.

    Each method raises :class:`~flask_duplex.errors.BackendUnavailable` when
    the backend cannot be reached (never, in process).
    """

    def acquire(self, name: str, token: str, ttl: float) -> bool:
        """Take lease ``name`` for ``ttl`` seconds if nobody else holds it; True if taken."""
        ...

    def renew(self, name: str, token: str, ttl: float) -> bool:
        """Extend a lease ``token`` holds by ``ttl`` seconds; False if it is not held by it."""
        ...

    def release(self, name: str, token: str) -> None:
        """Give up a lease ``token`` holds (nothing happens if it does not)."""
        ...


class MemoryLeases:
    """Leases among the threads of one process, on its monotonic clock."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[str, float]] = {}  # name: (token, expiry)
        self._lock = threading.Lock()

    def acquire(self, name: str, token: str, ttl: float) -> bool:
        now = time.monotonic()
        with self._lock:
            held = self._held.get(name)
            if held is not None and held[0] != token and held[1] > now:
                return False
            self._held[name] = (token, now + ttl)
            return True

    def renew(self, name: str, token: str, ttl: float) -> bool:
        now = time.monotonic()
        with self._lock:
            held = self._held.get(name)
            if held is None or held[0] != token or held[1] <= now:
                return False
            self._held[name] = (token, now + ttl)
            return True

    def release(self, name: str, token: str) -> None:
        with self._lock:
            held = self._held.get(name)
            if held is not None and held[0] == token:
                del self._held[name]

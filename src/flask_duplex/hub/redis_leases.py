"""Leases in Redis, shared by every process of a deployment (see :mod:`.leases`).

A lease is one key, ``<channel>:lease:<name>``, holding the holder's token,
with Redis's expiry: taken with ``SET NX PX``, renewed and released by
scripts that first check the token, so a holder that lost its lease never
extends or deletes someone else's.
"""

from __future__ import annotations

from . import redis_scripts as scripts
from .redis_calls import RedisCalls, ms
from .redis_topology import REDIS_ERRORS

__all__ = ["RedisLeases"]


class RedisLeases:
    """The :class:`~flask_duplex.hub.leases.Leases` of a deployment, in Redis."""

    def __init__(self, calls: RedisCalls, channel: str) -> None:
        self._calls = calls
        self._prefix = f"{channel}:lease:"

    def acquire(self, name: str, token: str, ttl: float) -> bool:
        self._calls.check_open()
        try:
            client = self._calls.link.client()
            return bool(client.set(self._prefix + name, token, nx=True, px=ms(ttl)))
        except REDIS_ERRORS as exc:
            raise self._calls.unavailable(exc) from exc

    def renew(self, name: str, token: str, ttl: float) -> bool:
        return bool(self._calls.call(scripts.RENEW, [self._prefix + name], [token, ms(ttl)]))

    def release(self, name: str, token: str) -> None:
        self._calls.call(scripts.RELEASE, [self._prefix + name], [token])

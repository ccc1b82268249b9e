"""How the Redis backend's parts call Redis: one link, one deadline, one error.

The rooms hub (``redis.py``), the leases (``redis_leases.py``) and the
server-side channels share one :class:`RedisCalls`: the same connection pool,
the same cache of loaded scripts, and the same way of turning what redis-py
raises into :class:`~flask_duplex.errors.BackendUnavailable`.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import redis

from ..errors import BackendUnavailable
from .redis_topology import REDIS_ERRORS

__all__ = ["RedisCalls", "ms"]


class RedisCalls:
    """Calls to one Redis deployment, each within ``timeout`` seconds.

    Attributes:
        link: How Redis is reached (:mod:`~flask_duplex.hub.redis_topology`).
        where: The Redis, for logs and error messages (without a password).
        timeout: Seconds any call may take.
    """

    def __init__(self, link: Any, timeout: float) -> None:
        self.link = link
        self.where: str = link.where
        self.timeout = timeout
        self._scripts: dict[str, Any] = {}  # Script objects, by their source.
        self._closed = threading.Event()

    def run(self, source: str, keys: list[str], args: list[Any]) -> Any:
        """Run a Lua script (EVALSHA, loading it where the node does not have it yet).

        Raises:
            redis.RedisError: As redis-py raises it (see :meth:`call`).
        """
        client = self.link.client()
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts.setdefault(source, client.register_script(source))
        return script(keys=keys, args=args, client=client)

    def call(self, source: str, keys: list[str], args: list[Any]) -> Any:
        """Run a Lua script for a caller of the app.

        Raises:
            BackendUnavailable: The backend was closed, or Redis refused or did not answer.
        """
        self.check_open()
        try:
            return self.run(source, keys, args)
        except REDIS_ERRORS as exc:
            raise self.unavailable(exc) from exc

    def publish(self, channel: str, envelope: dict[str, Any]) -> None:
        """Publish ``envelope`` as JSON on ``channel``.

        Raises:
            BackendUnavailable: The backend was closed, or Redis refused or did not answer.
        """
        self.check_open()
        try:
            self.link.publish(channel, json.dumps(envelope))
        except REDIS_ERRORS as exc:
            raise self.unavailable(exc) from exc

    def unavailable(self, exc: Exception) -> BackendUnavailable:
        """The error a caller gets for what redis-py raised."""
        if isinstance(exc, redis.ResponseError):
            return BackendUnavailable(f"Redis at {self.where} refused the command: {exc}")
        return BackendUnavailable(
            f"Redis at {self.where} did not answer within {self.timeout}s: {exc}"
        )

    def check_open(self) -> None:
        """Raises: BackendUnavailable: :meth:`close` was called."""
        if self._closed.is_set():
            raise BackendUnavailable("this Redis hub was closed")

    def close(self) -> None:
        """Refuse every call from now on, and close the link."""
        self._closed.set()
        try:
            self.link.close()
        except Exception:
            pass


def ms(seconds: float) -> int:
    """Whole milliseconds, at least 1 (Redis's expiries)."""
    return max(1, round(seconds * 1000))

"""The Redis hub: broadcast, send_to and presence across processes and machines.

Messages
--------
Every process publishes broadcasts and ``send_to`` messages on one pub/sub
channel (the app's ``DUPLEX_CHANNEL``), and one subscriber thread per process
delivers what comes in to its own connections. ``send_to`` goes through Redis
even when the connection is in this process, so that everything one thread
sends to one connection, broadcasts and ``send_to`` in any mix, arrives in
the order it was sent: Redis runs one client's PUBLISH after the one before
it returned, and hands messages to a subscriber in that order.

The subscriber is subscribed before the first connection of the process is
accepted (``add`` waits for it, up to the Redis timeout), so a broadcast
published after a handler runs reaches it. It pings Redis every second on
its own connection and reconnects when the pong does not come: a Redis that
stalled, or a network path that went away without a reset, is noticed.

Every call to Redis has a deadline, ``DUPLEX_REDIS_TIMEOUT`` (0.5 s by
default, no retries): when Redis does not answer in time, ``broadcast``,
``send_to`` and ``members`` raise :class:`BackendUnavailable`. Each caller
uses its own connection from the pool, so callers are not queued behind one
another.

Presence
--------
A room is a sorted set whose scores are expiry times, computed with Redis's
clock (``TIME``, inside scripts), never a process's. Each process refreshes
its members every third of ``presence_ttl``; the members of a process that
crashed expire within ``presence_ttl``. Leaving writes a tombstone (kept
``presence_ttl``) that a refresh checks before it adds a member back, so a
refresh that raced the leave cannot make a member that left reappear. Redis
deletes a sorted set once it is empty, and every room key carries an expiry
of twice ``presence_ttl``, renewed by the refreshes: rooms no process holds
any more disappear.

Lifecycle
---------
The threads start with the first connection and stop at :meth:`RedisHub.close`
(which the extension calls at shutdown, and when the app is garbage
collected): no thread of the hub outlives it.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..assembly import Message
from ..errors import BackendUnavailable
from .base import Hub

if TYPE_CHECKING:
    from .base import Member

__all__ = ["RedisHub"]

logger = logging.getLogger("flask_duplex")

_MAX_BACKOFF = 1.0
_PING_EVERY = 1.0  # seconds between the subscriber's pings
_PONG_GRACE = 3.0  # seconds without a pong before the subscriber reconnects

# Milliseconds since the epoch, by Redis's clock.
_NOW = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000)"

# KEYS: room, tombstone, info. ARGV: ttl ms, id, info.
_JOIN = f"""{_NOW}
redis.call('DEL', KEYS[2])
redis.call('ZADD', KEYS[1], now + ARGV[1], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], 2 * ARGV[1])
redis.call('PEXPIRE', KEYS[3], 2 * ARGV[1])
"""

# KEYS: room, tombstone, info. ARGV: ttl ms, id.
_LEAVE = """
redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[2])
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
"""

# KEYS: room, info. ARGV: ttl ms, tombstone prefix, then id and info for each member.
_REFRESH = f"""{_NOW}
for _, gone in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  redis.call('ZREM', KEYS[1], gone)
  redis.call('HDEL', KEYS[2], gone)
end
for i = 3, #ARGV, 2 do
  if redis.call('EXISTS', ARGV[2] .. ARGV[i]) == 0 then
    redis.call('ZADD', KEYS[1], now + ARGV[1], ARGV[i])
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  end
end
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then
    redis.call('PEXPIRE', key, 2 * ARGV[1])
  end
end
"""

# KEYS: room.
_MEMBERS = f"""{_NOW}
return redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')
"""

# KEYS: room, info. Returns id, info, id, info...
_PRESENCE = f"""{_NOW}
local found = {{}}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')) do
  found[#found + 1] = id
  found[#found + 1] = redis.call('HGET', KEYS[2], id) or '{{}}'
end
return found
"""

# KEYS: lease. ARGV: token, ttl ms.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS: lease. ARGV: token.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
"""


def redis_client(url: str | redis.Redis, timeout: float) -> redis.Redis:
    """A client for ``url`` whose every call gives up after ``timeout`` seconds, without retries.

    A ready-made client (for Redis Sentinel: ``Sentinel(...).master_for(name)``)
    is used as it is, with its own timeouts.
    """
    if isinstance(url, redis.Redis):
        return url
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


class RedisHub(Hub):
    """A hub whose broadcasts and presence are shared through Redis (see the module)."""

    def __init__(
        self,
        url: str | redis.Redis,
        *,
        channel: str,
        presence_ttl: float,
        timeout: float = 0.5,
    ) -> None:
        super().__init__()
        self._redis = redis_client(url, timeout)
        self._where = url if isinstance(url, str) else repr(url)
        self._channel = channel
        self._ttl_ms = max(1, round(presence_ttl * 1000))
        self._refresh_every = presence_ttl / 3
        self._timeout = timeout
        self._join_script = self._redis.register_script(_JOIN)
        self._leave_script = self._redis.register_script(_LEAVE)
        self._refresh_script = self._redis.register_script(_REFRESH)
        self._members_script = self._redis.register_script(_MEMBERS)
        self._presence_script = self._redis.register_script(_PRESENCE)
        self._start_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._subscribed = threading.Event()
        self._stop = threading.Event()
        self._pubsub: Any = None  # The subscriber's, for close() to interrupt.
        self._renew_script = self._redis.register_script(_RENEW)
        self._release_script = self._redis.register_script(_RELEASE)

    # -- connections and rooms ----------------------------------------------

    def add(self, member: Member) -> None:
        super().add(member)
        self.start()

    def join(self, member: Member, room: str, info: str = "{}") -> bool:
        if not super().join(member, room, info):
            return False
        self._presence(
            self._join_script,
            [self._key(room), self._tombstone(room, member.id), self._info_key(room)],
            [self._ttl_ms, member.id, info],
        )
        return True

    def leave(self, member: Member, room: str) -> bool:
        if not super().leave(member, room):
            return False
        self._forget(member.id, [room])
        return True

    def remove(self, member: Member) -> frozenset[str]:
        rooms = super().remove(member)
        self._forget(member.id, rooms)
        return rooms

    def _forget(self, member_id: str, rooms: Iterable[str]) -> None:
        for room in rooms:
            self._presence(
                self._leave_script,
                [self._key(room), self._tombstone(room, member_id), self._info_key(room)],
                [self._ttl_ms, member_id],
            )

    # -- what the app calls -------------------------------------------------

    def broadcast(self, message: Message, to: str | None, exclude: frozenset[str]) -> None:
        envelope: dict[str, Any] = {"to": to, **_pack(message)}
        if exclude:
            envelope["exclude"] = sorted(exclude)
        self._publish(envelope)

    def send_to(self, connection_id: str, message: Message) -> None:
        # Through Redis even when the connection is local: see "Messages" above.
        self._publish({"id": connection_id, **_pack(message)})

    def publish(self, channel: str, message: Message, is_json: bool) -> None:
        envelope = {"channel": channel, **_pack(message)}
        if is_json:
            envelope["json"] = "1"
        self._publish(envelope)

    def acquire_lease(self, name: str, token: str, ttl: float) -> bool:
        try:
            return bool(self._redis.set(self._lease(name), token, nx=True, px=_ms(ttl)))
        except redis.RedisError as exc:
            raise self._unavailable(exc) from exc

    def renew_lease(self, name: str, token: str, ttl: float) -> bool:
        try:
            return bool(self._renew_script(keys=[self._lease(name)], args=[token, _ms(ttl)]))
        except redis.RedisError as exc:
            raise self._unavailable(exc) from exc

    def release_lease(self, name: str, token: str) -> None:
        try:
            self._release_script(keys=[self._lease(name)], args=[token])
        except redis.RedisError as exc:
            raise self._unavailable(exc) from exc

    def members(self, room: str) -> set[str]:
        try:
            ids = self._members_script(keys=[self._key(room)])
        except redis.RedisError as exc:
            raise self._unavailable(exc) from exc
        return {m.decode() if isinstance(m, bytes) else str(m) for m in cast("list[Any]", ids)}

    def presence(self, room: str) -> dict[str, str]:
        try:
            found = self._presence_script(keys=[self._key(room), self._info_key(room)])
        except redis.RedisError as exc:
            raise self._unavailable(exc) from exc
        items = [item.decode() if isinstance(item, bytes) else str(item) for item in found]
        return dict(zip(items[::2], items[1::2], strict=True))

    def close(self) -> None:
        """Stop the subscriber and the presence refresh; wait for their threads."""
        self._stop.set()
        pubsub = self._pubsub
        if pubsub is not None:
            try:
                pubsub.close()  # Interrupts a subscriber waiting for a message.
            except Exception:
                pass
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)
        self._threads = [thread for thread in self._threads if thread.is_alive()]
        try:
            self._redis.close()
        except Exception:
            pass

    @property
    def threads(self) -> list[threading.Thread]:
        """The hub's live threads (for tests and diagnostics)."""
        return [thread for thread in self._threads if thread.is_alive()]

    # -- Redis ----------------------------------------------------------------

    def start(self) -> None:
        """Start the subscriber and the presence refresh, once; wait until subscribed.

        The wait is bounded by the Redis timeout: while Redis is unreachable
        the connection goes on, and the subscriber keeps trying.
        """
        with self._start_lock:
            if not self._threads and not self._stop.is_set():
                for target, name in ((self._listen, "subscriber"), (self._refresh, "presence")):
                    thread = threading.Thread(
                        target=target, name=f"flask-duplex-{name}", daemon=True
                    )
                    thread.start()
                    self._threads.append(thread)
        self._subscribed.wait(self._timeout)

    def _key(self, room: str) -> str:
        return f"{self._channel}:room:{room}"

    def _lease(self, name: str) -> str:
        return f"{self._channel}:lease:{name}"

    def _info_key(self, room: str) -> str:
        return f"{self._channel}:info:{room}"

    def _tombstone(self, room: str, member_id: str) -> str:
        return f"{self._channel}:left:{room}:{member_id}"

    def _unavailable(self, exc: Exception) -> BackendUnavailable:
        return BackendUnavailable(
            f"Redis at {self._where} did not answer within {self._timeout}s: {exc}"
        )

    def _publish(self, envelope: dict[str, Any]) -> None:
        if self._stop.is_set():
            raise BackendUnavailable("this Redis hub was closed")
        try:
            self._redis.publish(self._channel, json.dumps(envelope))
        except redis.RedisError as exc:
            raise self._unavailable(exc) from exc

    def _presence(self, script: Any, keys: list[str], args: list[Any]) -> None:
        try:
            script(keys=keys, args=args)
        except redis.RedisError as exc:
            # The refresh writes this process's members again within ttl/3.
            logger.warning("flask-duplex: presence update failed, will retry: %s", exc)

    def _listen(self) -> None:
        backoff = 0.1
        failed = False
        while not self._stop.is_set():
            pubsub = self._redis.pubsub()
            self._pubsub = pubsub
            try:
                pubsub.subscribe(self._channel)
                self._wait_subscribed(pubsub)
                if failed:
                    logger.warning("flask-duplex: Redis subscriber reconnected to %s", self._where)
                    self.refresh_presence()
                failed = False
                backoff = 0.1
                self._subscribed.set()
                self._receive(pubsub)
            except (redis.RedisError, OSError, ValueError, AttributeError) as exc:
                self._subscribed.clear()
                if self._stop.is_set():
                    break
                failed = True
                logger.error(
                    "flask-duplex: Redis subscriber lost %s (%s); retrying in %.1fs",
                    self._where,
                    exc,
                    backoff,
                )
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
            finally:
                try:
                    pubsub.close()
                except Exception:
                    pass
        self._subscribed.clear()

    def _wait_subscribed(self, pubsub: Any) -> None:
        deadline = time.monotonic() + max(self._timeout, 1.0)
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=deadline - time.monotonic())
            if message is not None and message["type"] == "subscribe":
                return
        raise redis.TimeoutError("no answer to SUBSCRIBE")

    def _receive(self, pubsub: Any) -> None:
        last_pong = time.monotonic()
        next_ping = last_pong + _PING_EVERY
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_ping:
                if now - last_pong > _PONG_GRACE:
                    raise redis.TimeoutError(f"no pong from Redis for {_PONG_GRACE}s")
                pubsub.ping()
                next_ping = now + _PING_EVERY
            message = pubsub.get_message(timeout=max(0.0, next_ping - time.monotonic()))
            if message is None:
                continue
            kind = message["type"]
            if kind == "pong":
                last_pong = time.monotonic()
            elif kind == "message":
                try:
                    self._dispatch(message["data"])
                except Exception:
                    logger.exception("flask-duplex: could not deliver a message from Redis")

    def _dispatch(self, data: bytes) -> None:
        envelope = json.loads(data)
        message = _unpack(envelope)
        if "id" in envelope:
            self.deliver_to(envelope["id"], message)
        elif "channel" in envelope:
            self.channel_message(envelope["channel"], message, "json" in envelope)
        else:
            self.deliver(message, envelope["to"], envelope.get("exclude", ()))

    def _refresh(self) -> None:
        while not self._stop.wait(self._refresh_every):
            self.refresh_presence()

    def refresh_presence(self, snapshot: Mapping[str, Mapping[str, str]] | None = None) -> None:
        """Write this process's members again, with a fresh expiry.

        ``snapshot`` (room to member id to info) replaces the current members:
        the refresh thread takes its snapshot before it writes, and a member
        may leave in between; a member that left is not added back.
        """
        if snapshot is None:
            with self._lock:
                snapshot = {
                    room: {m.id: self._info.get((room, m.id), "{}") for m in members}
                    for room, members in self._rooms.items()
                }
        prefix = f"{self._channel}:left:"
        for room, members in snapshot.items():
            pairs = [item for member_id, info in members.items() for item in (member_id, info)]
            self._presence(
                self._refresh_script,
                [self._key(room), self._info_key(room)],
                [self._ttl_ms, f"{prefix}{room}:", *pairs],
            )


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _pack(message: Message) -> dict[str, str]:
    if isinstance(message, str):
        return {"text": message}
    return {"binary": base64.b64encode(message).decode()}


def _unpack(envelope: dict[str, Any]) -> Message:
    if "text" in envelope:
        return str(envelope["text"])
    return base64.b64decode(envelope["binary"])

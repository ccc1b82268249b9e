"""The Redis hub: broadcast, send_to and presence across processes and machines.

Messages travel on one Redis pub/sub channel that every serving process
subscribes to; each process delivers to its own connections. Presence is a
sorted set per room whose scores are expiry times: each process refreshes
its members every third of ``presence_ttl``, so the members of a process that
crashed drop out within ``presence_ttl`` seconds.

Failure behaviour: while Redis is unreachable, ``broadcast`` and ``send_to``
raise :class:`BackendUnavailable` (never a silent drop); the subscriber logs
each failed attempt and retries with a backoff capped at one second, and
delivery resumes on its own once Redis answers again.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any, cast

import redis

from ..errors import BackendUnavailable
from .base import Hub, Message

if TYPE_CHECKING:
    from .base import Member

__all__ = ["RedisHub"]

logger = logging.getLogger("flask_duplex")

_MAX_BACKOFF = 1.0


class RedisHub(Hub):
    """A hub whose broadcasts and presence are shared through Redis."""

    def __init__(self, url: str, *, channel: str, presence_ttl: float) -> None:
        super().__init__()
        self._url = url
        self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
        self._channel = channel
        self._ttl = presence_ttl
        self._node = uuid.uuid4().hex
        self._started = False
        self._start_lock = threading.Lock()

    # -- connections and rooms ----------------------------------------------

    def add(self, member: Member) -> None:
        super().add(member)
        self._start()

    def join(self, member: Member, room: str) -> bool:
        if not super().join(member, room):
            return False
        expiry = time.time() + self._ttl
        self._presence(lambda pipe: pipe.zadd(self._key(room), {member.id: expiry}))
        return True

    def leave(self, member: Member, room: str) -> bool:
        if not super().leave(member, room):
            return False
        self._presence(lambda pipe: pipe.zrem(self._key(room), member.id))
        return True

    def remove(self, member: Member) -> frozenset[str]:
        rooms = super().remove(member)

        def forget(pipe: Any) -> None:
            for room in rooms:
                pipe.zrem(self._key(room), member.id)

        if rooms:
            self._presence(forget)
        return rooms

    # -- what the app calls -------------------------------------------------

    def broadcast(self, message: Message, to: str | None, exclude: frozenset[str]) -> None:
        self._publish({"to": to, "exclude": sorted(exclude), **_pack(message)})

    def send_to(self, connection_id: str, message: Message) -> None:
        if not self.deliver_to(connection_id, message):
            self._publish({"id": connection_id, **_pack(message)})

    def members(self, room: str) -> set[str]:
        try:
            ids = self._redis.zrangebyscore(self._key(room), time.time(), "+inf")
        except redis.RedisError as exc:
            raise BackendUnavailable(f"Redis at {self._url} is unavailable: {exc}") from exc
        return {m.decode() if isinstance(m, bytes) else str(m) for m in cast("list[Any]", ids)}

    # -- Redis ----------------------------------------------------------------

    def _key(self, room: str) -> str:
        return f"{self._channel}:room:{room}"

    def _publish(self, envelope: dict[str, Any]) -> None:
        try:
            self._redis.publish(self._channel, json.dumps(envelope))
        except redis.RedisError as exc:
            raise BackendUnavailable(
                f"Redis at {self._url} is unavailable, the message was not sent: {exc}"
            ) from exc

    def _presence(self, change: Any) -> None:
        try:
            pipe = self._redis.pipeline(transaction=False)
            change(pipe)
            pipe.execute()
        except redis.RedisError as exc:
            # The refresh loop writes the whole local state again later.
            logger.warning("flask-duplex: presence update failed, will retry: %s", exc)

    def _start(self) -> None:
        with self._start_lock:
            if self._started:
                return
            self._started = True
        for target, name in ((self._listen, "subscriber"), (self._refresh, "presence")):
            threading.Thread(target=target, name=f"flask-duplex-{name}", daemon=True).start()

    def _listen(self) -> None:
        backoff = 0.1
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
            try:
                pubsub.subscribe(self._channel)
                if backoff > 0.1:
                    logger.warning("flask-duplex: Redis subscriber reconnected")
                    self._refresh_once()
                backoff = 0.1
                while True:
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None and message["type"] == "message":
                        try:
                            self._dispatch(message["data"])
                        except Exception:
                            logger.exception("flask-duplex: could not deliver a message from Redis")
            except redis.RedisError as exc:
                logger.error(
                    "flask-duplex: Redis subscriber lost %s (%s); retrying in %.1fs",
                    self._url,
                    exc,
                    backoff,
                )
                time.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
            finally:
                try:
                    pubsub.close()
                except Exception:
                    pass

    def _dispatch(self, data: bytes) -> None:
        envelope = json.loads(data)
        message = _unpack(envelope)
        if "id" in envelope:
            self.deliver_to(envelope["id"], message)
        else:
            self.deliver(message, envelope["to"], envelope["exclude"])

    def _refresh(self) -> None:
        while True:
            time.sleep(self._ttl / 3)
            self._refresh_once()

    def _refresh_once(self) -> None:
        with self._lock:
            rooms = {room: [m.id for m in members] for room, members in self._rooms.items()}
        if not rooms:
            return
        now = time.time()

        def write(pipe: Any) -> None:
            for room, ids in rooms.items():
                pipe.zadd(self._key(room), dict.fromkeys(ids, now + self._ttl))
                pipe.zremrangebyscore(self._key(room), "-inf", now)

        self._presence(write)


def _pack(message: Message) -> dict[str, str]:
    if isinstance(message, str):
        return {"text": message}
    return {"binary": base64.b64encode(message).decode()}


def _unpack(envelope: dict[str, Any]) -> Message:
    if "text" in envelope:
        return str(envelope["text"])
    return base64.b64decode(envelope["binary"])

"""The Redis hub: broadcast, send_to and presence across processes and machines.

Messages
--------
Delivery is targeted: a process hears from Redis only what concerns its own
connections. Its hub (one per app) has one subscriber thread, which listens
to three channels and delivers what comes in to the app's connections here.

- The hub's own channel, named after a random token the hub draws when it
  starts: a broadcast to a room goes to the hubs that hold members of it.
  Each room has a sorted set of those hubs in Redis, written when a member
  joins and when the hub refreshes its presence; one script reads it and
  publishes the message on each of their channels. When the room has
  members on every hub of the app (a sorted set of them all, renewed by the
  same refresh), the script publishes once on the app's channel instead.
- The process's channel, named after its token (the first characters of
  its connection ids, :mod:`~flask_duplex.connection_ids`): ``send_to``
  publishes there, since the id names the process. (Two apps of one
  process on one ``DUPLEX_CHANNEL`` both hear it; each delivers to its own.)
- A broadcast to everyone, what is published on a server-side channel
  (``duplex.publish``), and the news that members expired go on the app's
  channel (``DUPLEX_CHANNEL``), which every process also listens to.

``send_to`` goes through Redis even when the connection is in this process,
so that everything one thread sends to one connection, broadcasts and
``send_to`` in any mix, arrives in the order it was sent: Redis runs one
client's call after the one before it returned, and hands the messages of
all the channels a subscriber listens to over its one connection, in that
order.

A hub registers in a room before ``join`` returns, so a broadcast sent after
the join reaches it. When the room's last member here leaves, it
unregisters; the hub of a process that crashed drops out of the sorted set
within ``presence_ttl`` (its registrations stop being renewed; until then,
what is published for it goes nowhere). Registrations and unregistrations
carry a number that grows with each, so that one that reaches Redis after a
later one of the same hub (two threads, one joining as the other leaves the
room's last seat) changes nothing.

The subscriber is subscribed before the first connection of the process is
accepted (``add`` waits for it, up to the Redis timeout), so a broadcast
published after a handler runs reaches it. It pings Redis every second on
its own connection and reconnects when the pong does not come: a Redis that
stalled, or a network path that went away without a reset, is noticed.

Sentinel and Cluster
--------------------
How the hub reaches Redis is a link (:mod:`~flask_duplex.hub.redis_topology`):
one server, the master that Sentinel names, or a Redis Cluster. Through
Sentinel nothing above changes; every new connection asks the sentinels
where the master is, so after a failover the subscriber's next attempt
reaches the new one. In a Cluster, messages go by sharded pub/sub (SPUBLISH,
SSUBSCRIBE) on the same channels, all in the hash slot of the app's channel:
all messages of the app pass through the shard that owns it, and the order
above holds as it does on one server. Presence keys spread over the shards.
The subscriber holds a plain connection to that shard's master and, when it
fails (or the shard ends the subscription because its slot moved), reads the
slot map again and subscribes where the channels are now. Scripts touch the keys of one slot
only (see the key names, below).

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
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

import redis

from ..assembly import Message
from ..connection_ids import process_of, process_token
from ..errors import BackendUnavailable
from . import redis_scripts as scripts
from .base import Hub
from .bus import ChannelBus
from .history import META_TTL, HistoryPolicy, Position, Reason, Snapshot, new_epoch
from .redis_calls import RedisCalls, ms
from .redis_leases import RedisLeases
from .redis_topology import REDIS_ERRORS, connect

if TYPE_CHECKING:
    from redis.cluster import RedisCluster

    from .base import Member

__all__ = ["RedisHub"]

logger = logging.getLogger("flask_duplex")

_MAX_BACKOFF = 1.0
# What a pub/sub connection hears, classic or sharded (SSUBSCRIBE, in a Redis Cluster).
_SUBSCRIBED = ("subscribe", "ssubscribe")
_UNSUBSCRIBED = ("unsubscribe", "sunsubscribe")
# What makes the subscriber start over (redis-py raises the last three on a
# connection closed under it).
_SUBSCRIBER_ERRORS: tuple[type[Exception], ...] = (
    *REDIS_ERRORS,
    OSError,
    ValueError,
    AttributeError,
)
_PING_EVERY = 1.0  # seconds between the subscriber's pings
_PONG_GRACE = 3.0  # seconds without a pong before the subscriber reconnects


class RedisHub(Hub):
    """A hub whose broadcasts and presence are shared through Redis (see the module)."""

    def __init__(
        self,
        url: str | redis.Redis | RedisCluster,
        *,
        channel: str,
        presence_ttl: float,
        timeout: float = 0.5,
    ) -> None:
        """
        Args:
            url: A URL of one of the forms of :mod:`~flask_duplex.hub.redis_topology`,
                or a ``redis.Redis`` or ``redis.cluster.RedisCluster`` client.
            channel: The pub/sub channel and key prefix (``DUPLEX_CHANNEL``).
            presence_ttl: Seconds a crashed process's members stay listed.
            timeout: Seconds any Redis call may take.

        Raises:
            ValueError: The URL's form is not supported, a plain URL points at
                a node of a Redis Cluster, or (in a cluster) the channel holds
                ``{`` or ``}``, which would split its keys' hash tags.
        """
        super().__init__()
        self._link = connect(url, timeout)
        self._clustered = self._link.sharded
        if self._clustered and ("{" in channel or "}" in channel):
            raise ValueError(
                f"DUPLEX_CHANNEL {channel!r} holds a brace: in a Redis Cluster the hub "
                "wraps the channel in a hash tag itself; choose a channel without { or }"
            )
        self._calls = RedisCalls(self._link, timeout)
        self._where = self._link.where
        self.bus = RedisBus(self._calls, channel)
        self.leases = RedisLeases(self._calls, channel)
        self._channel = channel
        # What the keys and channels the scripts publish with share: in a
        # cluster, the hash tag of the app's channel, so that they share its slot.
        self._tag = f"{{{channel}}}" if self._clustered else channel
        self._ttl_ms = max(1, round(presence_ttl * 1000))
        self._refresh_every = presence_ttl / 3
        self._timeout = timeout
        self._append = scripts.APPEND_SHARDED if self._clustered else scripts.APPEND
        self._broadcast = scripts.BROADCAST_SHARDED if self._clustered else scripts.BROADCAST
        # The token of this hub's channel, drawn again when it starts (in a
        # forked worker), and the number of its registrations in rooms (see
        # "Messages", above).
        self._hub = secrets.token_hex(8)
        self._generation = 0
        # Set when a registration failed: the refresh thread tries again within a second.
        self._register_again = threading.Event()
        #: Messages this process's subscriber received from Redis (for diagnostics).
        self.received = 0
        self._start_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._subscribed = threading.Event()
        self._stop = threading.Event()
        self._pubsub: Any = None  # The subscriber's, for close() to interrupt.

    # -- connections and rooms ----------------------------------------------

    def add(self, member: Member) -> None:
        super().add(member)
        self.start()

    def join(self, member: Member, room: str, info: str = "{}") -> bool:
        if not super().join(member, room, info):
            return False
        with self._lock:
            generation = self._next_generation()
        self._presence(
            scripts.JOIN,
            [self._key(room), self._tombstone(room, member.id), self._info_key(room)],
            [self._ttl_ms, member.id, info],
        )
        self._register(scripts.REGISTER, room, generation)
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

    def _next_generation(self) -> int:
        # Lock held: the number follows the order in which rooms filled and emptied.
        self._generation += 1
        return self._generation

    def _register(self, source: str, room: str, generation: int) -> None:
        """Tell Redis that this hub holds members of ``room`` (or no longer does)."""
        try:
            self._run(source, self._hubs_keys(room), [self._hub, generation, self._ttl_ms])
        except REDIS_ERRORS as exc:
            logger.warning("flask-duplex: could not register in room %r, will retry: %s", room, exc)
            self._register_again.set()

    def _forget(self, member_id: str, rooms: Iterable[str]) -> None:
        with self._lock:
            emptied = [(room, self._next_generation()) for room in rooms if room not in self._rooms]
        for room in rooms:
            self._presence(
                scripts.LEAVE,
                [self._key(room), self._tombstone(room, member_id), self._info_key(room)],
                [self._ttl_ms, member_id],
            )
        for room, generation in emptied:
            self._register(scripts.UNREGISTER, room, generation)

    # -- what the app calls -------------------------------------------------

    def broadcast(self, message: Message, to: str | None, exclude: frozenset[str]) -> None:
        envelope: dict[str, Any] = {"to": to, **_pack(message)}
        if exclude:
            envelope["exclude"] = sorted(exclude)
        if to is None:
            self._publish(envelope)  # To every process.
            return
        self._calls.call(
            self._broadcast,
            [self._hubs_keys(to)[0], self._all_hubs_key()],
            [self._hub_channel(""), json.dumps(envelope), self._channel],
        )

    def broadcast_history(
        self, room: str, fragment: str, exclude: frozenset[str], policy: HistoryPolicy
    ) -> None:
        room_json = json.dumps(room)
        args: list[str | int] = [
            self._hub_channel(""),
            room_json,
            fragment,
            policy.size,
            ms(policy.ttl),
            ms(META_TTL),
            new_epoch(),
            json.dumps([room, sorted(exclude)]),
            self._channel,
        ]
        keys = [*self._history_keys(room), self._hubs_keys(room)[0], self._all_hubs_key()]
        self._calls.call(self._append, keys, args)

    def read_history(self, room: str, since: Position | None, policy: HistoryPolicy) -> Snapshot:
        args: list[str | int] = [
            "" if since is None else since.epoch,
            0 if since is None else since.offset,
            ms(policy.ttl),
            new_epoch(),
            ms(META_TTL),
        ]
        found = self._calls.call(scripts.READ, self._history_keys(room), args)
        epoch, top, reason, *frames = (
            item.decode() if isinstance(item, bytes) else item for item in found
        )
        first = 0 if since is None else since.offset + 1
        return Snapshot(
            str(epoch),
            int(top),
            [(first + i, str(frame)) for i, frame in enumerate(frames)],
            cast("Reason", reason) if reason else None,
        )

    def send_to(self, connection_id: str, message: Message) -> None:
        # Through Redis even when the connection is local: see "Messages" above.
        process = process_of(connection_id)
        if process is None:
            return  # Not an id of any process: nobody holds it.
        self._publish({"id": connection_id, **_pack(message)}, self._process_channel(process))

    def members(self, room: str) -> set[str]:
        ids = self._calls.call(scripts.MEMBERS, [self._key(room)], [])
        return {m.decode() if isinstance(m, bytes) else str(m) for m in cast("list[Any]", ids)}

    def presence(self, room: str) -> dict[str, str]:
        found = self._calls.call(scripts.PRESENCE, [self._key(room), self._info_key(room)], [])
        items = [item.decode() if isinstance(item, bytes) else str(item) for item in found]
        return dict(zip(items[::2], items[1::2], strict=True))

    def close(self) -> None:
        """Stop the subscriber and the presence refresh; wait for their threads."""
        self._stop.set()
        self._register_again.set()  # Wakes the refresh thread.
        pubsub = self._pubsub
        if pubsub is not None:
            try:
                pubsub.close()  # Interrupts a subscriber waiting for a message.
            except Exception:
                pass
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)
        if self._threads:
            self._announce(0)  # Its rooms no longer count it among the app's hubs.
        self._threads = [thread for thread in self._threads if thread.is_alive()]
        self._calls.close()

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
                self._hub = secrets.token_hex(8)  # Not the token of the process it forked from.
                for target, name in ((self._listen, "subscriber"), (self._refresh, "presence")):
                    thread = threading.Thread(
                        target=target, name=f"flask-duplex-{name}", daemon=True
                    )
                    thread.start()
                    self._threads.append(thread)
        self._subscribed.wait(self._timeout)

    # Key names. In a Redis Cluster each script's keys must share one hash
    # slot: a room's presence keys all start with the hash tag {channel:room}
    # (so rooms spread over the nodes), and its history keys with {channel},
    # the tag of the sharded channel itself, because the append script
    # publishes on that channel. The tag is a prefix the room's keys share,
    # so a brace inside a room's name cannot split them.

    def _key(self, room: str) -> str:
        if self._clustered:
            return f"{{{self._channel}:{room}}}:room"
        return f"{self._channel}:room:{room}"

    def _info_key(self, room: str) -> str:
        if self._clustered:
            return f"{{{self._channel}:{room}}}:info"
        return f"{self._channel}:info:{room}"

    def _history_keys(self, room: str) -> list[str]:
        return [f"{self._tag}:history-meta:{room}", f"{self._tag}:history:{room}"]

    # The hubs holding members of a room and their generations. In a
    # cluster, in the slot of the hubs' channels, which the broadcast script
    # publishes on.

    def _hubs_keys(self, room: str) -> list[str]:
        return [f"{self._tag}:hubs:{room}", f"{self._tag}:hub-generations:{room}"]

    def _all_hubs_key(self) -> str:
        # Every started hub of the app (see scripts.ANNOUNCE), in the same slot.
        return f"{self._tag}:all-hubs"

    def _announce(self, ttl_ms: int) -> None:
        """Say that this hub listens (``ttl_ms`` 0: that it stopped); best effort."""
        try:
            self._run(scripts.ANNOUNCE, [self._all_hubs_key()], [self._hub, ttl_ms])
        except REDIS_ERRORS as exc:
            logger.warning("flask-duplex: could not announce this process to Redis: %s", exc)

    def _hub_channel(self, hub: str) -> str:
        """The channel of the hub with this token ("": the prefix of them all)."""
        return f"{self._tag}:hub:{hub}"

    def _process_channel(self, process: str) -> str:
        """The channel of ``send_to`` for the connections of the process with this token."""
        return f"{self._tag}:process:{process}"

    def _tombstone(self, room: str, member_id: str) -> str:
        if self._clustered:
            return f"{{{self._channel}:{room}}}:left:{member_id}"
        return f"{self._channel}:left:{room}:{member_id}"

    def _publish(self, envelope: dict[str, Any], channel: str | None = None) -> None:
        self._calls.publish(channel or self._channel, envelope)

    def _run(self, source: str, keys: list[str], args: list[Any]) -> Any:
        return self._calls.run(source, keys, args)

    def _presence(self, source: str, keys: list[str], args: list[Any]) -> Any:
        try:
            return self._run(source, keys, args)
        except REDIS_ERRORS as exc:
            # The refresh writes this process's members again within ttl/3.
            logger.warning("flask-duplex: presence update failed, will retry: %s", exc)
            return None

    def _listen(self) -> None:
        backoff = 0.1
        failed = False
        while not self._stop.is_set():
            pubsub: Any = None
            try:
                channels = [
                    self._channel,
                    self._process_channel(process_token()),
                    self._hub_channel(self._hub),
                ]
                pubsub = self._link.subscriber(channels, reconnecting=failed)
                self._pubsub = pubsub
                if self._stop.is_set():
                    break  # close() ran before the pubsub above was visible to it.
                self._wait_subscribed(pubsub, len(channels))
                self._announce(self._ttl_ms)
                if failed:
                    logger.warning("flask-duplex: Redis subscriber reconnected to %s", self._where)
                    self.refresh_presence()
                # Members that joined a room with history before the
                # subscriber was subscribed get what was published meanwhile.
                self._catch_up()
                failed = False
                backoff = 0.1
                self._subscribed.set()
                self._receive(pubsub, len(channels))
            except _SUBSCRIBER_ERRORS as exc:
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
                    if pubsub is not None:
                        pubsub.close()
                except Exception:
                    pass
        self._subscribed.clear()

    def _catch_up(self) -> None:
        # Messages published while the subscriber was away: from the history
        # of the rooms that keep one. Failing, the subscriber starts over.
        try:
            self.catch_up()
        except BackendUnavailable as exc:
            raise redis.ConnectionError(f"could not read the rooms' history: {exc}") from exc

    def _wait_subscribed(self, pubsub: Any, channels: int) -> None:
        # Each confirmation carries how many channels the connection listens to.
        deadline = time.monotonic() + max(self._timeout, 1.0)
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=deadline - time.monotonic())
            if (
                message is not None
                and message["type"] in _SUBSCRIBED
                and message["data"] == channels
            ):
                return
        raise redis.TimeoutError("no answer to SUBSCRIBE")

    def _receive(self, pubsub: Any, channels: int) -> None:
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
            elif kind in _SUBSCRIBED and message["data"] == channels:
                # redis-py reconnected on its own and subscribed again (this
                # is the last channel's confirmation): what was published in
                # between never reached this process.
                logger.warning("flask-duplex: Redis subscriber reconnected to %s", self._where)
                last_pong = time.monotonic()
                self.refresh_presence()
                self._catch_up()
            elif kind in _UNSUBSCRIBED:
                # In a cluster, the channel's slot moved to another node (a
                # failover, a resharding): subscribe again where it is now.
                raise redis.ConnectionError(f"Redis ended the subscription ({kind})")
            elif kind in ("message", "smessage"):
                self.received += 1
                try:
                    self._dispatch(message["data"])
                except Exception:
                    logger.exception("flask-duplex: could not deliver a message from Redis")

    def _dispatch(self, data: bytes) -> None:
        if data[:1] == b"H":  # A message of a room with history (see scripts.APPEND).
            header, _, frame = data.partition(b"\n")
            epoch, offset, rest = header[1:].split(b" ", 2)
            room, exclude = json.loads(rest)
            self.deliver_history(room, epoch.decode(), int(offset), frame.decode(), set(exclude))
            return
        envelope = json.loads(data)
        if "expired" in envelope:
            self.members_expired(envelope["expired"], frozenset(envelope["ids"]))
            return
        message = _unpack(envelope)
        if "id" in envelope:
            self.deliver_to(envelope["id"], message)
        elif "channel" in envelope:
            self.bus.deliver(envelope["channel"], message, "json" in envelope)
        else:
            self.deliver(message, envelope["to"], envelope.get("exclude", ()))

    def _refresh(self) -> None:
        while not self._stop.is_set():
            if self._register_again.wait(self._refresh_every):
                self._stop.wait(1.0)  # At most one retry a second while Redis fails.
            if self._stop.is_set():
                break
            self._register_again.clear()
            self.refresh_presence()

    def refresh_presence(self, snapshot: Mapping[str, Mapping[str, str]] | None = None) -> None:
        """Write this process's members again, with a fresh expiry.

        ``snapshot`` (room to member id to info) replaces the current members:
        the refresh thread takes its snapshot before it writes, and a member
        may leave in between; a member that left is not added back.
        """
        self._announce(self._ttl_ms)
        with self._lock:
            generation = self._generation
            held = list(self._rooms)
            if snapshot is None:
                snapshot = {
                    room: {m.id: self._info.get((room, m.id), "{}") for m in members}
                    for room, members in self._rooms.items()
                }
        for room in held:
            # Renews the registration; a room left since changed the
            # generation, and this one then changes nothing.
            self._register(scripts.REGISTER, room, generation)
        for room, members in snapshot.items():
            pairs = [item for member_id, info in members.items() for item in (member_id, info)]
            expired = self._presence(
                scripts.REFRESH,
                [self._key(room), self._info_key(room)],
                [self._ttl_ms, self._tombstone(room, ""), *pairs],
            )
            if expired:
                ids = sorted(i.decode() if isinstance(i, bytes) else str(i) for i in expired)
                try:  # Every process hears of it (on_members_expired).
                    self._publish({"expired": room, "ids": ids})
                except BackendUnavailable as exc:
                    logger.warning("flask-duplex: could not announce expired members: %s", exc)


class RedisBus(ChannelBus):
    """Server-side channels through Redis: published on the app's channel, which every
    process's subscriber listens to (and hands to :meth:`deliver`)."""

    def __init__(self, calls: RedisCalls, channel: str) -> None:
        super().__init__()
        self._calls = calls
        self._channel = channel

    def publish(self, channel: str, message: Message, is_json: bool) -> None:
        envelope = {"channel": channel, **_pack(message)}
        if is_json:
            envelope["json"] = "1"
        self._calls.publish(self._channel, envelope)


def _pack(message: Message) -> dict[str, str]:
    if isinstance(message, str):
        return {"text": message}
    return {"binary": base64.b64encode(message).decode()}


def _unpack(envelope: dict[str, Any]) -> Message:
    if "text" in envelope:
        return str(envelope["text"])
    return base64.b64decode(envelope["binary"])

"""The hub interface, and the local delivery every backend shares."""

from __future__ import annotations

import abc
import json
import threading
from collections.abc import Callable, Collection, Iterable
from typing import Any

from ..assembly import Message
from ..outbox import Outgoing
from .bus import ChannelBus
from .feeds import Feeds
from .history import Histories, HistoryPolicy, Joined, Position, Snapshot
from .leases import Leases
from .member import Member

__all__ = ["Hub", "Member", "encode_message"]


def encode_message(message: Any, dumps: Callable[[Any], str] = json.dumps) -> Message:
    """``str`` and bytes-like pass through; ``dict`` and ``list`` become JSON text.

    Raises:
        TypeError: Any other type.
    """
    if isinstance(message, str | bytes):
        return message
    if isinstance(message, bytearray | memoryview):
        return bytes(message)
    if isinstance(message, dict | list):
        return dumps(message)
    raise TypeError(f"broadcast takes str, bytes, dict or list, not {type(message).__name__}")


class Hub(abc.ABC):
    """Where connections register, join rooms, and receive broadcasts.

    The hub keeps the room memberships of this process's connections; a
    connection that was removed (its handler returned) can join nothing.
    Each backend also brings the two other jobs of a message queue, each
    behind its own interface: :attr:`bus` (server-side channels) and
    :attr:`leases` (deployment-wide tasks).
    """

    #: Server-side channels: ``duplex.publish`` and what reaches this process.
    bus: ChannelBus
    #: The leases of deployment-wide tasks.
    leases: Leases

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: Called with (room, ids) when members of a room expired from presence
        #: (their process stopped without saying so); set by the extension.
        self.on_members_expired: Callable[[str, frozenset[str]], None] | None = None
        self._members: dict[str, Member] = {}
        self._rooms: dict[str, set[Member]] = {}
        self._member_rooms: dict[str, set[str]] = {}
        # What each member said about itself in each room (JSON text), for presence().
        self._info: dict[tuple[str, str], str] = {}
        #: Which rooms keep history; set by the extension.
        self.histories = Histories()
        # Who follows which room with history, and from where (feeds.py).
        self._feeds = Feeds(self._lock, self._rooms)

    # -- connections and rooms (called through the WebSocket and serving.py) ---

    def add(self, member: Member) -> None:
        """Register a connection that was accepted, so that it can join rooms."""
        with self._lock:
            self._members[member.id] = member

    def remove(self, member: Member) -> frozenset[str]:
        """Forget a connection that ended, in every room at once; return its rooms."""
        with self._lock:
            self._members.pop(member.id, None)
            rooms = self._member_rooms.pop(member.id, set())
            for room in rooms:
                self._discard(room, member)
        return frozenset(rooms)

    def join(self, member: Member, room: str, info: str = "{}") -> bool:
        """Put ``member`` in ``room``, or update its info there; True if anything changed.

        ``info`` (JSON text) is what :meth:`presence` tells about it in that
        room. False if ``member`` is not registered (it ended), or was in the
        room already with the same info.
        """
        with self._lock:
            if member.id not in self._members:
                return False
            rooms = self._member_rooms.setdefault(member.id, set())
            if room in rooms and self._info.get((room, member.id)) == info:
                return False
            rooms.add(room)
            self._rooms.setdefault(room, set()).add(member)
            self._info[room, member.id] = info
        return True

    def leave(self, member: Member, room: str) -> bool:
        """Take ``member`` out of ``room``; False if it was not in it."""
        with self._lock:
            rooms = self._member_rooms.get(member.id)
            if rooms is None or room not in rooms:
                return False
            rooms.discard(room)
            self._discard(room, member)
        return True

    def _discard(self, room: str, member: Member) -> None:
        # Lock held.
        self._info.pop((room, member.id), None)
        self._feeds.forget(room, member.id)
        members = self._rooms.get(room)
        if members is not None:
            members.discard(member)
            if not members:
                del self._rooms[room]

    # -- rooms with history --------------------------------------------------

    def join_history(
        self,
        member: Member,
        room: str,
        info: str,
        policy: HistoryPolicy,
        since: Position | None,
        asked: bool,
    ) -> Joined:
        """Put ``member`` in ``room``, a room with history, resuming after ``since``.

        The member gets a ``joined`` frame, then every message after
        ``since`` (when the history still has them all), then the live ones:
        in order, none twice. Messages broadcast while this runs wait for it
        (at most 4096; past that the member is closed with 1013). It sends
        with ``member.send``, so it waits on a slow client. See ``feeds.py``.

        Args:
            asked: The client gave a position (``since`` is ``None`` when it
                was malformed: the join then says ``invalid_position``).

        Raises:
            BackendUnavailable: The history cannot be read; the member is not in the room.
        """
        with self._lock:
            following = self._feeds.following(room, member.id)
            floor = self._feeds.floor(room, member.id)
        if following:
            self.join(member, room, info)  # Updates its info, if that changed.
            return Joined(room, True, floor)
        return self._feeds.join(
            member,
            room,
            enter=lambda: self.join(member, room, info),
            read=lambda: self.read_history(room, since, policy),
            leave=lambda: self.leave(member, room),
            asked=asked,
            malformed=asked and since is None,
        )

    def deliver_history(
        self, room: str, epoch: str, offset: int, frame: str, exclude: Collection[str]
    ) -> None:
        """Queue message ``offset`` of ``room`` on this process's members in it.

        A backend calls it for each message of a room with history, in the
        order of their offsets. A member whose join is replaying gets it once
        the replay is done; one that has it already (its join replayed it) is
        skipped; one in ``exclude`` learns only its new position.
        """
        with self._lock:  # Held while queueing: members see offsets in order.
            self._feeds.deliver(room, epoch, offset, frame, exclude)

    def catch_up(self) -> None:
        """Fill the gap of every live member of a room with history, from its last position.

        For a backend that may have missed messages (Redis's subscriber
        reconnected): each member gets what it missed, queued without
        waiting; or, when the history cannot fill the gap, a ``joined``
        frame with ``recovered: false`` and the reason.

        Raises:
            BackendUnavailable: The history cannot be read.
        """

        def read(room: str, since: Position) -> Snapshot | None:
            policy = self.histories.policy_for(room)
            return None if policy is None else self.read_history(room, since, policy)

        self._feeds.catch_up(self._members, read)

    def read_history(self, room: str, since: Position | None, policy: HistoryPolicy) -> Snapshot:
        """The room's position now, and the messages after ``since`` (or why not).

        Raises:
            BackendUnavailable: The history cannot be read.
        """
        raise NotImplementedError(f"{type(self).__name__} keeps no history")

    def broadcast_history(
        self, room: str, fragment: str, exclude: frozenset[str], policy: HistoryPolicy
    ) -> None:
        """Number a message of a room with history, keep it, and deliver it everywhere.

        ``fragment`` is the message's ``"data": ...`` part (see :func:`~.history.data_fragment`).

        Raises:
            BackendUnavailable: The message queue cannot be reached; nothing was kept or sent.
        """
        raise NotImplementedError(f"{type(self).__name__} keeps no history")

    # -- what the app calls -------------------------------------------------

    @abc.abstractmethod
    def broadcast(self, message: Message, to: str | None, exclude: frozenset[str]) -> None:
        """Send to every connection in room ``to`` (``None``: all), except ``exclude`` ids."""

    @abc.abstractmethod
    def send_to(self, connection_id: str, message: Message) -> None:
        """Send to one connection, wherever it lives."""

    @abc.abstractmethod
    def members(self, room: str) -> set[str]:
        """The ids of the connections in ``room``."""

    @abc.abstractmethod
    def presence(self, room: str) -> dict[str, str]:
        """The connections in ``room``: id to the info (JSON text) each joined with."""

    def start(self) -> None:
        """Start the hub's background work (Redis's subscriber); nothing in-process."""
        return None

    def close(self) -> None:
        """Stop the hub's background work, if it has any."""
        return None

    def members_expired(self, room: str, ids: frozenset[str]) -> None:
        """Tell the app that members of ``room`` expired (``on_members_expired``)."""
        callback = self.on_members_expired
        if callback is not None:
            callback(room, ids)

    # -- local delivery -----------------------------------------------------

    def deliver(self, message: Message, to: str | None, exclude: Iterable[str]) -> None:
        """Queue ``message`` on this process's connections in room ``to`` (``None``: all).

        A backend calls it for each broadcast that reaches this process; it
        never waits on a connection's socket.
        """
        with self._lock:
            targets = list(self._members.values() if to is None else self._rooms.get(to, ()))
        skip = set(exclude)
        outgoing = Outgoing(message)
        if skip:
            targets = [member for member in targets if member.id not in skip]
        for member in targets:
            member.send_nowait(outgoing)

    def deliver_to(self, connection_id: str, message: Message) -> bool:
        """Queue ``message`` on this process's connection with this id; False if it has none."""
        with self._lock:
            member = self._members.get(connection_id)
        if member is None:
            return False
        member.send_nowait(Outgoing(message))
        return True

    def local_members(self) -> list[Member]:
        """This process's registered connections."""
        with self._lock:
            return list(self._members.values())

    def local_room_members(self, room: str) -> set[str]:
        """The ids of this process's connections in ``room``."""
        with self._lock:
            return {member.id for member in self._rooms.get(room, ())}

    def local_presence(self, room: str) -> dict[str, str]:
        """This process's connections in ``room``: id to the info (JSON text) each joined with."""
        with self._lock:
            return {m.id: self._info.get((room, m.id), "{}") for m in self._rooms.get(room, ())}

"""How this process's connections follow rooms with history: joins that replay, then live messages.

A backend hands each message of a room with history to :meth:`Feeds.deliver`
in the order of its offsets (the in-process hub as it numbers it; the Redis
hub as its subscriber receives it). A connection in such a room is in one of
two states here:

- *replaying*: its join is sending it the gap (``Feeds.join``); what is
  delivered meanwhile waits in a list, and the join sends it after the gap;
- *live*: it has a *floor*, the position its join ended at. Messages at or
  below the floor (its join's replay had them; a subscriber that lags may
  still hand them over) are skipped; the others are queued on it.

The floor is written once per join, not per message: what a live connection
has seen last is the room's last delivered position (``last``), one write
per message for the whole room. A message from another epoch than a
member's floor means the history was lost: the member first gets a
``joined`` frame with ``recovered: false``.

Every method but :meth:`Feeds.join` and :meth:`Feeds.catch_up` is called
with the hub's lock held; those two take it themselves, around their I/O.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Mapping

from ..outbox import Outgoing
from .history import Joined, Position, Reason, Snapshot, joined_frame, position_frame
from .member import Member

__all__ = ["Feeds"]

# Live messages that may wait for a connection while its join replays the
# room's history; past it, the connection is closed with 1013 (try again).
MAX_PENDING = 4096

_NONE: dict[str, Position] = {}


class Feeds:
    """The rooms with history of one hub, for its members in this process.

    Args:
        lock: The hub's lock, which guards its rooms and this state.
        rooms: The hub's room memberships (room to members), read here.
    """

    def __init__(self, lock: threading.Lock, rooms: Mapping[str, Collection[Member]]) -> None:
        self._lock = lock
        self._rooms = rooms
        # room -> member id -> the position its join ended at (live members).
        self._floors: dict[str, dict[str, Position]] = {}
        # room -> member id -> what was delivered while its join replays.
        self._pending: dict[str, dict[str, list[tuple[str, int, str, bool]]]] = {}
        # room -> the position of the last message delivered here.
        self._last: dict[str, Position] = {}

    def floor(self, room: str, member_id: str) -> Position | None:
        """Where a live member's join left it (lock held); ``None`` if it is not live."""
        return self._floors.get(room, _NONE).get(member_id)

    def following(self, room: str, member_id: str) -> bool:
        """Whether the member is live or replaying in ``room`` (lock held)."""
        return member_id in self._floors.get(room, _NONE) or member_id in self._pending.get(
            room, {}
        )

    def forget(self, room: str, member_id: str) -> None:
        """The member left the room, or ended (lock held)."""
        for table in (self._floors, self._pending):
            members = table.get(room)
            if members is not None:
                members.pop(member_id, None)
                if not members:
                    del table[room]
        if room not in self._floors and room not in self._pending:
            self._last.pop(room, None)

    def join(
        self,
        member: Member,
        room: str,
        enter: Callable[[], bool],
        read: Callable[[], Snapshot],
        leave: Callable[[], object],
        asked: bool,
        malformed: bool,
    ) -> Joined:
        """Replay the gap to a member joining ``room``, then make it live (takes the lock).

        Args:
            enter: Puts the member in the room (False: it ended).
            read: Reads the room's history after the client's position.
            leave: Takes the member out again, when ``read`` fails.
            asked: The client gave a position.
            malformed: ...and it was not one (the join says ``invalid_position``).

        Raises:
            BackendUnavailable: From ``read``; the member is not in the room.
        """
        with self._lock:
            self._pending.setdefault(room, {})[member.id] = []
        try:
            if not enter():
                with self._lock:
                    self.forget(room, member.id)
                return Joined(room)  # The member ended.
            snapshot = read()
        except BaseException:
            with self._lock:
                self.forget(room, member.id)
            leave()
            raise
        reason: Reason | None = "invalid_position" if malformed else snapshot.reason
        joined = Joined(
            room,
            True,
            Position(snapshot.epoch, snapshot.top),
            recovered=asked and reason is None,
            reason=reason if asked else None,
            missed=len(snapshot.frames),
        )
        member.send(joined_frame(joined))
        for _, frame in snapshot.frames:
            member.send(frame)
        epoch, offset = snapshot.epoch, snapshot.top
        while True:  # What was delivered meanwhile, until nothing waits.
            with self._lock:
                pending = self._pending.get(room, {})
                waiting = pending.get(member.id)
                if waiting is None:
                    return joined  # It left, or ended, meanwhile.
                if not waiting:
                    self.forget(room, member.id)
                    self._floors.setdefault(room, {})[member.id] = Position(epoch, offset)
                    return joined
                pending[member.id] = []
            for message_epoch, message_offset, frame, excluded in waiting:
                if message_epoch != epoch:
                    restart = Position(message_epoch, message_offset - 1)
                    member.send(joined_frame(Joined(room, True, restart, False, "epoch_changed")))
                    epoch = message_epoch
                elif message_offset <= offset:
                    continue
                offset = message_offset
                member.send(position_frame(room, epoch, offset) if excluded else frame)

    def deliver(
        self, room: str, epoch: str, offset: int, frame: str, exclude: Collection[str]
    ) -> None:
        """Queue message ``offset`` of ``room`` on the members here (lock held)."""
        members = self._rooms.get(room)
        if not members:
            return
        floors = self._floors.get(room, _NONE)
        pending = self._pending.get(room)
        if floors is not _NONE:
            self._last[room] = Position(epoch, offset)
        outgoing: Outgoing | None = None
        for member in members:
            member_id = member.id
            floor = floors.get(member_id)
            if floor is None:
                if pending is None or (waiting := pending.get(member_id)) is None:
                    continue  # Joining: its read of the history has this message.
                if len(waiting) < MAX_PENDING:
                    waiting.append((epoch, offset, frame, member_id in exclude))
                else:
                    del pending[member_id]
                    member.close_nowait(1013, "too far behind the room")
                continue
            if floor.epoch != epoch:
                restart = Position(epoch, offset - 1)
                member.send_nowait(
                    joined_frame(Joined(room, True, restart, False, "epoch_changed"))
                )
                floors[member_id] = restart
            elif offset <= floor.offset:
                continue
            if member_id in exclude:
                member.send_nowait(position_frame(room, epoch, offset))
            else:
                if outgoing is None:
                    outgoing = Outgoing(frame)
                member.send_nowait(outgoing)

    def catch_up(
        self,
        members: Mapping[str, Member],
        read: Callable[[str, Position], Snapshot | None],
    ) -> None:
        """Send every live member what it missed since its last position (takes the lock).

        For a backend that may have missed messages (Redis's subscriber
        reconnected). Each member gets the gap, queued without waiting; or,
        when the history cannot fill it, a ``joined`` frame with
        ``recovered: false`` and the reason. ``read(room, since)`` returns
        ``None`` for a room that keeps no history (any more).

        Raises:
            BackendUnavailable: From ``read``.
        """
        with self._lock:
            wanted: dict[tuple[str, Position], list[str]] = {}
            for room, floors in self._floors.items():
                last = self._last.get(room)
                for member_id, floor in floors.items():
                    since = floor
                    if (
                        last is not None
                        and last.epoch == floor.epoch
                        and last.offset > floor.offset
                    ):
                        since = last
                    wanted.setdefault((room, since), []).append(member_id)
        for (room, since), member_ids in wanted.items():
            snapshot = read(room, since)
            if snapshot is None:
                continue
            top = Position(snapshot.epoch, snapshot.top)
            with self._lock:
                floors = self._floors.get(room, {})
                for member_id in member_ids:
                    member = members.get(member_id)
                    if member is None or member_id not in floors:
                        continue
                    if snapshot.reason is not None:
                        lost = Joined(room, True, top, False, snapshot.reason)
                        member.send_nowait(joined_frame(lost))
                    else:
                        for _, frame in snapshot.frames:
                            member.send_nowait(frame)
                    floors[member_id] = top
                if floors:
                    self._last[room] = top

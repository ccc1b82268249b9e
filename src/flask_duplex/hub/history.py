"""Rooms with history: positions, the frames that carry them, and the in-process store.

A room with history (``Duplex.keep_history``) numbers what is broadcast to it:
each message gets the room's next *offset* (1, 2, 3, ...) within an *epoch*, a
random token that changes whenever the history was lost (a new process for
the in-process hub; a Redis that restarted, was flushed, or let the room's
keys expire). A position is the pair; an offset is never compared across
epochs.

What reaches a connection in such a room is a JSON text frame that says where
it is in the room (the browser client and the test client read them; see
docs/recovery.md for the whole protocol)::

    {"duplex":"message","room":"lobby","epoch":"5f0c9a1e2b7d","offset":42,"data":{...}}
    {"duplex":"joined","room":"lobby","epoch":"...","offset":41,"recovered":true,"reason":null,"missed":3}
    {"duplex":"position","room":"lobby","epoch":"...","offset":43}

``data`` is the message as broadcast: a dict or list as JSON, a ``str`` as a
JSON string; bytes travel as ``"binary"`` (base64) instead. ``joined`` comes
first when the connection joins (and again if the process lost the room's
feed and could not fill the gap); ``position`` tells a connection left out of
a broadcast (``exclude``) that the room moved on without it.

A client that reconnects hands its positions back in the upgrade request's
query string, ``duplex-since`` (JSON: room name to ``[epoch, offset]``), and
``ws.join(room)`` resumes from there by itself.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Literal, NamedTuple
from urllib.parse import parse_qs

__all__ = [
    "SINCE_PARAMETER",
    "Histories",
    "HistoryPolicy",
    "Joined",
    "MemoryHistory",
    "Position",
    "Reason",
    "Snapshot",
    "data_fragment",
    "joined_frame",
    "message_frame",
    "new_epoch",
    "position_frame",
    "positions_from_query",
    "unknown_room_frame",
]

#: The query-string parameter in which a reconnecting client hands back its positions.
SINCE_PARAMETER = "duplex-since"

#: Why a join did not recover: the client's position is older than what the
#: history keeps (``too_old``), from a history that was lost since
#: (``epoch_changed``), for a room that keeps no history (``unknown_room``),
#: or not a position this room ever had (``invalid_position``).
Reason = Literal["too_old", "epoch_changed", "unknown_room", "invalid_position"]

# Longest ``duplex-since`` value read; a longer one is ignored (no recovery).
_MAX_SINCE = 8192
# Seconds a room's epoch and offset are kept after its last broadcast, so that
# a client coming back after the history's ``ttl`` learns ``too_old`` (its gap
# is gone) rather than ``epoch_changed``.
META_TTL = 24 * 3600.0


class Position(NamedTuple):
    """Where a client is in a room with history: the last message it has."""

    epoch: str
    offset: int


@dataclasses.dataclass(frozen=True)
class HistoryPolicy:
    """How much of a room's history is kept.

    Attributes:
        size: The last ``size`` messages are kept.
        ttl: Seconds a message is kept; an older one is never replayed.
        max_bytes: In-process only: the bytes (of the frames) kept for one
            room; the oldest messages go first past it.
    """

    size: int = 100
    ttl: float = 300.0
    max_bytes: int = 2**20

    def __post_init__(self) -> None:
        if type(self.size) is not int or self.size < 1:
            raise ValueError(f"size must be an int of at least 1, not {self.size!r}")
        if not isinstance(self.ttl, int | float) or isinstance(self.ttl, bool) or self.ttl <= 0:
            raise ValueError(f"ttl must be a positive number of seconds, not {self.ttl!r}")
        if type(self.max_bytes) is not int or self.max_bytes < 1:
            raise ValueError(f"max_bytes must be an int of at least 1, not {self.max_bytes!r}")


@dataclasses.dataclass(frozen=True)
class Joined:
    """What :meth:`WebSocket.join <flask_duplex.WebSocket.join>` did.

    Attributes:
        room: The room joined.
        history: Whether the room keeps history (the fields below are about it).
        position: Where the connection starts: the room's last message
            before the live ones (``None`` without history).
        recovered: Every message after the position the client gave was sent
            to it, in order, before this returned; ``False`` when it gave none,
            or when the gap could not be filled (see ``reason``). When it is
            ``False`` the app sends the client a full state.
        reason: Why a position the client gave was not recovered; ``None``
            when it gave none or it was.
        missed: How many messages were replayed.
    """

    room: str
    history: bool = False
    position: Position | None = None
    recovered: bool = False
    reason: Reason | None = None
    missed: int = 0


class Snapshot(NamedTuple):
    """What a history store answers to a join: the room's position, and the gap or why not.

    ``frames`` are the messages after the position asked for, as (offset,
    frame), oldest first, up to ``top``; empty when ``reason`` says why not.
    """

    epoch: str
    top: int
    frames: list[tuple[int, str]]
    reason: Reason | None


class Histories:
    """Which rooms keep history, and how much: exact names, and prefixes ending in ``*``."""

    def __init__(self) -> None:
        self._exact: dict[str, HistoryPolicy] = {}
        self._prefixes: list[tuple[str, HistoryPolicy]] = []

    def __bool__(self) -> bool:
        return bool(self._exact or self._prefixes)

    def add(self, pattern: str, policy: HistoryPolicy) -> None:
        """Keep history for room ``pattern`` (a name, or a prefix and ``*``).

        Raises:
            TypeError: ``pattern`` is not a ``str``.
            ValueError: ``pattern`` is empty, or has a ``*`` elsewhere than at its end.
        """
        if not isinstance(pattern, str):
            raise TypeError(f"room names are str, not {type(pattern).__name__}")
        if not pattern or "*" in pattern[:-1]:
            raise ValueError(
                f"a history pattern is a room name, or a prefix followed by '*', not {pattern!r}"
            )
        if pattern.endswith("*"):
            self._prefixes = [(p, pol) for p, pol in self._prefixes if p != pattern[:-1]]
            self._prefixes.append((pattern[:-1], policy))
            self._prefixes.sort(key=lambda item: -len(item[0]))  # Longest prefix wins.
        else:
            self._exact[pattern] = policy

    def policy_for(self, room: str | None) -> HistoryPolicy | None:
        """The policy of ``room``, or ``None`` if it keeps no history."""
        if room is None:
            return None
        policy = self._exact.get(room)
        if policy is not None:
            return policy
        for prefix, policy in self._prefixes:
            if room.startswith(prefix):
                return policy
        return None


def new_epoch() -> str:
    """A fresh epoch: 12 random hex digits."""
    return secrets.token_hex(6)


def data_fragment(message: Any, dumps: Callable[[Any], str]) -> str:
    """The ``"data": ...`` (or ``"binary": ...``) part of a message frame.

    Raises:
        TypeError: ``message`` is not a ``str``, bytes-like, ``dict`` or ``list``.
    """
    if isinstance(message, str):
        return '"data":' + json.dumps(message)
    if isinstance(message, bytes | bytearray | memoryview):
        return '"binary":"' + base64.b64encode(message).decode() + '"'
    if isinstance(message, dict | list):
        return '"data":' + dumps(message)
    raise TypeError(f"broadcast takes str, bytes, dict or list, not {type(message).__name__}")


def message_frame(room_json: str, epoch: str, offset: int, fragment: str) -> str:
    """The frame of message ``offset`` of a room (``room_json``: the room's name as JSON)."""
    return (
        f'{{"duplex":"message","room":{room_json},"epoch":"{epoch}","offset":{offset},{fragment}}}'
    )


def joined_frame(joined: Joined) -> str:
    """The frame that tells a client where it starts in a room, and whether it recovered."""
    position = joined.position
    assert position is not None
    return json.dumps(
        {
            "duplex": "joined",
            "room": joined.room,
            "epoch": position.epoch,
            "offset": position.offset,
            "recovered": joined.recovered,
            "reason": joined.reason,
            "missed": joined.missed,
        },
        separators=(",", ":"),
    )


def position_frame(room: str, epoch: str, offset: int) -> str:
    """The frame that moves a client's position on without a message (it was excluded)."""
    return json.dumps(
        {"duplex": "position", "room": room, "epoch": epoch, "offset": offset},
        separators=(",", ":"),
    )


def unknown_room_frame(room: str) -> str:
    """The ``joined`` frame for a room the client had a position in, that keeps no history."""
    return json.dumps(
        {
            "duplex": "joined",
            "room": room,
            "epoch": None,
            "offset": None,
            "recovered": False,
            "reason": "unknown_room",
            "missed": 0,
        },
        separators=(",", ":"),
    )


def positions_from_query(query_string: str | bytes) -> dict[str, Position | None]:
    """The positions a client handed back in ``duplex-since``: room to position.

    A room whose position is malformed maps to ``None`` (its join then says
    ``invalid_position``); a value that is not a JSON object, or longer than
    8 KiB, gives no positions at all.
    """
    if isinstance(query_string, bytes):
        query_string = query_string.decode("latin-1")
    if SINCE_PARAMETER not in query_string:
        return {}
    values = parse_qs(query_string).get(SINCE_PARAMETER)
    if not values or len(values[-1]) > _MAX_SINCE:
        return {}
    try:
        raw = json.loads(values[-1])
    except ValueError:
        return {}
    if not isinstance(raw, dict):
        return {}
    return {str(room): check_position(value) for room, value in raw.items()}


def check_position(value: Any) -> Position | None:
    """``value`` as a :class:`Position` (from a pair), or ``None`` if it is not one."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        return None
    epoch, offset = value
    if not isinstance(epoch, str) or not 0 < len(epoch) <= 64 or not epoch.isalnum():
        return None
    if type(offset) is not int or not 0 <= offset < 2**53:
        return None
    return Position(epoch, offset)


@dataclasses.dataclass
class _Room:
    epoch: str
    ttl: float
    room_json: str
    top: int = 0
    last: float = 0.0  # time.monotonic() of the last append or join
    nbytes: int = 0
    # (offset, monotonic time, frame), oldest first.
    entries: deque[tuple[int, float, str]] = dataclasses.field(default_factory=deque)


class MemoryHistory:
    """The in-process hub's history: per room, bounded in messages, bytes and age.

    A room's epoch is made when it is first used, so a new process (a restart,
    a deploy) never continues an old one's offsets.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._rooms: dict[str, _Room] = {}
        self._lock = threading.Lock()
        self._clock = clock
        self._appends = 0

    def append(self, room: str, fragment: str, policy: HistoryPolicy) -> tuple[str, int, str]:
        """Number a message of ``room`` and keep it; return its epoch, offset and frame."""
        now = self._clock()
        with self._lock:
            state = self._rooms.get(room)
            if state is None:
                state = self._rooms[room] = _Room(new_epoch(), policy.ttl, json.dumps(room))
            state.top += 1
            state.last, state.ttl = now, policy.ttl
            frame = message_frame(state.room_json, state.epoch, state.top, fragment)
            state.entries.append((state.top, now, frame))
            state.nbytes += len(frame)
            entries = state.entries
            while len(entries) > policy.size or state.nbytes > policy.max_bytes:
                state.nbytes -= len(entries.popleft()[2])
            self._appends += 1
            if self._appends % 256 == 0:
                self._sweep(now)
            return state.epoch, state.top, frame

    def read(self, room: str, since: Position | None, policy: HistoryPolicy) -> Snapshot:
        """The room's position now, and what came after ``since`` (or why it cannot be had)."""
        now = self._clock()
        with self._lock:
            state = self._rooms.get(room)
            if state is None:
                state = self._rooms[room] = _Room(new_epoch(), policy.ttl, json.dumps(room))
            state.last = now
            epoch, top = state.epoch, state.top
            if since is None:
                return Snapshot(epoch, top, [], None)
            if since.epoch != epoch:
                return Snapshot(epoch, top, [], "epoch_changed")
            if since.offset > top:
                return Snapshot(epoch, top, [], "invalid_position")
            wanted = top - since.offset
            if wanted == 0:
                return Snapshot(epoch, top, [], None)
            entries = state.entries
            if len(entries) < wanted:
                return Snapshot(epoch, top, [], "too_old")
            gap = list(entries)[len(entries) - wanted :]
            if now - gap[0][1] > policy.ttl:
                return Snapshot(epoch, top, [], "too_old")
            return Snapshot(epoch, top, [(offset, frame) for offset, _, frame in gap], None)

    def sizes(self) -> Mapping[str, tuple[int, int]]:
        """Room to (messages kept, bytes of their frames), for tests and diagnostics."""
        with self._lock:
            return {room: (len(s.entries), s.nbytes) for room, s in self._rooms.items()}

    def _sweep(self, now: float) -> None:
        # Lock held. Messages past their age go; a room quiet for META_TTL goes whole.
        for room, state in list(self._rooms.items()):
            if now - state.last > META_TTL:
                del self._rooms[room]
                continue
            entries = state.entries
            while entries and now - entries[0][1] > state.ttl:
                state.nbytes -= len(entries.popleft()[2])

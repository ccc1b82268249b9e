"""The chat: rooms, private messages, who is online, and history that survives a restart.

One page (``GET /chat/``) and one WebSocket route (``/chat/ws``) that speaks
JSON objects with a ``type``, both ways. docs/chat.md walks through it.

The page sends::

    {"type": "join", "name": "ana", "room": "lobby", "key": "...", "resume": false}
    {"type": "message", "text": "hello"}
    {"type": "private", "to": "bob", "text": "psst"}
    {"type": "leave"}

``join`` is also what the page sends first on every reconnect (the browser
client's ``hello``), with ``resume`` true when the page shows the room's
messages up to the drop. The chat's rooms keep history (``keep_history``), so
the join itself replays what the page missed, once, in order, before the live
messages; only when it could not (the page was away too long, the history was
lost) does the page get the recent messages again, whole. ``key`` is a random
string the page makes once per tab: a page that reconnects finds its name
still held by its own old connection (a crashed worker's presence lasts until
it expires) and may take it.

The server sends::

    {"type": "welcome", "worker": 4242}                     on connect: the process id
    {"type": "joined", "name": "ana", "room": "lobby", "resumed": false}
    {"type": "history", "room": "lobby", "messages": [...]}  after joined, unless resumed
    {"type": "message", "id": 42, "room": "lobby", "from": "ana", "text": "hello", "at": 1.7e9}
    {"type": "private", "from": "ana", "to": "bob", "text": "psst", "at": 1.7e9}
    {"type": "online", "room": "lobby", "users": ["ana", "bob"]}
    {"type": "left", "room": "lobby"}
    {"type": "error", "code": "name_taken", "message": "...", "request": "join"}

Requests are read and refused as the snake's are (``protocol.py``).

Where things live:

* the room's connections: a Flask-Duplex room, :func:`chat_room` (``ws.join``);
  public messages are ``duplex.broadcast`` to it, across workers; it keeps its
  last ``CHAT_HISTORY`` messages for ``CHAT_RECOVERY_TTL`` seconds, for the
  pages that reconnect;
* who is online: ``duplex.presence(room)``, the name each connection joined
  with; :class:`OnlineLists` sends each page the list when it changes;
* history: the ``chat_message`` table (``schema.sql``), the last
  ``CHAT_HISTORY`` messages of each room, for a page that joins anew;
* private messages: ``duplex.send_to`` each connection that holds the name.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

from flask import Blueprint, current_app, render_template
from flask.blueprints import BlueprintSetupState

from flask_duplex import (
    BackendUnavailable,
    ChannelClosed,
    ChannelOverflow,
    Subscription,
    WebSocket,
)

from . import db
from .protocol import Refused, allow_fields, error_message, receive_request
from .ratelimit import TokenBucket
from .realtime import duplex

__all__ = ["OnlineLists", "bp", "chat_room"]

bp = Blueprint("chat", __name__, url_prefix="/chat")

# Names appear in "/msg NAME TEXT", so they have no spaces. \w is any letter or digit.
NAME = re.compile(r"[\w.-]{1,24}")
ROOM = re.compile(r"[\w-]{1,32}")
KEY = re.compile(r"[0-9A-Za-z_-]{16,64}")
# What every worker publishes on when a room's people change (a server-side channel).
ROOM_CHANGED = "chat:room-changed"
# The prefix of the chat's Flask-Duplex rooms (chat_room).
ROOM_PREFIX = "chat:"
# The largest frame the route reads: a message of CHAT_MAX_LENGTH characters, each
# escaped as JSON at worst (12 bytes for an emoji), fits. A larger frame closes
# the connection with 1009 before it is read into memory.
MAX_FRAME = 16 * 1024


def chat_room(room: str) -> str:
    """The Flask-Duplex room of a chat room: its connections, and who they are (presence)."""
    return f"{ROOM_PREFIX}{room}"


@bp.record_once
def _setup(state: BlueprintSetupState) -> None:
    """Once per app: the online lists of its pages in this process, and the rooms' history.

    The history is the extension's (one per process, like routes): an app
    built later, a test's, sets it again with its own config.
    """
    config = state.app.config
    duplex.keep_history(
        chat_room("*"), size=config["CHAT_HISTORY"], ttl=config["CHAT_RECOVERY_TTL"]
    )
    state.app.extensions["chat"] = OnlineLists()


@duplex.on_members_expired
def _members_expired(room: str, ids: frozenset[str]) -> None:
    """People of a crashed worker left presence: refresh the room's lists (on the hub's thread)."""
    lists = current_app.extensions.get("chat")
    if isinstance(lists, OnlineLists) and room.startswith(ROOM_PREFIX):
        lists.expired(room.removeprefix(ROOM_PREFIX))


@bp.get("/")
def index() -> str:
    return render_template("chat/index.html", max_length=current_app.config["CHAT_MAX_LENGTH"])


@duplex.route("/ws", bp=bp, max_message_size=MAX_FRAME)
def websocket(ws: WebSocket) -> None:
    """One page: welcome, then its requests until it leaves."""
    ws.send_json({"type": "welcome", "worker": os.getpid()})
    person = Person(ws)
    try:
        while True:  # Until the page leaves: receive_json() raises ConnectionClosed, no error.
            request = None
            try:
                request = receive_request(ws)
                person.handle(request)
            except (Refused, BackendUnavailable) as error:
                ws.send_json(error_message(error, request))
    finally:
        person.leave()


def text_of(message: dict[str, Any]) -> str:
    text = message.get("text")
    if not isinstance(text, str) or not text.strip():
        raise Refused("bad_text", "A message needs some text.")
    text = text.strip()
    limit = current_app.config["CHAT_MAX_LENGTH"]
    if len(text) > limit:
        raise Refused("too_long", f"Messages are at most {limit} characters, not {len(text)}.")
    return text


def name_of(info: Any) -> str | None:
    """The name in a presence ``info`` (what a page joined with), if any."""
    name = info.get("name") if isinstance(info, dict) else None
    return name if isinstance(name, str) else None


def same_name(info: Any, name: str) -> bool:
    """Whether a presence ``info`` holds ``name`` (names are unique regardless of case)."""
    held = name_of(info)
    return held is not None and held.casefold() == name.casefold()


class Person:
    """One connection of the chat: who it is, which room it is in, how fast it talks."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.name: str | None = None
        self.room: str | None = None
        rate, burst = current_app.config["CHAT_RATE"], current_app.config["CHAT_BURST"]
        self.bucket = TokenBucket(rate, burst)

    def handle(self, request: dict[str, Any]) -> None:
        """Do what the page asks, or raise :class:`~.protocol.Refused`."""
        kind, get = request["type"], request.get
        if kind == "join":
            allow_fields(request, "name", "room", "key", "resume")
            self.join(get("name"), get("room"), get("key"), get("resume", False))
        elif kind == "message":
            allow_fields(request, "text")
            self.say(text_of(request))
        elif kind == "private":
            allow_fields(request, "to", "text")
            self.whisper(get("to"), text_of(request))
        elif kind == "leave":
            allow_fields(request)
            room = self.room
            self.leave()
            self.ws.send_json({"type": "left", "room": room})
        else:
            raise Refused("unknown_type", f"Unknown message type {kind!r}.")

    def join(self, name: Any, room: Any, key: Any, resume: Any) -> None:
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise Refused("bad_name", "A name is 1 to 24 letters, digits, '.', '_' or '-'.")
        if not isinstance(room, str) or not ROOM.fullmatch(room.lower()):
            raise Refused("bad_room", "A room is 1 to 32 letters, digits, '_' or '-'.")
        if not isinstance(key, str) or not KEY.fullmatch(key):
            raise Refused("bad_key", "The page's key is 16 to 64 letters and digits.")
        if not isinstance(resume, bool):
            raise Refused("bad_resume", "resume is true or false.")
        room = room.lower()
        self.leave()  # A join moves the connection; a failed one leaves it in no room.

        # Join first, then look: of two people who take one name at the same
        # moment on two workers, the second to look sees the first (both may
        # see each other and both be refused; never both let in). The page's
        # own old connection, with its key, is no rival. On a reconnect the
        # join replays what the page missed before it returns (recovered).
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]  # Presence holds no secret.
        joined = self.ws.join(chat_room(room), {"name": name, "key": digest})
        try:
            people = duplex.presence(chat_room(room))
        except BackendUnavailable:
            self.ws.leave(chat_room(room))
            raise
        rivals = [
            info
            for member, info in people.items()
            if member != self.ws.id and same_name(info, name) and info.get("key") != digest
        ]
        if rivals:
            self.ws.leave(chat_room(room))
            raise Refused("name_taken", f"Someone in {room} is called {name}; pick another name.")
        self.name, self.room = name, room
        online_lists().add(room, self.ws)
        # Resumed: the page's list goes on from where it dropped (the join
        # replayed the gap). Else, a new visitor or a gap that could not be
        # filled: the recent messages, whole, which replace the page's list.
        resumed = resume and joined.recovered
        self.ws.send_json({"type": "joined", "name": name, "room": room, "resumed": resumed})
        if not resumed:
            self.ws.send_json({"type": "history", "room": room, "messages": history(room)})
        announce(room)

    def say(self, text: str) -> None:
        room, name = self.joined()
        self.check_rate()
        at = time.time()
        sql = "INSERT INTO chat_message (room, sender, text, created) VALUES (?, ?, ?, ?)"
        message_id = db.execute(sql, room, name, text, at)
        message = {"type": "message", "id": message_id, "from": name, "text": text, "at": at}
        duplex.broadcast({**message, "room": room}, to=chat_room(room))
        forget_old_messages(room)

    def whisper(self, to: Any, text: str) -> None:
        room, name = self.joined()
        if not isinstance(to, str) or not NAME.fullmatch(to):
            raise Refused("unknown_recipient", "Write /msg NAME TEXT, with a name from the list.")
        if to.casefold() == name.casefold():
            raise Refused("unknown_recipient", "That is you: /msg someone else.")
        self.check_rate()
        people = duplex.presence(chat_room(room))
        targets = {member: info for member, info in people.items() if same_name(info, to)}
        if not targets:
            raise Refused("unknown_recipient", f"Nobody called {to} is in {room}.")
        message = {
            "type": "private",
            "id": uuid.uuid4().hex,  # Not in the history: an id to tell two apart, no more.
            "from": name,
            "to": name_of(next(iter(targets.values()))),
            "text": text,
            "at": time.time(),
        }
        self.ws.send_json(message)  # The sender's copy.
        for member in targets:  # Its own old connection too, while its presence lasts.
            duplex.send_to(member, message)

    def leave(self) -> None:
        """Leave the room, if in one; tell the others (called when the connection ends too)."""
        room, self.room, self.name = self.room, None, None
        if room is None:
            return
        online_lists().remove(room, self.ws)
        self.ws.leave(chat_room(room))
        with suppress(BackendUnavailable):
            announce(room)

    def joined(self) -> tuple[str, str]:
        if self.room is None or self.name is None:
            raise Refused("not_joined", "Join a room first.")
        return self.room, self.name

    def check_rate(self) -> None:
        if not self.bucket.take():
            raise Refused("too_fast", "Slow down: that was too many messages at once.")


# -- history ----------------------------------------------------------------


def history(room: str) -> list[dict[str, Any]]:
    """The room's last ``CHAT_HISTORY`` public messages, oldest first."""
    rows = db.query(
        "SELECT id, sender, text, created FROM chat_message"
        " WHERE room = ? ORDER BY id DESC LIMIT ?",
        room,
        current_app.config["CHAT_HISTORY"],
    )
    return [
        {
            "type": "message",
            "id": row["id"],
            "from": row["sender"],
            "text": row["text"],
            "at": row["created"],
        }
        for row in reversed(rows)
    ]


def forget_old_messages(room: str) -> None:
    """Keep the room's last ``CHAT_HISTORY`` messages only: the table stays small."""
    db.execute(
        "DELETE FROM chat_message WHERE room = ? AND id < ("
        " SELECT MIN(id) FROM (SELECT id FROM chat_message"
        " WHERE room = ? ORDER BY id DESC LIMIT ?))",
        room,
        room,
        current_app.config["CHAT_HISTORY"],
    )


# -- who is online ------------------------------------------------------------


def announce(room: str) -> None:
    """Tell every worker that ``room``'s people changed: each refreshes its pages' lists."""
    duplex.publish(ROOM_CHANGED, room)


def online_lists() -> OnlineLists:
    lists: OnlineLists = current_app.extensions["chat"]
    lists.start()
    return lists


class OnlineLists:
    """Keeps each page's list of who is online, for the pages connected to this process.

    One background task per process sends the lists, so each page gets them
    in order and never a stale one last. It refreshes a room when any worker
    announces a change (``ROOM_CHANGED``, a server-side channel), and when
    the people of a worker that crashed expire from the room's presence
    (``DUPLEX_PRESENCE_TTL``; ``on_members_expired`` calls :meth:`expired`).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rooms: dict[str, dict[str, WebSocket]] = {}  # room -> this process's pages in it
        self._sent: dict[str, list[str]] = {}  # connection id -> the list it was sent last
        self._changes: Subscription | None = None

    def start(self) -> None:
        """Start the task, once per process: subscribed before the first join is announced."""
        with self._lock:
            if self._changes is not None:
                return
            self._changes = changes = duplex.subscribe(ROOM_CHANGED)
        duplex.start_background_task(self._run, changes)

    def expired(self, room: str) -> None:
        """Queue ``room`` for the task, as an announced change; never waits (the hub's thread)."""
        with self._lock:
            changes = self._changes
        if changes is not None:  # None: no page joined here yet, so no list to send.
            changes.put(room)

    def add(self, room: str, ws: WebSocket) -> None:
        with self._lock:
            self._rooms.setdefault(room, {})[ws.id] = ws

    def remove(self, room: str, ws: WebSocket) -> None:
        with self._lock:
            pages = self._rooms.get(room, {})
            pages.pop(ws.id, None)
            if not pages:
                self._rooms.pop(room, None)
            self._sent.pop(ws.id, None)

    def _run(self, changes: Subscription) -> None:
        while True:
            try:
                rooms = set(self._changed_rooms(changes))
            except ChannelOverflow:  # Fell behind: look at every room, then go on.
                with self._lock:
                    self._changes = changes = duplex.subscribe(ROOM_CHANGED)
                    rooms = set(self._rooms)
            except ChannelClosed:  # The app is stopping.
                return
            with self._lock:
                rooms &= set(self._rooms)
            for room in rooms:
                try:
                    self._refresh(room)
                except BackendUnavailable:
                    pass  # Redis is away: the next round tries again.
                except Exception:  # A bug must not stop the lists of everyone here.
                    current_app.logger.exception("chat: refreshing %r failed", room)
            duplex.sleep(0)  # Where the task stops when it is cancelled.

    def _changed_rooms(self, changes: Subscription) -> Iterator[str]:
        """The rooms announced since the last call: waits for one, then takes what waits."""
        room = changes.get()
        while room is not None:
            if isinstance(room, str):
                yield room
            room = changes.get(timeout=0)

    def _refresh(self, room: str) -> None:
        people = duplex.presence(chat_room(room))
        names = {name for info in people.values() if (name := name_of(info))}
        users = sorted(names, key=str.casefold)
        message = json.dumps({"type": "online", "room": room, "users": users})
        with self._lock:
            pages = list(self._rooms.get(room, {}).values())
            pages = [ws for ws in pages if self._sent.get(ws.id) != users]
            for ws in pages:
                self._sent[ws.id] = users
        for ws in pages:
            ws.send_nowait(message)  # Never waits on a slow page; nothing on a closed one.

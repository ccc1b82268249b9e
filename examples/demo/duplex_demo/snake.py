"""Multiplayer snake: the page, its WebSocket, and one game loop per room.

The server owns the game; a page only says who it is and where it wants to go.

- ``GET /snake/`` is the page. It connects to ``/snake/ws`` at once, gets
  ``welcome`` (its connection id, the worker's pid) and the ``leaderboard``,
  and shows the shared game as it goes, playing or not.
- ``{"type": "play", "name": "ana", "mode": "multi"}`` puts the connection in
  the shared room ``main`` (``"solo"``: a room of its own) and starts a new
  game for it; ``{"type": "turn", "direction": "up"}`` steers. Nothing else is
  accepted, a score least of all: a bad message gets ``{"type": "error"}``
  back (a few a second at most; the chat's shape, ``protocol.py``) and changes
  nothing.
- The handler never touches the game. It publishes what the player did on the
  room's server-side channel, ``snake-input:<room>``, because the room's loop
  may run in another worker: :func:`run_loop` runs as a deployment-wide task,
  in exactly one process of the deployment, and moves to another if that one
  dies (the game then starts over there, with whoever is still connected).
  Each player's handler bids for it with ``duplex.ensure_deployment_task``:
  one bid per process waits in line, however many players ask.
- The loop feeds the inputs to :class:`~.snake_game.SnakeGame` (the rules, no
  I/O), ticks it ``SNAKE_TICK_RATE`` times a second, broadcasts one ``state``
  message per tick to the pages that show the room, and hands the games that
  ended to a background task that stores them in SQLite and broadcasts the
  new ``leaderboard`` to every open page. The loop returns when the room is
  empty.
"""

from __future__ import annotations

import os
import time
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, current_app, render_template

from flask_duplex import BackendUnavailable, ChannelOverflow, WebSocket

from . import db
from .protocol import Refused, allow_fields, error_message, receive_request
from .ratelimit import TokenBucket
from .realtime import duplex
from .snake_game import DIRECTIONS, Death, SnakeGame

__all__ = ["bp", "run_loop"]

bp = Blueprint("snake", __name__, url_prefix="/snake")

MAIN_ROOM = "main"
#: Every open snake page is in this room, playing or not: the leaderboard goes there.
LEADERBOARD_ROOM = "snake:leaderboard"
MAX_NAME = 20
#: Seconds between two looks at who is still connected (``duplex.presence``).
SYNC_EVERY = 1.0


def solo_room(ws: WebSocket) -> str:
    """The game of one page that plays single player."""
    return f"solo-{ws.id}"


def players_room(room: str) -> str:
    """The Flask-Duplex room of a game's players: who is in it is who plays."""
    return f"snake:{room}"


def watchers_room(room: str) -> str:
    """The Flask-Duplex room of the pages that show a game: its state is broadcast there."""
    return f"snake-watch:{room}"


def input_channel(room: str) -> str:
    """The server-side channel on which handlers pass a room's inputs to its loop."""
    return f"snake-input:{room}"


def loop_name(room: str) -> str:
    """The name of a room's loop, a deployment-wide task: one lease per room."""
    return f"snake-loop:{room}"


@bp.get("/")
def index() -> str:
    return render_template(
        "snake/index.html",
        width=current_app.config["SNAKE_BOARD_WIDTH"],
        height=current_app.config["SNAKE_BOARD_HEIGHT"],
    )


# -- the WebSocket: one handler per page --------------------------------------


@dataclass
class Seat:
    """What the handler knows about its player: the room it plays in, and its budgets."""

    tick_rate: float
    watching: str = MAIN_ROOM  # The game the page shows: the shared one until it plays solo.
    room: str | None = None  # The game it plays in, once it pressed play.
    messages: TokenBucket = field(init=False)
    errors: TokenBucket = field(init=False)

    @property
    def message_rate(self) -> float:
        return max(10.0, 2 * self.tick_rate)

    def __post_init__(self) -> None:
        # Ten moves a second, or two a tick if that is more, is more than fingers manage:
        # a flood is refused, not queued.
        self.messages = TokenBucket(rate=self.message_rate, burst=10)
        self.errors = TokenBucket(rate=2, burst=3)

    def check_rate(self) -> None:
        if not self.messages.take():
            raise Refused("too_fast", f"too many messages: at most {self.message_rate:g} a second")


@duplex.route("/ws", bp=bp)
def websocket(ws: WebSocket) -> None:
    """One page: welcome, leaderboard, then its play and turn requests until it leaves."""
    seat = Seat(tick_rate=float(current_app.config["SNAKE_TICK_RATE"]))
    ws.join(LEADERBOARD_ROOM)  # First, so that no leaderboard is missed between these lines.
    ws.join(watchers_room(seat.watching))  # Every page shows the shared game, playing or not.
    welcome = {"type": "welcome", "id": ws.id, "worker": os.getpid(), "room": seat.watching}
    ws.send_json(welcome)
    ws.send_json(leaderboard())
    try:
        while True:  # Until the page leaves: receive_json() raises ConnectionClosed, no error.
            request = None
            try:
                request = receive_request(ws)
                handle(ws, seat, request)
            except (Refused, BackendUnavailable) as error:
                if seat.errors.take():  # Past the budget, bad requests are dropped in silence.
                    ws.send_json(error_message(error, request))
    finally:
        if seat.room is not None:
            leave_room(ws, seat)


def handle(ws: WebSocket, seat: Seat, request: dict[str, Any]) -> None:
    """Check one request and pass it on to the room's loop.

    Raises:
        Refused: The request is refused; nothing changed.
        BackendUnavailable: Redis did not answer in time; nothing changed.
    """
    kind = request["type"]
    if "score" in request:
        raise Refused("bad_field", "scores are counted by the server, never taken from a page")
    if kind == "turn":
        allow_fields(request, "direction")
        direction = request.get("direction")
        if not isinstance(direction, str) or direction not in DIRECTIONS:
            raise Refused("bad_direction", "direction is up, down, left or right")
        seat.check_rate()
        if seat.room is None:
            raise Refused("not_playing", "press play first")
        turn = {"type": "turn", "id": ws.id, "direction": direction}
        duplex.publish(input_channel(seat.room), turn)
    elif kind == "play":
        allow_fields(request, "name", "mode")
        mode = request.get("mode", "multi")
        if mode not in ("multi", "solo"):
            raise Refused("bad_mode", "mode is multi or solo")
        name = clean_name(request.get("name"))
        if not name:
            raise Refused("bad_name", f"name is 1 to {MAX_NAME} characters")
        seat.check_rate()
        play(ws, seat, name, MAIN_ROOM if mode == "multi" else solo_room(ws))
    else:
        raise Refused("unknown_type", "unknown message type: send play or turn")


def play(ws: WebSocket, seat: Seat, name: str, room: str) -> None:
    """Start a new game for the player in ``room``, moving there if it played elsewhere."""
    if seat.room != room:
        if seat.room is not None:
            leave_room(ws, seat)
        if seat.watching != room:
            ws.leave(watchers_room(seat.watching))
            ws.join(watchers_room(room))
            seat.watching = room
        # In the room first: the loop's presence check then always finds this player.
        ws.join(players_room(room), {"name": name})
        seat.room = room
        ws.send_json({"type": "joined", "room": room})
    # One bid per room and process waits in line to run its loop (see the module).
    duplex.ensure_deployment_task(loop_name(room), run_loop, room)
    duplex.publish(input_channel(room), {"type": "play", "id": ws.id, "name": name})


def clean_name(name: Any) -> str:
    """The name to show: printable characters, trimmed; empty if it is not a fitting string."""
    if not isinstance(name, str) or len(name) > 4 * MAX_NAME:
        return ""
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    return name if len(name) <= MAX_NAME else ""


def leave_room(ws: WebSocket, seat: Seat) -> None:
    assert seat.room is not None
    room, seat.room = seat.room, None
    ws.leave(players_room(room))
    try:
        duplex.publish(input_channel(room), {"type": "leave", "id": ws.id})
    except BackendUnavailable:
        pass  # The loop's presence check takes the player out within SYNC_EVERY.


# -- the loop: one per room, in one process of the deployment -----------------


def run_loop(room: str) -> None:
    """Run a room's game until nobody is left in it (a deployment-wide task)."""
    config = current_app.config
    rate = float(config["SNAKE_TICK_RATE"])
    game = SnakeGame(config["SNAKE_BOARD_WIDTH"], config["SNAKE_BOARD_HEIGHT"], tick_rate=rate)
    interval = 1.0 / rate
    inputs = duplex.subscribe(input_channel(room))
    try:
        # Subscribed first, then who is there: a player who came in between is seen twice,
        # which is harmless (a second play for a living snake is ignored), never not at all.
        if not sync_players(game, room):
            return
        next_tick = time.monotonic()
        next_sync = next_tick + SYNC_EVERY
        while True:
            try:
                while (message := inputs.get(timeout=0)) is not None:
                    apply_input(game, message)
            except ChannelOverflow:  # Fell behind: start over from who is there now.
                inputs = duplex.subscribe(input_channel(room))
                next_sync = 0.0
            if time.monotonic() >= next_sync or not game.players:
                next_sync = time.monotonic() + SYNC_EVERY
                if not sync_players(game, room):
                    send_state(game, room)  # The last one, empty: pages that watch clear.
                    return
            deaths = game.tick()
            if deaths:  # Stored off the loop: a slow disk never delays a tick.
                duplex.start_background_task(record_scores, deaths)
            send_state(game, room)
            next_tick += interval
            delay = next_tick - time.monotonic()
            if delay < -interval:  # Far behind (a stalled process): skip, never rush.
                next_tick, delay = time.monotonic(), 0.0
            duplex.sleep(max(0.0, delay))
    finally:
        inputs.close()


def apply_input(game: SnakeGame, message: Any) -> None:
    """One input from a handler; anything malformed is skipped, never fatal to the loop."""
    if not isinstance(message, dict) or not isinstance(message.get("id"), str):
        return
    kind, player_id = message.get("type"), message["id"]
    if kind == "turn":
        game.turn(player_id, str(message.get("direction")))
    elif kind == "play":
        game.play(player_id, clean_name(message.get("name")) or "player")
    elif kind == "leave":
        game.leave(player_id)


def sync_players(game: SnakeGame, room: str) -> bool:
    """Make the game's players those connected to the room; False if there are none.

    This is how the loop learns of the players who came before it started (a
    new loop, or one that took over from a process that died), and of those
    whose process died without a word.
    """
    try:
        present = duplex.presence(players_room(room))
    except BackendUnavailable:
        return True  # Cannot tell now; keep playing.
    for player_id in list(game.players):
        if player_id not in present:
            game.leave(player_id)
    for player_id, info in present.items():
        if player_id not in game.players:
            game.play(player_id, clean_name(info.get("name")) or "player")
    return bool(game.players)


def send_state(game: SnakeGame, room: str) -> None:
    state = {"type": "state", "room": room, "pid": os.getpid(), **game.state()}
    try:
        duplex.broadcast(state, to=watchers_room(room))
    except BackendUnavailable as exc:  # This tick is lost; the next one carries everything.
        current_app.logger.warning("snake: state of room %r not sent: %s", room, exc)


# -- scores -------------------------------------------------------------------


def record_scores(deaths: list[Death]) -> None:
    """Store finished games and send every open page the new leaderboard (a background task)."""
    now = time.time()
    for death in deaths:
        db.execute(
            "INSERT INTO snake_score (name, score, created) VALUES (?, ?, ?)",
            death.name,
            death.score,
            now,
        )
    duplex.broadcast(leaderboard(), to=LEADERBOARD_ROOM)


def leaderboard() -> dict[str, Any]:
    """The ten best players by their best score (ties: the latest to play first)."""
    rows = db.query(
        "SELECT name, MAX(score) AS score,"
        " (SELECT COALESCE(MAX(id), 0) FROM snake_score) AS version"
        " FROM snake_score GROUP BY name ORDER BY score DESC, MAX(id) DESC LIMIT 10"
    )
    return {
        "type": "leaderboard",
        # One statement, one snapshot: a page keeps the board with the highest version,
        # whichever order two boards arrive in.
        "version": rows[0]["version"] if rows else 0,
        "entries": [{"name": row["name"], "score": row["score"]} for row in rows],
    }

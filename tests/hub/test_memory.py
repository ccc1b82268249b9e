"""Rooms, broadcast and presence in one process (the default backend)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, request

from flask_duplex import Duplex, WebSocket

duplex = Duplex()
events: list[str] = []


@duplex.on_connect
def connected(ws: WebSocket) -> None:
    events.append(f"connect {request.path}")


@duplex.on_disconnect
def disconnected(ws: WebSocket) -> None:
    events.append(f"disconnect {sorted(ws.rooms)} members={sorted(duplex.members('lobby'))}")


@duplex.route("/room/<name>")
def room(ws: WebSocket, name: str) -> None:
    ws.join(name)
    duplex.broadcast(f"{ws.id[:4]} joined", to=name, exclude=ws)
    for message in ws:
        if message == "whoami":
            ws.send(ws.id)
        elif message == "leave":
            ws.leave(name)
            ws.send(f"left, rooms={sorted(ws.rooms)}")
        elif message == "members":
            ws.send_json(sorted(duplex.members(name)))
        else:
            duplex.broadcast(message, to=name)


@duplex.route("/elsewhere")
def accepted_elsewhere(ws: WebSocket) -> None:
    # The first use of the connection is another thread's.
    sender = threading.Thread(target=ws.send, args=("from a thread",))
    sender.start()
    sender.join()
    ws.receive()


@pytest.fixture(scope="module")
def app() -> Iterator[Flask]:
    app = Flask(__name__)
    duplex.init_app(app)

    @app.post("/announce")
    def announce() -> tuple[str, int]:
        duplex.broadcast({"text": request.form["text"]}, to=request.form.get("to"))
        return "", 204

    yield app


def in_room(ws: Any) -> Any:
    """``ws`` once its handler has joined its room (the 101 comes before the join)."""
    ws.send("members")
    assert len(ws.receive_json(timeout=5)) >= 1
    return ws


def test_broadcast_reaches_the_room_but_not_the_excluded_sender(app: Flask) -> None:
    """broadcast(to=room, exclude=ws) reaches the others in the room only."""
    client = duplex.test_client()
    with in_room(client.connect("/room/a")) as first, client.connect("/room/a") as second:
        joined = first.receive(timeout=5)
        assert isinstance(joined, str) and joined.endswith("joined")
        assert second.receive(timeout=0.2) is None  # Its own join was excluded.
        with client.connect("/room/b") as other:
            second.send("hello a")
            assert first.receive(timeout=1) == "hello a"
            assert second.receive(timeout=1) == "hello a"
            assert other.receive(timeout=0.2) is None


def test_leaving_a_room_stops_delivery(app: Flask) -> None:
    """A connection that left a room gets nothing more from it."""
    client = duplex.test_client()
    with in_room(client.connect("/room/c")) as stays, client.connect("/room/c") as goes:
        stays.receive(timeout=5)  # goes joined
        goes.send("leave")
        assert goes.receive(timeout=1) == "left, rooms=[]"
        stays.send("after")
        assert stays.receive(timeout=1) == "after"
        assert goes.receive(timeout=0.3) is None


def test_broadcast_to_everyone_with_json_from_an_http_route(app: Flask) -> None:
    """broadcast(dict) from a plain route reaches every connection as JSON text."""
    client = duplex.test_client()
    with client.connect("/room/d") as one, client.connect("/room/e") as two:
        one.receive(timeout=0.1)
        app.test_client().post("/announce", data={"text": "hi all"})
        assert json.loads(one.receive(timeout=1)) == {"text": "hi all"}
        assert two.receive_json(timeout=1) == {"text": "hi all"}


def test_send_to_and_members(app: Flask) -> None:
    """send_to reaches one connection by id; members lists the room's ids."""
    client = duplex.test_client()
    with in_room(client.connect("/room/lobby")) as one, client.connect("/room/lobby") as two:
        one.receive(timeout=5)  # two joined
        two.send("whoami")
        two_id = two.receive(timeout=1)
        one.send("whoami")
        one_id = one.receive(timeout=1)
        with app.app_context():
            duplex.send_to(two_id, "private hello")
            assert duplex.members("lobby") == {one_id, two_id}
        assert two.receive(timeout=1) == "private hello"
        assert one.receive(timeout=0.2) is None


def test_disconnect_leaves_every_room_and_runs_hooks(app: Flask) -> None:
    """A closed connection is out of every room before on_disconnect runs."""
    events.clear()
    client = duplex.test_client()
    with client.connect("/room/lobby") as ws:
        ws.send("members")
        assert len(ws.receive_json(timeout=1)) == 1
    with app.app_context():
        assert duplex.members("lobby") == set()
    assert events == ["connect /room/lobby", "disconnect ['lobby'] members=[]"]


def test_broadcast_refuses_other_types(app: Flask) -> None:
    """broadcast(42) raises TypeError instead of sending str(42)."""
    with app.app_context(), pytest.raises(TypeError, match="int"):
        duplex.broadcast(42)


def test_publisher_without_app_needs_a_message_queue() -> None:
    """A Duplex with no app and no message_queue says what to do."""
    with pytest.raises(RuntimeError, match="message_queue"):
        Duplex().broadcast("x")


def test_connect_hooks_see_the_request_when_another_thread_accepts(app: Flask) -> None:
    """A connection accepted by a thread of the handler's still runs hooks with its request."""
    events.clear()
    with duplex.test_client().connect("/elsewhere") as ws:
        assert ws.receive(timeout=1) == "from a thread"
    assert events[0] == "connect /elsewhere"


@duplex.route("/named/<room>")
def named(ws: WebSocket, room: str) -> None:
    ws.join(room, {"name": request.args["name"], "color": "green"})
    ws.send(ws.id)
    for message in ws:  # A new name: join the same room again.
        ws.join(room, {"name": str(message), "color": "green"})
        ws.send("renamed")


def test_presence_tells_what_each_member_joined_with(app: Flask) -> None:
    """presence(room) maps each connection id to the info it joined with; leaving drops it."""
    client = duplex.test_client()
    with client.connect("/named/hall?name=ana") as ana, client.connect("/named/hall?name=bo") as bo:
        ana_id, bo_id = ana.receive(timeout=1), bo.receive(timeout=1)
        with app.app_context():
            assert duplex.presence("hall") == {
                ana_id: {"name": "ana", "color": "green"},
                bo_id: {"name": "bo", "color": "green"},
            }
        ana.send("anna")
        assert ana.receive(timeout=1) == "renamed"
        with app.app_context():
            assert duplex.presence("hall")[ana_id] == {"name": "anna", "color": "green"}
        bo.close()
    with app.app_context():
        assert duplex.presence("hall") == {}


info_errors: list[str] = []


@duplex.route("/bad-info")
def bad_info(ws: WebSocket) -> None:
    for info in (["not", "a", "dict"], {"blob": "x" * 2000}):
        try:
            ws.join("r", info)  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            info_errors.append(f"{type(exc).__name__}: {exc}")


def test_info_must_be_a_small_dict(app: Flask) -> None:
    """join(room, info) refuses what is not a dict, or too large, naming the problem."""
    errors = info_errors
    with duplex.test_client().connect("/bad-info"):
        pass
    assert errors[0].startswith("TypeError: info is a dict")
    assert errors[1].startswith("ValueError: info is ") and "1024" in errors[1]


def test_broadcast_json_is_compact(app: Flask) -> None:
    """A dict broadcast goes out as compact JSON: no spaces after , and :."""
    with duplex.test_client().connect("/room/compact") as ws, app.app_context():
        ws.send("members")  # Answered once the handler has joined the room.
        assert len(ws.receive_json(timeout=5)) == 1
        duplex.broadcast({"text": "x", "n": [1, 2]}, to="compact")
        assert ws.receive(timeout=1) == '{"n":[1,2],"text":"x"}'

"""Rooms with history: positions, and recovery after a reconnect, on both hubs.

The in-process tests run once with the in-process hub and once through a real
redis-server, with the test client (``resume=`` reconnects as the browser
client does).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from flask_duplex import Duplex, Joined, Position, WebSocket
from flask_duplex.hub.history import Histories, HistoryPolicy, MemoryHistory
from flask_duplex.testing import RoomPositions, TestConnection
from tests.support.proxy import delaying_proxy
from tests.support.redis_server import RedisServer, redis_server


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture(params=["memory", "redis"])
def hub_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "memory":
        return None
    server: RedisServer = request.getfixturevalue("redis")
    return server.url


def history_app(url: str | None, size: int = 50, ttl: float = 60, **config: Any) -> Duplex:
    """Room ``feed`` keeps history; each connection reports its join, then relays what it gets."""
    duplex = Duplex()
    duplex.keep_history("feed", size=size, ttl=ttl)

    @duplex.route("/feed")
    def feed(ws: WebSocket) -> None:
        joined = ws.join("feed")
        ws.send_json({"recovered": joined.recovered, "reason": joined.reason})
        for message in ws:
            if message == "excluded":
                duplex.broadcast(message, to="feed", exclude=ws)
            elif isinstance(message, bytes):
                duplex.broadcast(message, to="feed")
            else:
                duplex.broadcast({"n": int(message)}, to="feed")

    @duplex.route("/plain")
    def plain(ws: WebSocket) -> None:
        joined = ws.join("plain")
        ws.send_json({"recovered": joined.recovered, "reason": joined.reason})
        ws.receive()

    app = Flask(f"history_{id(duplex)}")
    app.config.update(DUPLEX_MESSAGE_QUEUE=url, DUPLEX_CHANNEL=f"h{id(duplex)}", **config)
    duplex.init_app(app)
    duplex.app = app  # type: ignore[attr-defined]  # Keeps the app alive with the test's duplex.
    return duplex


def frames_until_report(conn: TestConnection) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The history frames the join sent, then the route's report of it."""
    frames = []
    while True:
        value = json.loads(conn.receive())
        if "duplex" not in value:
            return frames, value
        frames.append(value)


def numbers(conn: TestConnection, count: int) -> list[int]:
    """The next ``count`` message numbers the connection receives."""
    found = []
    while len(found) < count:
        frame = json.loads(conn.receive())
        if frame.get("duplex") == "message":
            found.append(frame["data"]["n"])
    return found


def test_every_message_carries_its_room_position(hub_url: str | None) -> None:
    """A join says where the room is; each message then has the next offset of one epoch."""
    duplex = history_app(hub_url)
    try:
        with duplex.test_client().connect("/feed") as conn:
            frames, report = frames_until_report(conn)
            assert report == {"recovered": False, "reason": None}
            [joined] = frames
            assert joined["duplex"] == "joined" and joined["offset"] == 0
            for n in range(3):
                conn.send(str(n))
            received = [json.loads(conn.receive()) for _ in range(3)]
            assert [f["offset"] for f in received] == [1, 2, 3]
            assert {f["epoch"] for f in received} == {joined["epoch"]}
            assert [f["data"] for f in received] == [{"n": 0}, {"n": 1}, {"n": 2}]
            assert conn.positions.rooms == {"feed": Position(joined["epoch"], 3)}
    finally:
        duplex.close()


def test_a_reconnect_recovers_the_gap_in_order_then_goes_live(hub_url: str | None) -> None:
    """Messages broadcast while a client was away come back, in order, once; then live ones."""
    duplex = history_app(hub_url)
    client = duplex.test_client()
    try:
        with client.connect("/feed") as sender:
            frames_until_report(sender)
            with client.connect("/feed") as away:
                frames_until_report(away)
                sender.send("0")
                assert numbers(away, 1) == [0]
                assert numbers(sender, 1) == [0]
            for n in range(1, 11):
                sender.send(str(n))
            assert numbers(sender, 10) == list(range(1, 11))
            with client.connect("/feed", resume=away) as back:
                frames, report = frames_until_report(back)
                assert report == {"recovered": True, "reason": None}
                assert frames[0]["duplex"] == "joined" and frames[0]["missed"] == 10
                assert [f["data"]["n"] for f in frames[1:]] == list(range(1, 11))
                sender.send("11")
                assert numbers(back, 1) == [11]
                assert back.positions.joins[-1]["recovered"] is True
    finally:
        duplex.close()


def test_broadcasts_during_the_join_arrive_once_and_in_order(hub_url: str | None) -> None:
    """A sender never stops while clients leave and come back: none misses or repeats one."""
    duplex = history_app(hub_url, size=5000)
    client = duplex.test_client()
    total = 600
    stop = threading.Event()
    sent = []

    def send_all() -> None:
        for n in range(total):
            if stop.is_set():
                return
            duplex.broadcast({"n": n}, to="feed")
            sent.append(n)
            time.sleep(0.001)  # Spreads the sends over the rejoins.

    try:
        conn = client.connect("/feed")
        frames_until_report(conn)
        sender = threading.Thread(target=send_all)
        sender.start()
        got: list[int] = []
        rejoins = 0
        try:
            while len(got) < total:
                if len(got) >= 40 * (rejoins + 1) and rejoins < 10:
                    conn.drop()
                    conn = client.connect("/feed", resume=conn)
                    rejoins += 1
                frame = json.loads(conn.receive(timeout=10))
                if frame.get("duplex") == "message":
                    got.append(frame["data"]["n"])
                elif "recovered" in frame and "duplex" not in frame:
                    assert frame == {"recovered": True, "reason": None}
        finally:
            stop.set()
            sender.join(30)
            conn.close()
        assert rejoins == 10 and len(sent) == total
        assert got == list(range(total))
    finally:
        duplex.close()


def test_a_gap_longer_than_the_history_is_too_old(hub_url: str | None) -> None:
    """Seven messages missed of a history of five: the join says too_old and replays none."""
    duplex = history_app(hub_url, size=5)
    client = duplex.test_client()
    try:
        with client.connect("/feed") as away:
            frames_until_report(away)
        for n in range(7):
            duplex.broadcast({"n": n}, to="feed")
        with client.connect("/feed", resume=away) as back:
            frames, report = frames_until_report(back)
            assert report == {"recovered": False, "reason": "too_old"}
            assert [f["duplex"] for f in frames] == ["joined"]
            assert frames[0]["offset"] == 7
        with client.connect(
            "/feed", resume=RoomPositions({"feed": Position(frames[0]["epoch"], 2)})
        ) as near:
            frames, report = frames_until_report(near)
            assert report == {"recovered": True, "reason": None}
            assert [f["data"]["n"] for f in frames[1:]] == [2, 3, 4, 5, 6]
    finally:
        duplex.close()


def test_messages_older_than_the_ttl_are_not_replayed(hub_url: str | None) -> None:
    """A history with a 0.3 s ttl: a gap whose first message is older gives too_old."""
    duplex = history_app(hub_url, ttl=0.3)
    client = duplex.test_client()
    try:
        with client.connect("/feed") as away:
            frames_until_report(away)
        duplex.broadcast({"n": 0}, to="feed")
        time.sleep(0.5)  # The condition is the passing of the ttl itself.
        with client.connect("/feed", resume=away) as back:
            assert frames_until_report(back)[1] == {"recovered": False, "reason": "too_old"}
    finally:
        duplex.close()


def test_a_position_from_another_epoch_is_never_trusted(hub_url: str | None) -> None:
    """A position from a history that is gone (another epoch) gives epoch_changed."""
    duplex = history_app(hub_url)
    stale = RoomPositions({"feed": Position("0123456789ab", 3)})
    try:
        with duplex.test_client().connect("/feed", resume=stale) as conn:
            frames, report = frames_until_report(conn)
            assert report == {"recovered": False, "reason": "epoch_changed"}
            assert frames[0]["epoch"] != "0123456789ab"
    finally:
        duplex.close()


def test_a_position_in_a_room_without_history_is_unknown_room(hub_url: str | None) -> None:
    """The client gives a position for a room that keeps none: unknown_room, and it forgets it."""
    duplex = history_app(hub_url)
    given = RoomPositions({"plain": Position("0123456789ab", 3)})
    try:
        with duplex.test_client().connect("/plain", resume=given) as conn:
            frames, report = frames_until_report(conn)
            assert report == {"recovered": False, "reason": "unknown_room"}
            assert frames[0]["reason"] == "unknown_room"
            assert conn.positions.rooms == {}
    finally:
        duplex.close()


@pytest.mark.parametrize(
    "since",
    ['{"feed": ["no spaces allowed", 1]}', '{"feed": ["abc", -1]}', '{"feed": ["abc", 1.5]}'],
)
def test_a_malformed_position_is_invalid_position(since: str) -> None:
    """A position that is not an (epoch, offset) pair: the join says invalid_position."""
    duplex = history_app(None)
    try:
        conn = duplex.test_client().connect("/feed", query_string={"duplex-since": since})
        with conn:
            assert frames_until_report(conn)[1] == {
                "recovered": False,
                "reason": "invalid_position",
            }
    finally:
        duplex.close()


def test_an_offset_ahead_of_the_room_is_invalid_position(hub_url: str | None) -> None:
    """A position past the room's last offset in its own epoch was never real."""
    duplex = history_app(hub_url)
    client = duplex.test_client()
    try:
        with client.connect("/feed") as first:
            frames, _ = frames_until_report(first)
        ahead = RoomPositions({"feed": Position(frames[0]["epoch"], 99)})
        with client.connect("/feed", resume=ahead) as conn:
            assert frames_until_report(conn)[1] == {
                "recovered": False,
                "reason": "invalid_position",
            }
    finally:
        duplex.close()


def test_an_excluded_connection_learns_its_new_position(hub_url: str | None) -> None:
    """Left out of a broadcast, a connection gets a position frame: a resume will not replay it."""
    duplex = history_app(hub_url)
    client = duplex.test_client()
    try:
        with client.connect("/feed") as conn, client.connect("/feed") as other:
            frames_until_report(conn)
            frames_until_report(other)
            conn.send("excluded")
            position = json.loads(conn.receive())
            assert position["duplex"] == "position" and position["offset"] == 1
            assert json.loads(other.receive())["data"] == "excluded"
            resumed = client.connect("/feed", resume=conn)
            with resumed:
                frames, report = frames_until_report(resumed)
                assert report == {"recovered": True, "reason": None}
                assert frames[0]["missed"] == 0
    finally:
        duplex.close()


def test_binary_messages_travel_as_base64(hub_url: str | None) -> None:
    """Bytes broadcast to a room with history arrive as "binary", base64."""
    duplex = history_app(hub_url)
    try:
        with duplex.test_client().connect("/feed") as conn:
            frames_until_report(conn)
            conn.send(b"\x00\xffraw")
            frame = json.loads(conn.receive())
            assert frame["binary"] == "AP9yYXc=" and "data" not in frame
    finally:
        duplex.close()


def test_join_returns_what_happened() -> None:
    """ws.join returns a Joined: a room without history says so; an explicit since wins."""
    duplex = Duplex()
    duplex.keep_history("kept")
    results: list[Joined] = []

    @duplex.route("/both")
    def both(ws: WebSocket) -> None:
        results.append(ws.join("plain"))
        results.append(ws.join("kept"))
        results.append(ws.join("kept"))  # Already in it: no replay, the same position.
        ws.leave("kept")
        results.append(ws.join("kept", since=results[1].position))
        ws.send("done")
        ws.receive()

    app = Flask("joined_results")
    duplex.init_app(app)
    app_alive = app  # noqa: F841
    with duplex.test_client().connect("/both") as conn:
        while conn.receive() != "done":
            pass
    plain, first, again, resumed = results
    assert plain == Joined("plain")
    assert first.history and first.position is not None and not first.recovered
    assert again.position == first.position and again.missed == 0
    assert resumed.recovered and resumed.reason is None


def test_join_refuses_a_since_that_is_not_a_position() -> None:
    """ws.join(room, since=...) with something else than an (epoch, offset) pair: TypeError."""
    duplex = Duplex()
    errors: list[Exception] = []

    @duplex.route("/bad")
    def bad(ws: WebSocket) -> None:
        try:
            ws.join("kept", since=("epoch", "1"))  # type: ignore[arg-type]
        except TypeError as exc:
            errors.append(exc)
        ws.send("done")

    app = Flask("bad_since")
    duplex.init_app(app)
    with duplex.test_client().connect("/bad") as conn:
        assert conn.receive() == "done"
    assert "since is an (epoch, offset) pair" in str(errors[0])


# -- the in-process store ----------------------------------------------------------


def test_the_memory_history_is_bounded_in_messages_and_bytes() -> None:
    """The in-process history keeps at most size messages and max_bytes bytes per room."""
    history = MemoryHistory()
    policy = HistoryPolicy(size=200, ttl=60, max_bytes=10_000)
    for n in range(1000):
        history.append("room", '"data":' + json.dumps("x" * 100 + str(n)), policy)
    kept, nbytes = history.sizes()["room"]
    assert nbytes <= 10_000 and kept < 200
    small = HistoryPolicy(size=10, ttl=60)
    for n in range(30):
        history.append("small", f'"data":{n}', small)
    assert history.sizes()["small"][0] == 10


def test_history_patterns_match_names_and_prefixes() -> None:
    """An exact name wins over prefixes; the longest prefix wins; a * inside is refused."""
    histories = Histories()
    histories.add("chat:*", HistoryPolicy(size=1))
    histories.add("chat:vip:*", HistoryPolicy(size=2))
    histories.add("chat:lobby", HistoryPolicy(size=3))
    assert histories.policy_for("chat:x") == HistoryPolicy(size=1)
    assert histories.policy_for("chat:vip:x") == HistoryPolicy(size=2)
    assert histories.policy_for("chat:lobby") == HistoryPolicy(size=3)
    assert histories.policy_for("game") is None
    with pytest.raises(ValueError, match="prefix followed by"):
        histories.add("a*b", HistoryPolicy())
    with pytest.raises(ValueError, match="size"):
        HistoryPolicy(size=0)


# -- Redis only --------------------------------------------------------------------


def test_a_redis_restart_says_epoch_changed_never_a_silent_gap(redis: RedisServer) -> None:
    """Redis restarts empty: a live connection and a returning one both learn epoch_changed."""
    duplex = history_app(redis.url, DUPLEX_REDIS_TIMEOUT=0.3)
    client = duplex.test_client(timeout=10)
    try:
        with client.connect("/feed") as live:
            frames_until_report(live)
            with client.connect("/feed") as away:
                frames_until_report(away)
            duplex.broadcast({"n": 0}, to="feed")
            assert numbers(live, 1) == [0]
            redis.stop()
            redis.start()
            deadline = time.monotonic() + 10
            frame: dict[str, Any] = {}
            while frame.get("duplex") != "joined" and time.monotonic() < deadline:
                try:
                    duplex.broadcast({"n": 1}, to="feed")
                except Exception:
                    pass  # Redis is not back, or the hub not yet reconnected.
                message = live.receive(timeout=0.5)
                if message is not None:
                    frame = json.loads(message)
            assert frame["duplex"] == "joined"
            assert (frame["recovered"], frame["reason"]) == (False, "epoch_changed")
            with client.connect("/feed", resume=away) as back:
                assert frames_until_report(back)[1] == {
                    "recovered": False,
                    "reason": "epoch_changed",
                }
    finally:
        duplex.close()


def test_messages_published_while_the_subscriber_reconnects_are_caught_up(
    redis: RedisServer,
) -> None:
    """The subscriber's connection is killed; what is broadcast before it resubscribes arrives."""
    with delaying_proxy(redis.port, lambda chunk: b"SUBSCRIBE" in chunk, 0.5) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/0"
        duplex = history_app(url)
        try:
            with duplex.test_client().connect("/feed") as conn:
                frames_until_report(conn)
                hub = duplex._hub()[0]
                assert hub._subscribed.wait(5)  # type: ignore[attr-defined]
                # Its next SUBSCRIBE reaches Redis 0.5 s late: these broadcasts come first.
                redis.client().client_kill_filter(_type="pubsub")
                for n in range(5):
                    duplex.broadcast({"n": n}, to="feed")
                assert numbers(conn, 5) == [0, 1, 2, 3, 4]
        finally:
            duplex.close()


def test_a_rejoin_on_the_same_connection_does_not_resume_from_the_upgrade_request() -> None:
    """join, leave, join again: the second join is a new one, not a second replay of the gap."""
    duplex = Duplex()
    duplex.keep_history("feed")

    @duplex.route("/feed")
    def feed(ws: WebSocket) -> None:
        for message in ws:
            if message == "join":
                joined = ws.join("feed")
                ws.send_json({"recovered": joined.recovered, "missed": joined.missed})
            elif message == "leave":
                ws.leave("feed")
                ws.send_json({"left": True})
            else:
                duplex.broadcast(message, to="feed")

    app = Flask("rejoin")
    duplex.init_app(app)
    client = duplex.test_client()
    with client.connect("/feed") as first:
        first.send("join")
        epoch = json.loads(first.receive())["epoch"]
        first.receive()  # The route's report.
        for text in ("one", "two"):
            first.send(text)
            first.receive()
    with client.connect("/feed", resume=RoomPositions({"feed": Position(epoch, 0)})) as conn:
        conn.send("join")
        frames = [json.loads(conn.receive()) for _ in range(4)]
        assert frames[-1] == {"recovered": True, "missed": 2}
        conn.send("leave")
        assert json.loads(conn.receive()) == {"left": True}
        conn.send("join")
        joined = json.loads(conn.receive())
        assert joined["missed"] == 0 and joined["recovered"] is False
        assert json.loads(conn.receive()) == {"recovered": False, "missed": 0}

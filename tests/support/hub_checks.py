"""What the Redis hub must do on every topology, checked through the public API.

The Sentinel and the Cluster tests run these against their own Redis
processes: two apps in this process stand for two serving processes (same
channel, same Redis), with the test client.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from flask import Flask

from flask_duplex import BackendUnavailable, Duplex, WebSocket
from flask_duplex.hub.redis import RedisHub
from flask_duplex.testing import TestConnection

PRESENCE_TTL = 1.5  # The refresh writes every member again every 0.5 s.
REDIS_TIMEOUT = 0.3
LEASE_TTL = 1.5


@dataclass
class Node:
    """One app standing for one serving process."""

    app: Flask
    duplex: Duplex

    @property
    def hub(self) -> RedisHub:
        hub = self.app.extensions["duplex"].hub
        assert isinstance(hub, RedisHub)
        return hub

    def members(self, room: str) -> set[str]:
        with self.app.app_context():
            return self.duplex.members(room)

    def presence(self, room: str) -> dict[str, Any]:
        with self.app.app_context():
            return self.duplex.presence(room)

    def broadcast(self, message: Any, to: str) -> None:
        with self.app.app_context():
            self.duplex.broadcast(message, to=to)


def make_node(url: Any, channel: str, name: str) -> Node:
    """An app with a plain room route and a room with history, ``feed``."""
    duplex = Duplex()
    duplex.keep_history("feed", size=100, ttl=60)

    @duplex.route("/room/<room>")
    def room(ws: WebSocket, room: str) -> None:
        ws.join(room, {"via": name})
        ws.send(ws.id)
        for message in ws:
            duplex.broadcast(message, to=room)

    @duplex.route("/feed")
    def feed(ws: WebSocket) -> None:
        ws.join("feed")
        for message in ws:
            duplex.broadcast({"n": int(message)}, to="feed")

    app = Flask(name)
    app.config.update(
        DUPLEX_MESSAGE_QUEUE=url,
        DUPLEX_CHANNEL=channel,
        DUPLEX_PRESENCE_TTL=PRESENCE_TTL,
        DUPLEX_REDIS_TIMEOUT=REDIS_TIMEOUT,
        DUPLEX_LEASE_TTL=LEASE_TTL,
    )
    duplex.init_app(app)
    return Node(app, duplex)


@contextmanager
def two_nodes(url: str, channel: str) -> Iterator[tuple[Node, Node]]:
    """Two apps on one Redis; both closed at the end, and none of their hub threads left."""
    first = make_node(url, channel, "first_node")
    second = make_node(url, channel, "second_node")
    try:
        yield first, second
    finally:
        hubs = [first.hub, second.hub]
        for node in (first, second):
            with node.app.app_context():
                node.duplex.close()
        stuck = [thread.name for hub in hubs for thread in hub.threads]
        assert not stuck, f"hub threads still alive after close(): {stuck}"


def join(stack: ExitStack, node: Node, room: str) -> tuple[TestConnection, str]:
    conn = stack.enter_context(node.duplex.test_client().connect(f"/room/{room}"))
    return conn, str(conn.receive())


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def check_rooms_presence_and_history(url: str, channel: str) -> None:
    """Broadcast, send_to, presence, channels, a deployment task and a room with history."""
    with two_nodes(url, channel) as (first, second), ExitStack() as stack:
        alice, alice_id = join(stack, first, "lobby")
        bob, bob_id = join(stack, second, "lobby")
        alice.send("hello from alice")
        assert bob.receive() == "hello from alice"
        assert alice.receive() == "hello from alice"
        with first.app.app_context():
            first.duplex.send_to(bob_id, "psst")
            first.duplex.broadcast("after psst", to="lobby")
        assert bob.receive() == "psst"
        assert bob.receive() == "after psst"
        assert first.members("lobby") == second.members("lobby") == {alice_id, bob_id}
        assert second.presence("lobby") == {
            alice_id: {"via": "first_node"},
            bob_id: {"via": "second_node"},
        }
        check_order(first, bob, bob_id, "lobby")
        check_targeted(first, second, bob)
        check_channels(first, second)
        check_deployment_task(first, second)
        check_history(first, second)


def check_order(sender: Node, conn: TestConnection, conn_id: str, room: str) -> None:
    """One thread's broadcasts and send_to calls, mixed, arrive in the order sent."""
    with sender.app.app_context():
        for n in range(40):
            if n % 3:
                sender.duplex.send_to(conn_id, f"m{n}")
            else:
                sender.duplex.broadcast(f"m{n}", to=room)
    assert [conn.receive() for _ in range(40)] == [f"m{n}" for n in range(40)]


def check_targeted(first: Node, second: Node, second_conn: TestConnection) -> None:
    """A room without members on ``second`` costs its hub nothing: Redis sends it nothing.

    A broadcast to everyone follows the room's broadcasts; the hub's subscriber reads its
    channels in order, so once ``second_conn`` has it, the hub has read all that was sent to it.
    """
    with ExitStack() as stack:
        conn, _ = join(stack, first, "only-first")
        before = second.hub.received
        for n in range(20):
            first.broadcast(f"r{n}", to="only-first")
        with first.app.app_context():
            first.duplex.broadcast("to all")
        assert [conn.receive() for _ in range(20)] == [f"r{n}" for n in range(20)]
        assert second_conn.receive() == "to all"
        assert second.hub.received == before + 1


def check_channels(first: Node, second: Node) -> None:
    with second.app.app_context(), second.duplex.subscribe("things") as things:
        with first.app.app_context():
            first.duplex.publish("things", {"a": 1})
            first.duplex.publish("things", "text")
        assert things.get(timeout=5) == {"a": 1}
        assert things.get(timeout=5) == "text"


def check_deployment_task(first: Node, second: Node) -> None:
    """One of the two runs the task; cancelled there, the other takes it over."""
    runs: list[str] = []

    def loop(label: str) -> None:
        runs.append(label)
        while True:
            first.duplex.sleep(0.05)

    with first.app.app_context():
        one = first.duplex.start_deployment_task("solo", loop, "first")
    with second.app.app_context():
        other = second.duplex.start_deployment_task("solo", loop, "second")
    wait_until(lambda: bool(runs), 5, "the task to start")
    time.sleep(0.6)  # The other bids every third of the lease, and is refused.
    assert len(runs) == 1
    holder, waiting = (one, other) if runs == ["first"] else (other, one)
    holder.cancel()
    assert holder.join(5)
    wait_until(lambda: len(runs) == 2, 2 * LEASE_TTL + 2, "the other to take the task over")
    assert waiting.running_here
    waiting.cancel()
    assert waiting.join(5)


def numbers(conn: TestConnection, count: int) -> list[tuple[int, int]]:
    """(offset, n) of the next ``count`` messages of room ``feed``."""
    found = []
    while len(found) < count:
        frame = json.loads(str(conn.receive()))
        if frame.get("duplex") == "message":
            found.append((frame["offset"], frame["data"]["n"]))
    return found


def check_history(first: Node, second: Node) -> None:
    """Offsets follow each other across processes; a reconnect gets what it missed."""
    client = second.duplex.test_client()
    with first.duplex.test_client().connect("/feed") as sender, client.connect("/feed") as away:
        for conn in (sender, away):  # In the room once its joined frame came.
            assert json.loads(str(conn.receive()))["duplex"] == "joined"
        sender.send("0")
        [(offset, n)] = numbers(away, 1)
        assert n == 0
        numbers(sender, 1)
    for n in range(1, 6):
        first.broadcast({"n": n}, to="feed")
    with client.connect("/feed", resume=away) as back:
        assert numbers(back, 5) == [(offset + n, n) for n in range(1, 6)]
        first.broadcast({"n": 6}, to="feed")
        assert numbers(back, 1) == [(offset + 6, 6)]


@dataclass
class Failover:
    """What a failover cost: seconds from the kill until each thing happened."""

    switched: float  # Redis named the new master.
    delivered: float  # A broadcast reached a connection again.
    presence: float  # Seconds from the flush of the new master until every member was back.


def check_failover(
    url: str,
    channel: str,
    kill: Callable[[], None],
    switched: Callable[[], bool],
    flush: Callable[[], None],
    deadline: float,
) -> Failover:
    """Kill the master with members in a room: delivery and presence come back.

    ``switched`` says whether Redis has named a new master; ``flush`` empties the
    new master(s), so that presence can only come back from the refresh.
    """
    with two_nodes(url, channel) as (first, second), ExitStack() as stack:
        _, alice_id = join(stack, first, "lobby")
        bob, bob_id = join(stack, second, "lobby")
        assert first.members("lobby") == {alice_id, bob_id}
        killed = time.monotonic()
        kill()
        switched_at = delivered_at = None
        n = 0
        while delivered_at is None:
            now = time.monotonic() - killed
            if now > deadline:
                raise AssertionError(
                    f"no delivery {deadline:.1f}s after the kill (switched: {switched_at})"
                )
            if switched_at is None and switched():
                switched_at = time.monotonic() - killed
            n += 1
            try:
                first.broadcast(f"back {n}", to="lobby")
            except BackendUnavailable:
                time.sleep(0.1)
                continue
            while True:
                message = bob.receive(timeout=0.3)
                if message is None:
                    break
                if message == f"back {n}":
                    delivered_at = time.monotonic() - killed
                    break
        if switched_at is None:
            wait_until(switched, deadline, "Redis to name a new master")
            switched_at = time.monotonic() - killed
        flush()
        flushed = time.monotonic()

        def rebuilt() -> bool:
            try:
                return second.members("lobby") == {alice_id, bob_id}
            except BackendUnavailable:
                return False

        wait_until(rebuilt, 5, "presence to be written again")
        presence = time.monotonic() - flushed
        for node in (first, second):  # Both threads alive; two_nodes checks that close() ends them.
            names = sorted(thread.name for thread in node.hub.threads)
            assert names == ["flask-duplex-presence", "flask-duplex-subscriber"], names
    return Failover(switched_at, delivered_at, presence)

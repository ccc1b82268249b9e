"""Targeted delivery: a process hears from Redis only what concerns its own connections.

An observer subscribed to every channel of the app (PSUBSCRIBE) sees what Redis hands to
the processes. To know it has seen everything published before a point, the test publishes
a marker on a channel of the same pattern and waits for it: Redis delivers the messages of
one subscriber connection in the order they were published.
"""

from __future__ import annotations

import json
import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest
from flask import Flask

from flask_duplex import Duplex, WebSocket
from flask_duplex.hub import redis_scripts as scripts
from tests.hub.test_redis import CHANNEL, env_for, join, members, post, recv, wait_until
from tests.support.redis_server import RedisServer, redis_server
from tests.support.servers import running


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


class Observer:
    """Every message published on the app's channels, as (channel, data), in order."""

    def __init__(self, redis: RedisServer, channel: str) -> None:
        self._channel = channel
        self._client = redis.client()
        self._pubsub = self._client.pubsub()
        self._pubsub.psubscribe(f"{channel}*")
        first = self._pubsub.get_message(timeout=5)
        assert first is not None and first["type"] == "psubscribe"

    def published(self, timeout: float = 5) -> list[tuple[str, str]]:
        """What was published since the last call, up to a marker published now."""
        marker = f"{self._channel}:marker:{uuid.uuid4().hex}"
        self._client.publish(marker, "")
        seen: list[tuple[str, str]] = []
        while True:
            message = self._pubsub.get_message(timeout=timeout)
            assert message is not None, f"the marker did not come back within {timeout}s"
            if message["type"] != "pmessage":
                continue
            channel = message["channel"].decode()
            if channel == marker:
                return seen
            seen.append((channel, message["data"].decode()))

    def close(self) -> None:
        self._pubsub.close()
        self._client.close()


@pytest.fixture
def observer(redis: RedisServer) -> Iterator[Observer]:
    watching = Observer(redis, CHANNEL)
    yield watching
    watching.close()


def test_a_process_hears_only_what_concerns_its_own_connections(
    redis: RedisServer, observer: Observer
) -> None:
    """A room broadcast goes to the processes holding its members (once to all when all do)."""
    env = env_for(redis)
    with (
        running("werkzeug", env) as first,
        running("gunicorn-gevent", env) as second,
        ExitStack() as stack,
    ):
        alice, alice_id = join(stack, first, "north")
        bob, bob_id = join(stack, second, "south")
        observer.published()  # The joins' own traffic.

        assert post(second, "/announce", text="to the north", to="north") == 204
        assert json.loads(recv(alice)) == {"text": "to the north"}
        [(north_channel, data)] = observer.published()
        assert north_channel.startswith(f"{CHANNEL}:hub:")
        assert json.loads(data)["to"] == "north"

        assert post(first, f"/send/{bob_id}", text="psst") == 204
        assert recv(bob) == "psst"
        assert observer.published() == [
            (f"{CHANNEL}:process:{bob_id[:16]}", json.dumps({"id": bob_id, "text": "psst"}))
        ]

        # A room with members on every process of the app: once, on the app's channel.
        carol, carol_id = join(stack, second, "north")
        observer.published()
        assert post(first, "/announce", text="both", to="north") == 204
        assert json.loads(recv(alice)) == {"text": "both"}
        assert json.loads(recv(carol)) == {"text": "both"}
        [(channel, _)] = observer.published()
        assert channel == CHANNEL

        # A room nobody is in costs Redis nothing to deliver.
        assert post(first, "/announce", text="void", to="nowhere") == 204
        assert observer.published() == []
        assert set(members(first, "north")) == {alice_id, carol_id}

        # The last member of a room leaving takes its process off the room.
        alice.close()
        hubs = redis.client()
        wait_until(lambda: hubs.zcard(f"{CHANNEL}:hubs:north") == 1, 5, "alice's process to leave")
        hubs.close()
        observer.published()
        assert post(second, "/announce", text="after alice", to="north") == 204
        assert json.loads(recv(carol)) == {"text": "after alice"}
        [(channel, _)] = observer.published()
        assert channel != north_channel

        # Bob, in the south, got none of the north's broadcasts.
        assert post(first, f"/send/{bob_id}", text="last") == 204
        assert recv(bob) == "last"


def test_a_late_registration_cannot_undo_a_later_change(redis: RedisServer) -> None:
    """The generation rule: a registration or unregistration older than the last one is ignored."""
    client = redis.client()
    keys = [f"rule-{uuid.uuid4().hex}:hubs", f"rule-{uuid.uuid4().hex}:generations"]
    register = client.register_script(scripts.REGISTER)
    unregister = client.register_script(scripts.UNREGISTER)
    try:
        assert register(keys=keys, args=["hub-a", 2, 5000]) == 1
        assert unregister(keys=keys, args=["hub-a", 1, 5000]) == 0  # Left before it joined.
        assert client.zscore(keys[0], "hub-a") is not None
        assert unregister(keys=keys, args=["hub-a", 3, 5000]) == 1
        assert client.zscore(keys[0], "hub-a") is None
        assert register(keys=keys, args=["hub-a", 2, 5000]) == 0  # The join that came late.
        assert client.zscore(keys[0], "hub-a") is None
        assert register(keys=keys, args=["hub-b", 1, 5000]) == 1  # Other hubs count apart.
        assert client.zrange(keys[0], 0, -1) == [b"hub-b"]
    finally:
        client.delete(*keys)
        client.close()


def test_rooms_everyone_and_send_to_from_one_thread_keep_their_order(redis: RedisServer) -> None:
    """A connection in two rooms gets both rooms' broadcasts, everyone's and send_to's in order."""
    duplex = Duplex()
    ready: queue.Queue[str] = queue.Queue()

    @duplex.route("/two-rooms")
    def two_rooms(ws: WebSocket) -> None:
        ws.join("left")
        ws.join("right")
        ready.put(ws.id)
        ws.receive()

    app = Flask("ordered_rooms")
    app.config.update(DUPLEX_MESSAGE_QUEUE=redis.url, DUPLEX_CHANNEL=f"order-{uuid.uuid4().hex}")
    duplex.init_app(app)
    try:
        with duplex.test_client().connect("/two-rooms") as ws:
            target = ready.get(timeout=5)
            sends: list[Callable[[int], None]] = [
                lambda i: duplex.broadcast(str(i), to="left"),
                lambda i: duplex.broadcast(str(i), to="right"),
                lambda i: duplex.broadcast(str(i)),
                lambda i: duplex.send_to(target, str(i)),
            ]
            errors: list[BaseException] = []

            def send_all() -> None:
                try:
                    with app.app_context():
                        for index in range(400):
                            sends[index % 4](index)
                except BaseException as exc:  # Reported by the test below.
                    errors.append(exc)

            sender = threading.Thread(target=send_all)
            sender.start()
            got = [ws.receive(timeout=5) for _ in range(400)]
            sender.join(timeout=10)
            assert not errors
            assert got == [str(index) for index in range(400)]
    finally:
        duplex.close()

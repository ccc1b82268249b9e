"""Rooms, broadcast and presence across processes through a real Redis server."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from websockets.sync.client import ClientConnection, connect

from flask_duplex import Duplex
from tests.support.redis_server import RedisServer, redis_server
from tests.support.servers import Server, running


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture
def pair(redis: RedisServer) -> Iterator[tuple[Server, Server]]:
    """Two server processes of different kinds sharing one Redis."""
    env = {"DUPLEX_TEST_MESSAGE_QUEUE": redis.url, "DUPLEX_TEST_PRESENCE_TTL": "1.5"}
    with running("werkzeug", env) as first, running("gunicorn-gevent", env) as second:
        yield first, second


def post(server: Server, path: str, **form: str) -> int:
    data = urllib.parse.urlencode(form).encode()
    try:
        with urllib.request.urlopen(f"{server.http}{path}", data=data, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def members(server: Server, room: str) -> list[str]:
    with urllib.request.urlopen(f"{server.http}/members/{room}", timeout=10) as response:
        return list(json.loads(response.read()))


def join(stack: ExitStack, server: Server, room: str) -> tuple[ClientConnection, str]:
    # max_queue=None: a client that does not read its own echoes can still close quickly.
    ws = stack.enter_context(connect(f"{server.url}/room/{room}", max_queue=None))
    ws.send("whoami")
    return ws, ws.recv(timeout=5)


def wait_subscribed(*servers: Server) -> None:
    """Connections start each process's subscriber; give it a moment to subscribe."""
    time.sleep(0.3)


def recv(ws: ClientConnection) -> str:
    """The next message that is not a join notice."""
    while True:
        message = str(ws.recv(timeout=5))
        if not message.endswith(" joined"):
            return message


def test_broadcast_send_to_and_members_cross_processes(pair: tuple[Server, Server]) -> None:
    """A client on one process gets what is sent via the other; presence agrees."""
    first, second = pair
    with ExitStack() as stack:
        alice, alice_id = join(stack, first, "r1")
        bob, bob_id = join(stack, second, "r1")
        wait_subscribed(first, second)
        alice.send("hello from alice")
        assert recv(bob) == "hello from alice"
        assert recv(alice) == "hello from alice"
        assert post(second, "/announce", text="news", to="r1") == 204
        assert json.loads(recv(alice)) == {"text": "news"}
        assert json.loads(recv(bob)) == {"text": "news"}
        assert post(first, f"/send/{bob_id}", text="psst") == 204
        assert recv(bob) == "psst"
        assert sorted(members(first, "r1")) == sorted(members(second, "r1"))
        assert set(members(first, "r1")) == {alice_id, bob_id}


def test_disconnect_leaves_presence_on_every_process(pair: tuple[Server, Server]) -> None:
    """A client that closes is gone from members() as seen from both processes."""
    first, second = pair
    with ExitStack() as stack:
        _, stays_id = join(stack, first, "bye")
        with connect(f"{second.url}/room/bye") as leaving:
            leaving.send("whoami")
            leaving_id = recv(leaving)
            assert set(members(first, "bye")) == {stays_id, leaving_id}
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and len(members(first, "bye")) > 1:
            time.sleep(0.05)
        assert members(first, "bye") == members(second, "bye") == [stays_id]


def test_process_without_routes_can_publish(
    pair: tuple[Server, Server], redis: RedisServer
) -> None:
    """Duplex(message_queue=...) with no app (a worker job) reaches clients on the servers."""
    first, second = pair
    publisher = Duplex(message_queue=redis.url)
    with ExitStack() as stack:
        alice, _ = join(stack, first, "jobs")
        bob, _ = join(stack, second, "jobs")
        wait_subscribed(first, second)
        publisher.broadcast({"report": "ready"}, to="jobs")
        assert json.loads(recv(alice)) == {"report": "ready"}
        assert json.loads(recv(bob)) == {"report": "ready"}


def test_order_is_kept_per_publisher(pair: tuple[Server, Server]) -> None:
    """200 messages from one publisher arrive in order on the other process."""
    first, second = pair
    with ExitStack() as stack:
        sender, _ = join(stack, first, "order")
        receiver, _ = join(stack, second, "order")
        wait_subscribed(first, second)
        for index in range(200):
            sender.send(str(index))
        got = [recv(receiver) for _ in range(200)]
        assert got == [str(index) for index in range(200)]


def test_crashed_process_members_expire(redis: RedisServer) -> None:
    """Members held by a killed process vanish within presence_ttl."""
    env = {"DUPLEX_TEST_MESSAGE_QUEUE": redis.url, "DUPLEX_TEST_PRESENCE_TTL": "1.5"}
    with running("werkzeug", env) as survivor, ExitStack() as stack:
        _, kept_id = join(stack, survivor, "crash")
        with running("werkzeug", env) as doomed:
            _, lost_id = join(stack, doomed, "crash")
            assert set(members(survivor, "crash")) == {kept_id, lost_id}
            os.killpg(doomed.process.pid, signal.SIGKILL)
            doomed.process.wait(timeout=10)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and lost_id in members(survivor, "crash"):
            time.sleep(0.1)
        assert members(survivor, "crash") == [kept_id]


def test_redis_down_raises_then_delivery_resumes(
    pair: tuple[Server, Server], redis: RedisServer
) -> None:
    """With Redis gone, broadcast raises (503 here); once back, delivery resumes within 5 s."""
    first, second = pair
    with ExitStack() as stack:
        alice, _ = join(stack, first, "outage")
        bob, _ = join(stack, second, "outage")
        wait_subscribed(first, second)
        redis.stop()
        try:
            assert post(first, "/announce", text="lost", to="outage") == 503
        finally:
            redis.start()
        restarted = time.monotonic()
        delivered = False
        while time.monotonic() - restarted < 5 and not delivered:
            if post(first, "/announce", text="back", to="outage") == 204:
                try:
                    delivered = json.loads(bob.recv(timeout=0.5)) == {"text": "back"}
                except TimeoutError:
                    pass  # Published before the subscriber was back: try again.
            else:
                time.sleep(0.1)
        assert delivered, "no delivery within 5 s of Redis coming back"
        log = second.log()
        assert "Redis subscriber lost" in log
        alice.close()

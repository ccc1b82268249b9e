"""Server-side channels: subscribe and publish from code that is not a connection."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest
from flask import Flask
from websockets.sync.client import connect

from flask_duplex import BackendUnavailable, ChannelClosed, ChannelOverflow, Duplex
from tests.support.redis_server import RedisServer, redis_server
from tests.support.servers import Server, running


def post(server: Server, path: str, **form: str) -> object:
    data = urllib.parse.urlencode(form).encode()
    with urllib.request.urlopen(f"{server.http}{path}", data=data, timeout=15) as response:
        body = response.read()
    return json.loads(body) if body else None


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


def test_input_published_on_one_worker_reaches_a_loop_on_another(redis: RedisServer) -> None:
    """300 messages published on process B reach a subscriber task on A, in order."""
    env = {"DUPLEX_TEST_MESSAGE_QUEUE": redis.url, "DUPLEX_TEST_REDIS_TIMEOUT": "0.3"}
    with running("werkzeug", env) as first, running("gunicorn-gevent", env) as second:
        assert post(first, "/rt/relay") == {"ready": True}
        with connect(f"{second.url}/rt/outputs") as watcher:
            assert watcher.recv(timeout=5) == "joined"
            post(second, "/rt/publish", n="300", text="go")
            relayed = [json.loads(watcher.recv(timeout=5)) for _ in range(300)]
    assert [item["relayed"]["n"] for item in relayed] == list(range(300))
    assert len({item["by"] for item in relayed}) == 1  # The one relay, on the first process.


def in_process_app(url: str | None = None) -> tuple[Flask, Duplex]:
    duplex = Duplex()
    app = Flask("channels_app")
    app.config.update(DUPLEX_MESSAGE_QUEUE=url, DUPLEX_REDIS_TIMEOUT=0.3)
    duplex.init_app(app)
    return app, duplex


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_what_is_published_comes_back_as_it_was(backend: str, redis: RedisServer) -> None:
    """str, bytes and JSON values reach a subscription unchanged, in order."""
    app, duplex = in_process_app(redis.url if backend == "redis" else None)
    values: list[object] = ["text", b"\x00bytes", {"a": [1, 2]}, [3, "four"], 5, None]
    try:
        with app.app_context(), duplex.subscribe("things") as things:
            for value in values:
                duplex.publish("things", value)
            assert [things.get(timeout=5) for _ in values] == values
    finally:
        with app.app_context():
            duplex.close()


def test_a_subscription_that_falls_behind_is_closed(redis: RedisServer) -> None:
    """max_queue messages unread and one more: what waited is read, then ChannelOverflow."""
    app, duplex = in_process_app()
    with app.app_context(), duplex.subscribe("busy", max_queue=5) as busy:
        for index in range(7):
            duplex.publish("busy", index)
        assert [busy.get(timeout=1) for _ in range(5)] == [0, 1, 2, 3, 4]
        with pytest.raises(ChannelOverflow):
            busy.get(timeout=1)


def test_a_closed_subscription_ends_its_reader(redis: RedisServer) -> None:
    """close() wakes a waiting get() with ChannelClosed; iterating just ends."""
    app, duplex = in_process_app()
    with app.app_context():
        subscription = duplex.subscribe("quiet")
    subscription.close()
    with pytest.raises(ChannelClosed):
        subscription.get(timeout=1)
    assert list(subscription) == []


def test_get_with_a_timeout_returns_none_in_time(redis: RedisServer) -> None:
    """get(timeout=0.2) on a silent channel returns None after about 0.2 s."""
    app, duplex = in_process_app()
    with app.app_context(), duplex.subscribe("silent") as silent:
        started = time.monotonic()
        assert silent.get(timeout=0.2) is None
        assert 0.15 < time.monotonic() - started < 1.0


def test_publishing_to_a_stalled_redis_raises_in_time(redis: RedisServer) -> None:
    """Redis frozen: publish raises BackendUnavailable within the timeout, as broadcast does."""
    app, duplex = in_process_app(redis.url)
    try:
        with app.app_context():
            duplex.publish("warm", "up")
            redis.freeze()
            try:
                started = time.monotonic()
                with pytest.raises(BackendUnavailable):
                    duplex.publish("inputs", {"move": "left"})
                assert time.monotonic() - started < 1.5
            finally:
                redis.thaw()
    finally:
        with app.app_context():
            duplex.close()


def test_cancelling_a_task_ends_its_wait_on_a_subscription(redis: RedisServer) -> None:
    """A task blocked in Subscription.get() stops when cancelled, like in duplex.sleep()."""
    app, duplex = in_process_app()
    seen: list[object] = []

    def listen() -> None:
        with duplex.subscribe("nothing-comes") as quiet:
            for message in quiet:
                seen.append(message)

    with app.app_context():
        task = duplex.start_background_task(listen)
        started = time.monotonic()
        while (
            not app.extensions["duplex"].channels._subscriptions and time.monotonic() - started < 5
        ):
            time.sleep(0.01)
        task.cancel()
        assert task.join(2)
    assert seen == []

"""Rooms, broadcast and presence across processes through a real Redis server.

No test sleeps to let a subscriber catch up: a process is subscribed before its
first connection is accepted, and the tests rely on it.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import trustme
from flask import Flask, current_app
from websockets.sync.client import ClientConnection, connect

from flask_duplex import Duplex, WebSocket
from flask_duplex.hub.redis import RedisHub
from tests.support.proxy import delaying_proxy
from tests.support.redis_server import RedisServer, redis_server
from tests.support.servers import Server, running

CHANNEL = "duplex-tests"  # The test app's DUPLEX_CHANNEL.


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


def env_for(redis: RedisServer, **extra: str) -> dict[str, str]:
    return {"DUPLEX_TEST_MESSAGE_QUEUE": redis.url, "DUPLEX_TEST_PRESENCE_TTL": "1.5", **extra}


@pytest.fixture
def pair(redis: RedisServer) -> Iterator[tuple[Server, Server]]:
    """Two server processes of different kinds sharing one Redis."""
    env = env_for(redis, DUPLEX_TEST_REDIS_TIMEOUT="0.3")
    with running("werkzeug", env) as first, running("gunicorn-gevent", env) as second:
        yield first, second


def post(server: Server, path: str, **form: str) -> int:
    data = urllib.parse.urlencode(form).encode()
    try:
        with urllib.request.urlopen(f"{server.http}{path}", data=data, timeout=30) as response:
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
    return ws, recv(ws)


def recv(ws: ClientConnection, timeout: float = 5) -> str:
    """The next message that is not a join notice."""
    while True:
        message = str(ws.recv(timeout=timeout))
        if not message.endswith(" joined"):
            return message


def wait_until(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def test_broadcast_send_to_and_members_cross_processes(pair: tuple[Server, Server]) -> None:
    """A client on one process gets what is sent via the other; presence agrees."""
    first, second = pair
    with ExitStack() as stack:
        alice, alice_id = join(stack, first, "r1")
        bob, bob_id = join(stack, second, "r1")
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


@pytest.mark.parametrize("name", ["werkzeug", "gunicorn-gevent"])
def test_a_process_is_subscribed_before_its_first_connection_runs(
    redis: RedisServer, name: str
) -> None:
    """The first connection of a fresh process gets a broadcast published as it joins."""
    with running(name, env_for(redis)) as server, connect(f"{server.url}/first-broadcast/a") as ws:
        assert str(ws.recv(timeout=5)).startswith("first ")


def test_uwsgi_workers_share_rooms_through_redis(redis: RedisServer) -> None:
    """uWSGI with --processes 2: a client on each worker gets what the other sends."""
    # Four threads a worker: a worker whose threads all hold a connection accepts
    # no more, so the fifth held connection at the latest lands on the other one.
    env = env_for(redis, DUPLEX_TEST_UWSGI_PROCESSES="2", DUPLEX_TEST_UWSGI_THREADS="4")
    with running("uwsgi-threads", env) as server, ExitStack() as stack:
        by_process: dict[str, tuple[ClientConnection, str]] = {}
        for _ in range(5):
            ws, ws_id = join(stack, server, "r1")
            by_process.setdefault(ws_id[:16], (ws, ws_id))  # Ids start with a per-process prefix.
            if len(by_process) == 2:
                break
        assert len(by_process) == 2, "every connection went to one worker"
        (alice, alice_id), (bob, bob_id) = by_process.values()
        alice.send("hello from alice")
        assert recv(bob) == "hello from alice"
        assert recv(alice) == "hello from alice"
        assert post(server, f"/send/{alice_id}", text="psst") == 204
        assert recv(alice) == "psst"
        assert {alice_id, bob_id} <= set(members(server, "r1"))


def presence(server: Server, room: str) -> dict[str, dict[str, str]]:
    with urllib.request.urlopen(f"{server.http}/presence/{room}", timeout=10) as response:
        return dict(json.loads(response.read()))


def test_presence_tells_what_each_member_joined_with(pair: tuple[Server, Server]) -> None:
    """ws.join(room, {"name": ...}) on two processes: presence() lists both, from either."""
    first, second = pair
    with connect(f"{first.url}/named/hall?name=ana") as ana:
        ana_id = ana.recv(timeout=5)
        with connect(f"{second.url}/named/hall?name=bo") as bo:
            bo_id = bo.recv(timeout=5)
            expected = {ana_id: {"name": "ana"}, bo_id: {"name": "bo"}}
            assert presence(first, "hall") == presence(second, "hall") == expected
            ana.send("anna")
            assert ana.recv(timeout=5) == "renamed"
            assert presence(second, "hall")[ana_id] == {"name": "anna"}
        wait_until(lambda: bo_id not in presence(first, "hall"), 3, "bo to leave")
        assert presence(second, "hall") == {ana_id: {"name": "anna"}}


def test_disconnect_leaves_presence_on_every_process(pair: tuple[Server, Server]) -> None:
    """A client that closes is gone from members() as seen from both processes."""
    first, second = pair
    with ExitStack() as stack:
        _, stays_id = join(stack, first, "bye")
        with connect(f"{second.url}/room/bye") as leaving:
            leaving.send("whoami")
            leaving_id = recv(leaving)
            assert set(members(first, "bye")) == {stays_id, leaving_id}
        wait_until(lambda: len(members(first, "bye")) == 1, 3, "the member to leave")
        assert members(first, "bye") == members(second, "bye") == [stays_id]


def test_process_without_routes_can_publish(
    pair: tuple[Server, Server], redis: RedisServer
) -> None:
    """Duplex(message_queue=..., channel=...) with no app (a worker job) reaches both servers."""
    first, second = pair
    publisher = Duplex(message_queue=redis.url, channel=CHANNEL)
    try:
        with ExitStack() as stack:
            alice, _ = join(stack, first, "jobs")
            bob, _ = join(stack, second, "jobs")
            publisher.broadcast({"report": "ready"}, to="jobs")
            assert json.loads(recv(alice)) == {"report": "ready"}
            assert json.loads(recv(bob)) == {"report": "ready"}
    finally:
        publisher.close()


def test_a_publisher_without_app_must_name_the_channel(redis: RedisServer) -> None:
    """Without an app there is no import name to derive the channel from: say so."""
    with pytest.raises(RuntimeError, match="channel="):
        Duplex(message_queue=redis.url).broadcast("x")


def test_mixed_broadcast_and_send_to_from_one_thread_keep_their_order(
    pair: tuple[Server, Server],
) -> None:
    """2,000 broadcasts and send_to's in turn reach one connection in order, from either process."""
    first, second = pair
    with ExitStack() as stack:
        target, target_id = join(stack, second, "mix")
        for publisher in (second, first):  # The same process as the target, then the other.
            assert post(publisher, "/mixed", n="2000", to="mix", id=target_id) == 204
            got = [recv(target) for _ in range(2000)]
            assert got == [str(index) for index in range(2000)]


def test_crashed_process_members_expire_by_redis_clock(redis: RedisServer) -> None:
    """Members of a killed process whose clock runs an hour ahead vanish within presence_ttl."""
    with running("werkzeug", env_for(redis)) as survivor, ExitStack() as stack:
        _, kept_id = join(stack, survivor, "crash")
        with running("werkzeug", env_for(redis, DUPLEX_TEST_CLOCK_SKEW="3600")) as doomed:
            _, lost_id = join(stack, doomed, "crash")
            assert set(members(survivor, "crash")) == {kept_id, lost_id}
            os.killpg(doomed.process.pid, signal.SIGKILL)
            doomed.process.wait(timeout=10)
        wait_until(lambda: lost_id not in members(survivor, "crash"), 4, "the member to expire")
        assert members(survivor, "crash") == [kept_id]


def test_every_process_hears_when_a_crashed_process_members_expire(redis: RedisServer) -> None:
    """SIGKILL a process: the others' on_members_expired hooks get its member, without polling."""
    app, duplex = room_app(redis.url, DUPLEX_CHANNEL=CHANNEL)
    heard: list[tuple[str, frozenset[str], bool]] = []

    @duplex.on_members_expired
    def expired(room: str, ids: frozenset[str]) -> None:
        heard.append((room, ids, current_app.name == app.name))

    try:
        with duplex.test_client().connect("/room/expiry") as survivor, ExitStack() as stack:
            kept_id = survivor.receive()
            with running("werkzeug", env_for(redis)) as doomed:
                _, lost_id = join(stack, doomed, "expiry")
                os.killpg(doomed.process.pid, signal.SIGKILL)
                doomed.process.wait(timeout=10)
            wait_until(lambda: heard, 6, "the hook to hear of the expired member")
            assert heard == [("expiry", frozenset({lost_id}), True)]
            assert duplex.members("expiry") == {kept_id}
    finally:
        duplex.close()


def test_many_concurrent_callers_share_the_pool_within_the_timeout(redis: RedisServer) -> None:
    """150 calls at once, each 0.15 s slow: they wait for a pooled connection, none fails."""
    with delaying_proxy(redis.port, lambda chunk: b"EVAL" in chunk, 0.15) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/0"
        app, duplex = room_app(url, "busy_app", DUPLEX_REDIS_TIMEOUT=1.0)
        failures: list[Exception] = []
        took: list[float] = []

        def ask() -> None:
            started = time.monotonic()
            try:
                with app.app_context():
                    duplex.members("busy")
            except Exception as exc:
                failures.append(exc)
            took.append(time.monotonic() - started)

        try:
            callers = [threading.Thread(target=ask) for _ in range(150)]
            for caller in callers:
                caller.start()
            for caller in callers:
                caller.join(timeout=20)
        finally:
            duplex.close()
        assert failures == []
        assert len(took) == 150 and max(took) < 3.0


def test_a_stalled_redis_costs_each_caller_at_most_the_timeout(
    pair: tuple[Server, Server], redis: RedisServer
) -> None:
    """With Redis frozen, concurrent broadcasts each fail in time; then delivery resumes."""
    first, second = pair
    with ExitStack() as stack:
        bob, _ = join(stack, second, "stall")
        results: list[tuple[int, float]] = []

        def announce() -> None:
            started = time.monotonic()
            status = post(first, "/announce", text="lost", to="stall")
            results.append((status, time.monotonic() - started))

        redis.freeze()
        try:
            started = time.monotonic()
            callers = [threading.Thread(target=announce) for _ in range(5)]
            for caller in callers:
                caller.start()
            for caller in callers:
                caller.join(timeout=20)
            elapsed = time.monotonic() - started
        finally:
            redis.thaw()
        assert [status for status, _ in results] == [503] * 5
        assert max(took for _, took in results) < 1.5  # DUPLEX_REDIS_TIMEOUT is 0.3 s here.
        assert elapsed < 2.0  # Not one after another.
        assert_delivery_resumes(first, bob, "stall")


def test_a_paused_redis_raises_backend_unavailable(
    pair: tuple[Server, Server], redis: RedisServer
) -> None:
    """CLIENT PAUSE: broadcast and members answer 503 within the timeout, then recover."""
    first, second = pair
    with ExitStack() as stack:
        bob, _ = join(stack, second, "pause")
        redis.client().execute_command("CLIENT", "PAUSE", "1500", "ALL")
        started = time.monotonic()
        assert post(first, "/announce", text="lost", to="pause") == 503
        with pytest.raises(urllib.error.HTTPError) as failed:
            members(first, "pause")
        assert failed.value.code == 503
        assert time.monotonic() - started < 1.5
        assert_delivery_resumes(first, bob, "pause")


def test_redis_killed_and_restarted_delivery_resumes(
    pair: tuple[Server, Server], redis: RedisServer
) -> None:
    """With Redis gone, broadcast raises (503 here); once back, delivery resumes within 5 s."""
    first, second = pair
    with ExitStack() as stack:
        bob, _ = join(stack, second, "outage")
        redis.stop()
        try:
            assert post(first, "/announce", text="lost", to="outage") == 503
        finally:
            redis.start()
        assert_delivery_resumes(first, bob, "outage")
        assert "Redis subscriber lost" in second.log()


def assert_delivery_resumes(publisher: Server, ws: ClientConnection, room: str) -> None:
    """Broadcasts from ``publisher`` reach ``ws`` again within 5 s (earlier ones may be lost)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if post(publisher, "/announce", text="back", to=room) == 204:
            try:
                while True:
                    if json.loads(recv(ws, timeout=0.5)) == {"text": "back"}:
                        return
            except TimeoutError:
                pass  # Published while the subscriber was still reconnecting.
        else:
            time.sleep(0.1)
    raise AssertionError("no delivery within 5 s of Redis answering again")


# -- in this process, with the test client ------------------------------------


def room_app(url: str, import_name: str = "rooms_app", **config: object) -> tuple[Flask, Duplex]:
    duplex = Duplex()

    @duplex.route("/room/<name>")
    def room(ws: WebSocket, name: str) -> None:
        ws.join(name)
        ws.send(ws.id)
        for message in ws:
            duplex.broadcast(message, to=name)

    app = Flask(import_name)
    app.config.update(DUPLEX_MESSAGE_QUEUE=url, DUPLEX_PRESENCE_TTL=1.0, **config)
    duplex.init_app(app)
    return app, duplex


def test_a_slow_subscription_still_catches_the_first_broadcast(redis: RedisServer) -> None:
    """Redis answers SUBSCRIBE 0.3 s late: the first connection still gets its own broadcast."""
    duplex = Duplex()

    @duplex.route("/first/<name>")
    def first(ws: WebSocket, name: str) -> None:
        ws.join(name)
        duplex.broadcast("first", to=name)
        ws.receive()

    with delaying_proxy(redis.port, lambda chunk: b"SUBSCRIBE" in chunk, 0.3) as proxy:
        app = Flask("slow_subscriber")
        app.config["DUPLEX_MESSAGE_QUEUE"] = f"redis://127.0.0.1:{proxy.port}/0"
        duplex.init_app(app)
        try:
            with duplex.test_client().connect("/first/now") as ws:
                assert ws.receive(timeout=5) == "first"
        finally:
            duplex.close()


def test_a_member_that_left_never_reappears(redis: RedisServer) -> None:
    """A presence refresh that took its snapshot before a leave does not add the member back."""
    app, duplex = room_app(redis.url)
    hub = app.extensions["duplex"].hub
    assert isinstance(hub, RedisHub)
    try:
        with duplex.test_client().connect("/room/ghosts") as ws:
            member_id = str(ws.receive(timeout=5))
            with app.app_context():
                assert duplex.members("ghosts") == {member_id}
            stale = {"ghosts": {member_id: "{}"}}  # Taken while it was still there.
        wait_until(lambda: not app.extensions["duplex"].local_connections, 5, "the handler")
        hub.refresh_presence(stale)
        with app.app_context():
            assert duplex.members("ghosts") == set()
    finally:
        duplex.close()


def test_empty_rooms_leave_no_key_behind(redis: RedisServer) -> None:
    """The last member leaving deletes the room's key; a held room's key carries an expiry."""
    _, duplex = room_app(redis.url)
    direct = redis.client()
    key = "flask-duplex:rooms_app:room:empty"
    try:
        with duplex.test_client().connect("/room/empty") as ws:
            ws.receive(timeout=5)
            assert direct.exists(key)
            assert 0 < direct.pttl(key) <= 2000  # Twice the presence ttl, renewed while held.
        wait_until(lambda: not direct.exists(key), 5, "the room key to go")
    finally:
        duplex.close()


def test_two_apps_on_one_redis_never_mix(redis: RedisServer) -> None:
    """The default channel is per app (its import name): rooms and broadcasts stay apart."""
    first_app, first = room_app(redis.url, "first_app")
    second_app, second = room_app(redis.url, "second_app")
    try:
        assert first_app.config["DUPLEX_CHANNEL"] != second_app.config["DUPLEX_CHANNEL"]
        with (
            first.test_client().connect("/room/lobby") as one,
            second.test_client().connect("/room/lobby") as two,
        ):
            one_id, two_id = one.receive(timeout=5), two.receive(timeout=5)
            one.send("only for the first app")
            assert one.receive(timeout=5) == "only for the first app"
            assert two.receive(timeout=0.5) is None
            with first_app.app_context():
                assert first.members("lobby") == {one_id}
            with second_app.app_context():
                assert second.members("lobby") == {two_id}
    finally:
        first.close()
        second.close()


def hub_threads() -> list[threading.Thread]:
    return [
        thread
        for thread in threading.enumerate()
        if thread.name in ("flask-duplex-subscriber", "flask-duplex-presence")
    ]


def test_closed_and_dropped_apps_leave_no_thread_behind(redis: RedisServer) -> None:
    """duplex.close() stops the hub's threads; so does dropping an app made by a factory."""
    before = len(hub_threads())
    apps: list[tuple[Flask, Duplex]] = []
    for index in range(6):
        app, duplex = room_app(redis.url, f"factory_{index}")
        with duplex.test_client().connect("/room/r") as ws:
            ws.receive(timeout=5)
        apps.append((app, duplex))
    assert len(hub_threads()) == before + 12
    for app, duplex in apps[:3]:
        with app.app_context():
            duplex.close()
    assert len(hub_threads()) == before + 6
    del app, duplex, apps, ws
    gc.collect()
    wait_until(lambda: len(hub_threads()) == before, 5, "the dropped apps' threads to end")


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    folder = tmp_path_factory.mktemp("redis-tls")
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    cert, key, authority = folder / "cert.pem", folder / "key.pem", folder / "ca.pem"
    for blob in issued.cert_chain_pems:
        blob.write_to_path(cert, append=True)
    issued.private_key_pem.write_to_path(key)
    ca.cert_pem.write_to_path(authority)
    return cert, key, authority


def test_rediss_url_with_a_password(tls_files: tuple[Path, Path, Path]) -> None:
    """A rediss:// URL with a password: broadcasts and presence go through TLS."""
    with redis_server(password="s3cret", tls=tls_files) as secure:
        app, duplex = room_app(secure.url)
        publisher = Duplex(message_queue=secure.url, channel=app.config["DUPLEX_CHANNEL"])
        try:
            with duplex.test_client().connect("/room/tls") as ws:
                member_id = ws.receive(timeout=5)
                publisher.broadcast("over TLS", to="tls")
                assert ws.receive(timeout=5) == "over TLS"
                with app.app_context():
                    assert duplex.members("tls") == {member_id}
            # A room with history: numbered, kept and replayed through TLS too.
            duplex.keep_history("kept")
            publisher.keep_history("kept")
            client = duplex.test_client()
            with client.connect("/room/kept") as away:
                assert away.positions.update(away.receive(timeout=5)) is not None  # joined
            publisher.broadcast("missed", to="kept")
            with client.connect("/room/kept", resume=away) as back:
                joined = json.loads(back.receive(timeout=5))
                assert (joined["recovered"], joined["missed"]) == (True, 1)
                assert json.loads(back.receive(timeout=5))["data"] == "missed"
        finally:
            publisher.close()
            duplex.close()

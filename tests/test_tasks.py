"""Background tasks and deployment-wide tasks, on real servers (and a real Redis)."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from flask import Flask
from websockets.sync.client import connect

from flask_duplex import Duplex
from tests.support.redis_server import redis_server
from tests.support.servers import Server, running


@pytest.fixture(scope="module", params=["werkzeug", "gunicorn-gevent"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with running(request.param) as server:
        yield server


def post(server: Server, path: str, **form: str) -> Any:
    data = urllib.parse.urlencode(form).encode()
    with urllib.request.urlopen(f"{server.http}{path}", data=data, timeout=15) as response:
        body = response.read()
    return json.loads(body) if body else None


def stats(server: Server) -> dict[str, int]:
    with urllib.request.urlopen(f"{server.http}/stats", timeout=5) as response:
        return dict(json.loads(response.read()))


def settled_os_threads(server: Server) -> int:
    """The server's OS threads once none is on its way out (an earlier request's, a task's).

    The count is read until it stays the same for 0.3 s (within 5 s): a thread that already
    answered its request, or a cancelled task, may take a moment to end.
    """
    deadline = time.monotonic() + 5
    count, since = stats(server)["os_threads"], time.monotonic()
    while time.monotonic() - since < 0.3 and time.monotonic() < deadline:
        time.sleep(0.05)
        now = stats(server)["os_threads"]
        if now != count:
            count, since = now, time.monotonic()
    return count


def test_a_background_task_runs_in_the_app_context(server: Server) -> None:
    """start_background_task runs the function with the app's context, to its end."""
    post(server, "/rt/tasks/short", rounds="5")
    log = server.wait_for_log("task short: finished 5 rounds")
    assert "task short: started in tests.support.apps" in log


def test_a_failing_task_is_logged_with_its_name(server: Server) -> None:
    """An exception in a task is logged, with the task's name and the traceback."""
    post(server, "/rt/tasks/broken", kind="fail")
    log = server.wait_for_log("task went wrong on purpose")
    line = next(li for li in log.splitlines() if "background task" in li)
    assert "failing" in line, line
    assert "Traceback" in log


def test_a_cancelled_task_stops_at_its_next_sleep(server: Server) -> None:
    """task.cancel() ends a looping task at its next duplex.sleep(), before its rounds are done."""
    post(server, "/rt/tasks/long", rounds="100000")
    server.wait_for_log("task long: started")
    assert post(server, "/rt/tasks/long/cancel") == {"ended": True}
    assert "task long: finished" not in server.log()


def test_tasks_are_threads_or_greenlets_as_the_server_is(server: Server) -> None:
    """20 tasks cost 20 OS threads on Werkzeug, and none in a gevent worker."""
    before = settled_os_threads(server)
    names = [f"many{index}" for index in range(20)]
    for name in names:
        post(server, f"/rt/tasks/{name}", rounds="100000")
    server.wait_for_log(f"task {names[-1]}: started")
    during = stats(server)["os_threads"]
    for name in names:
        assert post(server, f"/rt/tasks/{name}/cancel") == {"ended": True}
    if server.name == "gunicorn-gevent":
        assert during - before <= 1
    else:
        assert during - before >= 20


@pytest.mark.parametrize("offload", ["1", "0"])
def test_run_in_thread_keeps_a_blocking_call_off_the_workers_loop(
    server: Server, offload: str
) -> None:
    """A 1 s blocking call through run_in_thread: other connections still answer at once."""
    if server.name != "gunicorn-gevent" and offload == "0":
        pytest.skip("threads do not share a loop: only gevent shows the blocking")
    with connect(f"{server.url}/echo") as ws:
        ws.send("warm")
        assert ws.recv(timeout=5) == "warm"
        mark = f"{offload}-{time.monotonic()}"
        form = {"seconds": "1", "offload": offload, "mark": mark}
        blocker = threading.Thread(target=post, args=(server, "/rt/block"), kwargs=form)
        blocker.start()
        server.wait_for_log(f"block {mark}: started")  # It blocks for 1 s from here.
        started = time.monotonic()
        ws.send("ping")
        assert ws.recv(timeout=5) == "ping"
        latency = time.monotonic() - started
        blocker.join(10)
    if offload == "1":
        assert latency < 0.3, latency
    else:
        assert latency > 0.5, latency  # Without it, the worker's loop stood still.


# -- once per deployment ------------------------------------------------------


def observer(url: str) -> tuple[Flask, Duplex]:
    """An app in the test process, on the servers' Redis channel, to read their channels."""
    duplex = Duplex()
    app = Flask("observer")
    app.config.update(DUPLEX_MESSAGE_QUEUE=url, DUPLEX_CHANNEL="duplex-tests")
    duplex.init_app(app)
    return app, duplex


def test_a_deployment_task_runs_in_one_process_and_moves_when_it_dies() -> None:
    """Two processes ask for the ticker: one runs it; killed, the other takes over in time."""
    lease_ttl = 1.5
    env_extra = {"DUPLEX_TEST_LEASE_TTL": str(lease_ttl), "DUPLEX_TEST_REDIS_TIMEOUT": "0.3"}
    with redis_server() as redis, ExitStack() as stack:
        env = {"DUPLEX_TEST_MESSAGE_QUEUE": redis.url, **env_extra}
        first = stack.enter_context(running("werkzeug", env))
        second = stack.enter_context(running("gunicorn-gevent", env))
        app, duplex = observer(redis.url)
        stack.callback(duplex.close)
        with app.app_context():
            ticks = stack.enter_context(duplex.subscribe("ticks"))
        pids = {post(first, "/rt/deployment/ticker")["pid"]: first}
        pids[post(second, "/rt/deployment/ticker")["pid"]] = second

        def read(seconds: float) -> list[dict[str, int]]:
            seen = []
            deadline = time.monotonic() + seconds
            while (left := deadline - time.monotonic()) > 0:
                tick = ticks.get(timeout=left)
                if tick is not None:
                    seen.append(tick)
            return seen

        before = read(2.0)
        holders = {tick["pid"] for tick in before}
        assert len(holders) == 1, f"ticks from {holders}"
        (holder,) = holders
        counts = [tick["n"] for tick in before]
        assert counts == list(range(counts[0], counts[0] + len(counts)))

        pids[holder].kill()
        killed = time.monotonic()
        first_new = None
        while first_new is None and time.monotonic() - killed < 3 * lease_ttl:
            tick = ticks.get(timeout=0.5)
            if tick is not None and tick["pid"] != holder:
                first_new = tick
        failover = time.monotonic() - killed
        assert first_new is not None, "no other process took the task over"
        after = read(1.0)
        assert {tick["pid"] for tick in after} == {first_new["pid"]}
    print(f"deployment task failover after a SIGKILL: {failover:.2f}s (lease {lease_ttl}s)")
    assert failover < lease_ttl * 4 / 3 + 1.0


def test_in_one_process_a_deployment_task_runs_once_and_a_waiting_one_takes_over() -> None:
    """In-process, the second start of a task waits; cancelling the first lets it run."""
    duplex = Duplex()
    app = Flask("alone")
    app.config["DUPLEX_LEASE_TTL"] = 0.6
    duplex.init_app(app)
    runs: list[str] = []

    def loop(label: str) -> None:
        runs.append(f"{label} started")
        while True:
            duplex.sleep(0.02)

    try:
        with app.app_context():
            first = duplex.start_deployment_task("solo", loop, "first")
            second = duplex.start_deployment_task("solo", loop, "second")
        deadline = time.monotonic() + 2
        while not runs and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)  # Long enough for the second to try (every 0.2 s) and be refused.
        assert runs == ["first started"]
        assert first.started and not second.started
        first.cancel()
        assert first.join(2)
        deadline = time.monotonic() + 2
        while len(runs) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert runs == ["first started", "second started"]
        assert second.running_here
    finally:
        with app.app_context():
            duplex.close()
    assert second.join(2)


def test_ensure_deployment_task_keeps_one_waiting_bid_per_name_in_a_process() -> None:
    """ensure_deployment_task: a bid still waiting is reused; one that started running is not."""
    duplex = Duplex()
    app = Flask("ensure")
    app.config["DUPLEX_LEASE_TTL"] = 0.6
    duplex.init_app(app)
    labels = ("holder", "first", "second", "other")
    started = {label: threading.Event() for label in labels}
    finish = {label: threading.Event() for label in labels}

    def loop(label: str) -> None:
        started[label].set()
        while not finish[label].is_set():
            duplex.sleep(0.02)

    try:
        with app.app_context():
            holder = duplex.start_deployment_task("room", loop, "holder")
            assert started["holder"].wait(2)
            # The lease is held: a bid waits, and asking again gives that same bid.
            first = duplex.ensure_deployment_task("room", loop, "first")
            assert duplex.ensure_deployment_task("room", loop, "first") is first
            assert not first.started and not first.done
            # Another name is another bid, which runs at once.
            other = duplex.ensure_deployment_task("other", loop, "other")
            assert other is not first
            assert started["other"].wait(2)

            # The holder returns: the waiting bid takes the lease and runs.
            finish["holder"].set()
            assert holder.join(2)
            assert started["first"].wait(2)
            assert first.started
            # A bid that runs may be about to return: asking again makes a new bid.
            second = duplex.ensure_deployment_task("room", loop, "second")
            assert second is not first
            assert not second.started
            assert duplex.ensure_deployment_task("room", loop, "second") is second

            # Once the running bid returns, the new one runs in its turn.
            finish["first"].set()
            assert started["second"].wait(2)
            for label in labels:
                finish[label].set()
            assert first.join(2) and second.join(2) and other.join(2)
            # Done bids are never reused.
            third = duplex.ensure_deployment_task("room", loop, "holder")
            assert third not in (first, second)
    finally:
        for label in labels:
            finish[label].set()
        with app.app_context():
            duplex.close()

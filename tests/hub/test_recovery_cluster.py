"""Recovery across a worker crash: two gunicorn gevent workers, Redis, and clients that reconnect.

A publisher in this process broadcasts numbered messages to a room with
history at about 200 a second; while it does, one worker is killed with
SIGKILL. Its clients reconnect (through the same port, to whichever worker
accepts them) with the positions they had, as the browser client does, and
every client must end with every message, in order, none twice.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from flask_duplex import Duplex
from flask_duplex.testing import RoomPositions
from tests.support.redis_server import RedisServer, redis_server
from tests.support.servers import running

CHANNEL = "duplex-tests"  # The test app's DUPLEX_CHANNEL.
TOTAL = 2000
RATE = 200.0  # messages a second
CLIENTS = 20


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


class Follower(threading.Thread):
    """A client of room ``history:load`` that reconnects with its positions until it has all."""

    def __init__(self, url: str, deadline: float) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.deadline = deadline
        self.positions = RoomPositions()
        self.numbers: list[int] = []
        self.reports: list[dict[str, Any]] = []  # What each join did, and on which process.
        self.connected = threading.Event()
        self.errors: list[str] = []

    def run(self) -> None:
        while len(self.numbers) < TOTAL and time.monotonic() < self.deadline:
            query = urlencode(self.positions.query())
            try:
                with connect(
                    self.url + (f"?{query}" if query else ""), open_timeout=5, close_timeout=1
                ) as ws:
                    while len(self.numbers) < TOTAL:
                        message = ws.recv(timeout=max(0.1, self.deadline - time.monotonic()))
                        frame = self.positions.update(message)
                        if frame is None:
                            self.reports.append(json.loads(message))
                            self.connected.set()
                        elif frame["duplex"] == "message":
                            self.numbers.append(frame["data"]["n"])
            except (ConnectionClosed, OSError, TimeoutError) as exc:
                self.errors.append(repr(exc))
                time.sleep(0.05)  # A browser client waits a random delay first.


def test_every_client_gets_every_message_across_a_worker_kill(redis: RedisServer) -> None:
    """SIGKILL one of two workers mid-stream: all 20 clients end with all 2,000, in order, once."""
    env = {
        "DUPLEX_TEST_MESSAGE_QUEUE": redis.url,
        "DUPLEX_TEST_GUNICORN_WORKERS": "2",
    }
    publisher = Duplex(message_queue=redis.url, channel=CHANNEL)
    publisher.keep_history("history:*", size=5000, ttl=120)  # As the served app says.
    with running("gunicorn-gevent", env) as server:
        deadline = time.monotonic() + 40  # The sends take 10 s.
        followers = [Follower(f"{server.url}/history/load", deadline) for _ in range(CLIENTS)]
        for follower in followers:
            follower.start()
        try:
            for follower in followers:
                assert follower.connected.wait(10), follower.errors
            pids = Counter(follower.reports[0]["pid"] for follower in followers)
            doomed = pids.most_common(1)[0][0]
            start = time.monotonic()
            for n in range(TOTAL):
                publisher.broadcast({"n": n}, to="history:load")
                if n == TOTAL // 4:
                    os.kill(doomed, signal.SIGKILL)
                time.sleep(max(0.0, start + (n + 1) / RATE - time.monotonic()))
            for follower in followers:
                follower.join(max(0.1, deadline - time.monotonic()))
        finally:
            publisher.close()
        for follower in followers:
            assert follower.numbers == list(range(TOTAL)), (
                f"{len(follower.numbers)} messages, errors {follower.errors[-3:]}"
            )
            first, *again = follower.reports
            assert (first["recovered"], first["reason"]) == (False, None)
            assert all(report["recovered"] for report in again), again
        moved = [f for f in followers if f.reports[0]["pid"] == doomed]
        assert moved and all(len(f.reports) >= 2 for f in moved)
        assert all(f.reports[-1]["pid"] != doomed for f in moved)

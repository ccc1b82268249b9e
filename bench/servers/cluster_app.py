"""Flask-Duplex app for the simulated cluster (``python -m bench.cluster``).

Each node of the cluster is a gunicorn serving ``bench.servers.cluster_app:app``. Clients
connect to ``/room/<name>``, join that room (resuming from the position they give in the
upgrade request, as the browser client does) and hold the connection; the app sends nothing
of its own. With ``BENCH_KEEP_HISTORY`` set to a number, every room keeps that many messages
(``duplex.keep_history("room-*", ...)``). ``DUPLEX_MESSAGE_QUEUE`` and ``DUPLEX_CHANNEL`` come from
the environment: every node, and the publisher, use the same.

Each worker counts the messages its hub's subscriber takes from Redis (whatever the channel)
and writes the count, every 0.2 s, into the hash ``{<channel>}:bench-received`` under its
pid: what Redis hands each process, counted where it arrives, the same way on this code and
on the one-channel design's (the hub's ``_dispatch`` is wrapped: bench code, not the API).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from flask import Flask

from bench.servers import add_room_routes
from flask_duplex import Duplex

app = Flask(__name__)
app.config["DUPLEX_MESSAGE_QUEUE"] = os.environ.get("DUPLEX_MESSAGE_QUEUE") or None
app.config["DUPLEX_CHANNEL"] = os.environ.get("DUPLEX_CHANNEL") or "bench-cluster"
duplex = Duplex(app)
if os.environ.get("BENCH_KEEP_HISTORY"):
    duplex.keep_history("room-*", size=int(os.environ["BENCH_KEEP_HISTORY"]), ttl=600)

_received = [0]


def _count_what_redis_hands(hub: Any) -> None:
    dispatch = hub._dispatch

    def counted(data: bytes) -> None:
        _received[0] += 1
        dispatch(data)

    hub._dispatch = counted
    key = f"{{{app.config['DUPLEX_CHANNEL']}}}:bench-received"

    def report() -> None:
        written = -1
        while True:
            time.sleep(0.2)
            if _received[0] != written:
                try:
                    hub._link.client().hset(key, str(os.getpid()), _received[0])
                    written = _received[0]
                except Exception:
                    pass  # Redis going away at the end of a phase.

    threading.Thread(target=report, name="bench-received", daemon=True).start()


if app.config["DUPLEX_MESSAGE_QUEUE"]:
    _count_what_redis_hands(app.extensions["duplex"].hub)


add_room_routes(duplex)

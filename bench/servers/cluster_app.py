"""Flask-Duplex app for the simulated cluster (``python -m bench.cluster``).

Each node of the cluster is a gunicorn serving ``bench.servers.cluster_app:app``. Clients
connect to ``/room/<name>``, join that room (resuming from the position they give in the
upgrade request, as the browser client does) and hold the connection; the app sends nothing
of its own. With ``BENCH_KEEP_HISTORY`` set to a number, every room keeps that many messages
(``duplex.keep_history("room-*", ...)``). ``DUPLEX_MESSAGE_QUEUE`` and ``DUPLEX_CHANNEL`` come from
the environment: every node, and the publisher, use the same.
"""

from __future__ import annotations

import os

from flask import Flask

from flask_duplex import Duplex, WebSocket

app = Flask(__name__)
app.config["DUPLEX_MESSAGE_QUEUE"] = os.environ.get("DUPLEX_MESSAGE_QUEUE") or None
app.config["DUPLEX_CHANNEL"] = os.environ.get("DUPLEX_CHANNEL") or "bench-cluster"
duplex = Duplex(app)
if os.environ.get("BENCH_KEEP_HISTORY"):
    duplex.keep_history("room-*", size=int(os.environ["BENCH_KEEP_HISTORY"]), ttl=600)


@duplex.route("/echo", compression=False)
def echo(ws: WebSocket) -> None:  # The benchmark's check that a node is up.
    for message in ws:
        ws.send(message)


@duplex.route("/room/<name>", compression=False)
def room(ws: WebSocket, name: str) -> None:
    ws.join(name)
    for _ in ws:
        pass

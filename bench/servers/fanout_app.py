"""Flask-Duplex broadcast app, for the fan-out scenario.

Clients connect to ``/fanout`` and join the room ``all``; ``POST /go?size=N`` broadcasts one
N-byte message to the room. ``DUPLEX_MESSAGE_QUEUE`` in the environment selects Redis.
gunicorn serves ``bench.servers.fanout_app:app``.
"""

from __future__ import annotations

import os

from flask import Flask, request

from flask_duplex import Duplex, WebSocket

app = Flask(__name__)
app.config["DUPLEX_MESSAGE_QUEUE"] = os.environ.get("DUPLEX_MESSAGE_QUEUE") or None
duplex = Duplex(app)


@duplex.route("/echo", compression=False)
def echo(ws: WebSocket) -> None:
    for message in ws:
        ws.send(message)


@duplex.route("/fanout", compression=False)
def fanout(ws: WebSocket) -> None:
    ws.join("all")
    for _ in ws:
        pass


@app.post("/go")
def go() -> tuple[str, int]:
    duplex.broadcast(b"x" * int(request.args.get("size", "100")), to="all")
    return "", 204


if __name__ == "__main__":
    from bench.servers import port_from_argv

    app.run(host="127.0.0.1", port=port_from_argv(), threaded=True)

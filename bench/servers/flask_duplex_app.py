"""Flask-Duplex echo app.

Werkzeug: ``python -m bench.servers.flask_duplex_app PORT``; gunicorn serves
``bench.servers.flask_duplex_app:app``.
"""

from __future__ import annotations

import threading

from flask import Flask

from bench.servers import (
    DEFLATE_ECHO_PATH,
    ECHO_PATH,
    MAX_MESSAGE_SIZE,
    PLAIN_BODY,
    PLAIN_PATH,
    port_from_argv,
)
from flask_duplex import Duplex, WebSocket

app = Flask(__name__)
duplex = Duplex(app)


@duplex.route(ECHO_PATH, max_message_size=MAX_MESSAGE_SIZE, compression=False)
def echo(ws: WebSocket) -> None:
    for message in ws:
        ws.send(message)


@duplex.route(DEFLATE_ECHO_PATH, max_message_size=MAX_MESSAGE_SIZE, compression=True)
def echo_deflate(ws: WebSocket) -> None:
    for message in ws:
        ws.send(message)


@app.get(PLAIN_PATH)
def plain() -> str:
    """The cheapest response of this app: what a connection cycle is compared with."""
    return PLAIN_BODY


_never = threading.Event()
_held = 0
_held_lock = threading.Lock()


@app.route("/hold")
def hold() -> str:
    """A plain view that never answers: what a held request costs without WebSocket code."""
    global _held
    with _held_lock:
        _held += 1
    _never.wait()
    return ""


@app.get("/held")
def held() -> str:
    """How many requests ``/hold`` holds: whether the server has taken them all."""
    return str(_held)


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=port_from_argv(), threaded=True)

"""flask-sock echo app, written the way its documentation shows.

Werkzeug: ``python -m bench.servers.flask_sock_app PORT``; gunicorn serves
``bench.servers.flask_sock_app:app``.

flask-sock has no switch for compression: its server accepts permessage-deflate whenever the
client offers it, which the load generator does only on ``/echo-deflate``.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_sock import Sock  # type: ignore[import-untyped]  # it ships no type hints

from bench.servers import (
    DEFLATE_ECHO_PATH,
    ECHO_PATH,
    MAX_MESSAGE_SIZE,
    PLAIN_BODY,
    PLAIN_PATH,
    port_from_argv,
)

app = Flask(__name__)
# Passed to simple_websocket.Server; without it flask-sock accepts messages of any size.
app.config["SOCK_SERVER_OPTIONS"] = {"max_message_size": MAX_MESSAGE_SIZE}
sock = Sock(app)


@sock.route(ECHO_PATH)  # type: ignore[untyped-decorator]
def echo(ws: Any) -> None:
    # flask-sock ends the loop by raising ConnectionClosed, which its route wrapper catches.
    while True:
        ws.send(ws.receive())


@sock.route(DEFLATE_ECHO_PATH)  # type: ignore[untyped-decorator]
def echo_deflate(ws: Any) -> None:
    while True:
        ws.send(ws.receive())


@app.get(PLAIN_PATH)
def plain() -> str:
    """The cheapest response of this app: what a connection cycle is compared with."""
    return PLAIN_BODY


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=port_from_argv(), threaded=True)

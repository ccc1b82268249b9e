"""flask-sock apps, unchanged but for the import line, for the compat server tests.

Both ways flask-sock users set it up are here, on one app: a chat written for
an app factory (``Sock()`` at import, ``init_app(app)`` in ``create_app()``),
and a snake game on a global app (``sock = Sock(app)``). Routes that report
what a test cannot see on the wire print a line to the server's log.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Flask, request

from flask_duplex import WebSocket
from flask_duplex.compat import ConnectionClosed, Sock

# -- The chat: an app factory, as flask-sock's docs show it -------------------

chat_sock = Sock()
clients: list[Any] = []


def send_to_all(text: str) -> None:
    for client in list(clients):
        try:
            client.send(text)
        except ConnectionClosed:
            pass


@chat_sock.route("/chat")
def chat(ws: Any) -> None:
    name = ws.receive()
    clients.append(ws)
    try:
        send_to_all(f"{name} joined")
        while True:
            send_to_all(f"{name}: {ws.receive()}")
    finally:
        clients.remove(ws)


@chat_sock.route("/echo")
def echo(ws: Any) -> None:
    while True:
        data = ws.receive()
        ws.send(data)


tools = Blueprint("tools", __name__, url_prefix="/tools")


@chat_sock.route("/reverse/<word>", bp=tools)
def reverse(ws: Any, word: str) -> None:
    ws.send(word[::-1])
    while True:
        ws.send(ws.receive()[::-1])


def create_app() -> Flask:
    app = Flask(__name__)
    app.config["SOCK_SERVER_OPTIONS"] = {
        "ping_interval": 0.5,
        "max_message_size": 1024,
        "subprotocols": ["chat.v2", "chat.v1"],
        "receive_bytes": 8192,  # simple-websocket's read size: no equivalent here
    }
    app.config["DUPLEX_CLOSE_TIMEOUT"] = 2.0
    chat_sock.init_app(app)
    app.register_blueprint(tools)
    return app


app = create_app()

# -- The snake game: a global app and Sock(app) --------------------------------

sock = Sock(app)


class SingleGame:
    def __init__(self, socket: Any) -> None:
        self.socket = socket

    def handle(self, data: Any) -> None:
        self.socket.send(data)


@sock.route("/singleplayer")
def ws_singleplayer(ws: Any) -> None:
    game = SingleGame(ws)
    while True:
        data = ws.receive()
        game.handle(data)


# -- One route per behaviour under test ----------------------------------------


@sock.route("/clock")
def clock(ws: Any) -> None:
    interval = float(request.args.get("interval", "0.2"))
    ticks = 0
    while True:
        data = ws.receive(timeout=interval)
        if data is None:
            ticks += 1
            ws.send(f"tick {ticks}")
        elif data == "stop":
            break
        else:
            ws.send(f"echo {data}")


@sock.route("/receive-timeout")
def receive_timeout(ws: Any) -> None:
    started = time.monotonic()
    data = ws.receive(timeout=0.3)
    ws.send(f"{data!r} after {time.monotonic() - started:.2f}")
    ws.send(repr(ws.receive(timeout=5)))
    ws.receive()


@sock.route("/greet", defaults={"name": "world"}, endpoint="hello")
def greet(ws: Any, name: str) -> None:
    ws.send(f"hello {name}")
    ws.receive()


@sock.route("/close/<int:code>")
def close_with(ws: Any, code: int) -> None:
    ws.close(code, request.args.get("message"))


@sock.route("/close")
def close_plain(ws: Any) -> None:
    ws.close()


@sock.route("/connected")
def connected(ws: Any) -> None:
    token = request.args["token"]
    ws.send(f"connected={ws.connected}")
    ws.receive()
    ws.close(4001, "done")
    print(f"connected-route {token}: after close connected={ws.connected}", flush=True)


@sock.route("/watch")
def watch(ws: Any) -> None:
    token = request.args["token"]
    try:
        while True:
            ws.send(ws.receive())
    except ConnectionClosed as exc:
        print(
            f"watch-route {token}: reason={exc.reason} message={exc.message!r} "
            f"connected={ws.connected}",
            flush=True,
        )
        raise


@sock.route("/proto")
def proto(ws: Any) -> None:
    ws.send(str(ws.subprotocol))
    ws.receive()


@sock.route("/raise")
def raise_error(ws: Any) -> None:
    ws.receive()
    raise RuntimeError("boom in sock handler")


@sock.route("/room/<name>")
def room(ws: Any, name: str) -> None:
    ws.join(name)
    ws.send("joined")
    while True:
        sock.duplex.broadcast(ws.receive(), to=name)


@app.post("/announce")
def announce() -> tuple[str, int]:
    sock.duplex.broadcast(request.form["text"], to=request.form["to"])
    return "", 204


@sock.duplex.on_disconnect
def report_disconnect(ws: WebSocket) -> None:
    query = ws.environ.get("QUERY_STRING", "")
    print(f"disconnected {ws.environ['PATH_INFO']}?{query}", flush=True)

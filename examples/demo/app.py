"""A one-room chat: open http://127.0.0.1:5000 in two browser tabs and talk."""

from __future__ import annotations

import threading

from flask import Flask, render_template

from flask_duplex import ConnectionClosed, Duplex, WebSocket

app = Flask(__name__)
duplex = Duplex(app)

_members: set[WebSocket] = set()
_members_lock = threading.Lock()


def _tell_everyone(text: str) -> None:
    with _members_lock:
        members = list(_members)
    for member in members:
        try:
            member.send(text)
        except ConnectionClosed:
            pass  # That tab is gone; its own handler cleans up.


@app.get("/")
def index() -> str:
    return render_template("index.html")


@duplex.route("/chat")
def chat(ws: WebSocket) -> None:
    with _members_lock:
        _members.add(ws)
    _tell_everyone(f"* someone joined ({len(_members)} here)")
    try:
        for message in ws:
            if isinstance(message, str) and message.strip():
                _tell_everyone(message[:500])
    finally:
        with _members_lock:
            _members.discard(ws)
        _tell_everyone("* someone left")


@duplex.route("/echo")
def echo(ws: WebSocket) -> None:
    for message in ws:
        ws.send(message)


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=5000, threaded=True)

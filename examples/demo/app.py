"""A one-room chat: open http://127.0.0.1:5000 in two browser tabs and talk."""

from __future__ import annotations

from flask import Flask, render_template

from flask_duplex import Duplex, WebSocket

app = Flask(__name__)
duplex = Duplex(app)


@app.get("/")
def index() -> str:
    return render_template("index.html")


@duplex.route("/chat")
def chat(ws: WebSocket) -> None:
    ws.join("chat")
    duplex.broadcast(f"* someone joined ({len(duplex.members('chat'))} here)", to="chat")
    for message in ws:
        if isinstance(message, str) and message.strip():
            duplex.broadcast(message[:500], to="chat")


@duplex.on_disconnect
def left(ws: WebSocket) -> None:
    if "chat" in ws.rooms:
        duplex.broadcast(f"* someone left ({len(duplex.members('chat'))} here)", to="chat")


@duplex.route("/echo")
def echo(ws: WebSocket) -> None:
    for message in ws:
        ws.send(message)


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=5000, threaded=True)

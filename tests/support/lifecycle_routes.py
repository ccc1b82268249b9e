"""Routes of the test app for the connection's lifecycle: limits, deadlines, hooks, shutdown.

Each route prints what its handler saw, for the tests to read in the server's log.
"""

from __future__ import annotations

import threading
import time

from flask import Blueprint, request

from flask_duplex import ConnectionClosed, Duplex, WebSocket


def lifecycle_blueprint(duplex: Duplex) -> Blueprint:
    """The ``/lifecycle/...`` routes and their hooks, on ``duplex``."""
    bp = Blueprint("lifecycle", __name__, url_prefix="/lifecycle")

    def say(text: str) -> None:
        print(text, flush=True)

    @duplex.on_connect
    def failing_connect_hook(ws: WebSocket) -> None:
        if request.path == "/lifecycle/hooks":
            raise RuntimeError("first connect hook failed on purpose")

    @duplex.on_connect
    def second_connect_hook(ws: WebSocket) -> None:
        if request.path == "/lifecycle/hooks":
            say("second connect hook ran")

    @duplex.on_disconnect
    def failing_disconnect_hook(ws: WebSocket) -> None:
        if request.path == "/lifecycle/hooks":
            raise RuntimeError("first disconnect hook failed on purpose")

    @duplex.on_disconnect
    def report_disconnect(ws: WebSocket) -> None:
        if request.path.startswith("/lifecycle/"):
            say(f"disconnect {request.path} {ws.close_code}")

    @duplex.route("/echo", bp=bp)
    def echo(ws: WebSocket) -> None:
        for message in ws:
            ws.send(message)
        say(f"echo: loop ended with {ws.close_code}")

    @duplex.route("/busy", bp=bp)
    def busy(ws: WebSocket) -> None:
        # Accepts, then does not receive for a while: what the client sends waits.
        ws.accept()
        time.sleep(float(request.args.get("seconds", "3")))

    @duplex.route("/stream", bp=bp, compression=False)
    def stream(ws: WebSocket) -> None:
        chunk = "s" * 262144
        try:
            while True:
                ws.send(chunk)
        except ConnectionClosed as exc:
            say(f"stream: send raised {exc.code}")

    @duplex.route("/ping-release", bp=bp)
    def ping_release(ws: WebSocket) -> None:
        pong = ws.ping(b"are you there")
        started = time.monotonic()
        try:
            answered = pong.wait(10)
        except ConnectionClosed as exc:
            say(f"ping-release: raised {exc.code} after {time.monotonic() - started:.2f}s")
        else:
            say(f"ping-release: returned {answered} after {time.monotonic() - started:.2f}s")

    @duplex.route("/slow-reader", bp=bp, ping_interval=0.3, ping_timeout=1.0, compression=False)
    def slow_reader(ws: WebSocket) -> None:
        ws.accept()
        time.sleep(float(request.args.get("seconds", "2")))
        count = 0
        try:
            for _ in ws:
                count += 1
        except ConnectionClosed as exc:
            say(f"slow-reader: {count} messages, then closed {exc.code}")
        else:
            say(f"slow-reader: {count} messages, then closed {ws.close_code}")

    @duplex.route("/receive-while-sending", bp=bp, compression=False)
    def receive_while_sending(ws: WebSocket) -> None:
        def flood() -> None:
            try:
                while True:
                    ws.send("f" * 262144)
            except ConnectionClosed:
                pass

        ws.accept()
        sender = threading.Thread(target=flood, daemon=True)
        sender.start()
        for _ in range(3):
            started = time.monotonic()
            try:
                message = ws.receive(timeout=0.5)
            except ConnectionClosed as exc:
                say(f"receive-while-sending: closed {exc.code}")
                return
            say(f"receive-while-sending: {message!r} after {time.monotonic() - started:.2f}s")

    @duplex.route("/vanish", bp=bp, compression=False)
    def vanish(ws: WebSocket) -> None:
        # Returns while its inbox is full and the peer is already gone.
        ws.accept()
        time.sleep(float(request.args.get("seconds", "1")))

    @duplex.route("/hooks", bp=bp)
    def hooks(ws: WebSocket) -> None:
        try:
            ws.send("hi")
            ws.receive()
        except ConnectionClosed as exc:
            say(f"hooks: handler saw {exc.code}")

    @duplex.route("/send-truth", bp=bp, compression=False)
    def send_truth(ws: WebSocket) -> None:
        def big() -> None:
            try:
                ws.send("b" * 8 * 2**20)
            except ConnectionClosed:
                pass

        ws.accept()
        first = threading.Thread(target=big, daemon=True)
        first.start()
        time.sleep(0.3)  # The big message now waits on the full socket.
        say("send-truth: sending second")
        try:
            ws.send("second")
        except ConnectionClosed as exc:
            say(f"send-truth: second raised {exc.code}")
        else:
            say("send-truth: second returned")
        first.join(5)

    return bp

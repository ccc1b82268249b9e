"""The Flask app the server tests run, with one route per behaviour under test."""

from __future__ import annotations

import json
import os
import threading
import time

from flask import Blueprint, Flask, abort, g, jsonify, render_template, request, session

from flask_duplex import BackendUnavailable, ConnectionClosed, Duplex, WebSocket
from tests.support.lifecycle_routes import lifecycle_blueprint
from tests.support.realtime_routes import realtime_blueprint

duplex = Duplex()
lifecycle = lifecycle_blueprint(duplex)
realtime = realtime_blueprint(duplex)

if os.environ.get("DUPLEX_TEST_CLOCK_SKEW"):
    # This process's wall clock runs this many seconds off (presence must not care).
    _real_time = time.time
    _skew = float(os.environ["DUPLEX_TEST_CLOCK_SKEW"])
    time.time = lambda: _real_time() + _skew


@duplex.route("/echo")
def echo(ws: WebSocket) -> None:
    for message in ws:
        ws.send(message)


@duplex.route("/iterate/<tag>")
def iterate_and_report(ws: WebSocket, tag: str) -> None:
    """Echo with ``for message in ws``; print how the loop ended."""
    try:
        for message in ws:
            ws.send(message)
    except ConnectionClosed as exc:
        print(f"iterate {tag}: raised {exc.code}", flush=True)
        raise
    print(f"iterate {tag}: ended quietly after close {ws.close_code}", flush=True)


# Autobahn counts an unrequested ping as a failure, so keepalive is off here.
@duplex.route("/echo-big", max_message_size=32 * 2**20, ping_interval=None)
def echo_big(ws: WebSocket) -> None:
    for message in ws:
        ws.send(message)


# Holds up to 32 MiB of messages the handler has not received yet.
@duplex.route("/echo-roomy", max_inbox_bytes=32 * 2**20)
def echo_roomy(ws: WebSocket) -> None:
    for message in ws:
        ws.send(message)


@duplex.route("/echo-small", max_message_size=1024, compression=False)
def echo_small(ws: WebSocket) -> None:
    for message in ws:
        ws.send(message)


@duplex.route("/json")
def json_echo(ws: WebSocket) -> None:
    while True:
        try:
            value = ws.receive_json()
        except ValueError as exc:
            ws.send(f"invalid: {exc}")
            continue
        ws.send_json({"got": value})


@duplex.route("/close/<int:code>")
def close_with(ws: WebSocket, code: int) -> None:
    ws.close(code, request.args.get("reason", ""))


@duplex.route("/raise")
def raise_error(ws: WebSocket) -> None:
    ws.receive()
    raise RuntimeError("boom in handler")


@duplex.route("/sleep")
def sleep_then_report(ws: WebSocket) -> None:
    # Busy elsewhere (not receiving) while the client pings and closes.
    ws.accept()
    time.sleep(float(request.args.get("seconds", "3")))
    try:
        ws.send("still here")
    except ConnectionClosed as exc:
        print(f"sleep-route: closed {exc.code}", flush=True)


@duplex.route("/receive-then-sleep")
def receive_then_sleep(ws: WebSocket) -> None:
    # Reads one message itself, then is busy: reading goes back to the reactor.
    ws.receive()
    time.sleep(float(request.args.get("seconds", "3")))


@duplex.route("/receive-timeout")
def receive_timeout(ws: WebSocket) -> None:
    started = time.monotonic()
    message = ws.receive(timeout=0.3)
    ws.send(f"{message!r} after {time.monotonic() - started:.2f}")
    for message in ws:
        ws.send(message)


@duplex.route("/poll")
def poll(ws: WebSocket) -> None:
    # A game-loop style handler: never waits in receive(), ticks in between.
    while True:
        message = ws.receive(timeout=0)
        if message is None:
            time.sleep(0.002)
        elif message == "stop":
            return
        else:
            ws.send(message)


@duplex.route("/keepalive", ping_interval=0.3, ping_timeout=0.5)
def keepalive(ws: WebSocket) -> None:
    try:
        for message in ws:
            ws.send(message)
    except ConnectionClosed as exc:
        print(f"keepalive-route: closed {exc.code} {exc.reason}", flush=True)
        raise


@duplex.route("/ping")
def server_ping(ws: WebSocket) -> None:
    pong = ws.ping(b"are you there")
    ws.send(f"pong {pong.wait(2)}")
    ws.receive()


@duplex.route("/info")
def info(ws: WebSocket) -> None:
    ws.send_json(
        {
            "id": ws.id,
            "path": request.path,
            "query": request.args.get("q"),
            "user": session.get("user"),
            "g": getattr(g, "marker", None),
            "subprotocol": ws.subprotocol,
            "remote_addr": ws.remote_addr,
            "state": ws.state.value,
        }
    )
    ws.receive()


@duplex.route("/nickname")
def nickname(ws: WebSocket) -> None:
    ws.nickname = ws.receive()  # type: ignore[attr-defined]  # the handler's own attribute
    ws.send(f"hello {ws.nickname}")  # type: ignore[attr-defined]
    ws.receive()


@duplex.route("/proto", subprotocols=["chat.v2", "chat.v1"])
def proto(ws: WebSocket) -> None:
    ws.send(str(ws.subprotocol))
    ws.receive()


@duplex.route("/origins", origins=["https://allowed.example"])
def origins(ws: WebSocket) -> None:
    ws.send("welcome")
    ws.receive()


@duplex.route("/broadcast-threads")
def concurrent_senders(ws: WebSocket) -> None:
    count = int(request.args.get("n", "8"))
    size = int(request.args.get("size", "50000"))

    def blast(tag: int) -> None:
        for i in range(20):
            ws.send(f"{tag}:{i}:" + "x" * size)

    threads = [threading.Thread(target=blast, args=(t,)) for t in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ws.send("done")
    ws.receive()


@duplex.route("/send-while-receiving")
def send_while_receiving(ws: WebSocket) -> None:
    # A thread sends while the handler receives: reads and writes of one socket overlap.
    count = int(request.args.get("count", "200"))
    size = int(request.args.get("size", "16384"))

    def stream() -> None:
        for index in range(count):
            ws.send(f"{index}:" + "x" * size)

    sender = threading.Thread(target=stream)
    sender.start()
    received = 0
    for message in ws:
        if message == "end":
            break
        received += 1
    sender.join()
    ws.send(f"received {received}")


@duplex.route("/bad-send")
def bad_send(ws: WebSocket) -> None:
    try:
        ws.send(123)  # type: ignore[arg-type]
    except TypeError as exc:
        ws.send(f"TypeError: {exc}")
    ws.receive()


@duplex.route("/first-broadcast/<name>")
def first_broadcast(ws: WebSocket, name: str) -> None:
    # Joins and broadcasts to its own room at once: the process must be subscribed.
    ws.join(name)
    duplex.broadcast(f"first {ws.id}", to=name)
    for message in ws:
        if message == "whoami":
            ws.send(ws.id)


@duplex.route("/named/<room>")
def named(ws: WebSocket, room: str) -> None:
    ws.join(room, {"name": request.args["name"]})
    ws.send(ws.id)
    for message in ws:  # A new name: join the same room again.
        ws.join(room, {"name": str(message)})
        ws.send("renamed")


@duplex.route("/room/<name>")
def room(ws: WebSocket, name: str) -> None:
    ws.join(name)
    duplex.broadcast(f"{ws.id} joined", to=name, exclude=ws)
    for message in ws:
        if message == "whoami":
            ws.send(ws.id)
        elif message == "leave":
            ws.leave(name)
            ws.send("left")
        else:
            duplex.broadcast(message, to=name)


# Rooms named "history:..." keep their last 5,000 messages (the test publisher says the same).
duplex.keep_history("history:*", size=5000, ttl=120)


@duplex.route("/history/<name>")
def history_room(ws: WebSocket, name: str) -> None:
    # Joins (resuming from the position the client gave), says which process
    # it is on and what the join did; then broadcasts what it is sent.
    joined = ws.join(f"history:{name}")
    ws.send_json({"pid": os.getpid(), "recovered": joined.recovered, "reason": joined.reason})
    for message in ws:
        duplex.broadcast(message, to=f"history:{name}")


# The browser client's rooms keep their last 3 messages: a page away for 4 misses too many.
duplex.keep_history("client-test:*", size=3, ttl=120)


@duplex.route("/client-test/room/<name>")
def client_test_room(ws: WebSocket, name: str) -> None:
    # For the browser client (duplex.js): joins a room with history, resuming
    # from the position the page handed back, and broadcasts what it is sent:
    # a JSON object as an object, other text as text, bytes as bytes.
    # {"others": value} goes to everyone in the room but the sender, which
    # learns only that the room moved on.
    room = f"client-test:{name}"
    ws.join(room)
    for message in ws:
        value = json.loads(message) if isinstance(message, str) and message[:1] == "{" else message
        if isinstance(value, dict) and "others" in value:
            duplex.broadcast(value["others"], to=room, exclude=ws)
        else:
            duplex.broadcast(value, to=room)


@duplex.route("/client-test/echo")
def client_test_echo(ws: WebSocket) -> None:
    # For the browser client (duplex.js): echoes JSON in numbered envelopes. A
    # resume marker sets the number to continue from, and is logged; a few
    # commands make the server close, or send what is not JSON.
    last_id = 0
    for message in ws:
        value = json.loads(message)
        command = value.get("type") if isinstance(value, dict) else None
        if command == "resume":
            print(f"client-test: resume {json.dumps(value.get('last_id'))}", flush=True)
            last_id = value.get("last_id") or 0
        elif command == "close":
            ws.close(int(value["code"]), "asked to")
            return
        elif command == "raw":
            ws.send(value["text"])
        else:
            last_id += 1
            ws.send_json({"id": last_id, "echo": value})


protected = Blueprint("protected", __name__, url_prefix="/private")


@protected.before_request
def require_token() -> None:
    if request.args.get("token") != "secret":
        abort(401)
    g.marker = "hook ran"


@duplex.route("/room/<name>", bp=protected)
def private_room(ws: WebSocket, name: str) -> None:
    ws.send(f"{name} {g.marker}")
    ws.receive()


outer = Blueprint("outer", __name__, url_prefix="/outer")
inner = Blueprint("inner", __name__, url_prefix="/inner")


@duplex.route("/echo", bp=inner)
def nested_echo(ws: WebSocket) -> None:
    for message in ws:
        ws.send(f"nested {message}")


outer.register_blueprint(inner)


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def create_app() -> Flask:
    app = Flask(__name__)
    app.secret_key = "test only"
    app.config["DUPLEX_CLOSE_TIMEOUT"] = float(os.environ.get("DUPLEX_TEST_CLOSE_TIMEOUT", "2"))
    app.config["DUPLEX_MESSAGE_QUEUE"] = os.environ.get("DUPLEX_TEST_MESSAGE_QUEUE")
    app.config["DUPLEX_PRESENCE_TTL"] = float(os.environ.get("DUPLEX_TEST_PRESENCE_TTL", "30"))
    app.config["DUPLEX_REDIS_TIMEOUT"] = float(os.environ.get("DUPLEX_TEST_REDIS_TIMEOUT", "0.5"))
    app.config["DUPLEX_CHANNEL"] = os.environ.get("DUPLEX_TEST_CHANNEL", "duplex-tests")
    app.config["DUPLEX_LEASE_TTL"] = float(os.environ.get("DUPLEX_TEST_LEASE_TTL", "5"))
    duplex.init_app(app)
    app.register_blueprint(protected)
    app.register_blueprint(outer)
    app.register_blueprint(lifecycle)
    app.register_blueprint(realtime)

    @app.before_request
    def mark() -> None:
        g.marker = "hook ran"

    @app.get("/login/<user>")
    def login(user: str) -> str:
        session["user"] = user
        return "ok"

    @app.get("/stats")
    def stats() -> object:
        state = app.extensions["duplex"]
        return jsonify(
            threads=threading.active_count(),
            os_threads=len(os.listdir("/proc/self/task")),
            connections=len(state.local_connections),
            pid=os.getpid(),
            rss_kb=_rss_kb(),
        )

    @app.post("/announce")
    def announce() -> object:
        try:
            duplex.broadcast({"text": request.form["text"]}, to=request.form.get("to"))
        except BackendUnavailable as exc:
            return str(exc), 503
        return "", 204

    @app.post("/flood")
    def flood() -> object:
        payload = "x" * int(request.form["size"])
        for index in range(int(request.form["n"])):
            duplex.broadcast(f"{index}:{payload}", to=request.form["to"])
        return "", 204

    @app.post("/send/<connection_id>")
    def send(connection_id: str) -> object:
        try:
            for _ in range(int(request.form.get("n", "1"))):
                duplex.send_to(connection_id, request.form["text"])
        except BackendUnavailable as exc:
            return str(exc), 503
        return "", 204

    @app.post("/mixed")
    def mixed() -> object:
        # One thread, one connection: broadcasts and send_to in turn, numbered.
        try:
            for index in range(int(request.form["n"])):
                if index % 2:
                    duplex.send_to(request.form["id"], str(index))
                else:
                    duplex.broadcast(str(index), to=request.form["to"])
        except BackendUnavailable as exc:
            return str(exc), 503
        return "", 204

    @app.get("/presence/<room>")
    def presence(room: str) -> object:
        try:
            return jsonify(duplex.presence(room))
        except BackendUnavailable as exc:
            return str(exc), 503

    @app.get("/members/<name>")
    def members(name: str) -> object:
        try:
            return jsonify(sorted(duplex.members(name)))
        except BackendUnavailable as exc:
            return str(exc), 503

    @app.post("/close-all")
    def close_all() -> object:
        still_open = duplex.close_all(
            int(request.form.get("code", "1001")),
            request.form.get("reason", ""),
            timeout=float(request.form["timeout"]) if "timeout" in request.form else None,
        )
        return jsonify(still_open=still_open)

    @app.get("/plain")
    def plain() -> str:
        return "plain http"

    @app.get("/client-test/")
    def client_test_page() -> str:
        return render_template("client_test.html")

    return app


app = create_app()

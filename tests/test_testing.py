"""The in-process test client: real routes, real engine, no server and no TCP port."""

from __future__ import annotations

import json
import socket
import time
import traceback
from collections.abc import Iterator

import pytest
from flask import Blueprint, Flask, abort, current_app, g, request, session

from flask_duplex import ConnectionClosed, Duplex, HandshakeRejected, WebSocket

duplex = Duplex()


@duplex.route("/echo")
def echo(ws: WebSocket) -> None:
    for message in ws:
        ws.send(message)


@duplex.route("/chat", subprotocols=["chat.v1"])
def chat(ws: WebSocket) -> None:
    ws.send(f"hello {session['user']}")
    for message in ws:
        ws.send(message)


@duplex.route("/admin")
def admin(ws: WebSocket) -> None:
    ws.send("secret")


@duplex.route("/fail")
def fail(ws: WebSocket) -> None:
    ws.receive()
    raise KeyError("handler blew up")


@duplex.route("/bye")
def bye(ws: WebSocket) -> None:
    ws.close(4001, "bye")


@duplex.route("/hang")
def hang(ws: WebSocket) -> None:
    ws.accept()
    time.sleep(3)


@duplex.route("/never-accepts")
def never_accepts(ws: WebSocket) -> None:
    time.sleep(3)


@duplex.route("/small", max_message_size=16)
def small(ws: WebSocket) -> None:
    for message in ws:
        ws.send(message)


@duplex.route("/ping")
def ping(ws: WebSocket) -> None:
    ws.send(f"pong {ws.ping(b'hi').wait(2)}")
    ws.receive()


@duplex.route("/whoami")
def whoami(ws: WebSocket) -> None:
    ws.send_json({"q": request.args.get("q"), "g": g.get("hook"), "path": request.path})


bp = Blueprint("games", __name__, url_prefix="/games")


@duplex.route("/<game>/live", bp=bp)
def live(ws: WebSocket, game: str) -> None:
    ws.send(f"watching {game}")


def create_app() -> Flask:
    app = Flask(__name__)
    app.secret_key = "test"
    duplex.init_app(app)
    app.register_blueprint(bp)

    @app.before_request
    def guard() -> None:
        g.hook = "ran"
        if request.path == "/admin":
            abort(403)

    @app.post("/login")
    def login() -> str:
        session["user"] = request.form["user"]
        return "ok"

    return app


@pytest.fixture(scope="module")
def app() -> Iterator[Flask]:
    yield create_app()


def test_echo(app: Flask) -> None:
    """The issue's first example, as written."""
    client = app.extensions["duplex"].test_client()  # or duplex.test_client()
    with client.connect("/echo") as ws:
        ws.send("hi")
        assert ws.receive(timeout=1) == "hi"
        ws.send_json({"a": 1})
        assert ws.receive_json(timeout=1) == {"a": 1}
    assert ws.close_code == 1000


def test_login_required(app: Flask) -> None:
    """The issue's second example: the session cookie of a Flask test client goes along."""
    http = app.test_client()
    http.post("/login", data={"user": "ana"})  # sets the session cookie
    client = duplex.test_client(http)  # shares http's cookie jar
    with client.connect(
        "/chat", headers={"Origin": "http://localhost"}, subprotocols=["chat.v1"]
    ) as ws:
        assert ws.subprotocol == "chat.v1"
        assert ws.receive(timeout=1) == "hello ana"


def test_rejected(app: Flask) -> None:
    """The issue's third example: an HTTP error at the handshake raises HandshakeRejected."""
    with pytest.raises(HandshakeRejected) as e:
        duplex.test_client().connect("/admin")
    assert e.value.status_code == 403  # also .headers and .body
    assert b"Forbidden" in e.value.body
    assert any(name.lower() == "content-type" for name, _ in e.value.headers)


def test_no_tcp_port_is_opened(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """Connections run over an in-memory socket pair: binding or connecting TCP would fail."""

    def refuse(self: socket.socket, *args: object) -> None:
        raise AssertionError(f"TCP socket used: {args}")

    monkeypatch.setattr(socket.socket, "bind", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    with duplex.test_client().connect("/echo") as ws:
        ws.send(b"\x00bin")
        assert ws.receive(timeout=1) == b"\x00bin"


def test_handler_exception_is_raised_from_with_exit_with_its_traceback(app: Flask) -> None:
    """The client sees 1011 and the test sees the handler's own exception."""
    with pytest.raises(KeyError, match="handler blew up") as error:  # noqa: SIM117
        with duplex.test_client().connect("/fail") as ws:
            ws.send("go")
            time.sleep(0.3)
    frames = [frame.name for frame in traceback.extract_tb(error.value.__traceback__)]
    assert "fail" in frames
    assert ws.close_code == 1011


def test_handler_exception_is_raised_from_receive(app: Flask) -> None:
    """receive() raises the handler's exception instead of a bare 1011 close."""
    with duplex.test_client().connect("/fail") as ws:
        ws.send("go")
        with pytest.raises(KeyError, match="handler blew up"):
            ws.receive(timeout=2)


def test_server_close_code_and_reason(app: Flask) -> None:
    """ws.close(4001, "bye") in the route shows as close_code and close_reason."""
    with duplex.test_client().connect("/bye") as ws, pytest.raises(ConnectionClosed) as closed:
        ws.receive(timeout=2)
    assert closed.value.code == 4001
    assert (ws.close_code, ws.close_reason) == (4001, "bye")


def test_iteration_ends_quietly_on_normal_close(app: Flask) -> None:
    """Iterating over the client side stops when the route returns."""
    with duplex.test_client().connect("/games/chess/live") as ws:
        assert list(ws) == ["watching chess"]
    assert ws.close_code == 1000


def test_hanging_handler_does_not_hang_the_test(app: Flask) -> None:
    """A route that never returns fails the test after the client's timeout."""
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="did not return"):  # noqa: SIM117
        with duplex.test_client(timeout=0.5).connect("/hang"):
            pass
    assert time.monotonic() - started < 2.5


def test_handler_that_never_uses_the_connection_times_out_the_handshake(app: Flask) -> None:
    """No 101 goes out until the handler uses the connection: the test says so."""
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="did not accept"):
        duplex.test_client(timeout=0.5).connect("/never-accepts")
    assert time.monotonic() - started < 2.5


def test_receive_without_timeout_gives_up_after_client_timeout(app: Flask) -> None:
    """receive() with no timeout raises TimeoutError rather than waiting forever."""
    with duplex.test_client(timeout=0.5).connect("/echo") as ws, pytest.raises(TimeoutError):
        ws.receive()


def test_limits_apply(app: Flask) -> None:
    """max_message_size is enforced: the route closes with 1009."""
    with duplex.test_client().connect("/small") as ws:
        ws.send("x" * 17)
        with pytest.raises(ConnectionClosed) as closed:
            ws.receive(timeout=2)
    assert closed.value.code == 1009


def test_origin_policy_applies(app: Flask) -> None:
    """A foreign Origin is refused with 403, as on a real server."""
    with pytest.raises(HandshakeRejected) as e:
        duplex.test_client().connect("/echo", headers={"Origin": "http://evil.example"})
    assert e.value.status_code == 403


def test_plain_request_line_checks_apply(app: Flask) -> None:
    """An unknown path is a 404 from Flask's own routing."""
    with pytest.raises(HandshakeRejected) as e:
        duplex.test_client().connect("/nowhere")
    assert e.value.status_code == 404


def test_request_context_query_and_hooks(app: Flask) -> None:
    """query_string, request.path and before_request hooks reach the handler."""
    with duplex.test_client().connect("/whoami", query_string={"q": "x y"}) as ws:
        assert ws.receive_json(timeout=1) == {"q": "x y", "g": "ran", "path": "/whoami"}
    with duplex.test_client().connect("/whoami?q=inline") as ws:
        assert ws.receive_json(timeout=1)["q"] == "inline"


def test_server_ping_is_answered(app: Flask) -> None:
    """Keepalive machinery runs: the route's ping gets the client's pong."""
    with duplex.test_client().connect("/ping") as ws:
        assert ws.receive(timeout=2) == "pong True"


def test_client_ping_is_answered(app: Flask) -> None:
    """The route's engine answers the client's pings."""
    with duplex.test_client().connect("/echo") as ws:
        assert ws.ping().wait(1)


def test_several_apps_each_get_their_own_connections() -> None:
    """Two apps from one Duplex: each test client reaches its own app."""
    shared = Duplex()

    @shared.route("/name")
    def name(ws: WebSocket) -> None:
        ws.send(current_app.name)

    first, second = Flask("first"), Flask("second")
    shared.init_app(first)
    shared.init_app(second)
    for app in (first, second):
        with app.extensions["duplex"].test_client().connect("/name") as ws:
            assert ws.receive(timeout=1) == app.name
    # With no app named, the newest app is served (see the app-factory tests below).
    with shared.test_client().connect("/name") as ws:
        assert ws.receive(timeout=1) == "second"


# -- which app duplex.test_client() serves, with the app-factory pattern ---------------

factory_duplex = Duplex()


@factory_duplex.route("/name")
def app_name(ws: WebSocket) -> None:
    ws.send(current_app.name)


def create_named_app(name: str) -> Flask:
    """Flask's tutorial shape: a module-level Duplex, init_app in the factory."""
    app = Flask(name)
    factory_duplex.init_app(app)
    return app


def served_name(client_app: Flask | None = None) -> str:
    client = factory_duplex.test_client(client_app.test_client() if client_app else None)
    with client.connect("/name") as ws:
        return str(ws.receive(timeout=5))


def test_test_client_serves_the_latest_app_while_older_ones_live() -> None:
    """Three live apps from one factory: duplex.test_client() serves the newest, every time."""
    apps = [create_named_app(f"factory-{index}") for index in range(3)]
    assert served_name() == "factory-2"
    assert served_name() == "factory-2"
    assert len(apps) == 3  # All three are alive: the choice did not wait for the collector.


def test_test_client_serves_the_current_app_context_first() -> None:
    """Inside an app context, that app is served, even when it is not the newest."""
    first, _second = create_named_app("context-first"), create_named_app("context-second")
    with first.app_context():
        assert served_name() == "context-first"
    assert served_name() == "context-second"


def test_test_client_serves_the_http_clients_app_first() -> None:
    """A Flask test client passed in names the app, whatever the context and the order."""
    first, second = create_named_app("http-first"), create_named_app("http-second")
    with second.app_context():
        assert served_name(first) == "http-first"


def test_test_client_falls_back_to_the_newest_app_still_alive() -> None:
    """When the newest app is gone, the one initialised before it is served."""
    import gc

    older = create_named_app("alive-older")
    newer = create_named_app("alive-newer")
    assert served_name() == "alive-newer"
    del newer
    gc.collect()
    assert served_name() == older.name


def test_a_client_dropped_before_its_replay_arrived_gets_the_replay_again() -> None:
    """Positions stay where the client was until the replay arrives, not at joined's offset."""
    history = Duplex()
    history.keep_history("feed")

    @history.route("/feed")
    def feed(ws: WebSocket) -> None:
        ws.join("feed")
        for message in ws:
            history.broadcast(message, to="feed")

    app = Flask("replay_again")
    history.init_app(app)
    client = history.test_client()
    with client.connect("/feed") as sender, client.connect("/feed") as away:
        assert json.loads(sender.receive())["duplex"] == "joined"
        assert json.loads(away.receive())["duplex"] == "joined"
        away.drop()
        for text in ("one", "two"):
            sender.send(text)
            assert json.loads(sender.receive())["data"] == text
        back = client.connect("/feed", resume=away)
        joined = json.loads(back.receive())
        assert joined["missed"] == 2
        back.drop()  # Before the replay was read.
        with client.connect("/feed", resume=back) as again:
            frames = [json.loads(again.receive()) for _ in range(3)]
    assert frames[0]["recovered"] is True
    assert [frame["data"] for frame in frames[1:]] == ["one", "two"]

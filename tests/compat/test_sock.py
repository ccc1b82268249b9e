"""flask_duplex.compat in process: flask-sock's API surface, URL map and options.

Connections here go through the real engine with Flask-Duplex's test client
(an in-memory socket pair, no server); the server tests are in test_servers.py.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from flask import Blueprint, Flask, url_for

from flask_duplex import ConnectionClosed as DuplexConnectionClosed
from flask_duplex import Duplex, DuplexError, WebSocket
from flask_duplex.compat import ConnectionClosed, Sock, SockWebSocket


def make_app(**config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(config)
    return app


def echo(ws: Any) -> None:
    while True:
        ws.send(ws.receive())


def client(app: Flask) -> Any:
    return app.extensions["duplex"].test_client(timeout=5)


# -- Sock: routes, apps, blueprints ----------------------------------------------


def test_route_returns_the_handler_and_adds_one_websocket_rule() -> None:
    """@sock.route keeps the function and adds one rule that only upgrades match."""
    app = make_app()
    sock = Sock(app)
    assert sock.route("/echo")(echo) is echo
    (rule,) = [rule for rule in app.url_map.iter_rules() if rule.rule == "/echo"]
    assert rule.websocket
    assert rule.endpoint == "echo"


def test_attributes_and_endpoints_follow_flask_sock() -> None:
    """sock.app and sock.bp are set as flask-sock sets them; endpoints get its names."""
    sock = Sock()
    assert sock.app is None and sock.bp is None
    sock.route("/early")(echo)
    assert sock.bp is not None and sock.bp.name == "__flask_sock"
    tools = Blueprint("tools", __name__, url_prefix="/tools")
    sock.route("/echo", bp=tools)(echo)
    app = make_app(SERVER_NAME="example.test")
    sock.init_app(app)
    app.register_blueprint(tools)
    assert sock.app is app

    def late(ws: Any) -> None:
        ws.close()

    sock.route("/late")(late)
    with app.app_context():
        assert url_for("__flask_sock.echo") == "ws://example.test/early"
        assert url_for("tools.echo") == "ws://example.test/tools/echo"
        assert url_for("late") == "ws://example.test/late"


def user_rules(app: Flask) -> list[tuple[str, bool]]:
    """The app's URL rules in the order Flask matches them, as (rule, websocket)."""
    return [(rule.rule, rule.websocket) for rule in app.url_map._rules]


def test_sock_on_an_app_adds_only_the_users_rule() -> None:
    """Sock(app) then @sock.route: the only URL rule is the WebSocket one, as under flask-sock."""
    app = Flask(__name__, static_folder=None)
    sock = Sock(app)
    sock.route("/ws")(echo)
    assert sock.app is app and sock.bp is None
    assert user_rules(app) == [("/ws", True)]


def test_sock_init_app_adds_only_the_early_routes_rule() -> None:
    """A route defined before init_app: after it, the app's only rule is that route."""
    app = Flask(__name__, static_folder=None)
    sock = Sock()
    sock.route("/ws")(echo)
    assert sock.app is None and sock.bp is not None
    sock.init_app(app)
    assert sock.app is app and sock.bp is not None
    assert user_rules(app) == [("/ws", True)]


def test_sock_blueprint_and_app_routes_keep_their_order() -> None:
    """A blueprint route, then an app route: the rules are exactly those two, in that order."""
    app = Flask(__name__, static_folder=None)
    tools = Blueprint("tools", __name__)
    sock = Sock()
    sock.route("/ws", bp=tools)(echo)
    assert sock.app is None and sock.bp is None
    sock.init_app(app)
    app.register_blueprint(tools, url_prefix="/tools")
    assert sock.app is app and sock.bp is None
    sock.route("/ws")(echo)
    assert user_rules(app) == [("/tools/ws", True), ("/ws", True)]


def test_browser_client_is_one_line_away_under_sock() -> None:
    """Sock serves no duplex.js of its own; register_client(app) adds it at its endpoint."""
    from flask_duplex import register_client

    app = Flask(__name__, static_folder=None)
    Sock(app)
    assert "flask_duplex.client" not in app.view_functions
    register_client(app)
    response = app.test_client().get("/_duplex/duplex.js")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    with app.test_request_context():
        assert url_for("flask_duplex.client") == "/_duplex/duplex.js"


def test_route_keyword_arguments_go_to_flask() -> None:
    """endpoint=, defaults= and strict_slashes= reach Flask's route()."""
    app = make_app()
    sock = Sock(app)

    @sock.route("/hello/", defaults={"name": "world"}, endpoint="hello", strict_slashes=False)
    def greet(ws: Any, name: str) -> None:
        ws.send(f"hello {name}")

    (rule,) = [rule for rule in app.url_map.iter_rules() if rule.endpoint == "hello"]
    assert rule.defaults == {"name": "world"}
    assert rule.strict_slashes is False
    with client(app).connect("/hello") as ws:
        assert ws.receive() == "hello world"


def test_one_sock_serves_every_app_of_a_factory() -> None:
    """Sock() + init_app: each app built by the factory serves the routes."""
    sock = Sock()
    sock.route("/echo")(echo)

    def create_app() -> Flask:
        app = make_app()
        sock.init_app(app)
        return app

    for app in (create_app(), create_app()):
        with client(app).connect("/echo") as ws:
            ws.send("hi")
            assert ws.receive() == "hi"


def test_blueprint_of_a_sock_never_given_an_app_binds_on_registration() -> None:
    """sock.route(bp=...) without init_app works once the app registers the blueprint."""
    sock = Sock()
    bp = Blueprint("live", __name__)
    sock.route("/echo", bp=bp)(echo)
    app = make_app()
    app.register_blueprint(bp)
    with client(app).connect("/echo") as ws:
        ws.send("hi")
        assert ws.receive() == "hi"


def test_plain_http_request_gets_400_as_under_flask_sock() -> None:
    """A GET without the upgrade does not match the WebSocket-only rule: 400."""
    app = make_app()
    Sock(app).route("/echo")(echo)
    assert app.test_client().get("/echo").status_code == 400


# -- Sock and Duplex together ----------------------------------------------------


def test_two_socks_on_one_app_share_its_duplex() -> None:
    """A Sock(app) and a Sock() bound later use the app's one Duplex."""
    app = make_app()
    first = Sock(app)
    second = Sock()
    second.init_app(app)
    assert first.duplex is second.duplex is app.extensions["duplex"].duplex


def test_sock_adopts_the_apps_duplex_and_refuses_another() -> None:
    """Sock(app) after Duplex(app) uses that Duplex; a different one raises RuntimeError."""
    app = make_app()
    duplex = Duplex(app)
    assert Sock(app).duplex is duplex
    assert Sock(app, duplex=duplex).duplex is duplex
    with pytest.raises(RuntimeError, match="already has another Duplex"):
        Sock(app, duplex=Duplex())


def test_sock_route_and_duplex_route_broadcast_to_one_room() -> None:
    """A Sock route in a room gets what a Duplex route broadcasts there."""
    app = make_app()
    duplex = Duplex(app)
    sock = Sock(app)

    @sock.route("/listen")
    def listen(ws: Any) -> None:
        ws.join("news")
        ws.send("ready")
        ws.receive()

    @duplex.route("/speak")
    def speak(ws: WebSocket) -> None:
        duplex.broadcast(ws.receive(), to="news")

    with client(app).connect("/listen") as listener:
        assert listener.receive() == "ready"
        with client(app).connect("/speak") as speaker:
            speaker.send("extra")
        assert listener.receive() == "extra"


# -- SOCK_SERVER_OPTIONS -----------------------------------------------------------


def proto(ws: Any) -> None:
    ws.send(str(ws.subprotocol))


def test_server_options_set_after_init_app_apply_at_connection_time() -> None:
    """flask-sock reads SOCK_SERVER_OPTIONS per connection; so does the adapter."""
    app = make_app()
    Sock(app).route("/proto")(proto)
    app.config["SOCK_SERVER_OPTIONS"] = {"subprotocols": "chat.v1"}
    with client(app).connect("/proto", subprotocols=["chat.v1"]) as ws:
        assert ws.receive() == "chat.v1"


def test_server_options_win_over_duplex_config_for_sock_routes() -> None:
    """SOCK_SERVER_OPTIONS overrides DUPLEX_* for Sock routes: max_message_size=None lifts 1 KiB."""
    app = make_app(DUPLEX_MAX_MESSAGE_SIZE=1024, SOCK_SERVER_OPTIONS={"max_message_size": None})
    Sock(app).route("/echo")(echo)
    with client(app).connect("/echo") as ws:
        ws.send("x" * 4096)
        assert ws.receive() == "x" * 4096


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (["ping_interval"], "must be a dict"),
        ({"ping_interval": "soon"}, "ping_interval"),
        ({"max_message_size": 1.5}, "max_message_size"),
        ({"subprotocols": 3}, "SOCK_SERVER_OPTIONS"),
    ],
)
def test_invalid_server_options_raise_value_error_at_init_app(value: Any, match: str) -> None:
    """A SOCK_SERVER_OPTIONS value that cannot work fails at set-up, naming the option."""
    with pytest.raises(ValueError, match=match):
        Sock(make_app(SOCK_SERVER_OPTIONS=value))


def test_unmapped_server_options_warn_once_per_app(caplog: pytest.LogCaptureFixture) -> None:
    """receive_bytes and a typo: one warning per app, none per connection, never an error."""
    caplog.set_level(logging.WARNING, logger="flask_duplex.compat")
    sock = Sock()
    sock.route("/echo")(echo)
    options = {"receive_bytes": 8192, "thread_class": threading.Thread, "ping_intervall": 5}
    apps = [make_app(SOCK_SERVER_OPTIONS=options) for _ in range(2)]
    for app in apps:
        sock.init_app(app)
        for _ in range(2):
            with client(app).connect("/echo") as ws:
                ws.send("hi")
                assert ws.receive() == "hi"
    warnings = [record for record in caplog.records if "SOCK_SERVER_OPTIONS" in record.message]
    assert len(warnings) == 2
    assert all(record.levelno == logging.WARNING for record in warnings)
    assert "'ping_intervall', 'receive_bytes', 'thread_class'" in warnings[0].message
    assert "'ping_intervall': not a flask-sock option either" in warnings[0].message


# -- the ws object -----------------------------------------------------------------


def test_send_converts_as_flask_sock_but_keeps_bytes_like_binary() -> None:
    """send(42) sends "42"; bytearray and memoryview go as binary, not as their repr."""
    app = make_app()

    @Sock(app).route("/send")
    def send(ws: Any) -> None:
        ws.send(42)
        ws.send({"a": 1})
        ws.send(bytearray(b"ab"))
        ws.send(memoryview(b"cd"))

    with client(app).connect("/send") as ws:
        assert [ws.receive() for _ in range(4)] == ["42", "{'a': 1}", b"ab", b"cd"]


def test_close_message_is_cut_to_fit_a_close_frame() -> None:
    """close(4000, 200 characters) sends the first 123 bytes, as flask-sock's wsproto did."""
    app = make_app()

    @Sock(app).route("/long")
    def long(ws: Any) -> None:
        ws.close(4000, "é" * 100)

    with client(app).connect("/long") as ws, pytest.raises(DuplexConnectionClosed) as info:
        ws.receive()
    assert info.value.code == 4000
    assert info.value.reason == "é" * 61


def test_close_again_does_nothing_and_receive_keeps_raising() -> None:
    """After close(): connected is False, close() again is a no-op, receive() raises each time."""
    app = make_app()
    seen: list[Any] = []

    @Sock(app).route("/twice")
    def twice(ws: Any) -> None:
        seen.append(ws.connected)
        ws.close(4001, "bye")
        ws.close()
        seen.append(ws.connected)
        for _ in range(2):
            try:
                ws.receive()
            except ConnectionClosed as exc:
                seen.append((exc.reason, exc.message))

    with client(app).connect("/twice") as ws, pytest.raises(DuplexConnectionClosed):
        ws.receive()
    assert seen == [True, False, (4001, "bye"), (4001, "bye")]


def test_close_code_that_may_not_be_sent_raises_value_error() -> None:
    """close(1005) would put a reserved code on the wire: ValueError, and the client sees 1011."""
    app = make_app()

    @Sock(app).route("/reserved")
    def reserved(ws: Any) -> None:
        ws.close(1005)

    with (
        pytest.raises(ValueError, match="1005 may not be sent"),
        client(app).connect("/reserved") as ws,
    ):
        ws.receive()


def test_handler_raising_connection_closed_ends_quietly_with_1000() -> None:
    """A handler may end itself with `raise ConnectionClosed()`: no error, close code 1000."""
    app = make_app()

    @Sock(app).route("/quit")
    def quit_(ws: Any) -> None:
        ws.receive()
        raise ConnectionClosed()

    with client(app).connect("/quit") as ws, pytest.raises(DuplexConnectionClosed) as info:
        ws.send("bye")
        ws.receive()
    assert info.value.code == 1000


def test_connection_closed_has_flask_socks_shape() -> None:
    """ConnectionClosed(reason, message) is a RuntimeError and a DuplexError; .code is .reason."""
    exc = ConnectionClosed()
    assert (exc.reason, exc.message, exc.code) == (1005, None, 1005)
    assert isinstance(exc, RuntimeError) and isinstance(exc, DuplexError)
    assert not isinstance(exc, DuplexConnectionClosed)
    assert str(ConnectionClosed(4000, "bye")) == "WebSocket connection closed with code 4000: bye"


def test_ws_reaches_flask_duplex_features() -> None:
    """environ, subprotocol, id, rooms, ping, JSON, iteration and the wrapped WebSocket."""
    app = make_app(SOCK_SERVER_OPTIONS={"subprotocols": ["v1"]})
    sock = Sock(app)
    seen: dict[str, Any] = {}

    @sock.route("/features/<name>")
    def features(ws: SockWebSocket, name: str) -> None:
        seen["ws"] = ws
        seen["environ"] = ws.environ["PATH_INFO"]
        ws.join(name)
        seen["rooms"] = ws.rooms
        seen["members"] = sock.duplex.members(name)
        seen["pong"] = ws.ping().wait(5)
        ws.send_json({"subprotocol": ws.subprotocol, "remote": ws.remote_addr})
        seen["json"] = ws.receive_json()
        seen["messages"] = list(ws)
        seen["after"] = (ws.connected, ws.close_reason, ws.close_message, ws.close_code)

    with client(app).connect("/features/lobby", subprotocols=["v1"]) as ws:
        assert ws.receive_json() == {"subprotocol": "v1", "remote": "127.0.0.1"}
        ws.send_json([1, 2])
        ws.send("a")
        ws.send(b"b")
        ws.close(1001, "away")
    wrapper = seen["ws"]
    assert isinstance(wrapper.websocket, WebSocket)
    assert seen["environ"] == "/features/lobby"
    assert seen["rooms"] == {"lobby"}
    assert seen["members"] == {wrapper.id}
    assert seen["pong"] is True
    assert seen["json"] == [1, 2]
    assert seen["messages"] == ["a", b"b"]
    assert seen["after"] == (False, 1001, "away", 1001)


def test_ws_accepts_attributes_of_the_handlers_own() -> None:
    """Handlers may store their own state on ws, as on simple-websocket's object."""
    app = make_app()

    @Sock(app).route("/nick")
    def nick(ws: Any) -> None:
        ws.nickname = ws.receive()
        ws.send(f"hello {ws.nickname}")

    with client(app).connect("/nick") as ws:
        ws.send("ana")
        assert ws.receive() == "hello ana"

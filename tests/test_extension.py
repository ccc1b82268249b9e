"""The Duplex extension: routes, blueprints, request context, options, errors."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import flask
import pytest
from flask import Blueprint, Flask
from websockets.exceptions import ConnectionClosed as ClientClosed
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from flask_duplex import Duplex, WebSocket
from tests.support.raw import RawClient
from tests.support.servers import Server


def http_get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_echo_text_and_binary(werkzeug_server: Server) -> None:
    """Text comes back as str and binary as bytes."""
    with connect(f"{werkzeug_server.url}/echo") as ws:
        ws.send("héllo")
        assert ws.recv(timeout=5) == "héllo"
        ws.send(b"\x00\x01\xff")
        assert ws.recv(timeout=5) == b"\x00\x01\xff"


def test_plain_get_gets_426_with_one_line_body(werkzeug_server: Server) -> None:
    """A browser or curl hitting a WebSocket URL gets 426, not a 500."""
    status, headers, body = http_get(f"{werkzeug_server.http}/echo")
    assert status == 426
    assert headers["Upgrade"] == "websocket"
    assert body.decode().count("\n") == 1
    assert "WebSocket" in body.decode()


def test_plain_http_routes_still_work(werkzeug_server: Server) -> None:
    """Ordinary Flask routes are untouched."""
    assert http_get(f"{werkzeug_server.http}/plain")[2] == b"plain http"


def test_handler_runs_in_request_context(werkzeug_server: Server) -> None:
    """request, session, g and before_request hooks all work in the handler."""
    login = urllib.request.urlopen(f"{werkzeug_server.http}/login/ana", timeout=5)
    cookie = login.headers["Set-Cookie"].split(";")[0]
    with connect(
        f"{werkzeug_server.url}/info?q=search", additional_headers={"Cookie": cookie}
    ) as ws:
        info = json.loads(ws.recv(timeout=5))
    assert info["path"] == "/info"
    assert info["query"] == "search"
    assert info["user"] == "ana"
    assert info["g"] == "hook ran"
    assert info["remote_addr"] == "127.0.0.1"
    assert info["state"] == "connecting"  # Read before the first send accepted it.
    assert isinstance(info["id"], str) and len(info["id"]) > 16  # Unique across processes.


def test_handler_may_set_its_own_attributes(werkzeug_server: Server) -> None:
    """A handler can keep its own state on ``ws`` (``ws.nickname = ...``)."""
    with connect(f"{werkzeug_server.url}/nickname") as ws:
        ws.send("ada")
        assert ws.recv(timeout=5) == "hello ada"


def test_each_connection_has_its_own_id(werkzeug_server: Server) -> None:
    """ws.id differs between connections."""
    ids = set()
    for _ in range(3):
        with connect(f"{werkzeug_server.url}/info") as ws:
            ids.add(json.loads(ws.recv(timeout=5))["id"])
    assert len(ids) == 3


def test_before_request_abort_rejects_handshake_with_its_status(werkzeug_server: Server) -> None:
    """abort(401) in a blueprint hook is the HTTP status the client sees."""
    with pytest.raises(InvalidStatus) as error:
        connect(f"{werkzeug_server.url}/private/room/blue")
    assert error.value.response.status_code == 401
    with connect(f"{werkzeug_server.url}/private/room/blue?token=secret") as ws:
        assert ws.recv(timeout=5) == "blue hook ran"


def test_nested_blueprint_with_url_prefix(werkzeug_server: Server) -> None:
    """A route on a blueprint nested in another gets both prefixes."""
    with connect(f"{werkzeug_server.url}/outer/inner/echo") as ws:
        ws.send("hi")
        assert ws.recv(timeout=5) == "nested hi"


def test_handler_exception_closes_1011_and_reaches_flask_log(werkzeug_server: Server) -> None:
    """An exception in the handler closes with 1011 and is logged by Flask."""
    with connect(f"{werkzeug_server.url}/raise") as ws:
        ws.send("go")
        with pytest.raises(ClientClosed):
            ws.recv(timeout=5)
    assert ws.protocol.close_code == 1011
    log = werkzeug_server.wait_for_log("RuntimeError: boom in handler")
    assert "Exception on /raise [GET]" in log


def test_server_close_code_and_reason_reach_client(werkzeug_server: Server) -> None:
    """ws.close(4001, "bye") on the server is what the client sees."""
    with connect(f"{werkzeug_server.url}/close/4001?reason=bye") as ws, pytest.raises(ClientClosed):
        ws.recv(timeout=5)
    assert ws.protocol.close_code == 4001
    assert ws.protocol.close_reason == "bye"


@pytest.mark.parametrize(
    ("origin", "path", "status"),
    [
        (None, "/echo", 101),
        ("http://127.0.0.1:{port}", "/echo", 101),
        ("https://127.0.0.1:{port}", "/echo", 101),
        ("http://evil.example", "/echo", 403),
        ("http://127.0.0.1:1", "/echo", 403),
        ("https://allowed.example", "/origins", 101),
        ("https://other.example", "/origins", 403),
    ],
)
def test_origin_policy(werkzeug_server: Server, origin: str | None, path: str, status: int) -> None:
    """No Origin or our own host is accepted; others need the origins option."""
    headers = {} if origin is None else {"Origin": origin.format(port=werkzeug_server.port)}
    client = RawClient(werkzeug_server.port, path, headers)
    try:
        assert client.status == status
        if status == 403:
            assert b"not allowed" in client.read_until_eof()
    finally:
        client.close()


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [(["chat.v1"], "chat.v1"), (["chat.v1", "chat.v2"], "chat.v2"), (None, "None")],
)
def test_subprotocol_in_server_preference_order(
    werkzeug_server: Server, offered: list[str] | None, chosen: str
) -> None:
    """The server's most preferred shared subprotocol wins; none shared means None."""
    with connect(f"{werkzeug_server.url}/proto", subprotocols=offered) as ws:  # type: ignore[arg-type]
        assert ws.recv(timeout=5) == chosen
        assert str(ws.subprotocol) == chosen


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Sec-WebSocket-Key": None}, 400),
        ({"Sec-WebSocket-Key": "short"}, 400),
        ({"Sec-WebSocket-Version": "8"}, 400),
        ({"Connection": "keep-alive"}, 426),
        # RFC 6455 4.2.1: the header is a list of tokens whenever it is present,
        # also on a route that speaks no subprotocol.
        ({"Sec-WebSocket-Protocol": "ch\u00e4t"}, 400),
        ({"Sec-WebSocket-Protocol": "chat v2"}, 400),
        ({"Sec-WebSocket-Protocol": ""}, 400),
    ],
)
def test_bad_handshake_gets_4xx(
    werkzeug_server: Server, headers: dict[str, str | None], status: int
) -> None:
    """A malformed upgrade request gets a 4xx with a readable body, never a 500."""
    client = RawClient(werkzeug_server.port, "/echo", headers)
    try:
        assert client.status == status
        assert b"WebSocket" in client.read_until_eof()
    finally:
        client.close()


def test_http_1_0_upgrade_gets_505(werkzeug_server: Server) -> None:
    """A WebSocket handshake needs HTTP/1.1; an older request line gets 505, not a 101."""
    client = RawClient(werkzeug_server.port, "/echo", http_version="HTTP/1.0")
    try:
        assert client.status == 505
        assert b"HTTP/1.1" in client.read_until_eof()
    finally:
        client.close()


def test_upgrade_with_a_body_gets_400(werkzeug_server: Server) -> None:
    """A handshake request carries no body; one that does is refused before any frame is read."""
    client = RawClient(werkzeug_server.port, "/echo", {"Content-Length": "5"}, body=b"hello")
    try:
        assert client.status == 400
        assert b"no body" in client.read_until_eof()
    finally:
        client.close()


def test_post_to_websocket_route_is_405(werkzeug_server: Server) -> None:
    """Only GET can open a WebSocket."""
    request = urllib.request.Request(f"{werkzeug_server.http}/echo", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=5)
    assert error.value.code == 405


def test_unknown_route_option_raises_type_error_naming_it() -> None:
    """A typo in an option is caught when the route is defined."""
    duplex = Duplex()
    with pytest.raises(TypeError, match="max_mesage_size"):
        duplex.route("/x", max_mesage_size=10)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("max_message_size", -1),
        ("ping_interval", "soon"),
        ("close_timeout", 0),
        ("compression", "yes"),
        ("subprotocols", "chat"),
        ("origins", [1]),
    ],
)
def test_invalid_option_value_raises_value_error_naming_it(option: str, value: object) -> None:
    """A route option of the wrong type or range is refused at definition time."""
    with pytest.raises(ValueError, match=option):
        Duplex().route("/x", **{option: value})


def test_invalid_config_value_raises_at_init_app() -> None:
    """A bad DUPLEX_* config value is reported by init_app."""
    app = Flask(__name__)
    app.config["DUPLEX_PING_TIMEOUT"] = -5
    with pytest.raises(ValueError, match="ping_timeout"):
        Duplex(app)


def test_route_returns_the_function_so_decorators_stack() -> None:
    """@duplex.route leaves the function usable and stackable."""
    app = Flask(__name__)
    duplex = Duplex(app)

    @duplex.route("/a")
    @duplex.route("/b", endpoint="b")
    def handler(ws: WebSocket) -> None:
        """Docs."""

    assert handler.__name__ == "handler"
    rules = {rule.rule: rule.endpoint for rule in app.url_map.iter_rules()}
    assert rules["/a"] == "handler"
    assert rules["/b"] == "b"


def test_app_factory_and_several_apps_keep_separate_state() -> None:
    """One Duplex serves several apps; each has its own state and config."""
    duplex = Duplex()

    @duplex.route("/ws")
    def handler(ws: WebSocket) -> None:
        pass

    first, second = Flask("first"), Flask("second")
    second.config["DUPLEX_MAX_MESSAGE_SIZE"] = 10
    duplex.init_app(first)
    duplex.init_app(second)
    assert first.extensions["duplex"] is not second.extensions["duplex"]
    assert first.extensions["duplex"].duplex is duplex
    assert first.config["DUPLEX_MAX_MESSAGE_SIZE"] == 2**20
    assert second.config["DUPLEX_MAX_MESSAGE_SIZE"] == 10
    for app in (first, second):
        assert "/ws" in {rule.rule for rule in app.url_map.iter_rules()}


def test_route_on_blueprint_before_registration() -> None:
    """A blueprint route works however the blueprint is mounted."""
    bp = Blueprint("bp", __name__)
    duplex = Duplex()

    @duplex.route("/live", bp=bp)
    def live(ws: WebSocket) -> None:
        pass

    app = Flask(__name__)
    duplex.init_app(app)
    app.register_blueprint(bp, url_prefix="/api")
    assert "/api/live" in {rule.rule for rule in app.url_map.iter_rules()}


def test_broadcast_reaches_compressed_and_plain_connections_alike(werkzeug_server: Server) -> None:
    """One broadcast reaches a connection that compresses and one that does not, text and bytes."""
    url = f"{werkzeug_server.url}/room/mixed"
    with connect(url, compression=None) as plain, connect(url) as deflate:
        assert plain.recv(timeout=5).endswith(" joined")  # deflate's arrival
        assert deflate.protocol.extensions and not plain.protocol.extensions
        for message in ("héllo " * 50, bytes(range(256)) * 40):
            plain.send(message)
            assert plain.recv(timeout=5) == message
            assert deflate.recv(timeout=5) == message


def test_url_for_a_websocket_route_is_a_path_the_page_resolves() -> None:
    """url_for(endpoint) of a WebSocket route is "/ws/path", not ws:// built from the request."""
    duplex = Duplex()
    app = Flask(__name__)

    @duplex.route("/live/feed")
    def feed(ws: WebSocket) -> None:
        ws.send("hi")

    duplex.init_app(app)
    with app.test_request_context("/", base_url="https://proxied.example"):
        assert flask.url_for("feed") == "/live/feed"
    with duplex.test_client().connect("/live/feed") as ws:
        assert ws.receive(timeout=2) == "hi"


def test_duplex_serves_the_browser_client_unless_told_not_to() -> None:
    """Duplex(app) serves duplex.js at its endpoint; Duplex(app, client=False) adds no route."""
    served, bare = Flask("served"), Flask("bare", static_folder=None)
    Duplex(served)
    Duplex(bare, client=False)
    assert served.test_client().get("/_duplex/duplex.js").status_code == 200
    assert "flask_duplex.client" not in bare.view_functions
    assert list(bare.url_map.iter_rules()) == []

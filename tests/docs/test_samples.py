"""Every Python sample of the README and docs/ runs, and does what its page says.

How samples are found and marked is in tests/support/samples.py and
docs/development.md. Each page's samples run in order in one namespace; the
``PRELUDES`` below give a page the names its prose takes as given (an ``app``
and its ``duplex``, a ``login_required`` decorator); then the checks named by
``<!-- sample: NAME -->`` markers connect to the routes the samples defined,
with the library's own test client. A sample that calls the library with an
argument it no longer takes fails here, at the line of the page.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, request

import flask_duplex.compat
from flask_duplex import ConnectionClosed, Duplex, HandshakeRejected, WebSocket
from tests.support.realtime_routes import login_required
from tests.support.samples import Page, Run, Sample, defined_tests, pages, run_page

PAGES = pages()
WAIT = 3.0  # seconds any one message may take

Namespace = dict[str, Any]
CHECKS: dict[str, Callable[[Namespace], None]] = {}


def check(name: str) -> Callable[[Callable[[Namespace], None]], Callable[[Namespace], None]]:
    """Register the check of the samples marked ``<!-- sample: NAME -->``."""

    def register(function: Callable[[Namespace], None]) -> Callable[[Namespace], None]:
        CHECKS[name] = function
        return function

    return register


# -- what pages take as given -------------------------------------------------


class Game:
    """The game the 'once per deployment' sample ticks: it counts ticks and moves."""

    def __init__(self) -> None:
        self.players = {"host"}  # never empty: the loop runs until the task is cancelled
        self.moves: list[str] = []
        self.ticks = 0

    def apply(self, move: dict[str, str]) -> None:
        self.moves.append(move["move"])

    def tick(self) -> dict[str, Any]:
        self.ticks += 1
        return {"tick": self.ticks, "moves": list(self.moves)}


def app_and_duplex() -> Namespace:
    app = Flask("sample_app")
    app.secret_key = "samples"
    return {"app": app, "duplex": Duplex(app)}


def deployment_prelude() -> Namespace:
    names = app_and_duplex()

    @names["duplex"].route("/whoami")
    def whoami(ws: WebSocket) -> None:
        ws.send(ws.remote_addr or "")

    return names


PRELUDES: dict[str, Callable[[], Namespace]] = {
    "docs/routes.md": lambda: {"login_required": login_required},
    "docs/realtime-apps.md": lambda: {
        **app_and_duplex(),
        "time": time,
        "Game": Game,
        "login_required": login_required,
    },
    "docs/rooms.md": lambda: {
        **app_and_duplex(),
        "request": request,
        "conn_id": "a-connection-that-left",
    },
    "docs/recovery.md": lambda: {**app_and_duplex(), "load_items": lambda: ["first"]},
    "docs/scaling.md": lambda: {"Flask": Flask, "os": os, "duplex": Duplex()},
    "docs/deployment.md": deployment_prelude,
    "docs/migrating-from-flask-sock.md": lambda: {"app": Flask("sample_app")},
    "docs/api/configuration.md": app_and_duplex,
}


# -- the tests ----------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_samples_run(page: Page) -> None:
    """The page's samples run in order; then each one's check, or its own test functions, pass."""
    prelude = PRELUDES.get(page.name, dict)()
    run: Run | None = None
    try:
        run = run_page(page, prelude)
        for sample, namespace in run.after:
            if sample.kind == "sample":
                assert sample.name is not None
                CHECKS[sample.name](namespace)
            for call in defined_tests(sample, namespace):
                call()
    finally:
        _clean_up(prelude, run)


def test_every_sample_is_run_or_marked() -> None:
    """A sample that runs checks itself, or names its check; every check has its sample."""
    unchecked = []
    named = set()
    for page in PAGES:
        for sample in page.samples:
            if sample.kind == "sample":
                assert sample.name in CHECKS, f"{sample.where}: no check named {sample.name!r}"
                named.add(sample.name)
            elif sample.kind == "run" and not sample.checks_itself():
                unchecked.append(sample.where)
    assert not unchecked, (
        "these samples run but check nothing: add an assert, a test_ function, or mark them "
        f"'<!-- sample: NAME -->' with a check in this file: {unchecked}"
    )
    assert not set(CHECKS) - named, f"checks whose sample is gone: {set(CHECKS) - named}"


def test_the_pages_have_samples_to_run() -> None:
    """The collector finds the README's samples, and fragments are the exception."""
    kinds = [sample.kind for page in PAGES for sample in page.samples]
    assert "README.md" in [page.name for page in PAGES]
    assert kinds.count("fragment") < len(kinds) / 3


def _clean_up(prelude: Namespace, run: Run | None) -> None:
    """Close every connection, task and subscription the page's apps still have."""
    values: list[Any] = list(prelude.values())
    if run is not None:
        for _, namespace in run.after:
            values += list(namespace.values())
        for module in run.modules:
            values += list(vars(module).values())
            sys.modules.pop(module.__name__, None)
    apps = {id(value): value for value in values if isinstance(value, Flask)}
    for app in apps.values():
        state = app.extensions.get("duplex")
        if state is not None:
            state.close_all(1001, "", timeout=WAIT)
            state.close()


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _receive_until(ws: Any, matches: Callable[[Any], bool]) -> Any:
    """The first JSON message that ``matches``, skipping others."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        message = ws.receive_json(timeout=deadline - time.monotonic())
        if message is not None and matches(message):
            return message
    raise AssertionError("no matching message in time")


# -- the checks, one per marked sample ----------------------------------------


@check("quickstart-echo")
def echo_route_echoes(ns: Namespace) -> None:
    with ns["duplex"].test_client().connect("/echo") as ws:
        ws.send("hello")
        assert ws.receive(timeout=WAIT) == "hello"
        ws.send(b"\x00\x01")
        assert ws.receive(timeout=WAIT) == b"\x00\x01"
    assert ws.close_code == 1000


def _two_in_room(duplex: Duplex, path: str, room: str) -> tuple[Any, Any]:
    client = duplex.test_client()
    first = client.connect(path)
    second = client.connect(path)
    _wait_for(lambda: len(duplex.members(room)) == 2, f"two members in {room}")
    return first, second


@check("quickstart-room")
def room_broadcasts_to_its_members(ns: Namespace) -> None:
    first, second = _two_in_room(ns["duplex"], "/room/blue", "blue")
    with first, second:
        first.send("hi")
        assert first.receive(timeout=WAIT) == "hi"
        assert second.receive(timeout=WAIT) == "hi"


@check("rooms-chat")
def room_announces_and_broadcasts(ns: Namespace) -> None:
    client = ns["duplex"].test_client()
    with client.connect("/room/blue") as first:
        _wait_for(lambda: len(ns["duplex"].members("blue")) == 1, "the first member")
        with client.connect("/room/blue") as second:
            assert first.receive(timeout=WAIT).endswith(" joined")
            second.send("hi")
            assert first.receive(timeout=WAIT) == "hi"
            assert second.receive(timeout=WAIT) == "hi"


@check("rooms-api")
def rooms_api_announces_over_http(ns: Namespace) -> None:
    room_announces_and_broadcasts(ns)
    first, second = _two_in_room(ns["duplex"], "/room/lobby", "lobby")
    with first, second:
        assert first.receive(timeout=WAIT).endswith(" joined")
        response = ns["app"].test_client().post("/announce", data={"text": "tea"})
        assert response.status_code == 204
        assert first.receive_json(timeout=WAIT) == {"text": "tea"}
        assert second.receive_json(timeout=WAIT) == {"text": "tea"}


@check("recovery-api")
def a_returning_client_recovers_and_a_new_one_gets_the_state(ns: Namespace) -> None:
    duplex = ns["duplex"]
    client = duplex.test_client()
    with client.connect("/feed") as first:
        assert first.positions.update(first.receive(timeout=WAIT)) is not None  # joined
        assert first.receive_json(timeout=WAIT) == {"type": "state", "items": ["first"]}
    duplex.broadcast({"type": "item", "text": "missed"}, to="feed")
    with client.connect("/feed", resume=first) as back:
        joined = back.receive_json(timeout=WAIT)
        assert (joined["duplex"], joined["recovered"], joined["missed"]) == ("joined", True, 1)
        missed = back.receive_json(timeout=WAIT)
        assert missed["data"] == {"type": "item", "text": "missed"}
        back.send("live")
        assert back.receive_json(timeout=WAIT)["data"] == {"type": "item", "text": "live"}


@check("rooms-background-task")
def task_broadcasts_to_the_room(ns: Namespace) -> None:
    with ns["duplex"].test_client().connect("/room/lobby") as ws:
        assert "time" in _receive_until(ws, lambda m: isinstance(m, dict) and "time" in m)
    ns["task"].cancel()
    assert ns["task"].join(WAIT)


@check("routes-blueprint")
def blueprint_route_gets_its_arguments(ns: Namespace) -> None:
    client = ns["duplex"].test_client()
    with client.connect("/games/7/ws") as ws:
        assert ws.receive_json(timeout=WAIT) == {"game": 7}
        ws.send("up")
        assert ws.receive_json(timeout=WAIT) == {"game": 7, "move": "up"}
    with client.connect("/games/7/ws") as ws:
        ws.receive(timeout=WAIT)
        ws.send(b"x" * (64 * 1024 + 1))  # over the route's max_message_size
        with pytest.raises(ConnectionClosed) as closed:
            ws.receive(timeout=WAIT)
        assert closed.value.code == 1009


@check("login-required")
def login_required_turns_away_before_the_upgrade(ns: Namespace) -> None:
    with pytest.raises(HandshakeRejected) as rejected:
        ns["duplex"].test_client().connect("/admin/live")
    assert rejected.value.status_code == 401


@check("background-clock")
def clock_ticks_into_its_room(ns: Namespace) -> None:
    with ns["duplex"].test_client().connect("/clock") as ws:
        assert isinstance(ws.receive_json(timeout=WAIT)["now"], float)
    ns["task"].cancel()
    assert ns["task"].join(WAIT)


@check("deployment-task")
def game_loop_applies_moves_from_the_channel(ns: Namespace) -> None:
    with ns["duplex"].test_client().connect("/play/r1") as ws:
        _wait_for(lambda: len(ns["duplex"].members("r1")) == 1, "the player in r1")
        first = _receive_until(ws, lambda state: "tick" in state)
        ws.send("up")
        later = _receive_until(ws, lambda state: state["moves"] == ["up"])
        assert later["tick"] > first["tick"]


@check("resume-chat")
def chat_resumes_after_the_last_id(ns: Namespace) -> None:
    client = ns["duplex"].test_client()
    with client.connect("/chat") as ana:
        ana.send_json({"type": "resume", "last_id": None})
        ana.send_json({"text": "one"})
        one = ana.receive_json(timeout=WAIT)
        assert one["text"] == "one"
    with client.connect("/chat") as ben:  # was offline: catches up from its last id
        ben.send_json({"type": "resume", "last_id": one["id"] - 1})
        assert ben.receive_json(timeout=WAIT) == one
        ben.send_json({"text": "two"})
        assert ben.receive_json(timeout=WAIT)["id"] > one["id"]


@check("compat-import")
def compat_names_are_the_adapters(ns: Namespace) -> None:
    assert ns["Sock"] is flask_duplex.compat.Sock
    assert ns["ConnectionClosed"] is flask_duplex.compat.ConnectionClosed


@check("compat-both")
def sock_and_duplex_routes_share_rooms(ns: Namespace) -> None:
    duplex = ns["duplex"]
    first, second = _two_in_room(duplex, "/room/blue", "blue")
    with first, second:
        first.send("hi")  # the Sock route excludes the sender
        assert second.receive(timeout=WAIT) == "hi"
    first, second = _two_in_room(duplex, "/v2/room/green", "green")
    with first, second:
        first.send("hi")
        assert first.receive(timeout=WAIT) == "hi"
        assert second.receive(timeout=WAIT) == "hi"


@check("compat-client")
def registered_client_is_served(ns: Namespace) -> None:
    response = ns["app"].test_client().get("/_duplex/duplex.js")
    assert response.status_code == 200
    assert b"export function connect" in response.data


@check("proxy-fix")
def proxy_fix_gives_the_forwarded_address(ns: Namespace) -> None:
    headers = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    with ns["duplex"].test_client().connect("/whoami", headers=headers) as ws:
        assert ws.receive(timeout=WAIT) == "203.0.113.9"


@check("scaling-factory")
def factory_reads_the_message_queue(ns: Namespace) -> None:
    app = ns["create_app"]()
    assert app.extensions["duplex"].duplex is ns["duplex"]
    assert app.config["DUPLEX_MESSAGE_QUEUE"] == os.environ.get("DUPLEX_MESSAGE_QUEUE")


@check("route-options")
def route_option_overrides_the_default_limit(ns: Namespace) -> None:
    big = b"x" * (2 * 2**20)  # twice the default max_message_size
    with ns["duplex"].test_client().connect("/upload") as ws:
        ws.send(big)
        assert ws.receive(timeout=WAIT) == str(len(big))


def test_a_sample_that_does_not_check_itself_is_reported(tmp_path: Any) -> None:
    """The rule above is enforced: a bare sample with no assert is told apart."""
    sample = Sample(tmp_path / "page.md", 1, "x = 1\n", "run")
    assert not sample.checks_itself()
    assert Sample(tmp_path / "page.md", 1, "assert True\n", "run").checks_itself()

"""The browser client, duplex.js, in rooms with history: a page that was away gets what it missed.

The page (``/client-test/``, see test_client.py) reaches the server through a
cable the test can pull (``tests.support.cable``); someone else in the room
writes on a connection of their own, straight to the server. The test
routes' rooms (``client-test:*``) keep their last 3 messages.

Going away is Playwright's ``set_offline(True)`` plus a pulled cable: offline,
Chromium fails every new connection at once but keeps an open WebSocket, only
holding its frames back until it is online again (nothing is lost, nothing is
noticed). A network that really went away takes the TCP connection with it,
which the pulled cable does.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page, expect
from websockets.sync.client import ClientConnection, connect

from tests.browser.test_client import (
    BACK_ONLINE_MS,
    FAST,
    PAGE,
    recorded,
    start,
    state_of,
    wait_for_messages,
)
from tests.support.cable import Cable
from tests.support.servers import Server, free_port, running


@pytest.fixture
def cable(werkzeug_server: Server) -> Iterator[Cable]:
    cable = Cable(werkzeug_server.port)
    yield cable
    cable.close()


@contextmanager
def writer(server: Server, room: str) -> Iterator[ClientConnection]:
    """Someone else in the room, connected straight to the server."""
    with connect(f"{server.url}/client-test/room/{room}", proxy=None, open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["duplex"] == "joined"
        yield ws


def heard(ws: ClientConnection) -> Any:
    """The next message of the room the writer's connection gets (bytes decoded)."""
    while True:
        frame = json.loads(ws.recv(timeout=10))
        if frame["duplex"] == "message":
            return base64.b64decode(frame["binary"]) if "binary" in frame else frame["data"]


def say(ws: ClientConnection, message: str | bytes) -> None:
    """Broadcast ``message`` to the room; return once it is numbered and on its way to all."""
    ws.send(message)
    assert heard(ws) == (json.loads(message) if message[:1] in ("{", b"{") else message)


def go_away(page: Page, cable: Cable) -> None:
    """The page's network goes: its connection drops, and it cannot open another."""
    page.context.set_offline(True)
    cable.unplug()  # Offline, Chromium keeps the open WebSocket: the cable takes it.
    cable.plug()


def come_back(page: Page) -> None:
    page.context.set_offline(False)


def last_url(page: Page, who: str) -> tuple[str, dict[str, list[str]]]:
    """The path and the query of the last WebSocket opened with ``?who=...``."""
    urls = [urlsplit(url) for url in page.evaluate("opened")]
    mine = [url for url in urls if parse_qs(url.query)["who"] == [who]]
    return mine[-1].path, parse_qs(mine[-1].query)


def test_a_page_back_online_gets_what_it_missed_once_in_order(
    page: Page, werkzeug_server: Server, cable: Cable
) -> None:
    """Away, then back: what was missed (text, bytes, objects) comes once, in order: recovered."""
    page.goto(f"{cable.url}{PAGE}")
    start(page, "main", "/client-test/room/away?who=main", FAST)
    start(page, "plain", "/client-test/room/away?who=plain", {**FAST, "recover": False})
    for name in ("main", "plain"):
        expect(state_of(page, name)).to_have_text("online")
        page.wait_for_function("(name) => clients[name].joins.length === 1", arg=name)
    first = recorded(page, "main", "joins")[0]
    epoch = first["epoch"]
    assert first == {
        "room": "client-test:away",
        "recovered": False,
        "reason": None,  # No position to recover: a first join.
        "missed": 0,
        "epoch": epoch,
        "offset": 0,
    }
    assert last_url(page, "main") == ("/client-test/room/away", {"who": ["main"]})

    with writer(werkzeug_server, "away") as other:
        say(other, "before")
        wait_for_messages(page, "main", 1)
        page.evaluate("clients.main.client.send({others: 'psst'})")  # Not to itself.
        assert heard(other) == "psst"
        page.wait_for_function("() => clients.main.client.positions['client-test:away'][1] === 2")

        go_away(page, cable)
        for name in ("main", "plain"):
            expect(state_of(page, name)).to_have_text("reconnecting")
        say(other, "one")
        say(other, b"\x00\xfftwo")
        say(other, '{"three": [3]}')
        expect(state_of(page, "main")).to_have_text("reconnecting")

        come_back(page)
        for name in ("main", "plain"):
            expect(state_of(page, name)).to_have_text("online", timeout=BACK_ONLINE_MS)
        wait_for_messages(page, "main", 4)
        say(other, "after")
        wait_for_messages(page, "main", 5)
        wait_for_messages(page, "plain", 3)

    assert recorded(page, "main", "messages") == [
        "before",
        "one",
        {"bytes": [0, 255, *b"two"]},
        {"three": [3]},
        "after",
    ]
    assert recorded(page, "main", "joins")[1:] == [
        {
            "room": "client-test:away",
            "recovered": True,
            "reason": None,
            "missed": 3,
            "epoch": epoch,
            "offset": 5,
        }
    ]
    assert recorded(page, "main", "states") == ["connecting", "online", "reconnecting", "online"]
    path, query = last_url(page, "main")
    assert path == "/client-test/room/away"
    assert query["who"] == ["main"]  # The URL's own query stays.
    assert json.loads(query["duplex-since"][0]) == {"client-test:away": [epoch, 2]}
    assert page.evaluate("clients.main.client.positions") == {"client-test:away": [epoch, 6]}

    # Without recovery: no position handed back, nothing replayed, positions still read.
    assert last_url(page, "plain") == ("/client-test/room/away", {"who": ["plain"]})
    assert recorded(page, "plain", "messages") == ["before", "psst", "after"]
    assert [join["recovered"] for join in recorded(page, "plain", "joins")] == [False, False]
    assert recorded(page, "plain", "joins")[1]["reason"] is None
    assert page.evaluate("clients.plain.client.positions") == {"client-test:away": [epoch, 6]}


def test_a_page_away_for_more_than_the_history_is_told_too_old(
    page: Page, werkzeug_server: Server, cable: Cable
) -> None:
    """4 missed where 3 are kept: joined says too_old, nothing is replayed, live goes on."""
    page.goto(f"{cable.url}{PAGE}")
    start(page, "main", "/client-test/room/long-away", FAST)
    page.wait_for_function("() => clients.main.joins.length === 1")
    with writer(werkzeug_server, "long-away") as other:
        say(other, "before")
        wait_for_messages(page, "main", 1)
        go_away(page, cable)
        expect(state_of(page, "main")).to_have_text("reconnecting")
        for n in range(4):
            say(other, f"missed {n}")
        come_back(page)
        page.wait_for_function("() => clients.main.joins.length === 2", timeout=BACK_ONLINE_MS)
        say(other, "live")
        wait_for_messages(page, "main", 2)
    joined = recorded(page, "main", "joins")[1]
    assert joined == {
        "room": "client-test:long-away",
        "recovered": False,
        "reason": "too_old",
        "missed": 0,
        "epoch": recorded(page, "main", "joins")[0]["epoch"],
        "offset": 5,
    }
    assert recorded(page, "main", "messages") == ["before", "live"]


def test_after_a_server_restart_the_page_is_told_the_epoch_changed(page: Page) -> None:
    """A restarted server lost its history: joined says epoch_changed, and live goes on."""
    port = free_port()
    with running("werkzeug", port=port) as server:
        page.goto(f"{server.http}{PAGE}")
        start(page, "main", "/client-test/room/restart", FAST)
        page.wait_for_function("() => clients.main.joins.length === 1")
        with writer(server, "restart") as other:
            say(other, "before")
            wait_for_messages(page, "main", 1)
        old = page.evaluate("clients.main.client.positions")["client-test:restart"]
        server.kill()
        expect(state_of(page, "main")).to_have_text("reconnecting")
    with running("werkzeug", port=port) as server:
        page.wait_for_function("() => clients.main.joins.length === 2", timeout=BACK_ONLINE_MS)
        with writer(server, "restart") as other:
            say(other, "after")
        wait_for_messages(page, "main", 2)
    joined = recorded(page, "main", "joins")[1]
    assert joined["reason"] == "epoch_changed" and joined["recovered"] is False
    assert joined["epoch"] != old[0] and joined["offset"] == 0 and joined["missed"] == 0
    assert recorded(page, "main", "messages") == ["before", "after"]
    assert page.evaluate("clients.main.client.positions") == {
        "client-test:restart": [joined["epoch"], 1]
    }

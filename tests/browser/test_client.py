"""The browser client, duplex.js, in Chromium against real servers.

The test page (``/client-test/`` of the test app) imports the module by its
``url_for`` URL and records, per client it starts, the states, messages, drops
and retries; ``opened`` lists the URL of every WebSocket the page created.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.support.servers import Server, free_port, running

PAGE = "/client-test/"
ECHO = "/client-test/echo"
MISSING = "/client-test/missing"  # Answers 404: every attempt to connect fails.
FAST = {"retryDelay": 50, "maxRetryDelay": 200}
# Startup of a server under load, plus one retry at the default cap of 5 s.
BACK_ONLINE_MS = 15_000
ONLINE = ["connecting", "online"]


def open_page(page: Page, server: Server) -> None:
    page.goto(f"{server.http}{PAGE}")


def start(page: Page, name: str, path: str, options: dict[str, Any] | None = None) -> None:
    """Start a client named ``name`` on the page: ``connect(path, options)``."""
    page.evaluate(
        "([name, path, options]) => { start(name, path, options); }", [name, path, options or {}]
    )


def send(page: Page, name: str, value: Any) -> bool:
    """The result of ``client.send(value)``: whether it went out at once."""
    result: bool = page.evaluate(
        "([name, value]) => clients[name].client.send(value)", [name, value]
    )
    return result


def recorded(page: Page, name: str, field: str) -> Any:
    return page.evaluate("([name, field]) => clients[name][field]", [name, field])


def state_of(page: Page, name: str) -> Locator:
    return page.locator(f"#{name} .state")


def attempts(page: Page, path: str) -> int:
    """How many WebSockets the page created to ``path``."""
    count: int = page.evaluate(
        "(path) => opened.filter((url) => new URL(url).pathname + new URL(url).search === path)"
        ".length",
        path,
    )
    return count


def wait_for_attempts(page: Page, path: str, count: int) -> None:
    page.wait_for_function(
        "([path, count]) => opened.filter("
        "(url) => new URL(url).pathname + new URL(url).search === path).length >= count",
        arg=[path, count],
    )


def wait_for_messages(page: Page, name: str, count: int) -> None:
    page.wait_for_function(
        "([name, count]) => clients[name].messages.length >= count", arg=[name, count]
    )


def test_states_go_connecting_then_online(page: Page, werkzeug_server: Server) -> None:
    """A new client is connecting, then online, with one WebSocket to its route."""
    open_page(page, werkzeug_server)
    start(page, "main", ECHO)
    expect(state_of(page, "main")).to_have_text("online")
    assert recorded(page, "main", "states") == ["connecting", "online"]
    assert page.evaluate("opened") == [f"{werkzeug_server.url}{ECHO}"]


def test_json_round_trip(page: Page, werkzeug_server: Server) -> None:
    """A value sent as JSON comes back decoded, as the message event's detail."""
    value = {"text": "héllo ✓", "numbers": [1, 2.5, -3], "nothing": None, "yes": True}
    open_page(page, werkzeug_server)
    start(page, "main", ECHO)
    expect(state_of(page, "main")).to_have_text("online")
    assert send(page, "main", value) is True
    wait_for_messages(page, "main", 1)
    assert recorded(page, "main", "messages") == [{"id": 1, "echo": value}]


def test_a_message_that_is_not_json_is_reported_not_delivered(
    page: Page, werkzeug_server: Server
) -> None:
    """Text that is not JSON comes as an invalid event, and the connection stays up."""
    open_page(page, werkzeug_server)
    start(page, "main", ECHO)
    expect(state_of(page, "main")).to_have_text("online")
    send(page, "main", {"type": "raw", "text": "not { json"})
    send(page, "main", "after")
    wait_for_messages(page, "main", 1)
    assert recorded(page, "main", "invalid") == ["not { json"]
    assert recorded(page, "main", "messages") == [{"id": 1, "echo": "after"}]
    assert recorded(page, "main", "states") == ["connecting", "online"]


def test_sends_while_offline_are_queued_bounded_and_delivered_in_order(page: Page) -> None:
    """Offline sends wait in a bounded queue (oldest dropped), then go out in order after hello."""
    port = free_port()
    options = {"resume": True, "maxQueue": 3, **FAST}
    with running("werkzeug", port=port) as server:
        open_page(page, server)
        start(page, "main", ECHO, options)
        expect(state_of(page, "main")).to_have_text("online")
        assert send(page, "main", 1) is True
        assert send(page, "main", 2) is True
        wait_for_messages(page, "main", 2)
        server.kill()
        expect(state_of(page, "main")).to_have_text("reconnecting")
        assert [send(page, "main", n) for n in range(3, 8)] == [False] * 5
        assert page.evaluate("clients.main.client.queued") == 3
        assert recorded(page, "main", "drops") == [
            {"message": 3, "reason": "overflow"},
            {"message": 4, "reason": "overflow"},
        ]
    with running("werkzeug", port=port) as server:
        expect(state_of(page, "main")).to_have_text("online", timeout=BACK_ONLINE_MS)
        wait_for_messages(page, "main", 5)
        # Numbered from the resume marker: it reached the server before the queue.
        assert recorded(page, "main", "messages")[2:] == [
            {"id": 3, "echo": 5},
            {"id": 4, "echo": 6},
            {"id": 5, "echo": 7},
        ]
        server.wait_for_log("client-test: resume 2")
        assert page.evaluate("clients.main.client.queued") == 0


@pytest.mark.parametrize("server_name", ["werkzeug", "gunicorn-gevent"])
def test_reconnects_across_a_server_restart(page: Page, server_name: str) -> None:
    """After a kill and a restart on the same port, the page is back, resuming from its last id."""
    port = free_port()
    with running(server_name, port=port) as server:
        open_page(page, server)
        start(page, "main", ECHO, {"resume": True})  # The default backoff.
        expect(state_of(page, "main")).to_have_text("online")
        server.wait_for_log("client-test: resume null")
        for text in ("one", "two", "three"):
            send(page, "main", text)
        wait_for_messages(page, "main", 3)
        last_id = recorded(page, "main", "lastId")
        assert last_id == 3
        server.kill()
        expect(state_of(page, "main")).to_have_text("reconnecting")
    with running(server_name, port=port) as server:
        expect(state_of(page, "main")).to_have_text("online", timeout=BACK_ONLINE_MS)
        server.wait_for_log(f"client-test: resume {last_id}")
        assert recorded(page, "main", "states") == [*ONLINE, "reconnecting", "online"]
        send(page, "main", "four")
        wait_for_messages(page, "main", 4)
        assert recorded(page, "main", "messages")[3] == {"id": 4, "echo": "four"}


def test_close_ends_retries(page: Page, werkzeug_server: Server) -> None:
    """close() while reconnecting stops for good: closed, queue dropped, no more attempts."""
    doomed, control = f"{MISSING}?who=doomed", f"{MISSING}?who=control"
    open_page(page, werkzeug_server)
    start(page, "doomed", doomed, FAST)
    start(page, "control", control, FAST)
    wait_for_attempts(page, doomed, 2)
    expect(state_of(page, "doomed")).to_have_text("reconnecting")
    send(page, "doomed", "queued")
    page.evaluate("clients.doomed.client.close()")
    expect(state_of(page, "doomed")).to_have_text("closed")
    tried = attempts(page, doomed)
    # The control retries on the same schedule: by its third attempt from now,
    # a retry that close() failed to cancel would have come.
    wait_for_attempts(page, control, attempts(page, control) + 3)
    assert attempts(page, doomed) == tried
    assert recorded(page, "doomed", "states") == ["connecting", "reconnecting", "closed"]
    assert send(page, "doomed", "late") is False
    assert recorded(page, "doomed", "drops") == [
        {"message": "queued", "reason": "closed"},
        {"message": "late", "reason": "closed"},
    ]


@pytest.mark.parametrize("code", [4001, 1008])
def test_a_final_close_code_from_the_server_ends_the_client(
    page: Page, werkzeug_server: Server, code: int
) -> None:
    """A server close with a final code (1008, 4000-4999) leaves the client closed, no retry."""
    open_page(page, werkzeug_server)
    start(page, "main", ECHO, FAST)
    start(page, "control", MISSING, FAST)
    expect(state_of(page, "main")).to_have_text("online")
    send(page, "main", {"type": "close", "code": code})
    expect(state_of(page, "main")).to_have_text("closed")
    assert recorded(page, "main", "closedWith") == code
    wait_for_attempts(page, MISSING, attempts(page, MISSING) + 3)
    assert attempts(page, ECHO) == 1


def test_a_server_close_with_another_code_reconnects(page: Page, werkzeug_server: Server) -> None:
    """A server close with 1001 (going away) is a drop: the client reconnects."""
    open_page(page, werkzeug_server)
    start(page, "main", ECHO, FAST)
    expect(state_of(page, "main")).to_have_text("online")
    send(page, "main", {"type": "close", "code": 1001})
    page.wait_for_function("() => clients.main.states.length >= 4")
    assert recorded(page, "main", "states") == ["connecting", "online", "reconnecting", "online"]
    assert attempts(page, ECHO) == 2


def test_retry_delays_have_full_jitter_and_a_cap(page: Page, werkzeug_server: Server) -> None:
    """With the defaults, retry n waits a random time in [0, min(5 s, 0.5 s * 2**(n-1))]."""
    open_page(page, werkzeug_server)
    tops = page.evaluate(
        "() => [1, 2, 3, 4, 5, 6, 20].map((n) => duplex.backoff(n, duplex.defaults, () => 1))"
    )
    assert tops == [500, 1000, 2000, 4000, 5000, 5000, 5000]
    assert page.evaluate("() => duplex.backoff(7, duplex.defaults, () => 0)") == 0
    samples = page.evaluate(
        "() => Array.from({length: 200}, () => duplex.backoff(3, duplex.defaults))"
    )
    assert all(0 <= delay < 2000 for delay in samples)
    assert min(samples) < 1000 < max(samples)


def test_unknown_or_invalid_options_are_refused(page: Page, werkzeug_server: Server) -> None:
    """A misspelt option or a value out of range throws at once, naming it, and connects nothing."""
    open_page(page, werkzeug_server)
    attempt = """(options) => {
        try { duplex.connect("/x", options); } catch (e) { return `${e.name}: ${e.message}`; }
    }"""
    assert page.evaluate(attempt, {"maxqueue": 3}).startswith(
        "TypeError: flask-duplex: unknown option maxqueue"
    )
    assert page.evaluate(attempt, {"maxQueue": -1}).startswith("RangeError: flask-duplex: maxQueue")
    assert page.evaluate(attempt, {"retryDelay": 0}).startswith(
        "RangeError: flask-duplex: retryDelay"
    )
    assert page.evaluate(attempt, {"recover": "yes"}).startswith("TypeError: flask-duplex: recover")
    assert page.evaluate("opened") == []

"""The demo's chat, from ``make demo`` and ``make demo-cluster``, driven in Chromium.

Three people (pages of their own) talk in rooms; under the cluster their
pages are spread over both gunicorn workers. Raw WebSocket clients play the
people the page cannot be: a flood of history, a client that sends garbage,
a user whose worker is killed. Each test uses rooms of its own, so the tests
share one running demo per target.

``DUPLEX_SCREENSHOTS=1`` makes the layout test write docs/chat.png (the
README's picture) and docs/chat-phone.png.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, expect
from websockets.exceptions import ConnectionClosedError
from websockets.sync.client import ClientConnection, connect

from tests.support.browser import WAIT_MS
from tests.support.cable import Cable
from tests.support.demo import Demo, running_demo
from tests.support.servers import ROOT

# The demo's DUPLEX_PRESENCE_TTL; each worker refreshes its people's presence every third of it.
PRESENCE_TTL = 6.0
# duplex.js retries at least every 5 s; a restarted cluster takes a few more to listen.
RECONNECT_MS = 20_000


@pytest.fixture(scope="module", params=["demo", "demo-cluster"])
def demo(request: pytest.FixtureRequest) -> Iterator[Demo]:
    with running_demo(request.param) as demo:
        yield demo


OpenPage = Callable[..., Page]


@pytest.fixture
def open_page(browser: Browser) -> Iterator[OpenPage]:
    """Opens pages, each a person with a browser context of its own; closes them after."""
    contexts = []
    errors: list[str] = []

    def open_page(url: str, width: int = 800, height: int = 600) -> Page:
        context = browser.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(WAIT_MS)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(f"{url}: {error}"))
        page.goto(url)
        expect(page.get_by_test_id("status")).to_have_text("online")
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert not errors, f"uncaught errors in the pages: {errors}"


# -- how a person uses the page -----------------------------------------------


def people(demo: Demo, open_page: OpenPage, count: int, base: str | None = None) -> list[Page]:
    """``count`` pages of the chat; under the cluster, on both workers."""
    pages = [open_page((base or demo.url) + "/chat/") for _ in range(count)]
    if demo.target == "demo-cluster" and count > 1:
        for _ in range(30):  # Which worker accepts a socket is the kernel's choice.
            if len({worker_of(page) for page in pages}) > 1:
                break
            pages[-1].reload()
            expect(pages[-1].get_by_test_id("status")).to_have_text("online")
        else:
            pytest.fail("30 reloads all landed on one worker")
    return pages


def worker_of(page: Page) -> str:
    chat = page.get_by_test_id("chat")
    expect(chat).to_have_attribute("data-worker", re.compile(r"^\d+$"))
    return str(chat.get_attribute("data-worker"))


def join(page: Page, name: str, room: str) -> None:
    page.get_by_test_id("name").fill(name)
    page.get_by_test_id("room").fill(room)
    page.get_by_test_id("join").click()
    expect(
        page.get_by_test_id("online").get_by_test_id("user").filter(has_text=name)
    ).to_be_visible()


def say(page: Page, text: str, *, press_enter: bool = True) -> None:
    box = page.get_by_test_id("message")
    box.fill(text)
    if press_enter:
        box.press("Enter")
    else:
        page.get_by_test_id("send").click()


def expect_online(page: Page, names: list[str], timeout: float = WAIT_MS) -> None:
    users = page.get_by_test_id("online").get_by_test_id("user")
    expect(users).to_have_text(names, timeout=timeout)


def expect_messages(page: Page, texts: list[str], timeout: float = WAIT_MS) -> None:
    """The page shows exactly these messages, in this order (each text contained in one)."""
    messages = page.get_by_test_id("messages").get_by_test_id("msg")
    expect(messages).to_have_count(len(texts), timeout=timeout)
    if texts:
        expect(messages).to_contain_text(texts)


def notice(page: Page) -> Locator:
    return page.get_by_test_id("notice")


# -- a client without a browser -------------------------------------------------


class Raw:
    """A WebSocket client that speaks the chat's JSON by hand (or sends what it likes)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.worker = str(self.next("welcome")["worker"])

    def send(self, message: Any) -> None:
        self.ws.send(message if isinstance(message, str | bytes) else json.dumps(message))

    def receive(self, timeout: float = 10) -> dict[str, Any]:
        """The next message; one of the room's comes unwrapped from its frame.

        The chat's rooms keep history: what is broadcast to one arrives in a
        frame with the room's position, which the browser client reads.
        """
        message: dict[str, Any] = json.loads(self.ws.recv(timeout=timeout))
        if message.get("duplex") == "message":
            return dict(message["data"])
        return message

    def next(self, kind: str, timeout: float = 10, **fields: Any) -> dict[str, Any]:
        """The next message of type ``kind`` (with these ``fields``); those before are skipped."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.receive(timeout=max(0.01, deadline - time.monotonic()))
            if message.get("type") == kind and fields.items() <= message.items():
                return message

    def join(self, name: str, room: str) -> None:
        self.send({"type": "join", "name": name, "room": room, "key": os.urandom(12).hex()})
        self.next("joined")

    def error(self) -> str:
        """The code of the error the server answered with."""
        return str(self.next("error")["code"])

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def raw(demo: Demo) -> Iterator[Callable[[], Raw]]:
    """Opens raw clients; closes them after the test."""
    with ExitStack() as clients:

        def open_raw() -> Raw:
            url = demo.ws_url + "/chat/ws"
            return Raw(clients.enter_context(connect(url, proxy=None, open_timeout=10)))

        yield open_raw


# -- a network whose cable the test can pull --------------------------------------


@pytest.fixture
def cable(demo: Demo) -> Iterator[Cable]:
    cable = Cable(demo.port)
    yield cable
    cable.close()


# -- talking ------------------------------------------------------------------------


def test_three_people_talk_and_see_who_is_online(demo: Demo, open_page: OpenPage) -> None:
    """Three people join a room: each sees the others online and every message, in order."""
    ana, bob, cleo = people(demo, open_page, 3)
    for page, name in ((ana, "ana"), (bob, "bob"), (cleo, "cleo")):
        join(page, name, "talk")
    for page in (ana, bob, cleo):
        expect_online(page, ["ana", "bob", "cleo"])
        expect(page.get_by_test_id("status")).to_have_text("online")

    say(ana, "hi all")
    expect_messages(cleo, ["hi all"])  # One at a time: the order is the order sent.
    say(bob, "hello ana", press_enter=False)
    expect_messages(cleo, ["hi all", "hello ana"])
    say(cleo, "hey")
    for page in (ana, bob, cleo):
        expect_messages(page, ["hi all", "hello ana", "hey"])
        messages = page.get_by_test_id("msg")
        for index, sender in enumerate(["ana", "bob", "cleo"]):
            expect(messages.nth(index)).to_have_attribute("data-from", sender)
            expect(messages.nth(index)).not_to_have_attribute("data-private", "true")


def test_what_people_type_is_shown_as_text(demo: Demo, open_page: OpenPage) -> None:
    """Markup in a message or a name is shown as typed, never run or rendered."""
    ana, bob = people(demo, open_page, 2)
    join(ana, "ana", "markup")
    join(bob, "bob", "markup")
    attack = '<img src=x onerror="window.pwned=1"><i>slanted</i> & &amp;'
    say(ana, attack)
    message = bob.get_by_test_id("msg")
    expect(message).to_contain_text(attack)
    assert message.locator("img, i").count() == 0
    assert bob.evaluate("window.pwned") is None

    eve = open_page(demo.url + "/chat/")
    eve.get_by_test_id("name").fill("<b>eve</b>")
    eve.get_by_test_id("room").fill("markup")
    eve.get_by_test_id("join").click()
    expect(notice(eve)).not_to_have_text("")  # Not a name: refused, and shown as text.
    assert notice(eve).locator("b").count() == 0
    expect_online(bob, ["ana", "bob"])


def test_messages_stay_in_their_room(demo: Demo, open_page: OpenPage) -> None:
    """A message reaches the people of its room only; a page shows its room's people only."""
    ana, bob, cleo = people(demo, open_page, 3)
    join(ana, "ana", "north")
    join(bob, "bob", "north")
    join(cleo, "cleo", "south")
    say(cleo, "anyone in the south?")
    say(ana, "north here")
    expect_messages(bob, ["north here"])
    expect_messages(cleo, ["anyone in the south?"])
    expect_online(cleo, ["cleo"])
    expect_online(bob, ["ana", "bob"])

    cleo.get_by_role("button", name="Leave room").click()  # South is quiet: cleo moves north.
    expect(cleo.get_by_test_id("join")).to_be_visible()
    join(cleo, "cleo", "north")
    expect_messages(cleo, ["north here"])  # The north's history, none of the south's.
    expect_online(ana, ["ana", "bob", "cleo"])


def test_a_name_is_taken_while_its_owner_is_online_in_the_room(
    demo: Demo, open_page: OpenPage
) -> None:
    """A second "ana" in the room gets a notice; in another room, or once ana left, it is free."""
    ana, other = people(demo, open_page, 2)
    join(ana, "ana", "names")
    other.get_by_test_id("name").fill("ana")
    other.get_by_test_id("room").fill("names")
    other.get_by_test_id("join").click()
    expect(notice(other)).not_to_have_text("")
    expect(other.get_by_test_id("status")).to_have_text("online")
    other.get_by_test_id("name").fill("ANA")  # Names differ by more than case.
    other.get_by_test_id("join").click()
    expect(notice(other)).to_contain_text("ANA")
    expect_online(ana, ["ana"])

    join(other, "ana", "names-elsewhere")
    expect_online(other, ["ana"])

    third = open_page(demo.url + "/chat/")
    ana.close()
    join(third, "ana", "names")  # Free within a moment of ana closing her tab.
    expect(notice(third)).to_have_text("")


def test_a_closed_tab_leaves_the_online_list_within_5_s(demo: Demo, open_page: OpenPage) -> None:
    """Closing a page takes its person off the others' lists within 5 seconds."""
    ana, bob, cleo = people(demo, open_page, 3)
    for page, name in ((ana, "ana"), (bob, "bob"), (cleo, "cleo")):
        join(page, name, "tabs")
    expect_online(ana, ["ana", "bob", "cleo"])
    cleo.close()
    expect_online(ana, ["ana", "bob"], timeout=5_000)
    expect_online(bob, ["ana", "bob"], timeout=5_000)


# -- private messages -----------------------------------------------------------------


def test_private_messages_reach_only_the_two(demo: Demo, open_page: OpenPage) -> None:
    """/msg and a click on a name send privately: the two see it, the third does not."""
    ana, bob, cleo = people(demo, open_page, 3)
    for page, name in ((ana, "ana"), (bob, "bob"), (cleo, "cleo")):
        join(page, name, "whisper")
    expect_online(ana, ["ana", "bob", "cleo"])

    say(ana, "/msg bob the cake is in the fridge")
    for page in (ana, bob):
        expect_messages(page, ["the cake is in the fridge"])
        private = page.get_by_test_id("msg")
        expect(private).to_have_attribute("data-private", "true")
        expect(private).to_have_attribute("data-from", "ana")

    cleo.get_by_test_id("online").get_by_test_id("user").filter(has_text="bob").click()
    expect(cleo.get_by_test_id("message")).to_have_value(re.compile(r"^/msg bob\s"))
    cleo.get_by_test_id("message").press_sequentially("thanks for the invite")
    cleo.get_by_test_id("message").press("Enter")
    expect_messages(bob, ["the cake is in the fridge", "thanks for the invite"])
    expect(bob.get_by_test_id("msg").nth(1)).to_have_attribute("data-from", "cleo")

    say(ana, "lunch at noon")  # Public: after it arrives, no private one can be on its way.
    expect_messages(cleo, ["thanks for the invite", "lunch at noon"])
    expect_messages(ana, ["the cake is in the fridge", "lunch at noon"])

    say(ana, "/msg nobody are you there?")
    expect(notice(ana)).to_contain_text("nobody")
    expect(ana.get_by_test_id("status")).to_have_text("online")
    say(ana, "still here")
    expect_messages(bob, ["cake", "thanks", "lunch", "still here"])


# -- limits and notices -----------------------------------------------------------


def test_messages_of_1000_characters_pass_and_longer_ones_get_a_notice(
    demo: Demo, open_page: OpenPage
) -> None:
    """1000 characters are sent whole; 1001 are refused with a notice, and the text is kept."""
    ana, bob = people(demo, open_page, 2)
    join(ana, "ana", "long")
    join(bob, "bob", "long")
    longest = "x" * 999 + "!"
    say(ana, longest)
    expect_messages(bob, [longest])
    expect(notice(ana)).to_have_text("")

    too_long = "y" * 1001
    say(ana, too_long)
    expect(notice(ana)).to_contain_text("1000")
    expect(ana.get_by_test_id("message")).to_have_value(too_long)  # Not cut short.
    say(ana, "short again")
    expect_messages(bob, [longest, "short again"])
    expect(notice(ana)).to_have_text("")


def test_ten_messages_a_second_are_not_limited(demo: Demo, open_page: OpenPage) -> None:
    """A person who sends 20 messages at 10 a second gets all 20 through, in order."""
    ana, bob = people(demo, open_page, 2)
    join(ana, "ana", "rate")
    join(bob, "bob", "rate")
    texts = [f"line {n}" for n in range(20)]
    start = time.monotonic()
    for n, text in enumerate(texts):
        wait = start + n / 10 - time.monotonic()
        if wait > 0:
            time.sleep(wait)  # Pacing the sender, not waiting for a condition.
        say(ana, text)
    expect_messages(bob, texts)
    expect(notice(ana)).to_have_text("")


# -- history ----------------------------------------------------------------------------


def test_history_shows_the_last_50_messages_of_the_room(
    demo: Demo, open_page: OpenPage, raw: Callable[[], Raw]
) -> None:
    """55 messages were said; a page that joins shows the last 50, oldest first."""
    writers = [raw() for _ in range(3)]
    for n, writer in enumerate(writers):
        writer.join(f"writer{n}", "history")
    raw().join("elsewhere", "history-other")
    for n in range(55):  # One after the other: three people, one order.
        writer = writers[n % 3]
        writer.send({"type": "message", "text": f"note {n:02d}"})
        writer.next("message", text=f"note {n:02d}")

    page = open_page(demo.url + "/chat/")
    join(page, "reader", "history")
    expect_messages(page, [f"note {n:02d}" for n in range(5, 55)])
    expect(page.get_by_test_id("msg").first).to_have_attribute("data-from", "writer2")


# -- bad input ----------------------------------------------------------------------------


def test_bad_input_gets_an_error_and_changes_nothing(
    demo: Demo, open_page: OpenPage, raw: Callable[[], Raw]
) -> None:
    """Garbage, unknown types, oversize text and forged senders get errors; others go on."""
    ana, bob = people(demo, open_page, 2)
    join(ana, "ana", "abuse")
    join(bob, "bob", "abuse")
    mallory = raw()

    mallory.send({"type": "message", "text": "before joining"})
    assert mallory.error() == "not_joined"
    mallory.send({"type": "join", "name": "ana", "room": "abuse", "key": "k" * 20})
    assert mallory.error() == "name_taken"
    mallory.send({"type": "join", "name": "<script>", "room": "abuse", "key": "k" * 20})
    assert mallory.error() == "bad_name"
    mallory.join("mallory", "abuse")

    garbage: list[tuple[Any, str]] = [
        ("{not json", "bad_json"),
        (b"\x00\x01binary", "bad_json"),
        ("[1, 2, 3]", "bad_json"),
        ("[" * 6000 + "]" * 6000, "bad_json"),
        ({"type": "shout", "text": "hi"}, "unknown_type"),
        ({"type": "message"}, "bad_text"),
        ({"type": "message", "text": 42}, "bad_text"),
        ({"type": "message", "text": "z" * 1001}, "too_long"),
        ({"type": "message", "text": "forged", "from": "ana"}, "bad_field"),
        ({"type": "private", "to": "bob", "text": "forged", "from": "ana"}, "bad_field"),
        ({"type": "private", "to": "nobody", "text": "hi"}, "unknown_recipient"),
        (
            {"type": "join", "name": "x", "room": "abuse", "key": "k" * 20, "resume": "yes"},
            "bad_resume",
        ),
        (
            {"type": "join", "name": "x", "room": "abuse", "key": "k" * 20, "last_id": 3},
            "bad_field",
        ),
        ({"type": "join", "name": "x", "room": "a b", "key": "k" * 20}, "bad_room"),
    ]
    for message, code in garbage:
        mallory.send(message)
        assert mallory.error() == code, message

    mallory.send({"type": "message", "text": "the only message"})
    for page in (ana, bob):
        expect_messages(page, ["the only message"])
        expect(page.get_by_test_id("msg")).to_have_attribute("data-from", "mallory")
        expect_online(page, ["ana", "bob", "mallory"])

    mallory.send("x" * 20_000)  # Over the route's frame limit: closed with 1009, unread.
    with pytest.raises(ConnectionClosedError) as closed:
        mallory.next("never")
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    expect_online(ana, ["ana", "bob"])
    say(bob, "still fine")
    expect_messages(ana, ["the only message", "still fine"])


def test_a_flood_is_slowed_down_and_the_room_goes_on(
    demo: Demo, open_page: OpenPage, raw: Callable[[], Raw]
) -> None:
    """200 messages at once: the first ones pass, the rest get "too_fast"; others still talk."""
    ana = people(demo, open_page, 1)[0]
    join(ana, "ana", "flood")
    flooder = raw()
    flooder.join("flooder", "flood")
    for n in range(200):
        flooder.send({"type": "message", "text": f"spam {n}"})
    passed = refused = 0
    deadline = time.monotonic() + 20
    while passed + refused < 200 and time.monotonic() < deadline:
        reply = flooder.receive()
        passed += reply.get("type") == "message"
        refused += reply.get("type") == "error" and reply["code"] == "too_fast"
    assert passed + refused == 200
    assert 60 <= passed < 200 and refused > 0, (passed, refused)
    expect(ana.get_by_test_id("msg")).to_have_count(passed)

    other = open_page(demo.url + "/chat/")
    join(other, "bob", "flood")
    say(other, "can anyone hear me?")
    expect(ana.get_by_test_id("msg").last).to_contain_text("can anyone hear me?")


# -- reconnecting -----------------------------------------------------------------------------


def test_a_page_that_lost_its_network_catches_up_once_back(
    demo: Demo, open_page: OpenPage, cable: Cable
) -> None:
    """bob's network drops: reconnecting, off the list; back, he rejoins and sees what he missed."""
    ana = people(demo, open_page, 1)[0]
    bob = people(demo, open_page, 1, base=cable.url)[0]
    join(ana, "ana", "drop")
    join(bob, "bob", "drop")
    say(ana, "before the drop")
    expect_messages(bob, ["before the drop"])

    cable.unplug()
    expect(bob.get_by_test_id("status")).to_have_text("reconnecting")
    expect_online(ana, ["ana"])
    for text in ("missed one", "missed two", "missed three"):
        say(ana, text)
    expect_messages(ana, ["before the drop", "missed one", "missed two", "missed three"])

    cable.plug()
    expect(bob.get_by_test_id("status")).to_have_text("online", timeout=RECONNECT_MS)
    expect_online(ana, ["ana", "bob"])
    expect_messages(bob, ["before the drop", "missed one", "missed two", "missed three"])
    say(bob, "back")
    expect_messages(ana, ["before the drop", "missed", "missed", "missed", "back"])


def test_a_page_offline_for_a_while_shows_each_missed_message_once(
    demo: Demo, open_page: OpenPage, cable: Cable
) -> None:
    """bob's browser goes offline while ana talks: back online, the room replays what he missed."""
    ana = people(demo, open_page, 1)[0]
    bob = people(demo, open_page, 1, base=cable.url)[0]
    join(ana, "ana", "away")
    join(bob, "bob", "away")
    say(ana, "before bob goes")
    expect_messages(bob, ["before bob goes"])
    received: list[str] = []  # What bob's reconnected sockets receive, as text.
    bob.on("websocket", lambda ws: ws.on("framereceived", lambda data: received.append(str(data))))

    bob.context.set_offline(True)
    # Offline, Chromium keeps an open WebSocket and only holds its frames back
    # until it is online again: the page would notice nothing, and miss
    # nothing. A network that really went away takes the TCP connection with
    # it, which the cable does, once; new connections fail while offline.
    cable.unplug()
    cable.plug()
    expect(bob.get_by_test_id("status")).to_have_text("reconnecting")
    expect_online(ana, ["ana"])
    missed = [f"while bob is away, {n}" for n in range(5)]
    for text in missed:
        say(ana, text)
    expect_messages(ana, ["before bob goes", *missed])
    expect(bob.get_by_test_id("status")).to_have_text("reconnecting")

    bob.context.set_offline(False)
    expect(bob.get_by_test_id("status")).to_have_text("online", timeout=RECONNECT_MS)
    expect_messages(bob, ["before bob goes", *missed])
    expect_online(ana, ["ana", "bob"])
    say(bob, "back")
    expect_messages(ana, ["before bob goes", *missed, "back"])
    expect_messages(bob, ["before bob goes", *missed, "back"])
    # From the room's history, replayed by the join: no list from the database.
    frames = [json.loads(text) for text in received]
    [recovery] = [frame for frame in frames if frame.get("duplex") == "joined"]
    assert recovery["recovered"] is True and recovery["missed"] == len(missed)
    assert not [frame for frame in frames if frame.get("type") == "history"]


def test_a_page_back_in_a_room_it_left_shows_the_whole_history(
    demo: Demo, open_page: OpenPage, cable: Cable
) -> None:
    """bob leaves a room, reconnects in another, comes back: its whole history, not the news."""
    ana = people(demo, open_page, 1)[0]
    bob = people(demo, open_page, 1, base=cable.url)[0]
    join(ana, "ana", "return")
    join(bob, "bob", "return")
    say(ana, "first")
    expect_messages(bob, ["first"])
    bob.get_by_role("button", name="Leave room").click()
    join(bob, "bob", "return-elsewhere")
    say(ana, "second")
    cable.unplug()  # The reconnect hands back bob's old position in the room he left.
    expect(bob.get_by_test_id("status")).to_have_text("reconnecting")
    cable.plug()
    expect(bob.get_by_test_id("status")).to_have_text("online", timeout=RECONNECT_MS)
    bob.get_by_role("button", name="Leave room").click()
    join(bob, "bob", "return")
    expect_messages(bob, ["first", "second"])


def test_a_restart_keeps_history_and_pages_catch_up(
    demo: Demo, open_page: OpenPage, cable: Cable
) -> None:
    """The server restarts (a crash for the cluster) with pages open: they rejoin, catch up once."""
    ana = people(demo, open_page, 1)[0]
    bob = people(demo, open_page, 1, base=cable.url)[0]
    join(ana, "ana", "restart")
    join(bob, "bob", "restart")
    say(ana, "one")
    expect_messages(bob, ["one"])
    say(bob, "two")
    expect_messages(ana, ["one", "two"])
    expect_messages(bob, ["one", "two"])

    cable.unplug()  # bob stays away until ana has spoken after the restart.
    if demo.target == "demo-cluster":
        demo.kill()  # gunicorn, its workers and redis-server, all at once.
    else:
        demo.stop()  # Ctrl-C.
    for page in (ana, bob):
        expect(page.get_by_test_id("status")).to_have_text("reconnecting")
    demo.start()
    expect(ana.get_by_test_id("status")).to_have_text("online", timeout=RECONNECT_MS)
    expect_online(ana, ["ana"], timeout=RECONNECT_MS)
    say(ana, "three, after the restart")
    expect_messages(ana, ["one", "two", "three"])

    cable.plug()
    expect(bob.get_by_test_id("status")).to_have_text("online", timeout=RECONNECT_MS)
    expect_messages(bob, ["one", "two", "three"])
    expect_online(ana, ["ana", "bob"])

    newcomer = open_page(demo.url + "/chat/")
    join(newcomer, "cleo", "restart")
    expect_messages(newcomer, ["one", "two", "three"])  # From the database.


def test_a_crashed_workers_people_leave_within_the_presence_ttl(
    demo: Demo, open_page: OpenPage, raw: Callable[[], Raw]
) -> None:
    """A worker is killed: its users leave others' lists within the TTL; its pages come back."""
    if demo.target != "demo-cluster":
        pytest.skip("one process: nobody is left behind when it dies")
    ana, bob = people(demo, open_page, 2)
    doomed, survivor = worker_of(ana), worker_of(bob)
    for _ in range(30):  # A user with no browser to bring him back, on ana's worker.
        ghost = raw()
        if ghost.worker == doomed:
            break
        ghost.close()
    else:
        pytest.fail("30 connections all landed on the other worker")
    join(ana, "ana", "crash")
    join(bob, "bob", "crash")
    ghost.join("ghost", "crash")
    expect_online(bob, ["ana", "bob", "ghost"])

    os.kill(int(doomed), signal.SIGKILL)
    killed = time.monotonic()
    bob.wait_for_function(  # Looked at every 50 ms, to time it.
        "() => ![...document.querySelectorAll('[data-testid=user]')]"
        ".some((user) => user.textContent === 'ghost')",
        polling=50,
        timeout=3 * PRESENCE_TTL * 1000,
    )
    took = time.monotonic() - killed
    # Presence expires at most a TTL after the dead worker's last refresh; the
    # live worker's next refresh (a third of the TTL later at most) removes it
    # and tells every worker (on_members_expired), whose chat sends the lists.
    assert took < PRESENCE_TTL * 4 / 3 + 1.5, f"ghost left after {took:.1f}s"
    expect_online(bob, ["ana", "bob"])

    # ana's page reconnected to a live worker and took her name back at once,
    # though her old connection's presence may not have expired yet.
    expect(ana.get_by_test_id("status")).to_have_text("online", timeout=RECONNECT_MS)
    expect(ana.get_by_test_id("chat")).not_to_have_attribute("data-worker", doomed)
    expect_online(ana, ["ana", "bob"])
    expect(notice(ana)).to_have_text("")
    say(ana, "I'm back")
    expect_messages(bob, ["I'm back"])
    assert survivor != doomed


# -- looks ------------------------------------------------------------------------------------


def test_the_page_fits_a_laptop_and_a_phone(demo: Demo, open_page: OpenPage) -> None:
    """At 1280 and 390 px wide the chat shows everything without sideways scrolling."""
    if demo.target != "demo":
        pytest.skip("the same page under the cluster")
    laptop = open_page(demo.url + "/chat/", 1280, 800)
    phone = open_page(demo.url + "/chat/", 390, 844)
    cleo = open_page(demo.url + "/chat/")
    join(laptop, "ana", "lobby")
    join(phone, "bob", "lobby")
    join(cleo, "cleo", "lobby")
    conversation = [
        (laptop, "Morning! Who's up for a game of snake after lunch?"),
        (phone, "Me! I'll bring the <b>good</b> keyboard."),
        (cleo, "Count me in. Room 'arena' at 1?"),
        (laptop, "/msg bob don't tell cleo, but I've been practising"),
        (phone, "Deal. See you in the arena."),
        (cleo, "Does the leaderboard survive a restart?"),
        (laptop, "It does: it lives in SQLite, like the history of this chat."),
    ]
    for said, (page, text) in enumerate(conversation, 1):
        say(page, text)
        expect(phone.get_by_test_id("msg")).to_have_count(said)  # Each answers the last.
    for page in (laptop, phone):
        expect_messages(page, ["Morning", "Me!", "Count me", "practising", "arena", "Does", "It"])

    for page in (laptop, phone):
        assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
        for hook in ("online", "messages", "message", "send", "status"):
            expect(page.get_by_test_id(hook)).to_be_in_viewport()
    if os.environ.get("DUPLEX_SCREENSHOTS") == "1":
        laptop.screenshot(path=ROOT / "docs" / "chat.png")
        phone.screenshot(path=ROOT / "docs" / "chat-phone.png")

"""Multiplayer snake on ``make demo`` and ``make demo-cluster``: Chromium pages and raw sockets.

The demo runs as users start it (``running_demo``); the game's settings come
from the environment variables that ``create_app`` reads, set here for a
faster game (``SETTINGS``). Under the cluster, pages and raw clients are
spread over both workers by the ``worker`` pid the server sends in its
welcome. Set ``DUPLEX_SCREENSHOTS=1`` to write ``docs/snake.png``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.support.demo import Demo, running_demo
from tests.support.servers import ROOT

TICK_RATE = 15.0
SETTINGS = {"DUPLEX_DEMO_SNAKE_TICK_RATE": str(TICK_RATE)}
SCREENSHOTS = os.environ.get("DUPLEX_SCREENSHOTS") == "1"
BOARD = "[data-testid=board]"

# Where the page's own snake heads, as its board says (null while it has none).
OWN_DIRECTION = f"() => document.querySelector('{BOARD}').dataset.heading || null"


@contextmanager
def snake_demo(target: str, **settings: str) -> Iterator[Demo]:
    """``make <target>`` with the game's settings in its environment."""
    with pytest.MonkeyPatch.context() as env:
        for key, value in {**SETTINGS, **settings}.items():
            env.setenv(key, value)
        with running_demo(target) as demo:
            yield demo


@pytest.fixture(scope="module")
def single() -> Iterator[Demo]:
    with snake_demo("demo") as demo:
        yield demo


@pytest.fixture(scope="module")
def cluster() -> Iterator[Demo]:
    with snake_demo("demo-cluster") as demo:
        yield demo


@pytest.fixture(params=["demo", "demo-cluster"])
def demo(request: pytest.FixtureRequest) -> Demo:
    """Each of the two make targets (both stay up for the whole module)."""
    fixture = "single" if request.param == "demo" else "cluster"
    demo: Demo = request.getfixturevalue(fixture)
    return demo


# -- browser pages --------------------------------------------------------------


OpenPage = Callable[..., Page]


@pytest.fixture
def open_page(browser: Browser) -> Iterator[OpenPage]:
    """Open /snake/ in a new context; with ``avoid_worker``, until another worker serves it."""
    contexts: list[BrowserContext] = []

    def open_(demo: Demo, *, avoid_worker: str | None = None, width: int = 800) -> Page:
        for _ in range(20):
            context = browser.new_context(viewport={"width": width, "height": 800})
            contexts.append(context)
            page = context.new_page()
            page.goto(demo.url + "/snake/")
            expect(page.locator(BOARD)).to_have_attribute("data-worker", re.compile(r"^\d+$"))
            if avoid_worker is None or worker_of(page) != avoid_worker:
                return page
            context.close()
        raise AssertionError(f"20 pages in a row landed on worker {avoid_worker}")

    yield open_
    for context in contexts:
        context.close()


def worker_of(page: Page) -> str:
    worker = page.locator(BOARD).get_attribute("data-worker")
    assert worker is not None
    return worker


def play(page: Page, name: str, button: str = "play") -> None:
    page.get_by_test_id("name").fill(name)
    page.get_by_test_id(button).click()


def status(page: Page) -> str:
    return page.get_by_test_id("status").inner_text()


def entry(page: Page, name: str) -> Any:
    return page.locator(f"[data-testid=leaderboard] [data-testid=entry][data-name='{name}']")


def players(page: Page) -> Any:
    return page.locator("[data-testid=players] [data-testid=player]")


# -- raw sockets ----------------------------------------------------------------


class RawPlayer:
    """A WebSocket client that speaks the game's protocol by hand (or breaks it)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        welcome = self.next("welcome")
        self.id: str = welcome["id"]
        self.worker: int = welcome["worker"]
        self.leaderboard: dict[str, Any] = self.next("leaderboard")
        self.errors: list[str] = []

    def send(self, value: Any) -> None:
        self.ws.send(value if isinstance(value, str | bytes) else json.dumps(value))

    def next(
        self, kind: str, timeout: float = 10, where: Callable[[Any], Any] | None = None
    ) -> Any:
        """The next message of this type (that ``where`` accepts); others are skipped."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kind} message within {timeout}s")
            try:
                message = json.loads(self.ws.recv(timeout=left))
            except TimeoutError:
                continue
            if message["type"] == "error":
                self.errors.append(message["message"])
            if message["type"] == kind and (where is None or where(message)):
                return message

    def play(self, name: str, mode: str = "multi") -> RawPlayer:
        self.send({"type": "play", "name": name, "mode": mode})
        self.next("joined")
        self.next("state", where=lambda state: self.me(state) is not None)
        return self

    def me(self, state: dict[str, Any]) -> dict[str, Any] | None:
        return next((p for p in state["players"] if p["id"] == self.id), None)

    def drain(self) -> None:
        """Read what waits already, so that what is read next arrives live."""
        while True:
            try:
                message = json.loads(self.ws.recv(timeout=0.03))
            except TimeoutError:
                return
            if message["type"] == "error":
                self.errors.append(message["message"])

    def states(self, seconds: float) -> list[dict[str, Any]]:
        """Every state message that comes within the next ``seconds``, live."""
        self.drain()
        found = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = json.loads(self.ws.recv(timeout=left))
            except TimeoutError:
                break
            if message["type"] == "state":
                found.append(message)
            elif message["type"] == "error":
                self.errors.append(message["message"])
        return found

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def raw() -> Iterator[Callable[[Demo], RawPlayer]]:
    """Open raw players; each is closed after the test."""
    with ExitStack() as sockets:

        def open_(demo: Demo) -> RawPlayer:
            # An unbounded client queue: a socket the test does not read still sees the close.
            url = demo.ws_url + "/snake/ws"
            return RawPlayer(sockets.enter_context(connect(url, open_timeout=10, max_queue=None)))

        yield open_


def on_two_workers(raw: Callable[[Demo], RawPlayer], demo: Demo) -> tuple[RawPlayer, RawPlayer]:
    """Two raw players whose sockets the kernel gave to different workers."""
    first = raw(demo)
    for _ in range(30):
        second = raw(demo)
        if second.worker != first.worker:
            return first, second
        second.close()
    raise AssertionError("30 connections in a row landed on the same worker")


def assert_one_loop(states: list[dict[str, Any]], seconds: float) -> None:
    """States from one loop: one pid, ticks one by one, at the tick rate (never twice as fast)."""
    assert len({state["pid"] for state in states}) == 1, {state["pid"] for state in states}
    ticks = [state["tick"] for state in states]
    assert ticks == list(range(ticks[0], ticks[0] + len(ticks))), ticks
    assert 0.5 * TICK_RATE * seconds <= len(ticks) <= 1.3 * TICK_RATE * seconds + 2, len(ticks)


# -- two players, in Chromium ---------------------------------------------------


def test_two_players_see_both_snakes_and_every_page_sees_the_leaderboard_move(
    demo: Demo, open_page: OpenPage
) -> None:
    """Two players (on two workers) see both snakes; a death is on every leaderboard within 2 s."""
    ana = open_page(demo)
    is_cluster = demo.target == "demo-cluster"
    bo = open_page(demo, avoid_worker=worker_of(ana) if is_cluster else None)
    watcher = open_page(demo)  # Never plays: the game and the leaderboard show on every page.
    for page in (ana, bo, watcher):
        expect(page.get_by_test_id("status")).to_have_text("waiting")
    play(ana, "ana")
    play(bo, "bo")

    # Both snakes on both boards at once; a snake that hit a wall first plays again.
    deadline = time.monotonic() + 20
    while not all(page.locator(BOARD).get_attribute("data-snakes") == "2" for page in (ana, bo)):
        assert time.monotonic() < deadline, "never saw both snakes on both boards"
        for page in (ana, bo):
            if status(page) == "dead":
                page.get_by_test_id("play").click()
        ana.wait_for_timeout(30)
    for page in (ana, bo):
        expect(players(page)).to_have_count(2)
        assert sorted(players(page).all_text_contents()) == ["ana", "bo"]
    if is_cluster:  # Sockets on two workers, one loop for the room.
        assert worker_of(ana) != worker_of(bo)
        loop = ana.locator(BOARD).get_attribute("data-loop")
        assert loop in (worker_of(ana), worker_of(bo))
        expect(bo.locator(BOARD)).to_have_attribute("data-loop", loop or "")

    # Going straight, ana dies on a wall; then plays again under a new name, and dies again.
    expect(ana.get_by_test_id("status")).to_have_text("dead", timeout=15_000)
    play(ana, "ana again")
    expect(ana.get_by_test_id("status")).to_have_text("playing")
    expect(ana.get_by_test_id("score")).to_have_text(re.compile(r"^\d+$"))
    expect(ana.get_by_test_id("status")).to_have_text("dead", timeout=15_000)
    score = ana.get_by_test_id("score").inner_text()
    for page in (watcher, bo, ana):  # Within 2 s of the death, on every page.
        expect(entry(page, "ana again")).to_have_attribute("data-score", score, timeout=2_000)
    # The watcher, who never played, saw the game too: its players, and no status change.
    expect(players(watcher)).to_have_count(2)
    assert sorted(players(watcher).all_text_contents()) == ["ana again", "bo"]
    expect(watcher.get_by_test_id("status")).to_have_text("waiting")


def test_single_player_is_private_and_counts_on_the_same_leaderboard(
    demo: Demo, open_page: OpenPage
) -> None:
    """Single player: a game of one, unseen by others, scored on the shared leaderboard."""
    solo = open_page(demo)
    other = open_page(demo)
    play(other, "other")
    play(solo, "solo", button="solo")
    expect(solo.get_by_test_id("status")).to_have_text(re.compile("playing|dead"))
    expect(players(solo)).to_have_text(["solo"])
    expect(players(other)).to_have_text(["other"])
    expect(solo.get_by_test_id("status")).to_have_text("dead", timeout=15_000)
    score = solo.get_by_test_id("score").inner_text()
    expect(entry(other, "solo")).to_have_attribute("data-score", score, timeout=2_000)
    solo.get_by_test_id("solo").click()  # Play again: a new single-player game.
    expect(solo.get_by_test_id("status")).to_have_text("playing")
    expect(players(other)).to_have_text(["other"])


def test_arrows_wasd_swipes_and_buttons_steer_but_not_while_typing(
    single: Demo, open_page: OpenPage
) -> None:
    """Phone-sized page: arrows, WASD, swipes and the pad steer; typing a name does not."""
    page = open_page(single, width=390)
    board = page.locator(BOARD)
    perpendicular = {"up": "left", "down": "right", "left": "down", "right": "up"}
    arrows = {"up": "ArrowUp", "down": "ArrowDown", "left": "ArrowLeft", "right": "ArrowRight"}
    wasd = {"up": "w", "down": "s", "left": "a", "right": "d"}

    def new_game() -> str:
        if status(page) != "playing" or page.evaluate(OWN_DIRECTION) is None:
            page.get_by_test_id("solo").click()
        handle = page.wait_for_function(OWN_DIRECTION)
        direction: str = handle.json_value()
        return direction

    def swipe(direction: str) -> None:
        box = board.bounding_box()
        assert box is not None
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        dx, dy = {"up": (0, -60), "down": (0, 60), "left": (-60, 0), "right": (60, 0)}[direction]
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x + dx, y + dy, steps=4)
        page.mouse.up()

    page.get_by_test_id("name").fill("steerer")
    heading = new_game()
    # Typing in the name box: the key goes to the box, the snake goes on.
    name_box = page.get_by_test_id("name")
    name_box.focus()
    name_box.press(wasd[perpendicular[heading]])
    name_box.press(arrows[perpendicular[heading]])
    tick = int(board.get_attribute("data-tick") or 0)
    page.wait_for_function(f"Number(document.querySelector('{BOARD}').dataset.tick) >= {tick + 3}")
    if status(page) == "playing":
        assert page.evaluate(OWN_DIRECTION) in (heading, None)
    expect(name_box).to_have_value("steerer" + wasd[perpendicular[heading]])
    name_box.fill("steerer")
    name_box.blur()

    steerers: dict[str, Callable[[str], None]] = {
        "arrow key": lambda direction: page.keyboard.press(arrows[direction]),
        "WASD": lambda direction: page.keyboard.press(wasd[direction]),
        "swipe": swipe,
        "on-screen button": lambda direction: page.locator(
            f".snake-pad [data-direction={direction}]"
        ).click(),
    }
    for how, steer in steerers.items():
        for _attempt in range(3):  # A snake that reaches a wall first gets another go.
            heading = new_game()
            steer(perpendicular[heading])
            try:
                expect(board).to_have_attribute(
                    "data-heading", perpendicular[heading], timeout=3_000
                )
                break
            except AssertionError:
                if status(page) == "playing":
                    raise AssertionError(f"the {how} did not turn the snake") from None
        else:
            raise AssertionError(f"no game lasted long enough to try the {how}")


# -- abuse, over raw sockets ----------------------------------------------------

# What a page may not send, the error's code, the type of request it answers, and a bit of its text.
BAD_MESSAGES: list[tuple[Any, str, str | None, str]] = [
    ({"type": "score", "score": 9999}, "bad_field", "score", "scores are counted by the server"),
    ({"type": "play", "name": "cheater", "score": 1}, "bad_field", "play", "scores are counted"),
    ({"type": "turn", "direction": "up", "score": 1}, "bad_field", "turn", "scores are counted"),
    ({"type": "play", "name": "ok", "color": "red"}, "bad_field", "play", "'color'"),
    ("{not json", "bad_json", None, "not JSON"),
    ("[" * 100_000, "bad_json", None, "not JSON"),
    (b"\x00\x01 a binary frame", "bad_json", None, "binary"),
    ({"type": "teleport", "x": 3}, "unknown_type", "teleport", "play or turn"),
    ([1, 2, 3], "bad_json", None, "a JSON object"),
    ({"type": "turn", "direction": "sideways"}, "bad_direction", "turn", "up, down, left or right"),
    ({"type": "play", "name": ""}, "bad_name", "play", "name is"),
    ({"type": "play", "name": "ok", "mode": "god"}, "bad_mode", "play", "multi or solo"),
    ({"type": "turn", "direction": "up"}, "not_playing", "turn", "press play first"),
]


def test_bad_messages_get_an_error_and_change_nothing(
    demo: Demo, raw: Callable[[Demo], RawPlayer]
) -> None:
    """Score claims, bad JSON, binary, unknown types: an error back; game, leaderboard unchanged."""
    player = raw(demo).play("honest")
    for message, code, request, text in BAD_MESSAGES:
        abuser = raw(demo)  # A socket of its own each: the error budget is per socket.
        abuser.send(message)
        error = abuser.next("error")
        assert (error["code"], error["request"]) == (code, request), (message, error)
        assert text in error["message"], (message, error)
        abuser.send({"type": "play", "name": "abuser"})  # The socket is still open and usable.
        abuser.next("joined")
        abuser.close()
    claims = raw(demo)
    claims.play("claimer")
    claims.send({"type": "score", "score": 9999})
    claims.next("error")
    states = claims.states(1.0)
    assert states and all((claims.me(state) or {}).get("score", 0) < 9999 for state in states)
    assert all(p["name"] != "cheater" for state in states for p in state["players"])
    # The loop went on for the honest player all along.
    assert_one_loop(player.states(1.0), 1.0)
    board = raw(demo).leaderboard["entries"]
    assert all(row["score"] < 9999 and row["name"] != "cheater" for row in board), board


def test_a_flood_of_turns_gets_a_few_errors_a_second_and_the_loop_keeps_its_pace(
    demo: Demo, raw: Callable[[Demo], RawPlayer]
) -> None:
    """A flood of 2000 turns: refused past the budget, a few errors a second, ticks on time."""
    watcher = raw(demo).play("pace")
    flooder = raw(demo).play("flood")

    def flood() -> None:
        for n in range(2000):
            flooder.send({"type": "turn", "direction": ("up", "left", "down", "right")[n % 4]})

    start = time.monotonic()
    sender = threading.Thread(target=flood)
    sender.start()
    during = watcher.states(2.0)  # While the flood comes in.
    sender.join(10)
    assert not sender.is_alive()
    after = flooder.states(0.5)
    elapsed = time.monotonic() - start
    assert flooder.errors, "the flood was not refused"
    assert all("too many messages" in error for error in flooder.errors)
    assert len(flooder.errors) <= 3 + 2 * elapsed + 1, (len(flooder.errors), elapsed)
    assert_one_loop(during, 2.0)
    assert after, "the flooder's socket stays open and gets the game"


def test_a_frame_over_1_mib_closes_that_socket_with_1009_and_nothing_else(
    demo: Demo, raw: Callable[[Demo], RawPlayer]
) -> None:
    """A 1 MiB + 1 byte message closes that socket with 1009; the others play on without it."""
    other = raw(demo).play("small")
    big = raw(demo).play("big")
    big.ws.send("x" * (1024 * 1024 + 1))
    with pytest.raises(ConnectionClosed):
        big.states(10)
        big.ws.recv(timeout=0)
    assert big.ws.close_code == 1009
    other.next("state", where=lambda state: all(p["id"] != big.id for p in state["players"]))
    assert_one_loop(other.states(1.0), 1.0)


def test_a_player_who_disconnects_leaves_and_an_empty_room_stops_its_loop(
    demo: Demo, raw: Callable[[Demo], RawPlayer]
) -> None:
    """A closed socket's player leaves; an empty room's loop ends (the next game starts anew)."""
    leaver = raw(demo).play("leaver")
    stayer = raw(demo).play("stayer")
    stayer.next("state", where=lambda state: stayer.me(state) and leaver.me(state))
    leaver.close()
    stayer.next("state", where=lambda state: leaver.me(state) is None)
    tick = stayer.next("state")["tick"]
    stayer.close()
    deadline = time.monotonic() + 10
    while True:  # Until a new player finds a new loop (the old one ends within a tick or two).
        newcomer = raw(demo)
        newcomer.send({"type": "play", "name": "newcomer"})
        first = newcomer.next("state")
        newcomer.close()
        if first["tick"] < tick:
            break
        assert time.monotonic() < deadline, "the loop of the empty room never stopped"
        time.sleep(0.2)


# The status the page showed when its connection dropped, kept by the test.
WATCH_THE_DROP = """() => {
  const link = document.getElementById("snake-link");
  window.statusAtDrop = null;
  new MutationObserver(() => {
    if (link.dataset.state === "reconnecting" && window.statusAtDrop === null) {
      window.statusAtDrop = document.querySelector("[data-testid=status]").textContent;
    }
  }).observe(link, { attributes: true });
}"""


def test_a_page_that_was_playing_is_back_in_a_game_after_a_restart(
    single: Demo, open_page: OpenPage
) -> None:
    """Ctrl-C and make demo again: the page reconnects, plays again, and the leaderboard stayed."""
    page = open_page(single)
    board = page.locator(BOARD)
    play(page, "comeback")  # A first game, to the wall: on the leaderboard before the restart.
    expect(page.get_by_test_id("status")).to_have_text("dead", timeout=15_000)
    expect(entry(page, "comeback")).to_be_attached()
    for _attempt in range(3):  # A snake that hit a wall before the drop proves nothing.
        play(page, "comeback")
        expect(page.get_by_test_id("status")).to_have_text("playing")
        loop = board.get_attribute("data-loop") or ""
        page.evaluate(WATCH_THE_DROP)
        single.restart()
        page.wait_for_function("window.statusAtDrop !== null", timeout=20_000)
        if page.evaluate("window.statusAtDrop") == "playing":
            break
        expect(page.locator("#snake-link")).to_have_text("online", timeout=20_000)
    else:
        raise AssertionError("the snake died before every restart")
    expect(board).not_to_have_attribute("data-loop", loop, timeout=20_000)
    expect(page.get_by_test_id("status")).to_have_text("playing")
    expect(players(page)).to_have_text(["comeback"])
    expect(entry(page, "comeback")).to_be_attached()  # Read again from the database.


# -- the cluster: one loop per room, and it moves ---------------------------------


def test_the_loop_of_a_room_runs_in_one_process_whatever_worker_each_player_is_on(
    cluster: Demo, raw: Callable[[Demo], RawPlayer]
) -> None:
    """Players on both workers get the states of one loop: one pid, each tick once, on time."""
    first, second = on_two_workers(raw, cluster)
    first.play("first")
    second.play("second")
    for player in (first, second):
        states = player.states(2.0)
        assert_one_loop(states, 2.0)
        assert states[0]["pid"] in (first.worker, second.worker)
        assert {p["id"] for p in states[-1]["players"]} >= {first.id, second.id}


def test_killing_the_worker_that_runs_the_loop_moves_it_to_the_other_worker(
    cluster: Demo, raw: Callable[[Demo], RawPlayer]
) -> None:
    """SIGKILL to the loop's worker: the other worker runs the loop within seconds; play goes on."""
    first, second = on_two_workers(raw, cluster)
    first.play("first")
    second.play("second")
    loop = first.next("state")["pid"]
    survivor = second if first.worker == loop else first
    assert survivor.worker != loop
    os.kill(loop, signal.SIGKILL)
    killed = time.monotonic()
    moved = survivor.next("state", timeout=15, where=lambda state: state["pid"] != loop)
    took = time.monotonic() - killed
    print(f"the loop moved from pid {loop} to {moved['pid']} in {took:.1f}s")
    assert moved["pid"] == survivor.worker
    assert took < 8
    assert survivor.me(moved) is not None
    survivor.next("state", where=lambda state: (survivor.me(state) or {}).get("alive"))
    assert_one_loop(survivor.states(1.0), 1.0)


# -- the screenshot in the docs ---------------------------------------------------

KEYS = {"up": "ArrowUp", "down": "ArrowDown", "left": "ArrowLeft", "right": "ArrowRight"}
STEPS = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0)}


class Bot:
    """A greedy player at a page's keyboard: to the nearest food, never into a wall or a body.

    It sees the game as a page that watches it does, through a socket of its own
    (``watcher``), and finds its snake there by its player's name.
    """

    def __init__(self, page: Page, name: str, watcher: ClientConnection) -> None:
        self.page = page
        self.name = name
        self.watcher = watcher
        self.state: dict[str, Any] | None = None
        self.last_tick = -1

    def latest_state(self) -> dict[str, Any] | None:
        """The last state the watcher received (those before it are skipped)."""
        while True:
            try:
                message = json.loads(self.watcher.recv(timeout=0))
            except TimeoutError:
                return self.state
            if message["type"] == "state":
                self.state = message

    def steer(self) -> None:
        state = self.latest_state()
        if not state or state["tick"] <= self.last_tick:
            return  # One key per tick at most: the last one may not show yet.
        mine = [p for p in state["players"] if p["name"] == self.name and p["alive"]]
        if not mine or len(mine[0]["body"]) < 4:
            return
        body = mine[0]["body"]
        head, neck = (body[0], body[1]), (body[2], body[3])
        heading = next(d for d, (dx, dy) in STEPS.items() if (head[0] - dx, head[1] - dy) == neck)
        taken = {
            (p["body"][i], p["body"][i + 1])
            for p in state["players"]
            for i in range(0, len(p["body"]), 2)
        }
        food = [(state["food"][i], state["food"][i + 1]) for i in range(0, len(state["food"]), 2)]

        def cost(direction: str) -> float:
            x, y = head[0] + STEPS[direction][0], head[1] + STEPS[direction][1]
            if not (0 <= x < state["width"] and 0 <= y < state["height"]) or (x, y) in taken:
                return float("inf")
            return min((abs(x - fx) + abs(y - fy) for fx, fy in food), default=0)

        opposite = {"up": "down", "down": "up", "left": "right", "right": "left"}
        choice = min((d for d in STEPS if d != opposite[heading]), key=cost)
        if choice != heading and cost(choice) < cost(heading):
            self.page.keyboard.press(KEYS[choice])
            self.last_tick = state["tick"]


def score(page: Page) -> int:
    return int(page.get_by_test_id("score").inner_text())


@pytest.mark.skipif(not SCREENSHOTS, reason="writes docs/snake.png only with DUPLEX_SCREENSHOTS=1")
def test_screenshot_of_a_two_player_game(browser: Browser) -> None:
    """docs/snake.png: two players steered by bots, a few points in, after a first game each."""
    with snake_demo("demo", DUPLEX_DEMO_SNAKE_TICK_RATE="8") as demo, ExitStack() as sockets:
        contexts = [browser.new_context(viewport={"width": 1100, "height": 760}) for _ in range(2)]
        try:
            ana, bo = (context.new_page() for context in contexts)
            bots = []
            for page, name in ((ana, "ana"), (bo, "bo")):
                url = demo.ws_url + "/snake/ws"  # It watches the shared game, as every page does.
                watcher = sockets.enter_context(connect(url, open_timeout=10, max_queue=None))
                bots.append(Bot(page, name, watcher))
                page.goto(demo.url + "/snake/")
                play(page, name)
            deadline = time.monotonic() + 90
            # A first game each, steered to a few points and then let go into a wall.
            games_over = set()
            while len(games_over) < 2:
                assert time.monotonic() < deadline
                for bot in bots:
                    if status(bot.page) == "dead":
                        games_over.add(bot.page)
                    elif bot.page not in games_over and score(bot.page) < 3 + len(games_over):
                        bot.steer()
            expect(ana.locator("[data-testid=entry]")).to_have_count(2)
            # The second games, until both snakes have grown a little.
            for bot in bots:
                bot.page.get_by_test_id("play").click()
            while not all(status(p) == "playing" and score(p) >= 2 for p in (ana, bo)):
                assert time.monotonic() < deadline
                for bot in bots:
                    if status(bot.page) == "dead":
                        bot.page.get_by_test_id("play").click()
                    bot.steer()
            ana.screenshot(path=ROOT / "docs" / "snake.png")
        finally:
            for context in contexts:
                context.close()

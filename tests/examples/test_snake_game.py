"""The snake game's rules, without a socket: the loop's plain ``SnakeGame``, with a fixed seed."""

from __future__ import annotations

import json
import random
import sys
from collections import deque

import pytest

from tests.support.servers import ROOT

DEMO = str(ROOT / "examples" / "demo")
if DEMO not in sys.path:  # The demo is an app run from its folder, not an installed package.
    sys.path.insert(0, DEMO)

from duplex_demo.snake_game import STRAIGHT_LIMIT, Death, Snake, SnakeGame  # noqa: E402

SEED = 1234


def new_game(width: int = 20, height: int = 20, **options: object) -> SnakeGame:
    options.setdefault("extra_food", 0)
    return SnakeGame(width, height, rng=random.Random(SEED), **options)  # type: ignore[arg-type]


def place(game: SnakeGame, player_id: str, cells: list[tuple[int, int]], direction: str) -> None:
    """Join ``player_id`` and put its snake exactly here (head first)."""
    game.play(player_id, player_id)
    game.players[player_id].snake = Snake(deque(cells), direction)


def body(game: SnakeGame, player_id: str) -> list[tuple[int, int]]:
    snake = game.players[player_id].snake
    assert snake is not None, f"{player_id} is dead"
    return list(snake.body)


def test_a_new_snake_is_three_cells_in_the_middle_heading_where_there_is_room() -> None:
    """play() spawns a straight 3-cell snake in the middle half of the board, facing open space."""
    game = new_game(40, 30)
    assert game.play("a", "ana")
    cells = body(game, "a")
    assert len(cells) == 3
    head = cells[0]
    assert 10 <= head[0] < 30 and 7 <= head[1] < 23
    deaths = [game.tick() for _ in range(5)]
    assert deaths == [[]] * 5, "a new snake has at least a few cells of room ahead"


def test_a_snake_moves_one_cell_per_tick_and_its_tail_follows() -> None:
    """Each tick the head moves one cell in its direction and the tail leaves its cell."""
    game = new_game()
    place(game, "a", [(5, 5), (4, 5), (3, 5)], "right")
    game.food = set()
    game.extra_food = 0
    game.tick()
    assert body(game, "a")[:3] == [(6, 5), (5, 5), (4, 5)]


@pytest.mark.parametrize(
    ("cells", "direction"),
    [
        ([(19, 5), (18, 5), (17, 5)], "right"),
        ([(0, 5), (1, 5), (2, 5)], "left"),
        ([(5, 0), (5, 1), (5, 2)], "up"),
        ([(5, 19), (5, 18), (5, 17)], "down"),
    ],
)
def test_a_head_that_leaves_the_board_dies_on_the_wall(
    cells: list[tuple[int, int]], direction: str
) -> None:
    """The board has walls on all four sides: one step out is death by ``wall``."""
    game = new_game()
    place(game, "a", cells, direction)
    assert game.tick() == [Death("a", "a", 0, "wall")]
    assert game.players["a"].snake is None


def test_a_snake_that_turns_into_its_own_body_dies() -> None:
    """A head on its own body is death by ``self``."""
    game = new_game()
    # A 5-cell snake heading right, turning down, left, then up into itself.
    place(game, "a", [(6, 5), (5, 5), (4, 5), (3, 5), (2, 5)], "right")
    game.food = set()
    assert game.turn("a", "down")
    assert game.tick() == []
    assert game.turn("a", "left")
    assert game.tick() == []
    assert game.turn("a", "up")
    assert game.tick() == [Death("a", "a", 0, "self")]


def test_a_snake_that_runs_into_another_dies_and_the_other_goes_on() -> None:
    """A head on another snake's body is death by ``snake``; the other snake lives."""
    game = new_game()
    place(game, "a", [(5, 4), (5, 3), (5, 2)], "down")  # Into b's middle next tick.
    place(game, "b", [(6, 5), (5, 5), (4, 5)], "right")
    game.food = set()
    assert game.tick() == [Death("a", "a", 0, "snake")]
    assert body(game, "b")[0] == (7, 5)


def test_two_heads_on_one_cell_both_die_head_on() -> None:
    """Two heads that reach the same cell in one tick both die, ``head-on``."""
    game = new_game()
    place(game, "a", [(4, 5), (3, 5), (2, 5)], "right")
    place(game, "b", [(6, 5), (7, 5), (8, 5)], "left")
    game.food = set()
    deaths = game.tick()
    assert sorted(deaths, key=lambda d: d.player_id) == [
        Death("a", "a", 0, "head-on"),
        Death("b", "b", 0, "head-on"),
    ]


def test_two_heads_that_swap_cells_both_die_head_on() -> None:
    """Heads next to each other moving into each other cannot pass through: both die."""
    game = new_game()
    place(game, "a", [(5, 5), (4, 5), (3, 5)], "right")
    place(game, "b", [(6, 5), (7, 5), (8, 5)], "left")
    game.food = set()
    deaths = game.tick()
    assert {(d.player_id, d.cause) for d in deaths} == {("a", "head-on"), ("b", "head-on")}


def test_a_head_may_take_the_cell_a_tail_leaves_in_the_same_tick() -> None:
    """Everyone moves at once: a tail moving away frees its cell for a head."""
    game = new_game()
    place(game, "a", [(5, 4), (5, 3), (5, 2)], "down")  # Into b's tail cell (4, 5).
    place(game, "b", [(7, 5), (6, 5), (5, 5)], "right")
    game.food = set()
    assert game.tick() == []
    assert body(game, "a")[0] == (5, 5)


def test_a_tail_that_stays_because_its_snake_eats_still_kills() -> None:
    """A snake that eats keeps its tail: a head moving there dies."""
    game = new_game()
    place(game, "a", [(5, 4), (5, 3), (5, 2)], "down")
    place(game, "b", [(7, 5), (6, 5), (5, 5)], "right")
    game.food = {(8, 5)}  # b eats this tick, so its tail (5, 5) stays.
    assert game.tick() == [Death("a", "a", 0, "snake")]
    assert game.players["b"].score == 1


def test_eating_food_scores_a_point_and_grows_the_snake_by_one() -> None:
    """A head on food: one point, one more cell, and the food is put back elsewhere."""
    game = new_game()
    place(game, "a", [(5, 5), (4, 5), (3, 5)], "right")
    game.food = {(6, 5)}
    game.tick()
    assert game.players["a"].score == 1
    assert body(game, "a") == [(6, 5), (5, 5), (4, 5), (3, 5)]
    assert len(game.food) == 1 and (6, 5) not in game.food
    game.tick()
    assert len(body(game, "a")) == 4, "it grows once per food, then moves on"


def test_food_never_lands_on_a_snake_and_keeps_one_per_player_plus_extra() -> None:
    """Food goes on free cells; the board holds one per player plus ``extra_food``."""
    game = new_game(10, 10, extra_food=2)
    place(game, "a", [(5, 5), (4, 5), (3, 5)], "right")
    game.food = set()
    game.tick()
    assert len(game.food) == 3
    assert not game.food & set(body(game, "a"))


def test_a_reversal_into_itself_is_ignored() -> None:
    """Going right, ``left`` is ignored and the snake goes on right."""
    game = new_game()
    place(game, "a", [(5, 5), (4, 5), (3, 5)], "right")
    game.food = set()
    assert not game.turn("a", "left")
    assert game.tick() == []
    assert body(game, "a")[0] == (6, 5)


def test_two_quick_turns_make_a_u_turn_not_a_reversal() -> None:
    """``up`` then ``left`` within one tick apply one tick each: the snake turns round alive."""
    game = new_game()
    place(game, "a", [(5, 5), (4, 5), (3, 5)], "right")
    game.food = set()
    assert game.turn("a", "up")
    assert game.turn("a", "left")
    assert game.tick() == []
    assert game.tick() == []
    assert body(game, "a")[:2] == [(4, 4), (5, 4)]


def test_turns_beyond_two_queued_are_ignored() -> None:
    """A flood of turns queues at most two; the rest change nothing."""
    game = new_game()
    place(game, "a", [(5, 5), (4, 5), (3, 5)], "right")
    assert game.turn("a", "up")
    assert game.turn("a", "right")
    assert not game.turn("a", "down")
    assert not game.turn("nobody", "down")
    assert not game.turn("a", "sideways")


def test_a_snake_left_to_go_straight_dies_within_30_seconds_on_any_board() -> None:
    """On the default board the wall comes first; on a huge one the straight limit (30 s)."""
    rate = 10.0
    game = new_game(40, 30, tick_rate=rate)
    game.play("a", "ana")
    ticks = 0
    while not game.tick():
        ticks += 1
    assert ticks / rate < STRAIGHT_LIMIT
    assert game.players["a"].snake is None

    wide = new_game(1000, 8, tick_rate=rate)
    place(wide, "a", [(2, 4), (1, 4), (0, 4)], "right")
    wide.food = set()
    deaths: list[Death] = []
    ticks = 0
    while not deaths:
        deaths = wide.tick()
        ticks += 1
    assert deaths == [Death("a", "a", 0, "straight")]
    assert ticks == STRAIGHT_LIMIT * rate


def test_a_turn_starts_the_straight_count_over() -> None:
    """Only going straight counts: a snake that turns before the limit lives on."""
    game = new_game(1000, 1000, tick_rate=1.0)
    place(game, "a", [(500, 500), (499, 500), (498, 500)], "right")
    game.food = set()
    for _ in range(int(STRAIGHT_LIMIT) - 1):
        assert game.tick() == []
    assert game.turn("a", "down")
    for _ in range(int(STRAIGHT_LIMIT) - 1):
        assert game.tick() == []
    assert game.tick() == [Death("a", "a", 0, "straight")]


def test_play_again_starts_a_new_game_and_play_while_alive_is_ignored() -> None:
    """play() while alive changes nothing; after a death it spawns a new snake at score 0."""
    game = new_game()
    place(game, "a", [(19, 5), (18, 5), (17, 5)], "right")
    game.players["a"].score = 4
    assert not game.play("a", "ana")
    assert game.tick() == [Death("a", "a", 4, "wall")]
    assert game.play("a", "ana")
    assert game.players["a"].score == 0
    assert len(body(game, "a")) == 3


def test_leave_takes_a_player_out_without_a_death() -> None:
    """A player who leaves is gone from the state; no game is recorded."""
    game = new_game()
    game.play("a", "ana")
    game.play("b", "bo")
    game.leave("a")
    assert game.tick() == []
    assert [p["name"] for p in game.state()["players"]] == ["bo"]


def test_spawns_never_overlap_and_wait_when_the_board_is_full() -> None:
    """On a crowded board new snakes never overlap; those without room wait for it."""
    game = new_game(8, 8)
    for n in range(12):
        game.play(f"p{n}", f"p{n}")
    cells = [c for p in game.players.values() if p.snake for c in p.snake.body]
    assert len(cells) == len(set(cells))
    waiting = [p for p in game.players.values() if p.snake is None]
    assert waiting and all(p.waiting for p in waiting)


def test_the_same_seed_plays_the_same_game() -> None:
    """Spawns and food come from the game's random generator only."""

    def run() -> list[object]:
        game = new_game(30, 20, extra_food=3)
        for n in range(4):
            game.play(f"p{n}", f"p{n}")
        return [(game.tick(), game.state()) for _ in range(40)]

    assert run() == run()


def test_state_lists_every_player_in_join_order_with_flat_cells() -> None:
    """The state names each player, dead or alive; bodies and food are flat [x, y, ...] lists."""
    game = new_game()
    place(game, "a", [(19, 5), (18, 5), (17, 5)], "right")
    place(game, "b", [(5, 5), (4, 5), (3, 5)], "right")
    game.food = {(1, 1)}
    game.tick()
    state = game.state()
    assert state["tick"] == 1 and state["width"] == 20 and state["height"] == 20
    assert state["players"] == [
        {"id": "a", "name": "a", "score": 0, "alive": False, "body": []},
        {"id": "b", "name": "b", "score": 0, "alive": True, "body": [6, 5, 5, 5, 4, 5]},
    ]
    assert state["food"][:2] == [1, 1]


def test_the_state_of_a_20_player_game_is_a_few_kilobytes() -> None:
    """20 snakes of 10 cells with 32-character ids: one tick's message stays under 4 kB."""
    game = SnakeGame(40, 30, rng=random.Random(SEED))
    for n in range(20):
        game.play(f"{n:032x}", f"player {n:02}")  # Ids as long as a connection's.
    for player in game.players.values():
        snake = player.snake
        assert snake is not None
        while len(snake.body) < 10:
            snake.body.append(snake.body[-1])
        player.score = 7
    message = {"type": "state", "room": "main", "pid": 12345, **game.state()}
    size = len(json.dumps(message))  # As the app sends it: Flask's JSON, with spaces.
    print(f"state message, 20 players of 10 cells: {size} bytes")
    assert size < 4096


def test_a_board_smaller_than_8_cells_is_refused() -> None:
    """Too small a board to spawn on raises ValueError at once."""
    with pytest.raises(ValueError, match="8x8"):
        SnakeGame(7, 30)

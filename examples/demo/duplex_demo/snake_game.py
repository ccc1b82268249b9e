"""The rules of the snake game: a plain class with no I/O.

Nothing here touches a socket, a clock or a database. The game loop
(``snake.py``) owns the I/O: it feeds :class:`SnakeGame` what players did
(:meth:`~SnakeGame.play`, :meth:`~SnakeGame.turn`, :meth:`~SnakeGame.leave`),
calls :meth:`~SnakeGame.tick` at the tick rate, stores the :class:`Death`
records it returns, and broadcasts :meth:`~SnakeGame.state`. So the rules can
be tested without a server, with a seeded ``random.Random`` (websockets keeps
its protocol in the same way, apart from the code that reads and writes).

One tick, everyone at once:

1. Each living snake takes the next turn it asked for, if any. Turns are
   queued (two at most) and checked against the direction the snake will have
   when each applies, so that a reversal into itself is ignored even when
   two keys come within one tick ("up, left" while going right is a U-turn,
   not a reversal).
2. Every head moves one cell. A tail moves along unless its snake eats now.
3. A head dies on leaving the board (``wall``), on a cell another head
   reaches too or on the cell another head just left (``head-on``: two heads
   meet, both die), on its own body (``self``) or another snake's
   (``snake``) as they are after the move, or after going straight
   for ``STRAIGHT_LIMIT`` seconds of ticks (``straight``: the walls see to it
   on any sane board, the rule makes sure of it on any board).
4. A head on food eats it: one point, and the snake grows by one cell.
   Dead snakes leave the board; food is put back on free cells.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DIRECTIONS", "STRAIGHT_LIMIT", "Death", "SnakeGame"]

Cell = tuple[int, int]

DIRECTIONS: dict[str, Cell] = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0)}
OPPOSITE = {"up": "down", "down": "up", "left": "right", "right": "left"}

#: Seconds a snake may go straight before it dies, whatever the board's size.
STRAIGHT_LIMIT = 30.0
#: Cells of a new snake.
START_LENGTH = 3
#: Turns a snake may have queued; more within the same ticks are ignored.
MAX_QUEUED_TURNS = 2


@dataclass(frozen=True)
class Death:
    """A game that ended: whose, with what score, and how (``wall``, ``self``, ...)."""

    player_id: str
    name: str
    score: int
    cause: str


@dataclass
class Snake:
    body: deque[Cell]  # Head first.
    direction: str
    turns: deque[str] = field(default_factory=deque)
    straight: int = 0  # Ticks moved since the last turn (or the spawn).


@dataclass
class Player:
    id: str
    name: str
    score: int = 0
    snake: Snake | None = None  # None: dead, or waiting for room to spawn.
    waiting: bool = False  # Asked to play; spawns as soon as there is room.


class SnakeGame:
    """One room's game: its board, its players, their snakes and the food.

    Args:
        width: Cells across.
        height: Cells down.
        tick_rate: Ticks per second; only used to turn :data:`STRAIGHT_LIMIT`
            into ticks.
        rng: Where spawn places and food come from; pass ``random.Random(seed)``
            for a game that plays the same every time.
        extra_food: Food on the board beyond one per player.
    """

    def __init__(
        self,
        width: int = 40,
        height: int = 30,
        *,
        tick_rate: float = 10.0,
        rng: random.Random | None = None,
        extra_food: int = 2,
    ) -> None:
        if width < 8 or height < 8:
            raise ValueError(f"the board must be at least 8x8 cells, not {width}x{height}")
        if tick_rate <= 0:
            raise ValueError(f"tick_rate must be positive, not {tick_rate!r}")
        self.width = width
        self.height = height
        self.straight_limit = max(1, round(STRAIGHT_LIMIT * tick_rate))
        self.rng = rng or random.Random()
        self.extra_food = extra_food
        self.ticks = 0
        self.players: dict[str, Player] = {}
        self.food: set[Cell] = set()

    # -- what players do --------------------------------------------------

    def play(self, player_id: str, name: str) -> bool:
        """Start a new game for this player, joining if new; False if its snake is alive.

        The snake appears on a free spot at once, or at the first tick that
        has room for it.
        """
        player = self.players.get(player_id)
        if player is None:
            player = self.players[player_id] = Player(player_id, name)
        elif player.snake is not None or player.waiting:
            return False
        player.name = name
        player.score = 0
        player.waiting = True
        self._spawn(player)
        self._refill_food()
        return True

    def turn(self, player_id: str, direction: str) -> bool:
        """Queue a turn for the player's snake; False if ignored.

        Ignored: an unknown direction, no living snake, the direction it will
        already have, a reversal into itself, or more than two turns queued.
        """
        player = self.players.get(player_id)
        if player is None or player.snake is None or direction not in DIRECTIONS:
            return False
        snake = player.snake
        last = snake.turns[-1] if snake.turns else snake.direction
        if direction in (last, OPPOSITE[last]) or len(snake.turns) >= MAX_QUEUED_TURNS:
            return False
        snake.turns.append(direction)
        return True

    def leave(self, player_id: str) -> None:
        """Take the player out of the game; a living snake leaves the board, unscored."""
        self.players.pop(player_id, None)

    # -- the clock --------------------------------------------------------

    def tick(self) -> list[Death]:
        """Move every snake one cell; return the games that ended."""
        self.ticks += 1
        for player in self.players.values():
            if player.waiting:
                self._spawn(player)
        moving = [p for p in self.players.values() if p.snake is not None]
        heads: dict[str, Cell] = {}
        old_heads: dict[str, Cell] = {}
        for player in moving:
            snake = player.snake
            assert snake is not None
            if snake.turns:
                snake.direction = snake.turns.popleft()
                snake.straight = 0
            snake.straight += 1
            dx, dy = DIRECTIONS[snake.direction]
            x, y = old_heads[player.id] = snake.body[0]
            heads[player.id] = (x + dx, y + dy)

        # Where bodies are once everyone moved: a tail leaves its cell unless its snake eats.
        occupied: dict[Cell, str] = {}
        for player in moving:
            snake = player.snake
            assert snake is not None
            eats = heads[player.id] in self.food
            body = list(snake.body) if eats else list(snake.body)[:-1]
            for cell in body:
                occupied[cell] = player.id
        head_count: dict[Cell, int] = {}
        for head in heads.values():
            head_count[head] = head_count.get(head, 0) + 1

        deaths: list[Death] = []
        for player in moving:
            head = heads[player.id]
            cause = None
            if not (0 <= head[0] < self.width and 0 <= head[1] < self.height):
                cause = "wall"
            elif head_count[head] > 1:
                cause = "head-on"
            elif head in occupied:
                owner = occupied[head]
                if owner == player.id:
                    cause = "self"
                else:  # Into the other's neck, where its head just was: head-on too.
                    cause = "head-on" if head == old_heads[owner] else "snake"
            elif player.snake is not None and player.snake.straight >= self.straight_limit:
                cause = "straight"
            if cause is not None:
                deaths.append(Death(player.id, player.name, player.score, cause))

        dead = {death.player_id for death in deaths}
        for player in moving:
            snake = player.snake
            assert snake is not None
            if player.id in dead:
                player.snake = None
                continue
            head = heads[player.id]
            snake.body.appendleft(head)
            if head in self.food:
                self.food.discard(head)
                player.score += 1
            else:
                snake.body.pop()
        self._refill_food()
        return deaths

    # -- what everyone sees -----------------------------------------------

    def state(self) -> dict[str, Any]:
        """The whole game as JSON-ready values: players in join order, cells as flat [x, y, ...]."""
        return {
            "tick": self.ticks,
            "width": self.width,
            "height": self.height,
            "players": [
                {
                    "id": player.id,
                    "name": player.name,
                    "score": player.score,
                    "alive": player.snake is not None,
                    "body": _flat(player.snake.body) if player.snake is not None else [],
                }
                for player in self.players.values()
            ],
            "food": _flat(sorted(self.food)),
        }

    # -- placing things ---------------------------------------------------

    def _taken(self) -> set[Cell]:
        cells = set(self.food)
        for player in self.players.values():
            if player.snake is not None:
                cells.update(player.snake.body)
        return cells

    def _spawn(self, player: Player, attempts: int = 100) -> None:
        """Place a new snake on a free spot in the middle half, heading where there is most room."""
        taken = self._taken()
        for _ in range(attempts):
            x = self.rng.randrange(self.width // 4, self.width - self.width // 4)
            y = self.rng.randrange(self.height // 4, self.height - self.height // 4)
            best: tuple[int, str] | None = None
            for direction, (dx, dy) in DIRECTIONS.items():
                tail = [(x - dx * i, y - dy * i) for i in range(START_LENGTH)]
                if any(cell in taken or not self._inside(cell) for cell in tail):
                    continue
                room = self._room_ahead((x, y), direction, taken)
                if best is None or room > best[0]:
                    best = (room, direction)
            if best is not None and best[0] >= 2:
                dx, dy = DIRECTIONS[best[1]]
                body = deque((x - dx * i, y - dy * i) for i in range(START_LENGTH))
                player.snake = Snake(body, best[1])
                player.waiting = False
                return
        # No room now: the next tick tries again.

    def _room_ahead(self, head: Cell, direction: str, taken: set[Cell]) -> int:
        dx, dy = DIRECTIONS[direction]
        x, y = head
        cells = 0
        while self._inside((x + dx, y + dy)) and (x + dx, y + dy) not in taken:
            x, y = x + dx, y + dy
            cells += 1
        return cells

    def _inside(self, cell: Cell) -> bool:
        return 0 <= cell[0] < self.width and 0 <= cell[1] < self.height

    def _refill_food(self) -> None:
        target = len(self.players) + self.extra_food
        taken = self._taken()
        while len(self.food) < target:
            cell = self._free_cell(taken)
            if cell is None:
                return
            self.food.add(cell)
            taken.add(cell)

    def _free_cell(self, taken: set[Cell]) -> Cell | None:
        for _ in range(50):
            cell = (self.rng.randrange(self.width), self.rng.randrange(self.height))
            if cell not in taken:
                return cell
        free = [
            (x, y) for x in range(self.width) for y in range(self.height) if (x, y) not in taken
        ]
        return self.rng.choice(free) if free else None


def _flat(cells: Any) -> list[int]:
    return [coordinate for cell in cells for coordinate in cell]

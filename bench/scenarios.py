"""The scenarios every contender runs, and how the load generator is told to run each.

Standard library only, like :mod:`bench.contenders`.

Two families:

- **Throughput**: echo over connections that stay open (``echo``), and fragmented messages
  (``fragmented``).
- **What a connection costs**: the connection cycle (``cycle``: connect, handshake, one small
  echo, polite close) beside a plain GET on the same server (``get``), the time to open one
  connection when nothing else is going on (``open``), and idle connections (``idle``).

For the per-operation costs the figure to read is the server's CPU time per operation (user
plus system time of the server's processes over the timed window, divided by the operations
completed in it), which a busy machine disturbs far less than the wall-clock rate.
"""

from __future__ import annotations

__all__ = [
    "CYCLE",
    "ECHO",
    "FRAGMENTED",
    "GET",
    "IDLE",
    "OPEN",
    "SCENARIOS",
    "UNPINNED",
    "Scenario",
    "Timing",
    "size_label",
]

import dataclasses
from typing import Protocol

SMALL = 32
LARGE = 64 * 1024
CYCLE_MESSAGE = 16
FRAGMENT = 256
# Round trips of the client that arrives while the idle connections are open.
PROBE_ROUND_TRIPS = 100


class _Contender(Protocol):
    """What a scenario needs to know of a contender (see :class:`bench.contenders.Contender`)."""

    @property
    def plain_http(self) -> bool: ...

    @property
    def deflate(self) -> bool: ...

    @property
    def gunicorn_worker(self) -> str | None: ...


@dataclasses.dataclass(frozen=True)
class Timing:
    """How long the timed scenarios run, in seconds."""

    duration: float = 3.0
    warmup: float = 0.5


# What the smoke check runs each scenario with: long enough for one operation of each kind.
SMOKE_TIMING = Timing(duration=0.1, warmup=0.0)


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One measurement, run by the load generator against one server.

    Attributes:
        key: Unique name, used in the JSON results and on the command line (``--scenario``).
        kind: The load generator's sub-command: ``echo``, ``fragmented``, ``cycle``, ``get``,
            ``open`` or ``idle``.
        label: How the tables name it.
        connections: Connections open at once (concurrent loops for ``cycle`` and ``get``).
        size: Message size in bytes (``echo``, ``fragmented``, ``cycle``).
        compressed: ``fragmented`` only: offer permessage-deflate and send compressed.
    """

    key: str
    kind: str
    label: str
    connections: int
    size: int = 0
    compressed: bool = False

    def runs_on(self, contender: _Contender) -> bool:
        """Whether ``contender`` can run this scenario at all (else its cell reads n/a)."""
        if self.kind == "get":
            return contender.plain_http
        if self.kind == "fragmented" and self.compressed:
            return contender.deflate
        if self.kind == "idle" and self.connections > 1000:
            # Only one worker of gunicorn's gevent holds that many here: a thread per connection
            # would not, and the asyncio servers' cost per connection is the same at 1,000.
            return contender.gunicorn_worker == "gevent"
        return True

    @property
    def fresh_server(self) -> bool:
        """Whether it runs on a server started for it alone (the idle scenarios do)."""
        return self.kind == "idle"

    def load_arguments(self, timing: Timing, smoke: bool = False) -> list[str]:
        """The load generator's arguments for this scenario, after the server's URL and PIDs.

        With ``smoke``, the same code paths at the smallest size: at most 2 concurrent loops,
        3 idle connections and 3 probe round trips, short settling times.
        """
        connections = min(self.connections, 3 if self.kind == "idle" else 2) if smoke else None
        arguments = [self.kind, "--connections", str(connections or self.connections)]
        if self.kind in ("echo", "fragmented", "cycle"):
            arguments += ["--size", str(self.size)]
        if self.kind == "fragmented":
            arguments += ["--fragment", str(FRAGMENT)]
            if self.compressed:
                arguments.append("--compressed")
        if self.kind == "idle":
            arguments += ["--probe-round-trips", str(3 if smoke else PROBE_ROUND_TRIPS)]
            if smoke:
                arguments += ["--settle", "0.05"]
        else:
            arguments += ["--duration", str(timing.duration), "--warmup", str(timing.warmup)]
        return arguments

    def time_limit(self, timing: Timing) -> float:
        """Seconds after which the load generator is stopped and the scenario is an error."""
        if self.kind == "idle":
            return 120.0 + self.connections / 50
        return timing.warmup + timing.duration + 60.0


def size_label(size: int) -> str:
    """``32 B``, ``64 KiB``."""
    return f"{size // 1024} KiB" if size >= 1024 else f"{size} B"


ECHO: tuple[Scenario, ...] = tuple(
    Scenario(
        f"echo-{size}-x{connections}",
        "echo",
        f"{size_label(size)}, {connections} conn",
        connections,
        size,
    )
    for size in (SMALL, LARGE)
    for connections in (1, 10, 100)
)
FRAGMENTED: tuple[Scenario, ...] = (
    Scenario("frag-deflate-x1", "fragmented", "deflate, 1 conn", 1, LARGE, compressed=True),
    Scenario("frag-deflate-x10", "fragmented", "deflate, 10 conn", 10, LARGE, compressed=True),
    Scenario("frag-x10", "fragmented", "uncompressed, 10 conn", 10, LARGE),
)
CYCLE = Scenario("cycle-x10", "cycle", "connection cycle, 10 loops", 10, CYCLE_MESSAGE)
GET = Scenario("get-x10", "get", "plain GET cycle, 10 loops", 10)
OPEN = Scenario("open-x1", "open", "open, 1 client", 1)
IDLE: tuple[Scenario, ...] = (
    Scenario("idle-1000", "idle", "1,000 idle connections", 1000),
    Scenario("idle-10000", "idle", "10,000 idle connections", 10000),
)

# The idle scenarios run last, each on a freshly started server, so that threads and memory
# left over from the other scenarios (gunicorn's thread pool keeps its threads) do not count.
SCENARIOS: tuple[Scenario, ...] = (*ECHO, *FRAGMENTED, CYCLE, GET, OPEN, *IDLE)

# The scenarios run a second time unpinned, as deployed (see bench.contenders.UNPINNED_CONTENDERS):
# where a thread per connection pays for handing the GIL across cores, and one connection alone.
UNPINNED: tuple[str, ...] = ("echo-32-x10", "echo-65536-x10", "echo-32-x1")

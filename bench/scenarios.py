"""The scenarios every contender runs, and how the load generator is told to run each.

Standard library only, like :mod:`bench.contenders`.
"""

from __future__ import annotations

__all__ = ["ECHO", "HANDSHAKES", "IDLE", "SCENARIOS", "Scenario", "Timing", "size_label"]

import dataclasses

SMALL = 32
LARGE = 64 * 1024


@dataclasses.dataclass(frozen=True)
class Timing:
    """How long the timed scenarios run, in seconds."""

    duration: float = 3.0
    warmup: float = 0.5


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One measurement, run by the load generator against one server.

    Attributes:
        key: Unique name, used in the JSON results.
        kind: ``echo``, ``idle`` or ``handshakes``: the load generator's sub-command.
        label: How the tables name it.
        connections: Connections open at once.
        size: Message size in bytes (``echo`` only).
    """

    key: str
    kind: str
    label: str
    connections: int
    size: int = 0

    def load_arguments(self, timing: Timing) -> list[str]:
        """The load generator's arguments for this scenario, after the server's URL and PIDs."""
        arguments = [self.kind, "--connections", str(self.connections)]
        if self.kind == "echo":
            arguments += ["--size", str(self.size)]
        if self.kind in ("echo", "handshakes"):
            arguments += ["--duration", str(timing.duration), "--warmup", str(timing.warmup)]
        return arguments

    def time_limit(self, timing: Timing) -> float:
        """Seconds after which the load generator is stopped and the scenario is an error."""
        if self.kind == "idle":
            return 180.0
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
HANDSHAKES = Scenario("handshakes", "handshakes", "handshakes, 10 loops", 10)
IDLE = Scenario("idle-1000", "idle", "1,000 idle connections", 1000)

# Idle runs last, on a freshly started server, so that threads left over from the other
# scenarios (gunicorn's thread pool keeps them) do not count.
SCENARIOS: tuple[Scenario, ...] = (*ECHO, HANDSHAKES, IDLE)

"""``python -m bench.cycle_cost``: a bare connection's server CPU against a plain GET's.

What a user who measures the server from outside sees: the user plus system CPU time of the
server's processes (``/proc/PID/stat``), read before and after ``N`` connection cycles, against
the same over ``N`` plain GETs, on the same server, in the same run. A cycle here is the least a
WebSocket connection can be: TCP connect, handshake (101), polite close (the client's close frame,
the server's, the server's TCP close), with no message. A GET is ``GET /plain`` with
``Connection: close``, read to the server's TCP close.

The main benchmark's cycle (``python -m bench --scenario cycle-x10``) carries a 16 B echo as well,
and is timed over a window rather than counted; both read CPU the same way.

Each server is started once, pinned to its core as the benchmark pins it (the client takes the
other core). After a warm-up of both kinds, the cycles and the GETs are measured in alternating
blocks (``--rounds`` of each), so that what else the machine does weighs on both alike; the ratio
reported is the GET's total CPU per request ÷ the cycle's total CPU per cycle, over every block.
The client runs ``--loops`` concurrent loops on bare sockets (asyncio streams, the frames built
once), so it costs little and sends the same bytes every time.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from bench import procfs
from bench.contenders import CONTENDERS, Contender
from bench.process import CLIENT_CORE, SERVER_CORE, can_pin, started_server
from bench.servers import ECHO_PATH, PLAIN_BODY, PLAIN_PATH

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

SERVERS: dict[str, Contender] = {
    "werkzeug": next(c for c in CONTENDERS if c.key == "flask-duplex-werkzeug"),
    "gunicorn-gthread": next(c for c in CONTENDERS if c.key == "flask-duplex-gthread"),
    "gunicorn-gevent": next(c for c in CONTENDERS if c.key == "flask-duplex-gevent"),
}
OPERATION_TIMEOUT = 10.0
# A masked close frame with code 1000 (the mask key is zero, so the payload reads as is).
_CLOSE_FRAME = b"\x88\x82\x00\x00\x00\x00\x03\xe8"


class Failure(Exception):
    """The measurement cannot give a figure; the message says why."""


def _upgrade_request(port: int) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {ECHO_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


async def _cycle(port: int, request: bytes) -> None:
    """Connect, handshake, close politely; the server's close frame and TCP close must come."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            first_line = head.split(b"\r\n", 1)[0]
            raise Failure(f"the handshake was answered {first_line!r}")
        writer.write(_CLOSE_FRAME)
        rest = await reader.read()  # To the server's TCP close.
        if not rest.startswith(b"\x88"):
            raise Failure("the server closed without a close frame")
    finally:
        writer.close()


async def _get(port: int, request: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        response = await reader.read()
        if not response.startswith(b"HTTP/1.1 200") or not response.endswith(PLAIN_BODY.encode()):
            raise Failure(f"GET {PLAIN_PATH} answered {response[:40]!r}")
    finally:
        writer.close()


async def _run(operation: Callable[[], Awaitable[None]], count: int, loops: int) -> None:
    """``count`` operations in ``loops`` concurrent loops."""
    left = count

    async def loop() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await asyncio.wait_for(operation(), OPERATION_TIMEOUT)

    await asyncio.gather(*(loop() for _ in range(loops)))


def _block(
    pids: Sequence[int], operation: Callable[[], Awaitable[None]], count: int, loops: int
) -> tuple[float, float]:
    """Server user and system CPU seconds over ``count`` operations."""
    user, system = procfs.cpu_user_system(pids)
    asyncio.run(_run(operation, count, loops))
    time.sleep(0.2)  # Let the server finish its last close before reading its CPU time.
    user_after, system_after = procfs.cpu_user_system(pids)
    return user_after - user, system_after - system


def measure(server_key: str, count: int, rounds: int, loops: int) -> dict[str, object]:
    """One server: CPU µs per bare cycle and per GET, by block and in all, and their ratio."""
    contender = SERVERS[server_key]
    pin = can_pin()
    with started_server(
        lambda port: contender.command(sys.executable, port),
        cwd=ROOT,
        log=RESULTS / "logs" / f"cycle-cost-{server_key}.log",
        core=SERVER_CORE if pin else None,
    ) as server:
        port = server.port
        pids = server.tree_pids()
        upgrade = _upgrade_request(port)
        get = f"GET {PLAIN_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"

        def cycle() -> Awaitable[None]:
            return _cycle(port, upgrade)

        def plain() -> Awaitable[None]:
            return _get(port, get.encode())

        asyncio.run(_run(cycle, count // 4, loops))
        asyncio.run(_run(plain, count // 4, loops))
        cycles: list[tuple[float, float]] = []
        gets: list[tuple[float, float]] = []
        for _ in range(rounds):
            cycles.append(_block(pids, cycle, count, loops))
            gets.append(_block(pids, plain, count, loops))
    per = 1e6 / (count * rounds)
    cycle_us = sum(u + s for u, s in cycles) * per
    get_us = sum(u + s for u, s in gets) * per
    return {
        "cycle_us": cycle_us,
        "cycle_system_us": sum(s for _, s in cycles) * per,
        "get_us": get_us,
        "get_system_us": sum(s for _, s in gets) * per,
        "ratio": get_us / cycle_us,
        "ratio_by_round": [sum(g) / sum(c) for g, c in zip(gets, cycles, strict=True)],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cycle_cost", description=__doc__)
    parser.add_argument("--server", action="append", choices=list(SERVERS), help="repeatable")
    parser.add_argument("--count", type=int, default=2000, help="operations per block (2000)")
    parser.add_argument("--rounds", type=int, default=5, help="blocks of each kind (5)")
    parser.add_argument("--loops", type=int, default=10, help="concurrent loops (10)")
    arguments = parser.parse_args(argv)
    if can_pin():
        os.sched_setaffinity(0, {CLIENT_CORE})
    load = os.getloadavg()[0]
    rows = {}
    print(
        "| server | bare cycle: server CPU µs (system) | plain GET: server CPU µs (system) "
        "| GET ÷ cycle | by round |\n|---|---:|---:|---:|---|"
    )
    for key in arguments.server or SERVERS:
        try:
            row = measure(key, arguments.count, arguments.rounds, arguments.loops)
        except (Failure, OSError, RuntimeError, asyncio.TimeoutError) as exc:
            print(f"| {key} | error: {exc} | | | |")
            continue
        rows[key] = row
        by_round = ", ".join(f"{r:.2f}" for r in row["ratio_by_round"])  # type: ignore[attr-defined]
        print(
            f"| {key} | {row['cycle_us']:.0f} ({row['cycle_system_us']:.0f}) "
            f"| {row['get_us']:.0f} ({row['get_system_us']:.0f}) | *{row['ratio']:.2f}x* "
            f"| {by_round} |",
            flush=True,
        )
    print(
        f"\n{arguments.rounds} blocks of {arguments.count:,} of each, {arguments.loops} loops; "
        f"load average (1 minute) {load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end, "
        f"on {os.cpu_count()} cores."
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cycle_cost.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0 if len(rows) == len(arguments.server or SERVERS) else 1


if __name__ == "__main__":
    sys.exit(main())

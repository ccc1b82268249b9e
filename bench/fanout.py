"""Broadcast fan-out: one 100 B message to 1,000 connections, time until all have it.

``python -m bench.fanout`` (``make bench`` runs it after the echo scenarios). Flask-Duplex's
``duplex.broadcast()`` in one process, through Redis in one process, and through Redis to
two gunicorn workers that share the 1,000 connections (what scaling out costs), beside the
``broadcast()`` of websockets' asyncio server. Each round triggers one broadcast (an HTTP POST
for Flask-Duplex, a message on a control connection for websockets) and times, from just before
the trigger, the arrival of the message at every connection: 100 rounds after 5 of warm-up
(the first broadcasts also import and warm what later ones reuse), reported as the median and
the 99th percentile. Prints a table, writes bench/results/fanout.json and fanout.md, and with
``--write-docs`` puts the table in docs/benchmarks.md. ``--only TEXT`` runs the rows whose
label contains it (websockets' row always runs: every row is compared with it), ``--rounds N``
counts N rounds; neither may be used with ``--write-docs``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from picows import WSListener, WSMsgType, WSTransport, ws_connect

from bench.docs import FANOUT_HEADING, write_section
from bench.process import (
    CLIENT_CORE,
    SERVER_CORE,
    can_pin,
    raise_open_files_limit,
    started_server,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DOCS_PAGE = ROOT / "docs" / "benchmarks.md"
CONNECTIONS = 1000
SIZE = 100
ROUNDS = 100
WARMUP_ROUNDS = 5
ROUND_TIMEOUT = 10.0
PAUSE = 0.1  # Between rounds: the server's writes and the client's reads are done.
BASELINE = "websockets / asyncio, broadcast()"


def gunicorn_gevent(
    port: int,
    workers: int = 1,
    app: str = "bench.servers.fanout_app:app",
    worker_connections: int = 4096,
) -> list[str]:
    """The command of gunicorn's gevent worker serving ``app`` on ``port``."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "-k",
        "gevent",
        "-w",
        str(workers),
        "--worker-connections",
        str(worker_connections),
        "-b",
        f"127.0.0.1:{port}",
        app,
    ]


def _werkzeug(port: int) -> list[str]:
    return [sys.executable, "-m", "bench.servers.fanout_app", str(port)]


def _websockets(port: int) -> list[str]:
    return [sys.executable, "-m", "bench.servers.websockets_fanout", str(port)]


# (label, server command, uses Redis, how the broadcast is triggered)
CONTENDERS: list[tuple[str, Callable[[int], list[str]], bool, str]] = [
    ("Flask-Duplex / gunicorn gevent, in-process", gunicorn_gevent, False, "http"),
    ("Flask-Duplex / gunicorn gevent, through Redis", gunicorn_gevent, True, "http"),
    (
        "Flask-Duplex / gunicorn gevent, 2 workers, through Redis",
        lambda port: gunicorn_gevent(port, workers=2),
        True,
        "http",
    ),
    ("Flask-Duplex / Werkzeug, in-process", _werkzeug, False, "http"),
    ("websockets / asyncio, broadcast()", _websockets, False, "ws"),
]


class _Receiver(WSListener):  # type: ignore[misc]
    def __init__(self, arrivals: list[float]) -> None:
        self.arrivals = arrivals

    def on_ws_frame(self, transport: WSTransport, frame: object) -> None:
        if getattr(frame, "msg_type", None) is WSMsgType.BINARY:
            self.arrivals.append(time.perf_counter())


async def _trigger_http(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"POST /go?size={SIZE} HTTP/1.1\r\nHost: b\r\nContent-Length: 0\r\n\r\n".encode())
    await writer.drain()
    await reader.readuntil(b"\r\n\r\n")
    writer.close()


def percentile(times: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile: the smallest time that ``fraction`` of rounds did not exceed."""
    ordered = sorted(times)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


async def _measure(port: int, trigger: str, rounds: int) -> list[float]:
    """Times (ms) until all connections had the message, one per counted round."""
    arrivals: list[float] = []
    url = f"ws://127.0.0.1:{port}/fanout"
    transports: list[WSTransport] = []
    for start in range(0, CONNECTIONS, 100):
        batch = [
            ws_connect(lambda: _Receiver(arrivals), url)
            for _ in range(min(100, CONNECTIONS - start))
        ]
        transports += [transport for transport, _ in await asyncio.gather(*batch)]
    control = None
    if trigger == "ws":
        control, _ = await ws_connect(WSListener, f"ws://127.0.0.1:{port}/go")
    await asyncio.sleep(1.0)  # Let every join reach the room (and Redis).
    times = []
    try:
        for round_ in range(WARMUP_ROUNDS + rounds):
            arrivals.clear()
            started = time.perf_counter()
            if control is not None:
                control.send(WSMsgType.TEXT, str(SIZE).encode())
            else:
                await _trigger_http(port)
            deadline = started + ROUND_TIMEOUT
            while len(arrivals) < CONNECTIONS and time.perf_counter() < deadline:
                await asyncio.sleep(0.0005)
            if len(arrivals) < CONNECTIONS:
                raise RuntimeError(f"only {len(arrivals)} of {CONNECTIONS} got the message")
            if round_ >= WARMUP_ROUNDS:
                times.append((max(arrivals) - started) * 1000)
            await asyncio.sleep(PAUSE)
    finally:
        for transport in [*transports, *([control] if control else [])]:
            transport.disconnect()
    return times


@contextmanager
def _redis() -> Iterator[str]:
    # The same throwaway redis-server the test suite starts.
    from tests.support.redis_server import redis_server

    with redis_server() as server:
        yield server.url


def run(only: str | None = None, rounds: int = ROUNDS) -> dict[str, object]:
    raise_open_files_limit()
    pin = can_pin()
    if pin:
        os.sched_setaffinity(0, {CLIENT_CORE})
    rows: dict[str, object] = {}
    for label, command, uses_redis, trigger in CONTENDERS:
        if only is not None and only not in label and label != BASELINE:
            continue
        os.environ.pop("DUPLEX_MESSAGE_QUEUE", None)
        try:
            with _redis() if uses_redis else _nothing() as url:
                if url:
                    os.environ["DUPLEX_MESSAGE_QUEUE"] = url
                slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
                log = RESULTS / "logs" / f"fanout-{slug}.log"
                with started_server(
                    command, cwd=ROOT, log=log, core=SERVER_CORE if pin else None
                ) as server:
                    times = asyncio.run(_measure(server.port, trigger, rounds))
            rows[label] = {
                "median_ms": statistics.median(times),
                "p99_ms": percentile(times, 0.99),
                "max_ms": max(times),
                "rounds_ms": times,
            }
        except Exception as exc:  # A contender that fails gets "error"; the run goes on.
            rows[label] = {"error": str(exc)}
        finally:
            os.environ.pop("DUPLEX_MESSAGE_QUEUE", None)
        print(f"{label}: {rows[label]}", flush=True)
    return rows


@contextmanager
def _nothing() -> Iterator[str]:
    yield ""


def table(rows: dict[str, object], rounds: int = ROUNDS) -> str:
    base = rows.get(BASELINE)
    base_row = base if isinstance(base, dict) and "error" not in base else None
    lines = [
        f"One {SIZE} B message broadcast to {CONNECTIONS:,} connections; time from the trigger "
        f"until every connection has it, over {rounds} rounds after {WARMUP_ROUNDS} of warm-up "
        "(lower is better); the ratios divide by websockets' figure of the same run.",
        "",
        "| | median, ms | p99, ms | slowest round, ms | median ÷ websockets | p99 ÷ websockets |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, row in rows.items():
        assert isinstance(row, dict)
        if "error" in row:
            lines.append(f"| {label} | error | error | error | | |")
            continue
        ratios = [
            f"*{row[key] / base_row[key]:.2f}x*" if base_row else ""
            for key in ("median_ms", "p99_ms")
        ]
        lines.append(
            f"| {label} | {row['median_ms']:.1f} | {row['p99_ms']:.1f} | {row['max_ms']:.1f} "
            f"| {ratios[0]} | {ratios[1]} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__)
    parser.add_argument("--write-docs", action="store_true", help="put the table in docs/")
    parser.add_argument("--only", metavar="TEXT", help="the rows whose label contains TEXT")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="rounds counted per row")
    arguments = parser.parse_args(argv)
    if arguments.write_docs and (arguments.only is not None or arguments.rounds != ROUNDS):
        parser.error("--write-docs puts every row of a full run in the docs: no --only, --rounds")
    if arguments.rounds < 1:
        parser.error("--rounds must be at least 1")
    rows = run(arguments.only, arguments.rounds)
    text = table(rows, arguments.rounds)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "fanout.json").write_text(json.dumps(rows, indent=2))
    (RESULTS / "fanout.md").write_text(text)
    if arguments.write_docs:
        write_section(DOCS_PAGE, FANOUT_HEADING, text)


if __name__ == "__main__":
    main()

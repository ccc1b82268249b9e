"""Rooms with history: what numbering and keeping a broadcast costs, and how fast a gap comes back.

``python -m bench.history`` (``make bench`` runs it after the fan-out). One gunicorn gevent
worker serves ``bench.servers.history_app``, in-process and through a redis-server on this
machine. Three figures, each beside its own baseline in the same run:

- **Broadcast CPU**: 100 connections in a room; the server broadcasts 1,000 messages of 100 B
  to it, one after the other; the CPU time of the server's processes (and of redis-server)
  from the trigger until every connection has every message, per message broadcast. Once to a
  room without history, once to a room with history (200 kept).
- **Replay**: a client leaves a room with history, 200 messages are broadcast, and it comes
  back with its position: the time from the start of its new connection until the last missed
  message has arrived, over 20 rounds.
- **Memory**: what a room's 200-message history (100 B messages) holds: the in-process store,
  measured with tracemalloc, and the Redis keys, with ``MEMORY USAGE``.

``--src DIR`` runs the server on another checkout's ``src`` (the rows of rooms without history
then measure that code: what rooms without history cost before history existed). Prints a
table, writes bench/results/history.json and history.md, and with ``--write-docs`` puts the
table in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis
from picows import WSListener, WSMsgType, WSTransport, ws_connect

from bench import procfs
from bench.docs import HISTORY_HEADING, write_section
from bench.fanout import gunicorn_gevent
from bench.process import CLIENT_CORE, SERVER_CORE, can_pin, raise_open_files_limit, started_server

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DOCS_PAGE = ROOT / "docs" / "benchmarks.md"
CLIENTS = 100
MESSAGES = 1000
SIZE = 100
ROUNDS = 3
KEPT = 200
REPLAY_ROUNDS = 20
ROUND_TIMEOUT = 30.0


def _gunicorn_gevent(port: int) -> list[str]:
    return gunicorn_gevent(port, app="bench.servers.history_app:app")


class _Counter(WSListener):  # type: ignore[misc]
    """Counts the messages a connection receives; keeps the first (the join's) and the last."""

    def __init__(self) -> None:
        self.count = 0
        self.first: bytes | None = None
        self.last: bytes = b""
        self.last_at = 0.0

    def on_ws_frame(self, transport: WSTransport, frame: Any) -> None:
        if frame.msg_type is not WSMsgType.TEXT:
            return
        payload = frame.get_payload_as_bytes()
        if self.first is None:
            self.first = payload
        if payload.startswith(b'{"duplex":"message"') or not payload.startswith(b'{"duplex"'):
            self.count += 1
            self.last = payload
            self.last_at = time.perf_counter()


async def _post(port: int, path: str) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"POST {path} HTTP/1.1\r\nHost: b\r\nContent-Length: 0\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    writer.close()
    if b" 204 " not in head.split(b"\r\n", 1)[0]:
        raise RuntimeError(f"POST {path} answered {head!r}")


async def _broadcast_cpu(
    port: int, pids: Callable[[], list[int]], room: str, redis_pid: int
) -> list[tuple[float, float]]:
    """CPU microseconds per message broadcast (server, redis-server), one pair per round."""
    url = f"ws://127.0.0.1:{port}/room/{room}"
    connections = [await ws_connect(_Counter, url) for _ in range(CLIENTS)]
    listeners = [listener for _, listener in connections]
    await asyncio.sleep(0.5)  # Every join has reached the room (and Redis).
    figures = []
    try:
        for _ in range(ROUNDS):
            before = [listener.count for listener in listeners]
            used = procfs.cpu_seconds(pids())
            redis_used = procfs.cpu_seconds([redis_pid]) if redis_pid else 0.0
            await _post(port, f"/blast?room={room}&n={MESSAGES}&size={SIZE}")
            deadline = time.monotonic() + ROUND_TIMEOUT
            while any(
                listener.count - start < MESSAGES
                for listener, start in zip(listeners, before, strict=True)
            ):
                if time.monotonic() > deadline:
                    raise RuntimeError("not every connection got every message")
                await asyncio.sleep(0.001)
            redis_now = procfs.cpu_seconds([redis_pid]) if redis_pid else 0.0
            server = (procfs.cpu_seconds(pids()) - used) / MESSAGES * 1e6
            figures.append((server, (redis_now - redis_used) / MESSAGES * 1e6))
            await asyncio.sleep(0.2)
    finally:
        for transport, _ in connections:
            transport.disconnect()
    return figures


async def _replay(port: int) -> list[float]:
    """Milliseconds from a new connection's start until the last of KEPT missed messages."""
    base = f"ws://127.0.0.1:{port}/room/kept"
    transport, listener = await ws_connect(_Counter, base)
    while listener.first is None:
        await asyncio.sleep(0.001)
    joined = json.loads(listener.first)
    position = [joined["epoch"], joined["offset"]]
    transport.disconnect()
    times = []
    for _ in range(REPLAY_ROUNDS):
        await _post(port, f"/blast?room=kept&n={KEPT}&size={SIZE}")
        since = quote(json.dumps({"kept": position}))
        started = time.perf_counter()
        transport, listener = await ws_connect(_Counter, f"{base}?duplex-since={since}")
        deadline = time.monotonic() + ROUND_TIMEOUT
        while listener.count < KEPT:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {listener.count} of {KEPT} missed messages came back")
            await asyncio.sleep(0.0005)
        times.append((listener.last_at - started) * 1000)
        assert listener.first is not None and b'"recovered":true' in listener.first
        frame = json.loads(listener.last)
        position = [frame["epoch"], frame["offset"]]
        transport.disconnect()
    return times


def _memory_in_process() -> int:
    """Bytes a 200-message history of 100 B messages holds in the in-process store."""
    from flask_duplex.hub.history import HistoryPolicy, MemoryHistory

    policy = HistoryPolicy(size=KEPT, ttl=600)
    history = MemoryHistory()
    history.append("warm", '"data":"x"', policy)  # The store's own first allocations.
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for _ in range(KEPT):
        history.append("kept", '"data":' + json.dumps("x" * SIZE), policy)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    return sum(stat.size_diff for stat in after.compare_to(before, "filename"))


def _memory_in_redis(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        keys = [key for key in client.scan_iter(match="*history*:kept") if key]
        return sum(int(client.memory_usage(key) or 0) for key in keys)
    finally:
        client.close()


@contextmanager
def _redis() -> Iterator[tuple[str, int]]:
    from tests.support.redis_server import redis_server

    with redis_server() as server:
        assert server.process is not None
        yield server.url, server.process.pid


def run(src: Path | None) -> dict[str, Any]:
    raise_open_files_limit()
    pin = can_pin()
    if pin:
        os.sched_setaffinity(0, {CLIENT_CORE})
    if src is not None:
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [str(src.resolve()), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
    rows: dict[str, Any] = {"memory_in_process_bytes": _memory_in_process()}
    for hub in ("in-process", "Redis"):
        with _redis() if hub == "Redis" else nullcontext(("", 0)) as (url, redis_pid):
            os.environ.pop("DUPLEX_MESSAGE_QUEUE", None)
            if url:
                os.environ["DUPLEX_MESSAGE_QUEUE"] = url
            log = RESULTS / "logs" / f"history-{hub.lower()}.log"
            try:
                with started_server(
                    _gunicorn_gevent, cwd=ROOT, log=log, core=SERVER_CORE if pin else None
                ) as server:
                    row: dict[str, Any] = {}
                    for room in ("plain", "kept"):
                        figures = asyncio.run(
                            _broadcast_cpu(server.port, server.tree_pids, room, redis_pid)
                        )
                        row[room] = {
                            "median_us": statistics.median(a + b for a, b in figures),
                            "server_us": statistics.median(a for a, _ in figures),
                            "redis_us": statistics.median(b for _, b in figures),
                            "rounds": figures,
                        }
                    if src is None:
                        times = asyncio.run(_replay(server.port))
                        row["replay_ms"] = {
                            "median": statistics.median(times),
                            "p95": sorted(times)[int(0.95 * (len(times) - 1))],
                            "max": max(times),
                        }
                        if url:
                            rows["memory_in_redis_bytes"] = _memory_in_redis(url)
                    rows[hub] = row
            except Exception as exc:  # A row that fails says so; the run goes on.
                rows[hub] = {"error": str(exc)}
            finally:
                os.environ.pop("DUPLEX_MESSAGE_QUEUE", None)
        print(f"{hub}: {rows[hub]}", flush=True)
    return rows


def table(rows: dict[str, Any]) -> str:
    lines = [
        f"{CLIENTS} connections in a room; {MESSAGES:,} messages of {SIZE} B broadcast to it; "
        "CPU of the server's processes (with Redis: and of redis-server) per message broadcast, "
        f"median of {ROUNDS} rounds; one gunicorn gevent worker.",
        "",
        "| hub | room without history, µs | room with history (200 kept), µs | ratio |",
        "|---|---:|---:|---:|",
    ]
    for hub in ("in-process", "Redis"):
        row = rows.get(hub, {})
        if "error" in row:
            lines.append(f"| {hub} | error | error | |")
            continue
        plain, kept = row["plain"], row["kept"]
        ratio = kept["median_us"] / plain["median_us"]
        cells = [f"{room['median_us']:.0f}" for room in (plain, kept)]
        if hub == "Redis":  # The server's share and redis-server's.
            cells = [
                f"{room['median_us']:.0f} ({room['server_us']:.0f} + {room['redis_us']:.0f})"
                for room in (plain, kept)
            ]
        lines.append(f"| {hub} | {cells[0]} | {cells[1]} | *{ratio:.2f}x* |")
    lines += [
        "",
        f"A client comes back after missing {KEPT} messages of {SIZE} B: time from the start of "
        f"its connection until the last one arrived, {REPLAY_ROUNDS} rounds.",
        "",
        "| hub | median, ms | p95, ms | slowest, ms |",
        "|---|---:|---:|---:|",
    ]
    for hub in ("in-process", "Redis"):
        replay = rows.get(hub, {}).get("replay_ms")
        if replay:
            lines.append(
                f"| {hub} | {replay['median']:.1f} | {replay['p95']:.1f} | {replay['max']:.1f} |"
            )
    lines += [
        "",
        f"Memory of one room's history of {KEPT} messages of {SIZE} B: "
        f"{rows['memory_in_process_bytes'] / 1024:.1f} KiB in process (tracemalloc)"
        + (
            f", {rows['memory_in_redis_bytes'] / 1024:.1f} KiB in Redis (MEMORY USAGE of its keys)."
            if "memory_in_redis_bytes" in rows
            else "."
        ),
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.history", description=__doc__)
    parser.add_argument("--write-docs", action="store_true", help="put the table in docs/")
    parser.add_argument("--src", type=Path, help="serve another checkout's src directory")
    arguments = parser.parse_args(argv)
    rows = run(arguments.src)
    text = table(rows) if arguments.src is None else json.dumps(rows, indent=2)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "history" if arguments.src is None else "history-src"
    (RESULTS / f"{name}.json").write_text(json.dumps(rows, indent=2))
    if arguments.src is None:
        (RESULTS / "history.md").write_text(text)
        if arguments.write_docs:
            write_section(DOCS_PAGE, HISTORY_HEADING, text)


if __name__ == "__main__":
    main()

"""The two kinds of load process of the simulated cluster (``python -m bench.cluster``).

- ``python -m bench.cluster_load client URL --first I --count N --rooms R``: opens N WebSocket
  connections (numbers I to I+N-1; connection i joins room ``room-(i mod R)``) through the load
  balancer at URL, holds them, and times every message from its send time (written by the
  publisher) to its receipt. A connection that drops comes back through the load balancer,
  handing its position in each room with history in the query string (``duplex-since``), as the
  browser client does.
- ``python -m bench.cluster_load publish``: a process with no routes, ``Duplex(message_queue=...,
  channel=...)``, that broadcasts one message per room per second, spread evenly over the
  second, each carrying ``time.monotonic_ns()`` at its send (one clock for every process of
  the machine).

Both take commands on stdin, one per line, and answer each with one line of JSON on stdout, so
the runner can mark the edges of a measuring window in every process at once. Every wait has a
deadline; a process whose stdin closes stops.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

__all__ = ["main"]

BATCH = 100  # connections opened at once
OPEN_TIMEOUT = 10.0  # seconds for one connection to open and get its joined frame
OPEN_ATTEMPTS = 5  # tries of each first opening (a loaded machine refuses some)
RECONNECT_DEADLINE = 60.0  # seconds a dropped connection keeps trying
PADDING = "x" * 64  # messages of about 100 B


def _send_time(data: Any) -> int | None:
    if isinstance(data, dict) and isinstance(data.get("t"), int):
        return int(data["t"])
    return None


class _Client:
    """The connections of one client process, and what they received."""

    def __init__(self, url: str, first: int, count: int, rooms: int, history: bool) -> None:
        self.url = url
        self.history = history
        self.first, self.count, self.rooms = first, count, rooms
        self.received = 0
        self.latencies: list[int] = []  # µs, while the window is open
        self.window_open = False
        self.after_kill: list[int] = []  # µs, of messages received after the kill mark
        self.killed = False
        self.open = 0
        self.drops = 0
        self.last_join_ns = 0
        self.failed_reconnects = 0
        self.open_retries = 0
        # Per connection: the room, its first position, the offsets it received.
        self.positions: dict[int, tuple[str, int]] = {}  # connection -> (epoch, last offset)
        self.starts: dict[int, int] = {}
        self.offsets: dict[int, set[int]] = {}
        self.duplicates = 0
        self.epoch_changes = 0
        self.not_recovered = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.transports: dict[int, Any] = {}
        self.stopping = False

    def room_of(self, number: int) -> str:
        return f"room-{number % self.rooms}"

    def url_of(self, number: int) -> str:
        url = f"{self.url}/room/{self.room_of(number)}"
        position = self.positions.get(number)
        if position is not None:
            since = json.dumps({self.room_of(number): list(position)}, separators=(",", ":"))
            url += "?duplex-since=" + quote(since)
        return url

    def on_text(self, number: int, payload: bytes) -> None:
        now = time.monotonic_ns()
        frame = json.loads(payload)
        if isinstance(frame, dict) and frame.get("duplex") == "joined":
            self._joined(number, frame)
            return
        if isinstance(frame, dict) and frame.get("duplex") == "message":
            epoch, offset = frame["epoch"], frame["offset"]
            seen = self.offsets.setdefault(number, set())
            if offset in seen:
                self.duplicates += 1
            seen.add(offset)
            self.positions[number] = (epoch, offset)
            data = frame.get("data")
        else:
            data = frame
        sent = _send_time(data)
        if sent is None:
            return
        self.received += 1
        latency = (now - sent) // 1000
        if self.killed:
            self.after_kill.append(latency)
        elif self.window_open:
            self.latencies.append(latency)

    def _joined(self, number: int, frame: dict[str, Any]) -> None:
        epoch, offset = frame.get("epoch"), frame.get("offset")
        if not isinstance(epoch, str) or not isinstance(offset, int):
            return  # A room without history.
        previous = self.positions.get(number)
        if previous is None:
            self.starts[number] = offset
            self.positions[number] = (epoch, offset)
            return
        if previous[0] != epoch:
            self.epoch_changes += 1
        if not frame.get("recovered"):
            self.not_recovered += 1
        # The missed messages follow; until they do, the position is the one handed back.

    async def open_one(self, number: int) -> None:
        """Open connection ``number``; return once it is in its room.

        In a room with history that is when the joined frame came; in a room without, when the
        handshake completed (the join follows at once, and the runner lets a second pass).
        """
        from picows import WSListener, WSMsgType, ws_connect

        client = self
        joined = asyncio.get_running_loop().create_future()
        established = False

        class Listener(WSListener):  # type: ignore[misc]
            def on_ws_frame(self, transport: Any, frame: Any) -> None:
                if frame.msg_type is not WSMsgType.TEXT:
                    return
                client.on_text(number, frame.get_payload_as_bytes())
                if not joined.done():
                    joined.set_result(None)

            def on_ws_disconnected(self, transport: Any) -> None:
                if not established:
                    if not joined.done():
                        joined.set_exception(ConnectionError("closed before the join"))
                    return
                client.open -= 1
                client.transports.pop(number, None)
                if not client.stopping:
                    client.drops += 1
                    client.spawn(client.reconnect(number))

        transport, _ = await asyncio.wait_for(
            ws_connect(Listener, self.url_of(number)), OPEN_TIMEOUT
        )
        try:
            if self.history:
                await asyncio.wait_for(joined, OPEN_TIMEOUT)
        except BaseException:
            transport.disconnect()
            raise
        established = True
        self.transports[number] = transport
        self.open += 1
        self.last_join_ns = time.monotonic_ns()

    def spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def reconnect(self, number: int) -> None:
        # Spread over the first half second, as real clients' timers would be.
        await asyncio.sleep(random.uniform(0.0, 0.5))
        deadline = time.monotonic() + RECONNECT_DEADLINE
        delay = 0.1
        while not self.stopping and time.monotonic() < deadline:
            try:
                await self.open_one(number)
                return
            except Exception:  # refused, reset, timed out: try again
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        self.failed_reconnects += 1

    async def open_all(self) -> None:
        numbers = range(self.first, self.first + self.count)
        for start in range(0, self.count, BATCH):
            batch = numbers[start : start + BATCH]
            await asyncio.gather(*(self.open_first(number) for number in batch))

    async def open_first(self, number: int) -> None:
        for attempt in range(OPEN_ATTEMPTS):
            try:
                await self.open_one(number)
                return
            except Exception:
                if attempt == OPEN_ATTEMPTS - 1:
                    raise
                self.open_retries += 1
                await asyncio.sleep(0.5 * (attempt + 1))

    def reply(self, command: str) -> dict[str, Any]:
        if command == "window-start":
            self.window_open = True
        elif command == "window-end":
            self.window_open = False
        elif command == "kill":
            self.killed = True
        answer: dict[str, Any] = {
            "received": self.received,
            "open": self.open,
            "drops": self.drops,
            "last_join_ns": self.last_join_ns,
        }
        if command == "stop":
            answer.update(self.summary())
        return answer

    def summary(self) -> dict[str, Any]:
        # Per connection of a room with history: first offset, offsets received, last offset.
        history = [
            [self.room_of(number), start, len(self.offsets.get(number, ())),
             max(self.offsets.get(number, {start}))]
            for number, start in self.starts.items()
        ]  # fmt: skip
        return {
            "latencies_us": self.latencies,
            "after_kill_us": self.after_kill,
            "history": history,
            "duplicates": self.duplicates,
            "epoch_changes": self.epoch_changes,
            "not_recovered": self.not_recovered,
            "failed_reconnects": self.failed_reconnects,
            "open_retries": self.open_retries,
        }


def _print(answer: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(answer, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def _run_client(arguments: argparse.Namespace) -> None:
    client = _Client(
        arguments.url, arguments.first, arguments.count, arguments.rooms, arguments.history
    )
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        await asyncio.wait_for(client.open_all(), arguments.open_timeout)
    except Exception as exc:  # The runner reads the error and stops the run.
        _print({"error": f"{client.open} of {client.count} opened: {exc!r}"})
        return
    _print({"ready": client.open})
    while True:
        line = await asyncio.wait_for(reader.readline(), arguments.lifetime)
        command = line.decode().strip()
        if not command:  # stdin closed: the runner is gone
            break
        if command == "stop":
            await asyncio.sleep(0.5)  # What is on its way arrives.
            client.stopping = True
        _print(client.reply(command))
        if command == "stop":
            break
    client.stopping = True
    for transport in list(client.transports.values()):
        transport.disconnect()
    for task in list(client.tasks):
        task.cancel()


def _run_publisher(arguments: argparse.Namespace) -> None:
    """Broadcast to every room once a second until told to stop (or the lifetime is over)."""
    from flask_duplex import BackendUnavailable, Duplex

    duplex = Duplex(message_queue=os.environ["DUPLEX_MESSAGE_QUEUE"], channel=arguments.channel)
    if arguments.keep_history:
        duplex.keep_history("room-*", size=arguments.keep_history, ttl=600)
    stop = threading.Event()
    sent = [0] * arguments.rooms  # broadcasts sent to each room

    def read_commands() -> None:
        for line in sys.stdin:
            if line.strip() != "count":
                break  # "stop", or anything else
            _print({"sent": sum(sent)})
        stop.set()

    threading.Thread(target=read_commands, daemon=True).start()
    errors = 0
    gap = 1.0 / arguments.rooms
    started = time.monotonic()
    deadline = started + arguments.lifetime
    _print({"publishing": True})
    tick = 0
    while not stop.is_set() and time.monotonic() < deadline:
        room = tick % arguments.rooms
        due = started + tick * gap
        wait = due - time.monotonic()
        if wait > 0:
            stop.wait(wait)
        try:
            duplex.broadcast({"t": time.monotonic_ns(), "pad": PADDING}, to=f"room-{room}")
            sent[room] += 1
        except BackendUnavailable:
            errors += 1
        tick += 1
    duplex.close()
    _print({"sent": sent, "errors": errors, "seconds": time.monotonic() - started})


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster_load", description=__doc__)
    kinds = parser.add_subparsers(dest="kind", required=True)
    client = kinds.add_parser("client")
    client.add_argument("url")
    client.add_argument("--first", type=int, default=0)
    client.add_argument("--count", type=int, required=True)
    client.add_argument("--rooms", type=int, required=True)
    client.add_argument("--history", action="store_true", help="the rooms keep history")
    client.add_argument("--open-timeout", type=float, default=300.0)
    client.add_argument("--lifetime", type=float, default=900.0)
    publish = kinds.add_parser("publish")
    publish.add_argument("--channel", required=True)
    publish.add_argument("--rooms", type=int, required=True)
    publish.add_argument("--keep-history", type=int, default=0)
    publish.add_argument("--lifetime", type=float, default=900.0)
    arguments = parser.parse_args(argv)
    if arguments.kind == "client":
        from bench.process import raise_open_files_limit

        raise_open_files_limit()
        asyncio.run(_run_client(arguments))
    else:
        _run_publisher(arguments)


if __name__ == "__main__":
    main()

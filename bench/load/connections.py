"""Idle connections: what they cost the server, and how a new client fares while they are open."""

from __future__ import annotations

__all__ = ["run_idle"]

import asyncio
import os
import time
from typing import Any

from picows import WSFrame, WSListener, WSMsgType, WSTransport

from bench import procfs
from bench.load.common import Failure, close_politely, open_connection, probe_figures

# Time for a server to finish setting up connections it has just accepted (threads that start
# a moment after the handshake, buffers) before its threads and memory are read.
SETTLE_SECONDS = 1.0
PROBE_SIZE = 32
# Time for one step of the new client (opening, one echo) before it counts as unanswered.
PROBE_TIMEOUT = 5.0


class Quiet(WSListener):
    """A connection that only answers pings (picows does that by itself)."""


class _Probe(WSListener):
    """A client that echoes one message at a time and waits for each."""

    def __init__(self) -> None:
        self.echo: asyncio.Future[bytes] | None = None

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.BINARY and self.echo is not None and not self.echo.done():
            self.echo.set_result(frame.get_payload_as_bytes())

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self.echo is not None and not self.echo.done():
            self.echo.set_exception(Failure("the server dropped the probe's connection"))


async def probe(url: str, round_trips: int) -> dict[str, Any]:
    """Open one more connection and echo ``round_trips`` 32 B messages over it, one at a time.

    Returns the time it took to open, and the round trips' percentiles.

    Raises:
        Failure: It did not open, or an echo did not come back as sent, within 5 s.
    """
    opening = time.perf_counter()
    transport, listener = await open_connection(_Probe, url, timeout=PROBE_TIMEOUT)
    opened = time.perf_counter()
    payload = os.urandom(PROBE_SIZE)
    times: list[float] = []
    try:
        for _ in range(round_trips):
            listener.echo = asyncio.get_running_loop().create_future()
            sent = time.perf_counter()
            transport.send(WSMsgType.BINARY, payload)
            try:
                echo = await asyncio.wait_for(listener.echo, PROBE_TIMEOUT)
            except (TimeoutError, asyncio.TimeoutError) as exc:
                raise Failure(f"the probe's echo took over {PROBE_TIMEOUT:.0f} s") from exc
            times.append(time.perf_counter() - sent)
            if echo != payload:
                raise Failure("the probe's echo differs from the message sent")
    finally:
        await close_politely(transport)
    return probe_figures(opened - opening, times)


async def run_idle(
    url: str,
    server_pids: list[int],
    *,
    connections: int,
    probe_round_trips: int,
    settle: float = SETTLE_SECONDS,
    batch: int = 100,
) -> dict[str, Any]:
    """Open ``connections`` connections, ``batch`` at a time, and read what they cost the server.

    Stops opening at the first batch in which a connection fails (a server with a fixed pool of
    threads stops answering handshakes once the pool is busy; the machine may run out of ports
    or file descriptors); the figures then cover the connections that opened, and ``error``
    says what happened. With them open, a new client echoes ``probe_round_trips`` messages
    (:func:`probe`); waits ``settle`` seconds before each reading of threads and memory.
    """
    await asyncio.sleep(settle)
    threads_before = procfs.thread_count(server_pids)
    rss_before = procfs.rss_kib(server_pids)
    transports: list[WSTransport] = []
    error: str | None = None
    started = time.perf_counter()
    try:
        for first in range(0, connections, batch):
            attempts = await asyncio.gather(
                *(open_connection(Quiet, url) for _ in range(min(batch, connections - first))),
                return_exceptions=True,
            )
            for attempt in attempts:
                if isinstance(attempt, BaseException):
                    error = error or str(attempt)
                else:
                    transports.append(attempt[0])
            if error is not None:
                break
        open_seconds = time.perf_counter() - started
        await asyncio.sleep(settle)
        threads_with = procfs.thread_count(server_pids)
        rss_with = procfs.rss_kib(server_pids)
        still_open = sum(1 for transport in transports if not transport.is_disconnected)
        probed: dict[str, Any] = {}
        if transports and probe_round_trips:
            try:
                probed = await probe(url, probe_round_trips)
            except Failure as exc:
                probed = {"probe_error": str(exc)}
    finally:
        await asyncio.gather(*(close_politely(transport) for transport in transports))
    opened = len(transports)
    if opened == 0:
        raise Failure(error or "no connection opened")
    if still_open < opened and error is None:
        error = f"{opened - still_open} connections dropped while idle"
    return {
        "requested": connections,
        "opened": opened,
        # A time that includes waiting for a connection that never opened compares with nothing.
        "open_seconds": open_seconds if opened == connections else None,
        "seconds_until_giving_up": None if opened == connections else open_seconds,
        "threads_before": threads_before,
        "threads_with": threads_with,
        "rss_kib_before": rss_before,
        "rss_kib_with": rss_with,
        "threads_per_connection": (threads_with - threads_before) / opened,
        "rss_kib_per_connection": (rss_with - rss_before) / opened,
        **probed,
        "error": f"{opened:,} of {connections:,} opened: {error}" if error else None,
    }

"""Connection scenarios: what idle connections cost the server, and how fast it accepts new ones."""

from __future__ import annotations

__all__ = ["run_handshakes", "run_idle"]

import asyncio
import time
from typing import Any

from picows import WSListener, WSTransport

from bench import procfs
from bench.load.common import Failure, close_politely, open_connection, percentile_ms

# Time for a server to finish setting up connections it has just accepted (threads that start
# a moment after the handshake, buffers) before its threads and memory are read.
SETTLE_SECONDS = 1.0


class Quiet(WSListener):
    """A connection that only answers pings (picows does that by itself)."""


async def run_idle(
    url: str, server_pids: list[int], *, connections: int, batch: int = 100
) -> dict[str, Any]:
    """Open ``connections`` connections, ``batch`` at a time, and read what they cost the server.

    Stops opening at the first batch in which a connection fails (a server with a fixed pool of
    threads stops answering handshakes once the pool is busy); the figures then cover the
    connections that opened, and ``error`` says what happened.
    """
    await asyncio.sleep(SETTLE_SECONDS)
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
        await asyncio.sleep(SETTLE_SECONDS)
        threads_with = procfs.thread_count(server_pids)
        rss_with = procfs.rss_kib(server_pids)
        still_open = sum(1 for transport in transports if not transport.is_disconnected)
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
        "error": f"{opened:,} of {connections:,} opened: {error}" if error else None,
    }


async def run_handshakes(
    url: str, *, connections: int, duration: float, warmup: float
) -> dict[str, Any]:
    """Open and politely close connections in ``connections`` concurrent loops.

    Returns completed open-and-close cycles per second over the timed window, and the
    percentiles of the time to open (TCP connect and WebSocket handshake).

    Raises:
        Failure: A connection could not be opened.
    """
    begin = time.perf_counter()
    start, end = begin + warmup, begin + warmup + duration
    open_times: list[float] = []
    cycles = 0

    async def open_and_close_until_end() -> None:
        nonlocal cycles
        while time.perf_counter() < end:
            opening = time.perf_counter()
            transport, _ = await open_connection(Quiet, url)
            opened = time.perf_counter()
            await close_politely(transport)
            if opening >= start and time.perf_counter() <= end:
                cycles += 1
                open_times.append(opened - opening)

    await asyncio.gather(*(open_and_close_until_end() for _ in range(connections)))
    open_times.sort()
    return {
        "handshakes": cycles,
        "seconds": duration,
        "handshakes_per_s": cycles / duration,
        "open_p50_ms": percentile_ms(open_times, 0.50),
        "open_p99_ms": percentile_ms(open_times, 0.99),
    }

"""What the scenarios share: opening and closing connections, and summing up latencies."""

from __future__ import annotations

__all__ = [
    "Failure",
    "Meter",
    "close_politely",
    "open_connection",
    "own_cpu_seconds",
    "per_operation_us",
    "percentile_ms",
    "probe_figures",
]

import asyncio
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

from picows import WSCloseCode, WSError, WSListener, WSTransport, ws_connect

from bench import procfs
from bench.servers import MAX_MESSAGE_SIZE

ListenerT = TypeVar("ListenerT", bound=WSListener)


class Failure(Exception):
    """The scenario cannot give a figure; the message says why, in one line."""


class Meter:
    """Wall time, and the CPU time of the server and of this process, over a timed window.

    The server's CPU time is summed over its whole process tree (gunicorn's master and workers),
    read from ``/proc`` at :meth:`start` and :meth:`stop`.
    """

    def __init__(self, server_pids: Sequence[int]) -> None:
        self._server_pids = server_pids
        self.started = self.stopped = 0.0
        self._server_cpu = self._client_cpu = 0.0

    def start(self) -> None:
        self._server_cpu = procfs.cpu_seconds(self._server_pids)
        self._client_cpu = own_cpu_seconds()
        self.started = time.perf_counter()

    def stop(self) -> None:
        self.stopped = time.perf_counter()
        self._server_cpu = procfs.cpu_seconds(self._server_pids) - self._server_cpu
        self._client_cpu = own_cpu_seconds() - self._client_cpu

    def covers(self, moment: float) -> bool:
        """Whether ``moment`` (a ``time.perf_counter()`` value) falls in the window."""
        return self.started <= moment <= self.stopped

    @property
    def seconds(self) -> float:
        return self.stopped - self.started

    def figures(self, operations: int) -> dict[str, float | None]:
        """CPU use in cores (1.0: one core busy all along), and the server's µs per operation."""
        return {
            "seconds": self.seconds,
            "server_cpu_cores": self._server_cpu / self.seconds,
            "client_cpu_cores": self._client_cpu / self.seconds,
            "server_cpu_seconds": self._server_cpu,
            "server_cpu_us": per_operation_us(self._server_cpu, operations),
        }


def per_operation_us(cpu_seconds: float, operations: int) -> float | None:
    """CPU microseconds per operation; None when nothing completed."""
    return cpu_seconds / operations * 1e6 if operations else None


def own_cpu_seconds() -> float:
    """User plus system CPU time of this process so far."""
    times = os.times()
    return times.user + times.system


async def open_connection(
    listener_factory: Callable[[], ListenerT],
    url: str,
    timeout: float = 10.0,
    headers: Mapping[str, str] | None = None,
) -> tuple[WSTransport, ListenerT]:
    """Open a WebSocket; raise :class:`Failure` if it fails or takes over ``timeout``.

    No extension is offered unless ``headers`` offers one.
    """
    try:
        transport, listener = await asyncio.wait_for(
            ws_connect(
                listener_factory,
                url,
                websocket_handshake_timeout=timeout,
                max_frame_size=MAX_MESSAGE_SIZE,
                extra_headers=headers,
            ),
            timeout + 1.0,
        )
    except (TimeoutError, asyncio.TimeoutError) as exc:
        raise Failure(f"opening a connection took over {timeout:.0f} s") from exc
    except (OSError, WSError) as exc:
        raise Failure(f"opening a connection failed: {exc}") from exc
    # ws_connect returns the listener the factory made, typed as its base class.
    return transport, cast(ListenerT, listener)


async def close_politely(transport: WSTransport, timeout: float = 2.0) -> None:
    """Send a close frame, and wait up to ``timeout`` for the server to hang up.

    The server is the side that closes TCP (RFC 6455, section 7.1.1); a server that does not
    within ``timeout`` is cut off, so a stuck close cannot stall the scenario.
    """
    if transport.is_disconnected:
        return
    transport.send_close(WSCloseCode.OK)
    try:
        await asyncio.wait_for(transport.wait_disconnected(), timeout)
    except (TimeoutError, asyncio.TimeoutError):
        transport.disconnect(graceful=False)
    except Exception:
        # A failure while closing says nothing about the figures already taken.
        transport.disconnect(graceful=False)


def probe_figures(open_seconds: float, round_trips: list[float]) -> dict[str, Any]:
    """What a new client measured while idle connections were held: its open, its echoes."""
    round_trips.sort()
    return {
        "probe_open_ms": open_seconds * 1000.0,
        "probe_round_trips": len(round_trips),
        "probe_p50_ms": percentile_ms(round_trips, 0.50),
        "probe_p99_ms": percentile_ms(round_trips, 0.99),
    }


def percentile_ms(sorted_seconds: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile of already sorted durations, in milliseconds."""
    if not sorted_seconds:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_seconds)))
    return sorted_seconds[rank - 1] * 1000.0

"""Echo scenarios: request and response over each connection, one message in flight at a time."""

from __future__ import annotations

__all__ = [
    "EchoLoop",
    "RoundTripLoop",
    "Window",
    "round_trip_figures",
    "run_echo",
    "timed",
]

import asyncio
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from picows import WSFrame, WSListener, WSMsgType, WSTransport

from bench.load.common import Failure, Meter, close_politely, open_connection, percentile_ms

_DATA_FRAMES = frozenset((WSMsgType.BINARY, WSMsgType.TEXT, WSMsgType.CONTINUATION))


class Window:
    """The timed part of a scenario, shared by its connections.

    Echoes that complete between ``start`` and ``end`` (``time.perf_counter()`` values) are
    counted and their round trips kept; the ones before are warm-up. No connection sends after
    ``end``.
    """

    def __init__(self, start: float, end: float) -> None:
        self.start = start
        self.end = end
        self.round_trips: list[float] = []


class RoundTripLoop(WSListener):
    """One connection with one message in flight, timed against a :class:`Window`.

    Subclasses send with ``_send()`` (setting ``_sent_at``) and call :meth:`_echoed` when the
    whole echo is back; ``finished`` is done once the window has closed behind the last echo.
    """

    window: Window | None
    finished: asyncio.Future[None]
    _sent_at: float

    def _send(self) -> None:
        raise NotImplementedError

    def _echoed(self, now: float) -> None:
        """An echo came back at ``now``: count it, and send the next or finish."""
        window = self.window
        if window is None:
            return
        if now >= window.start:
            window.round_trips.append(now - self._sent_at)
        if now < window.end:
            self._send()
        elif not self.finished.done():
            self.finished.set_result(None)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self._fail("the server dropped the connection")

    def _fail(self, reason: str) -> None:
        if not self.finished.done():
            self.finished.set_exception(Failure(reason))


async def timed(
    loops: Sequence[RoundTripLoop],
    start: Callable[[Window], None],
    cpu_pids: list[int],
    *,
    warmup: float,
    duration: float,
) -> tuple[Window, Meter]:
    """Start ``loops`` with ``start``; run them ``warmup + duration`` s, metering the last part.

    Raises:
        Failure: A loop failed, or an echo did not come back within 30 s of the window's end.
    """
    begin = time.perf_counter()
    window = Window(begin + warmup, begin + warmup + duration)
    start(window)
    meter = Meter(cpu_pids)
    await asyncio.sleep(warmup)
    meter.start()
    await asyncio.sleep(max(0.0, window.end - time.perf_counter()))
    meter.stop()
    try:
        await asyncio.wait_for(asyncio.gather(*(loop.finished for loop in loops)), 30.0)
    except (TimeoutError, asyncio.TimeoutError) as exc:
        raise Failure("an echo did not come back within 30 s") from exc
    return window, meter


def round_trip_figures(window: Window, meter: Meter, duration: float) -> dict[str, Any]:
    """Messages per second, round-trip percentiles and the meter's figures, over ``window``."""
    round_trips = sorted(window.round_trips)
    return {
        "messages": len(round_trips),
        "messages_per_s": len(round_trips) / duration,
        "p50_ms": percentile_ms(round_trips, 0.50),
        "p99_ms": percentile_ms(round_trips, 0.99),
        **meter.figures(len(round_trips)),
        "seconds": duration,
    }


class EchoLoop(RoundTripLoop):
    """One connection: sends the payload, waits for it to come back whole, sends it again."""

    def __init__(self, payload: bytes) -> None:
        self._transport: WSTransport | None = None
        self._sent_at = 0.0
        self._received = 0  # bytes of the echo being received, over its fragments
        self.window: Window | None = None
        self.prepare(payload)

    def prepare(self, payload: bytes) -> None:
        """Echo ``payload`` from the next :meth:`start` on; ``finished`` is a new future."""
        self.payload = payload
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._content_checked = False

    def on_ws_connected(self, transport: WSTransport) -> None:
        self._transport = transport

    def start(self, window: Window) -> None:
        """Send the first message; the loop goes on by itself until ``window.end``."""
        self.window = window
        self._send()

    def _send(self) -> None:
        assert self._transport is not None
        self._sent_at = time.perf_counter()
        self._transport.send(WSMsgType.BINARY, self.payload)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type in _DATA_FRAMES:
            self._on_data(frame)
        elif frame.msg_type == WSMsgType.CLOSE:
            self._fail(f"the server closed the connection with {frame.get_close_code()}")

    def _on_data(self, frame: WSFrame) -> None:
        if not self._content_checked and frame.fin and self._received == 0:
            # The first echo is compared byte for byte; after that, its size is enough.
            if frame.get_payload_as_bytes() != self.payload:
                self._fail("the echo differs from the message sent")
                return
            self._content_checked = True
        self._received += frame.payload_size
        if not frame.fin:
            return
        now = time.perf_counter()
        size, self._received = self._received, 0
        if size != len(self.payload):
            self._fail(f"sent {len(self.payload)} bytes, {size} came back")
            return
        self._echoed(now)


async def run_echo(
    url: str,
    cpu_pids: list[int],
    *,
    connections: int,
    size: int,
    duration: float,
    warmup: float,
) -> dict[str, Any]:
    """Echo ``size``-byte messages over ``connections`` connections for ``warmup + duration`` s.

    Returns messages and payload megabytes (10**6 bytes) echoed per second over the timed
    window, round-trip percentiles, and the CPU the server and this process used in the window,
    in cores (1.0 is one core busy all the time) and, for the server, in µs per message.

    Raises:
        Failure: A connection could not open, dropped, or echoed something else.
    """
    payload = os.urandom(size)
    opened = await asyncio.gather(
        *(open_connection(lambda: EchoLoop(payload), url) for _ in range(connections))
    )
    loops = [listener for _, listener in opened]

    def start(window: Window) -> None:
        for loop in loops:
            loop.start(window)

    try:
        window, meter = await timed(loops, start, cpu_pids, warmup=warmup, duration=duration)
    finally:
        await asyncio.gather(*(close_politely(transport) for transport, _ in opened))
    figures = round_trip_figures(window, meter, duration)
    return {**figures, "mb_per_s": figures["messages"] * size / duration / 1e6}

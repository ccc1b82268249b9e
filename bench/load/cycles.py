"""Connection cycles: what a whole connection costs the server, from connect to close.

Three scenarios, each a set of loops that repeat one operation on a new TCP connection:

- :func:`run_cycles`: connect, WebSocket handshake (101), one small echo, polite close (the
  client's close frame, the server's close frame, the server's TCP close).
- :func:`run_gets`: connect, one plain HTTP GET with ``Connection: close``, the whole response
  read, the server's TCP close. The same app on the same server: the ceiling of a cycle.
- :func:`run_opens`: one client, one connection at a time: how long connect and handshake take
  when nothing else is going on (the close is not timed).

Each returns operations per second over the timed window, and the server's CPU time per
operation (:class:`~bench.load.common.Meter`), which a busy machine disturbs less than the rate.
"""

from __future__ import annotations

__all__ = ["run_cycles", "run_gets", "run_opens"]

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from picows import WSFrame, WSListener, WSMsgType, WSTransport

from bench.load.common import Failure, Meter, close_politely, open_connection, percentile_ms
from bench.servers import PLAIN_BODY, PLAIN_PATH

# How long one operation may take before the scenario is an error.
OPERATION_TIMEOUT = 10.0


class Timings:
    """When each operation of the loops ended, and how long the timed part of it took."""

    def __init__(self) -> None:
        self.ends: list[float] = []
        self.durations: list[float] = []

    def add(self, duration: float) -> None:
        self.ends.append(time.perf_counter())
        self.durations.append(duration)

    def in_window(self, meter: Meter) -> list[float]:
        """The durations of the operations that ended in ``meter``'s window, sorted."""
        return sorted(
            d for end, d in zip(self.ends, self.durations, strict=True) if meter.covers(end)
        )


async def _repeat(
    operation: Callable[[Timings], Awaitable[None]],
    loops: int,
    cpu_pids: list[int],
    duration: float,
    warmup: float,
) -> tuple[Timings, Meter]:
    """Run ``operation`` in ``loops`` concurrent loops for ``warmup + duration`` seconds.

    Each loop runs at least one operation, and finishes the one under way when time is up.
    The meter's window starts after the warm-up.

    Raises:
        Failure: An operation failed, or not one completed.
    """
    timings = Timings()
    meter = Meter(cpu_pids)
    end = time.perf_counter() + warmup + duration

    async def loop() -> None:
        while True:
            await operation(timings)
            if time.perf_counter() >= end:
                return

    async def measure() -> None:
        await asyncio.sleep(warmup)
        meter.start()
        await asyncio.sleep(max(0.0, end - time.perf_counter()))
        meter.stop()

    await asyncio.gather(measure(), *(loop() for _ in range(loops)))
    if not timings.ends:
        raise Failure("not one operation completed")
    return timings, meter


class _OneEcho(WSListener):
    """Keeps the first data frame that comes back, and whether the server's close frame came."""

    def __init__(self) -> None:
        self.echo: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.close_received = False

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            self.close_received = True
        elif not self.echo.done():
            self.echo.set_result(frame.get_payload_as_bytes())

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.echo.done():
            self.echo.set_exception(Failure("the server dropped the connection before the echo"))


async def run_cycles(
    url: str, cpu_pids: list[int], *, connections: int, size: int, duration: float, warmup: float
) -> dict[str, Any]:
    """Connection cycles (connect, handshake, ``size``-byte echo, polite close) in ``connections``
    concurrent loops.

    Returns cycles per second, the server's CPU µs per cycle, and the percentiles of the time to
    open under this load (connect and handshake). A cycle whose close the server did not answer
    with a close frame counts as unclean; ``unclean_closes`` says how many of the
    ``cycles_run`` (warm-up included).

    Raises:
        Failure: A connection did not open, or the echo did not come back as sent.
    """
    payload = os.urandom(size)
    unclean = run = 0

    async def cycle(timings: Timings) -> None:
        nonlocal unclean, run
        opening = time.perf_counter()
        transport, listener = await open_connection(_OneEcho, url, timeout=OPERATION_TIMEOUT)
        opened = time.perf_counter()
        try:
            transport.send(WSMsgType.BINARY, payload)
            echo = await asyncio.wait_for(listener.echo, OPERATION_TIMEOUT)
        except (TimeoutError, asyncio.TimeoutError) as exc:
            raise Failure(f"no echo within {OPERATION_TIMEOUT:.0f} s") from exc
        finally:
            await close_politely(transport)
        if echo != payload:
            raise Failure("the echo differs from the message sent")
        unclean += not listener.close_received
        run += 1
        timings.add(opened - opening)

    timings, meter = await _repeat(cycle, connections, cpu_pids, duration, warmup)
    opens = timings.in_window(meter)
    return {
        "cycles": len(opens),
        "cycles_per_s": len(opens) / meter.seconds,
        **meter.figures(len(opens)),
        "open_p50_ms": percentile_ms(opens, 0.50),
        "open_p99_ms": percentile_ms(opens, 0.99),
        "unclean_closes": unclean,
        "cycles_run": run,
    }


class _OneGet(asyncio.Protocol):
    """Sends one request, keeps everything that comes back until the server hangs up."""

    def __init__(self, request: bytes) -> None:
        self._request = request
        self._received = bytearray()
        self.response: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        self._received += data

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.response.done():
            self.response.set_result(bytes(self._received))


async def run_gets(
    url: str, cpu_pids: list[int], *, connections: int, duration: float, warmup: float
) -> dict[str, Any]:
    """Plain GET cycles on ``GET /plain`` of ``url``'s server in ``connections`` concurrent loops.

    Each cycle opens a TCP connection, sends one request with ``Connection: close``, reads the
    response until the server closes the connection, and closes its end. Returns requests per
    second and the server's CPU µs per request.

    Raises:
        Failure: A connection failed, or the response was not ``200`` with the expected body.
    """
    server = urlsplit(url)
    host, port = server.hostname or "127.0.0.1", server.port or 80
    request = (
        f"GET {PLAIN_PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
    ).encode()
    loop = asyncio.get_running_loop()

    async def get(timings: Timings) -> None:
        started = time.perf_counter()
        try:
            transport, protocol = await asyncio.wait_for(
                loop.create_connection(lambda: _OneGet(request), host, port), OPERATION_TIMEOUT
            )
            response = await asyncio.wait_for(protocol.response, OPERATION_TIMEOUT)
        except (TimeoutError, asyncio.TimeoutError) as exc:
            raise Failure(f"a plain GET took over {OPERATION_TIMEOUT:.0f} s") from exc
        except OSError as exc:
            raise Failure(f"a plain GET failed: {exc}") from exc
        transport.close()
        if not response.startswith(b"HTTP/1.1 200") or not response.endswith(PLAIN_BODY.encode()):
            first_line = response.split(b"\r\n", 1)[0].decode(errors="replace")
            raise Failure(f"GET {PLAIN_PATH} answered {first_line or 'nothing'!r}")
        timings.add(time.perf_counter() - started)

    timings, meter = await _repeat(get, connections, cpu_pids, duration, warmup)
    requests = timings.in_window(meter)
    return {
        "requests": len(requests),
        "requests_per_s": len(requests) / meter.seconds,
        **meter.figures(len(requests)),
        "p50_ms": percentile_ms(requests, 0.50),
        "p99_ms": percentile_ms(requests, 0.99),
    }


async def run_opens(
    url: str, cpu_pids: list[int], *, duration: float, warmup: float
) -> dict[str, Any]:
    """Open connections one at a time, and time connect plus handshake of each.

    Each connection is closed politely before the next opens; the close is not timed. Returns
    the percentiles of the time to open, and the server's CPU µs per open-and-close.

    Raises:
        Failure: A connection did not open.
    """

    async def open_and_close(timings: Timings) -> None:
        opening = time.perf_counter()
        transport, _ = await open_connection(WSListener, url, timeout=OPERATION_TIMEOUT)
        opened = time.perf_counter()
        await close_politely(transport)
        timings.add(opened - opening)

    timings, meter = await _repeat(open_and_close, 1, cpu_pids, duration, warmup)
    opens = timings.in_window(meter)
    return {
        "opens": len(opens),
        "opens_per_s": len(opens) / meter.seconds,
        **meter.figures(len(opens)),
        "open_p50_ms": percentile_ms(opens, 0.50),
        "open_p99_ms": percentile_ms(opens, 0.99),
    }

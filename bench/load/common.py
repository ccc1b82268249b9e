"""What the scenarios share: opening and closing connections, and summing up latencies."""

from __future__ import annotations

__all__ = ["Failure", "close_politely", "open_connection", "percentile_ms"]

import asyncio
import math
from collections.abc import Callable, Sequence
from typing import TypeVar, cast

from picows import WSCloseCode, WSError, WSListener, WSTransport, ws_connect

from bench.servers import MAX_MESSAGE_SIZE

ListenerT = TypeVar("ListenerT", bound=WSListener)


class Failure(Exception):
    """The scenario cannot give a figure; the message says why, in one line."""


async def open_connection(
    listener_factory: Callable[[], ListenerT], url: str, timeout: float = 10.0
) -> tuple[WSTransport, ListenerT]:
    """Open a WebSocket without compression; raise :class:`Failure` if it takes over ``timeout``."""
    try:
        transport, listener = await asyncio.wait_for(
            ws_connect(
                listener_factory,
                url,
                websocket_handshake_timeout=timeout,
                max_frame_size=MAX_MESSAGE_SIZE,
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


def percentile_ms(sorted_seconds: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile of already sorted durations, in milliseconds."""
    if not sorted_seconds:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_seconds)))
    return sorted_seconds[rank - 1] * 1000.0

"""Fragmented messages: a 64 KiB text message sent in 256-byte frames, echoed whole.

The load is the one of the Autobahn test suite's compression cases 12.x.14: 65,536-byte
messages, permessage-deflate with the client's usual offer, the compressed payload cut into
frames of 256 bytes, one message in flight, each echo checked. The text is JSON-like (as in
12.1.x, whose data is a JSON file), made here from a fixed seed. Without compression the same
text goes out in 256 frames of 256 bytes: the cost of reassembly alone.

picows sends frames, not messages, and has no permessage-deflate; the load generator frames and
compresses the messages itself (:func:`wire_message`), once per message text, and writes them
to the socket as they are. Each message is compressed on its own, which a client may always do
(RFC 7692, section 7.2.1): the server must inflate and deflate every message whole.
"""

from __future__ import annotations

__all__ = ["WireMessage", "run_fragmented", "text_message", "wire_message"]

import asyncio
import json
import os
import random
import time
import zlib
from typing import Any, NamedTuple

from picows import WSFrame, WSMsgType, WSTransport

from bench.load.common import Failure, close_politely, open_connection
from bench.load.echo import RoundTripLoop, Window, round_trip_figures, timed

# What browsers offer; Autobahn's default offer adds client_no_context_takeover, which changes
# nothing here since each message is compressed on its own.
OFFER = "permessage-deflate; client_max_window_bits"
# The tail that each compressed message drops and the receiver appends (RFC 7692, 7.2.1).
_SYNC_TAIL = b"\x00\x00\xff\xff"
_TEXT, _CONTINUATION = 0x1, 0x0
# Messages take turns from this many different texts, as Autobahn's move through its file.
VARIANTS = 4

# fmt: off
_WORDS = (
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
    "uniform", "victor", "whiskey", "xray", "yankee", "zulu", "message", "socket", "frame",
    "server", "client", "request", "response", "window", "buffer", "stream", "update", "status",
    "room", "member", "channel", "payload", "chat", "game", "score", "player", "level", "ready",
    "waiting", "closed", "opened", "error",
)
# fmt: on


def text_message(size: int, variant: int) -> bytes:
    """``size`` bytes of JSON-like ASCII text; the same for the same ``variant``, every run."""
    rng = random.Random(variant)
    parts: list[str] = []
    length = 0
    while length < size:
        record = json.dumps(
            {
                "id": rng.randrange(10**6),
                "user": rng.choice(_WORDS),
                "room": f"{rng.choice(_WORDS)}-{rng.randrange(100)}",
                "text": " ".join(rng.choices(_WORDS, k=rng.randint(4, 24))),
                "score": round(rng.random() * 1000, 2),
                "tags": rng.sample(_WORDS, 3),
                "ok": rng.random() < 0.9,
            }
        )
        parts.append(record)
        length += len(record) + 2
    return ",\n".join(parts).encode()[:size]


class WireMessage(NamedTuple):
    """A message framed, masked and, if asked, compressed: the bytes to write, and their frames."""

    data: bytes
    frames: int


def wire_message(message: bytes, fragment: int, window_bits: int | None) -> WireMessage:
    """``message`` as a client sends it: a text message in masked frames of ``fragment`` bytes.

    With ``window_bits``, the payload is compressed with permessage-deflate first (a window of
    that many bits, a fresh compressor) and the first frame has RSV1 set.
    """
    payload = message
    if window_bits is not None:
        compressor = zlib.compressobj(wbits=-window_bits)
        payload = compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH)
        payload = payload.removesuffix(_SYNC_TAIL)
    chunks = [payload[i : i + fragment] for i in range(0, len(payload), fragment)] or [b""]
    data = b"".join(
        _masked_frame(
            _TEXT if index == 0 else _CONTINUATION,
            chunk,
            fin=index == len(chunks) - 1,
            rsv1=index == 0 and window_bits is not None,
        )
        for index, chunk in enumerate(chunks)
    )
    return WireMessage(data, len(chunks))


def _masked_frame(opcode: int, payload: bytes, *, fin: bool, rsv1: bool) -> bytes:
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    length = len(payload)
    if length < 126:
        header = bytes((first, 0x80 | length))
    elif length < 2**16:
        header = bytes((first, 0x80 | 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((first, 0x80 | 127)) + length.to_bytes(8, "big")
    mask = os.urandom(4)
    repeated = (mask * (length // 4 + 1))[:length]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        length, "big"
    )
    return header + mask + masked


def _negotiated_window_bits(transport: WSTransport) -> int | None:
    """The client's window size if the server accepted permessage-deflate, else None."""
    accepted = transport.response.headers.get("Sec-WebSocket-Extensions", "")
    if not accepted.strip().startswith("permessage-deflate"):
        return None
    for parameter in accepted.split(";")[1:]:
        name, _, value = parameter.strip().partition("=")
        if name == "client_max_window_bits" and value:
            return int(value.strip('"'))
    return 15


class FragmentedEchoLoop(RoundTripLoop):
    """One connection: writes a framed message, waits for the whole echo, writes the next."""

    def __init__(self) -> None:
        self._transport: WSTransport | None = None
        self._wires: list[WireMessage] = []
        self._texts: list[bytes] = []
        self._turn = 0
        self._inflater: Any = None
        self._parts: list[bytes] = []
        self._received = 0
        self._compressed = False
        self._sent_at = 0.0
        self._checked = False
        self.window = Window(0.0, 0.0)
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_ws_connected(self, transport: WSTransport) -> None:
        self._transport = transport

    def start(
        self, texts: list[bytes], wires: list[WireMessage], inflate: bool, window: Window
    ) -> None:
        """Send ``wires`` in turn (``texts`` framed) until ``window.end``."""
        self._texts, self._wires, self.window = texts, wires, window
        self._inflater = zlib.decompressobj(wbits=-15) if inflate else None
        self._send()

    def _send(self) -> None:
        assert self._transport is not None
        self._sent_at = time.perf_counter()
        self._transport.underlying_transport.write(self._wires[self._turn % len(self._wires)].data)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            self._fail(f"the server closed the connection with {frame.get_close_code()}")
            return
        if frame.msg_type not in (WSMsgType.TEXT, WSMsgType.CONTINUATION):
            if frame.msg_type == WSMsgType.BINARY:
                self._fail("the echo of a text message came back as binary")
            return
        if frame.msg_type == WSMsgType.TEXT:
            self._compressed = frame.rsv1
        if self._compressed or not self._checked:
            self._parts.append(frame.get_payload_as_bytes())
        self._received += frame.payload_size
        if frame.fin:
            self._on_message()

    def _on_message(self) -> None:
        now = time.perf_counter()
        data = b"".join(self._parts)
        self._parts.clear()
        size, self._received = self._received, 0
        if self._compressed:
            if self._inflater is None:
                self._fail("the server compressed its echo, though nothing was negotiated")
                return
            data = self._inflater.decompress(data + _SYNC_TAIL)
            size = len(data)
        expected = self._texts[self._turn % len(self._texts)]
        if size != len(expected) or (not self._checked and data != expected):
            self._fail(f"sent {len(expected)} bytes of text, {size} different ones came back")
            return
        self._checked = True
        self._turn += 1
        self._echoed(now)


async def run_fragmented(
    url: str,
    cpu_pids: list[int],
    *,
    connections: int,
    size: int,
    fragment: int,
    compressed: bool,
    duration: float,
    warmup: float,
) -> dict[str, Any]:
    """Echo ``size``-byte text messages sent in ``fragment``-byte frames, over ``connections``.

    With ``compressed``, offers permessage-deflate and sends the messages compressed. Returns
    messages per second, round trips, and the server's CPU µs per message.

    Raises:
        Failure: The server refused compression, a connection dropped, or an echo differed.
    """
    headers = {"Sec-WebSocket-Extensions": OFFER} if compressed else None
    opened = await asyncio.gather(
        *(open_connection(FragmentedEchoLoop, url, headers=headers) for _ in range(connections))
    )
    try:
        bits = None
        if compressed:
            negotiated = [_negotiated_window_bits(transport) for transport, _ in opened]
            if None in negotiated:
                raise Failure("the server did not accept permessage-deflate")
            bits = min(b for b in negotiated if b is not None)
        texts = [text_message(size, variant) for variant in range(VARIANTS)]
        wires = [wire_message(text, fragment, bits) for text in texts]

        def start(window: Window) -> None:
            for index, (_, loop) in enumerate(opened):
                # Each connection starts at another text, so they do not all send the same one.
                turn = index % VARIANTS
                loop.start(
                    texts[turn:] + texts[:turn], wires[turn:] + wires[:turn], compressed, window
                )

        loops = [loop for _, loop in opened]
        window, meter = await timed(loops, start, cpu_pids, warmup=warmup, duration=duration)
    finally:
        await asyncio.gather(*(close_politely(transport) for transport, _ in opened))
    return {
        **round_trip_figures(window, meter, duration),
        "frames_per_message": sum(wire.frames for wire in wires) / len(wires),
        "wire_bytes_per_message": sum(len(wire.data) for wire in wires) / len(wires),
        "compressed": compressed,
    }

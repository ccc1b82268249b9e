"""The websockets ``ServerProtocol``, as the engine drives it.

websockets parses and serializes frames and runs the closing handshake; it
does no I/O. Three things differ from how its own servers use it, each to
keep a connection's memory bounded whatever the peer sends:

* **Frames are handed over as they are parsed**, to a :class:`FrameSink` (the
  engine), instead of collecting in a list of events: a message lands in the
  connection's inbox the moment its last frame is parsed.
* **Parsing pauses when the inbox is full.** The sink calls
  :meth:`ServerProtocol.hold_parsing` when a message fills it: the next frame
  then stays unparsed in the protocol's buffer, which holds at most what one
  read brought, until :meth:`ServerProtocol.resume_parsing`. (The hold swaps
  the buffer's ``at_eof``, which the parser calls before each frame, for one
  that waits: while nothing is held, parsing costs nothing more.) This matters
  with compression: one 64 KiB read can hold a hundred small frames that each
  inflate to a megabyte. :meth:`ServerProtocol.resume_parsing` goes on once
  the inbox has room.
* **Pings are answered by the sink, not queued by the protocol.** websockets
  queues a pong for every ping; a peer that floods pings and never reads would
  grow that queue without end. The sink keeps at most one pong waiting (RFC
  6455 5.5.3 allows answering only the most recent ping).

The handshake is checked in ``handshake.py``, from what the WSGI server parsed;
the protocol starts OPEN, and parsing starts at frames.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Protocol as Interface

from websockets.extensions import Extension
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, Side, State
from websockets.streams import StreamReader
from websockets.typing import Subprotocol

__all__ = ["FrameSink", "ServerProtocol"]

_TEXT, _BINARY, _CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT
_PING, _PONG, _CLOSE = Opcode.PING, Opcode.PONG, Opcode.CLOSE
_OPEN = State.OPEN


# websockets' own logger for servers, looked up once (getLogger takes a lock).
_LOGGER = logging.getLogger("websockets.server")


class FrameSink(Interface):
    """Where the protocol hands the frames it parses (the engine)."""

    def on_data(self, frame: Frame) -> None:
        """A text, binary or continuation frame of a message."""

    def on_ping(self, data: bytes) -> None:
        """A ping: answer it (the latest one at least) with a pong."""

    def on_pong(self, data: bytes) -> None:
        """A pong."""


class _PausableReader(StreamReader):
    """The protocol's input buffer; it can hold the next frame back (see the module)."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = False  # the next frame waits for resume
        self.paused = False  # the parser waits here, at a frame's start

    def hold(self) -> None:
        self.holding = True
        self.at_eof = self._held_at_eof  # type: ignore[method-assign]

    def release(self) -> None:
        self.holding = False
        self.__dict__.pop("at_eof", None)

    def _held_at_eof(self) -> Generator[None, None, bool]:
        # The parser calls at_eof() before each frame, and only there.
        while self.holding:
            self.paused = True
            yield
        self.paused = False
        return (yield from StreamReader.at_eof(self))


class ServerProtocol(Protocol):
    """websockets' protocol, server side and open, with frames handed to a sink.

    See the module's docstring. ``extensions`` and ``subprotocol`` are what
    the handshake negotiated.
    """

    def __init__(
        self,
        *,
        extensions: list[Extension],
        subprotocol: str | None,
        max_size: int | None,
    ) -> None:
        super().__init__(Side.SERVER, state=State.OPEN, max_size=max_size, logger=_LOGGER)
        self.extensions = extensions
        self.subprotocol = None if subprotocol is None else Subprotocol(subprotocol)
        #: Receives the frames; set by the engine when the connection opens.
        self.sink: FrameSink | None = None
        self._input = _PausableReader()
        self.reader = self._input
        # websockets started its parser on the reader it made; start ours on this one.
        self.parser = self.parse()
        next(self.parser)

    @property
    def parse_held(self) -> bool:
        """Whether parsing is held (see :meth:`hold_parsing`)."""
        return self._input.holding

    def hold_parsing(self) -> None:
        """Parse no further frame until :meth:`resume_parsing` (the sink is full)."""
        self._input.hold()

    def resume_parsing(self) -> None:
        """Parse on, and at once what waits in the buffer, now that the sink has room."""
        reader = self._input
        if reader.holding:
            reader.release()
            if reader.paused:
                next(self.parser)

    def recv_frame(self, frame: Frame) -> None:
        sink = self.sink
        assert sink is not None
        opcode = frame.opcode
        if opcode is _PING:
            # Answered by the sink, at most one pong waiting; none once closing.
            if self.state is _OPEN:
                sink.on_ping(bytes(frame.data))
            return
        if opcode is _PONG:
            sink.on_pong(bytes(frame.data))
            return
        if opcode is _CLOSE:
            # RFC 6455 5.4 lets control frames come between the fragments of a
            # message. A close there ends the connection cleanly and drops the
            # unfinished message; websockets would fail the connection with 1002.
            self.current_size = None
        # websockets checks the fragment sequence and runs the closing handshake.
        super().recv_frame(frame)
        self.events.clear()
        if opcode is not _CLOSE:
            sink.on_data(frame)

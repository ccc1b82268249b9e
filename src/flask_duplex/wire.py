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
  with compression: one 128 KiB read can hold two hundred small frames that each
  inflate to a megabyte. :meth:`ServerProtocol.resume_parsing` goes on once
  the inbox has room.
* **Pings are answered by the sink, not queued by the protocol.** websockets
  queues a pong for every ping; a peer that floods pings and never reads would
  grow that queue without end. The sink keeps at most one pong waiting (RFC
  6455 5.5.3 allows answering only the most recent ping).

The handshake is checked in ``handshake.py``, from what the WSGI server parsed;
the protocol starts OPEN, and parsing starts at frames. It is made without
running websockets' ``__init__`` (see ``ServerProtocol.__init__``), and
websockets' parser is started only for a frame the fast path leaves to it
(``ServerProtocol.receive_simple``), and let go once the fast path can go
on, with its input buffer: an idle connection holds neither.
"""

from __future__ import annotations

import logging
import struct
import uuid
from collections.abc import Generator
from typing import Protocol as Interface
from typing import cast

from websockets.extensions import Extension
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, Side, State
from websockets.streams import StreamReader
from websockets.typing import Subprotocol

try:
    from websockets.speedups import apply_mask
except ImportError:  # websockets built without its C extension.
    from websockets.utils import apply_mask

__all__ = ["SHORT_HEADERS", "FrameSink", "ServerProtocol", "frame_header"]

_TEXT, _BINARY, _CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT
_PING, _PONG, _CLOSE = Opcode.PING, Opcode.PONG, Opcode.CLOSE
_OPEN = State.OPEN


# websockets' own logger for servers, looked up once (getLogger takes a lock).
_LOGGER = logging.getLogger("websockets.server")


_SHORT = struct.Struct("!BB")
_MEDIUM = struct.Struct("!BBH")
_LONG = struct.Struct("!BBQ")


#: The headers of :func:`frame_header` for payloads under 126 bytes, by
#: ``[text][length]``: a small message's send looks its header up, with no call.
SHORT_HEADERS: tuple[tuple[bytes, ...], tuple[bytes, ...]] = tuple(
    tuple(_SHORT.pack(first, length) for length in range(126)) for first in (0x82, 0x81)
)  # type: ignore[assignment]


def frame_header(length: int, text: bool) -> bytes:
    """The header of a server's unfragmented, unmasked, uncompressed data frame."""
    if length < 126:
        return SHORT_HEADERS[text][length]
    first = 0x81 if text else 0x82
    if length < 65536:
        return _MEDIUM.pack(first, 126, length)
    return _LONG.pack(first, 127, length)


class FrameSink(Interface):
    """Where the protocol hands the frames it parses (the engine)."""

    def on_data(self, frame: Frame) -> None:
        """A text, binary or continuation frame of a message."""

    def on_ping(self, data: bytes) -> None:
        """A ping: answer it (the latest one at least) with a pong."""

    def on_pong(self, data: bytes) -> None:
        """A pong."""

    def on_message(self, message: str | bytes) -> None:
        """A whole message that came as one frame, taken by the fast path."""


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


# The parser waits in this (websockets' at_eof) for a frame's first byte.
_AT_EOF = StreamReader.at_eof.__code__


class _Partial:
    """A frame the fast path took the header of, whose payload comes in later reads."""

    __slots__ = ("chunks", "header", "missing")

    def __init__(self, header: bytes, length: int) -> None:
        self.header = header  # As it came, mask included: the parser may need it back.
        # The payload's pieces as they came, still masked: views of the reads,
        # joined once at the end (no buffer filled with zeros first).
        self.chunks: list[memoryview] = []
        self.missing = length

    def raw(self) -> bytes:
        """The frame's bytes as they came, so far."""
        return b"".join([self.header, *self.chunks])


# What ServerProtocol copies websockets' attributes from, one per max_size (see __init__).
_TEMPLATES: dict[int | None, tuple[tuple[str, object], ...]] = {}
_NO_EXTENSIONS = cast("list[Extension]", ())
# From this payload size on, the fast path unmasks a frame from a view of the
# read: below it, copying the payload out first costs less than the view.
_VIEW_FROM = 8 * 1024
# Attributes of websockets' protocol that are this connection's own, never the template's.
_OWN = frozenset({"id", "debug", "events", "writes", "extensions", "reader", "parser"})


def _template(max_size: int | None) -> tuple[tuple[str, object], ...]:
    """websockets' protocol attributes, at their values when it opens, but for those of _OWN."""
    template = _TEMPLATES.get(max_size)
    if template is None:
        made = Protocol(Side.SERVER, state=State.OPEN, max_size=max_size, logger=_LOGGER)
        template = tuple((k, v) for k, v in vars(made).items() if k not in _OWN)
        made.parser.close()
        if len(_TEMPLATES) < 64:  # Routes have a few sizes; a bound in case one has many.
            _TEMPLATES[max_size] = template
    return template


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
        # websockets' own __init__ would run here. It costs a third of the
        # handshake (a uuid4(), with its getrandom() system call, for an id
        # this library never reads; a reader and a started parser that are
        # replaced below), so its attributes are copied instead from a protocol
        # that it made once (_template): every attribute whatever the release.
        # Each mutable one is made anew below (the lists), or when it is needed
        # (the reader, the parser); tests/test_wire.py checks that no other is shared.
        # One at a time, in the same order for every connection: the instance
        # dict then keeps sharing its keys with the class's (a dict.update()
        # would make a dict of its own, twice the size).
        for name, value in _template(max_size):
            setattr(self, name, value)
        self.debug = _LOGGER.isEnabledFor(logging.DEBUG)
        self.events = []
        self.writes = []
        # A negotiated extension's list, or one empty tuple for all (never appended to).
        self.extensions = extensions or _NO_EXTENSIONS
        self.subprotocol = None if subprotocol is None else Subprotocol(subprotocol)
        #: Receives the frames; set by the engine when the connection opens.
        self.sink: FrameSink | None = None
        # websockets' input buffer (its ``reader``), made with the parser or
        # when parsing is held (see _reader): an idle connection holds none
        # (160 bytes). Both names are the same object, or None.
        self._input: _PausableReader | None = None
        self.reader = None  # type: ignore[assignment]
        # websockets' parser, started when a frame needs it (see _parse): the
        # fast path takes the common frames, and an idle connection holds no
        # parser waiting in its reader (two generators, 440 bytes).
        self.parser = None  # type: ignore[assignment]
        self._max_size = max_size
        # Frames taken by the fast path (receive_simple): with no extension only.
        self._simple = not extensions
        # A frame the fast path is reading, longer than the reads that bring it.
        self._partial: _Partial | None = None
        # websockets 16 renamed the size of the fragmented message being read.
        self._size_attribute = "current_size" if hasattr(self, "current_size") else "cur_size"

    @property
    def id(self) -> uuid.UUID:
        """websockets' id of the connection, for logs: made when first read."""
        made = self.__dict__.get("_id")
        if made is None:
            made = self.__dict__["_id"] = uuid.uuid4()
        return cast("uuid.UUID", made)

    @id.setter
    def id(self, value: uuid.UUID) -> None:
        self.__dict__["_id"] = value

    @property
    def parse_held(self) -> bool:
        """Whether parsing is held (see :meth:`hold_parsing`)."""
        reader = self._input
        return reader is not None and reader.holding

    def hold_parsing(self) -> None:
        """Parse no further frame until :meth:`resume_parsing` (the sink is full)."""
        self._reader().hold()

    def resume_parsing(self) -> None:
        """Parse on, and at once what waits in the buffer, now that the sink has room."""
        reader = self._input
        if reader is not None and reader.holding:
            reader.release()
            # Paused in the held at_eof; or in at_eof itself, with bytes the
            # fast path left in the buffer when the sink filled up.
            if reader.paused or (self._at_frame_start() and reader.buffer):
                if self.parser is None:
                    self._start_parser()  # Which parses what the buffer holds.
                else:
                    next(self.parser)

    def _at_frame_start(self) -> bool:
        # Whether the parser waits in websockets' at_eof, before a frame, or
        # is not started.
        parser = self.parser
        if parser is None:
            return True
        waiting = parser.gi_yieldfrom  # type: ignore[attr-defined]
        return waiting is not None and waiting.gi_code is _AT_EOF

    def _reader(self) -> _PausableReader:
        reader = self._input
        if reader is None:
            reader = self._input = self.reader = _PausableReader()
        return reader

    def _start_parser(self) -> None:
        self._reader()
        self.parser = self.parse()
        next(self.parser)

    def receive_data(self, data: bytes | bytearray) -> None:
        reader = self._input
        if reader is not None and reader.holding and self._at_frame_start():
            # The fast path held parsing with the parser in at_eof itself (or
            # not started), which would parse what comes: keep it for resume_parsing.
            reader.buffer += data
            return
        self._parse(data)

    def receive_eof(self) -> None:
        partial = self._partial
        if partial is not None:
            # The peer left in the middle of a frame: the parser says how that ends.
            self._partial = None
            self._parse(partial.raw())
        if self.parser is None:
            self._start_parser()
        super().receive_eof()

    def fail(self, code: int, reason: str = "") -> None:
        self._reader()  # websockets' discard(), which fail() starts, reads it.
        super().fail(code, reason)

    def _parse(self, data: bytes | bytearray) -> None:
        """websockets' parser takes ``data``; it is let go once the fast path can go on."""
        if self.parser is None:
            self._start_parser()
        super().receive_data(data)
        reader = self._input
        assert reader is not None  # Made with the parser.
        if (
            self._simple
            and not reader.buffer
            and not reader.holding
            and not reader.eof
            and getattr(self, self._size_attribute) is None
            and self.state is _OPEN
            and self._at_frame_start()
        ):
            # Waiting for a frame's first byte with nothing buffered: the next
            # frame is the fast path's, or starts a parser (and a reader) of its own.
            self.parser = None  # type: ignore[assignment]
            self._input = self.reader = None  # type: ignore[assignment]

    def receive_simple(self, data: bytes) -> bool:
        """Take the common frames of ``data`` straight to the sink; False if it cannot.

        The fast path: while the parser waits for a frame's first byte, with
        nothing buffered, no extension, no fragmented message under way and
        the connection open, each whole, unfragmented text or binary frame at
        the front of ``data`` is unmasked and handed to ``sink.on_message``
        without websockets' generator-based parser. A frame whose payload goes
        on past the end of ``data`` is gathered, still masked, over the next
        reads (views of them, joined once: at most ``max_size``), then handed
        over: one copy of a large message instead of the parser's several.
        At the first frame that is anything else (a control frame, a
        fragment, one whose header is cut by the end of the read, one over
        ``max_size``, invalid UTF-8), the rest of ``data`` goes to the
        parser, which handles it, and fails the connection, as it always
        does; so does a frame under way when the peer leaves. If the sink
        fills up, the rest waits in the buffer.

        Returns:
            Whether ``data`` was taken (all of it); False leaves it to
            :meth:`receive_data`.
        """
        sink = self.sink
        assert sink is not None
        taken = False  # Part of data went to a frame under way.
        if self._partial is not None:
            data = self._receive_partial(data, sink)
            if not data:
                return True
            reader = self._input
            if reader is not None and reader.holding:  # The sink is full.
                reader.buffer += data
                return True
            taken = True
        # A parser at work takes what comes. _parse() lets it go as soon as it waits
        # for a frame with nothing buffered, so one left here is in a frame, or
        # was started by resume_parsing() and goes at its next _parse().
        reader = self._input
        if (
            not self._simple
            or self.parser is not None
            or (reader is not None and (reader.buffer or reader.holding))
            or getattr(self, self._size_attribute) is not None
            or self._state is not _OPEN  # websockets' state property, without its call
            or self.debug
        ):
            if taken:
                self._parse(data)
                return True
            return False
        max_size = self._max_size
        end = len(data)
        position = 0
        while end - position >= 6:
            first, second = data[position], data[position + 1]
            # FIN, no RSV bit, text or binary; masked, as a client's must be.
            if (first != 0x81 and first != 0x82) or not second & 0x80:
                break
            length = second & 0x7F
            start = position + 6
            if length == 126:
                start += 2
                if start > end:
                    break
                length = (data[position + 2] << 8) | data[position + 3]
            elif length == 127:
                start += 8
                if start > end:
                    break
                length = int.from_bytes(data[position + 2 : position + 10], "big")
            stop = start + length
            if max_size is not None and length > max_size:
                break
            if stop > end:
                if start > end:
                    break  # The header itself is cut: the parser waits for the rest.
                # The payload comes in the next reads: keep views of them, still
                # masked, and join them once it is all in (at most max_size).
                partial = self._partial = _Partial(data[position:start], length)
                partial.chunks.append(memoryview(data)[start:])
                partial.missing -= end - start
                return True
            if length < _VIEW_FROM:
                payload = apply_mask(data[start:stop], data[start - 4 : start])
            else:  # Unmasked straight from the read: no copy of the masked payload first.
                payload = apply_mask(memoryview(data)[start:stop], data[start - 4 : start])
            if first == 0x81:
                try:
                    message: str | bytes = payload.decode()
                except UnicodeDecodeError:
                    break  # The parser fails the connection with 1007.
            else:
                message = payload
            sink.on_message(message)
            position = stop
            reader = self._input  # Made by hold_parsing() if the sink filled up.
            if reader is not None and reader.holding:  # The sink is full.
                if position < end:
                    reader.buffer += data[position:]
                return True
        if position < end:
            self._parse(data[position:] if position else data)
        return True

    def _receive_partial(self, data: bytes, sink: FrameSink) -> bytes:
        """Go on with the frame under way; return what of ``data`` comes after it."""
        partial = self._partial
        assert partial is not None
        take = min(partial.missing, len(data))
        partial.chunks.append(memoryview(data)[:take] if take < len(data) else memoryview(data))
        partial.missing -= take
        if partial.missing:
            return b""
        self._partial = None
        header = partial.header
        payload = b"".join(partial.chunks)
        unmasked = apply_mask(payload, header[-4:])
        if header[0] == 0x81:
            try:
                message: str | bytes = unmasked.decode()
            except UnicodeDecodeError:
                # The parser fails the connection with 1007, as it does.
                self._parse(header + payload + data[take:])
                return b""
        else:
            message = unmasked
        sink.on_message(message)
        return data[take:]

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

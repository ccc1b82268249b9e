"""websockets' protocol as the engine drives it: how each connection's protocol is made, and
the fast path against websockets' parser, without sockets.

For the fast path, each scenario feeds the same bytes, cut into reads of the same sizes, to two
protocols: one with the fast path (``receive_simple`` first, as the engine calls it) and one
without (every byte to websockets' parser). Both must hand over the same messages and end the
same way: the same state, the same close frames, the same bytes to send, the same error.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import Protocol, Side, State

from flask_duplex.wire import SHORT_HEADERS, ServerProtocol, frame_header

_IMMUTABLE = (type(None), bool, int, float, str, bytes, tuple, frozenset, State, Side)


def _protocol(max_size: int | None = 2**20) -> ServerProtocol:
    return ServerProtocol(extensions=[], subprotocol=None, max_size=max_size)


def test_protocol_has_every_attribute_websockets_sets() -> None:
    """A protocol made from the template has what websockets' own __init__ sets, and its values."""
    theirs = vars(Protocol(Side.SERVER, state=State.OPEN, max_size=2**20))
    ours = _protocol()
    for name, value in theirs.items():
        assert hasattr(ours, name), name
        if isinstance(value, _IMMUTABLE) and name not in ("id", "logger"):
            assert getattr(ours, name) == value, name


def test_protocols_share_no_mutable_attribute() -> None:
    """Two connections' protocols share nothing that either could change."""
    first, second = _protocol(), _protocol()
    for name, value in vars(first).items():
        if name in ("logger", "extensions") or isinstance(value, _IMMUTABLE):
            continue
        assert getattr(second, name) is not value, name


def test_protocol_sizes_are_their_own() -> None:
    """Each route's max_message_size reaches its protocol."""
    assert _protocol(1000)._max_size == 1000
    size_attribute = "max_message_size" if hasattr(_protocol(), "max_message_size") else "max_size"
    assert getattr(_protocol(1000), size_attribute) == 1000
    assert getattr(_protocol(None), size_attribute) is None


def test_protocol_id_is_made_when_read() -> None:
    """websockets' id is a UUID, unique per connection, made only when something reads it."""
    first, second = _protocol(), _protocol()
    assert "_id" not in vars(first)
    assert isinstance(first.id, uuid.UUID)
    assert first.id == first.id != second.id


def test_protocol_parses_frames_after_the_template() -> None:
    """A protocol made from the template parses a close frame and answers it."""
    protocol = _protocol()
    protocol.sink = _Sink()
    protocol.receive_data(b"\x88\x82\x00\x00\x00\x00\x03\xe8")
    assert protocol.close_rcvd is not None and protocol.close_rcvd.code == 1000
    assert protocol.data_to_send()[0].startswith(b"\x88")


class _Sink:
    def on_data(self, frame: object) -> None:
        raise AssertionError("no data frame was sent")

    def on_ping(self, data: bytes) -> None:
        raise AssertionError("no ping was sent")

    def on_pong(self, data: bytes) -> None:
        raise AssertionError("no pong was sent")

    def on_message(self, message: str | bytes) -> None:
        raise AssertionError("no message was sent")


def _masked(first: int, payload: bytes) -> bytes:
    """A client's frame, masked with a zero key (the payload reads as is)."""
    return bytes([first, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


class _Collecting(_Sink):
    def __init__(self) -> None:
        self.messages: list[str | bytes] = []
        self.pings: list[bytes] = []

    def on_data(self, frame: object) -> None:
        self.messages.append(frame.data)  # type: ignore[attr-defined]

    def on_ping(self, data: bytes) -> None:
        self.pings.append(data)

    def on_message(self, message: str | bytes) -> None:
        self.messages.append(message)


def test_idle_protocol_holds_no_parser() -> None:
    """The parser and its reader start for a frame the fast path leaves to them, and go once
    it is parsed."""
    protocol = _protocol()
    sink = protocol.sink = _Collecting()
    assert protocol.parser is None and protocol.reader is None
    assert protocol.receive_simple(_masked(0x81, b"hi"))
    assert protocol.parser is None and protocol.reader is None
    assert protocol.receive_simple(_masked(0x89, b"ping"))  # To the parser.
    assert sink.messages == ["hi"] and sink.pings == [b"ping"]
    assert protocol.parser is None and protocol.reader is None


def test_failing_an_idle_protocol() -> None:
    """fail() with no parser or reader (the idle case) sends its close and ends the stream."""
    protocol = _protocol()
    protocol.sink = _Collecting()
    assert protocol.receive_simple(_masked(0x81, b"hi"))
    protocol.fail(1011, "keepalive ping timeout")
    sent = protocol.data_to_send()
    assert sent[0].startswith(b"\x88") and sent[-1] == b""
    assert protocol.close_sent is not None and protocol.close_sent.code == 1011
    protocol.receive_data(_masked(0x81, b"after"))  # Discarded, as websockets does.
    protocol.receive_eof()
    assert protocol.state.name == "CLOSED"


class _Filling(_Collecting):
    """A sink that is full after ``room`` messages, as the engine's inbox is."""

    def __init__(self, protocol: ServerProtocol, room: int) -> None:
        super().__init__()
        self.protocol = protocol
        self.room = room

    def on_message(self, message: str | bytes) -> None:
        super().on_message(message)
        if len(self.messages) >= self.room:
            self.protocol.hold_parsing()


@pytest.mark.parametrize("cut", [0, 1, 7, 9])
def test_parsing_held_from_idle_keeps_the_rest_in_order(cut: int) -> None:
    """The sink fills up on an idle protocol (no reader yet): what follows waits, whole, until
    resume_parsing(), control frames included."""
    protocol = _protocol()
    sink = protocol.sink = _Filling(protocol, room=1)
    stream = b"".join(
        [_masked(0x81, b"one"), _masked(0x81, b"two"), _masked(0x89, b"p"), _masked(0x81, b"3")]
    )
    for data in (stream[: 9 + cut], stream[9 + cut :]):
        if not protocol.receive_simple(data):
            protocol.receive_data(data)
    assert sink.messages == ["one"] and protocol.parse_held
    sink.room = 10
    protocol.resume_parsing()
    # Whole messages from the fast path, data frames from the parser (the engine joins those).
    received = [m.encode() if isinstance(m, str) else bytes(m) for m in sink.messages]
    assert received == [b"one", b"two", b"3"] and sink.pings == [b"p"]
    assert not protocol.parse_held


def test_parser_stays_while_a_fragmented_message_is_read() -> None:
    """Between the fragments of a message the parser keeps its place."""
    protocol = _protocol()
    sink = protocol.sink = _Collecting()
    assert protocol.receive_simple(_masked(0x01, b"frag"))  # Text, not final.
    assert protocol.parser is not None
    # While a message is under way the fast path leaves frames to the parser.
    assert not protocol.receive_simple(_masked(0x80, b"ment"))
    protocol.receive_data(_masked(0x80, b"ment"))  # Continuation, final.
    assert protocol.parser is None
    assert [bytes(m) for m in sink.messages] == [b"frag", b"ment"]


MAX_SIZE = 1 << 20


@dataclass
class Sink:
    """The messages a protocol hands over, whole, whichever path they took."""

    messages: list[str | bytes] = field(default_factory=list)
    fragments: list[Frame] = field(default_factory=list)

    def on_message(self, message: str | bytes) -> None:
        self.messages.append(message)

    def on_data(self, frame: Frame) -> None:
        self.fragments.append(frame)
        if frame.fin:
            data = b"".join(bytes(f.data) for f in self.fragments)
            first = self.fragments[0].opcode
            self.messages.append(data.decode() if first is Opcode.TEXT else data)
            self.fragments.clear()

    def on_ping(self, data: bytes) -> None:
        pass

    def on_pong(self, data: bytes) -> None:
        pass


@dataclass
class Outcome:
    messages: list[str | bytes]
    state: object
    close_rcvd: Close | None
    close_sent: Close | None
    sent: bytes
    error: str  # What the parser raised, if anything.


def client_frame(opcode: Opcode, data: bytes, fin: bool = True) -> bytes:
    return Frame(opcode, data, fin=fin).serialize(mask=True)


def run(stream: bytes, reads: list[int], fast: bool, close_after: int | None = None) -> Outcome:
    """Feed ``stream`` in reads of these sizes (the last repeats), then the end of the stream."""
    protocol = ServerProtocol(extensions=[], subprotocol=None, max_size=MAX_SIZE)
    if not fast:
        protocol._simple = False  # Every frame through websockets' parser.
    sink = Sink()
    protocol.sink = sink
    position, index = 0, 0
    while position < len(stream):
        if close_after is not None and position >= close_after and protocol.state.name == "OPEN":
            protocol.send_close(1001, "going away")  # The server starts closing mid-stream.
        size = reads[min(index, len(reads) - 1)]
        data = stream[position : position + size]
        if not protocol.receive_simple(data):
            protocol.receive_data(data)
        position, index = position + size, index + 1
    try:
        protocol.receive_eof()
    except EOFError:
        pass  # Already at the end (the connection closed first).
    sent = b"".join(protocol.data_to_send())
    error = repr(protocol.parser_exc)
    return Outcome(
        sink.messages, protocol.state, protocol.close_rcvd, protocol.close_sent, sent, error
    )


def same_outcome(stream: bytes, reads: list[int], close_after: int | None = None) -> Outcome:
    fast = run(stream, reads, fast=True, close_after=close_after)
    parser = run(stream, reads, fast=False, close_after=close_after)
    assert fast == parser
    return fast


BIG = bytes(range(256)) * 400  # 102,400 bytes
TEXT = "é" + "a" * 70_000 + "€"
READS = [[1], [3, 5, 1], [1000], [65536], [6, 65536], [len(BIG) * 3]]


@pytest.mark.parametrize("reads", READS, ids=lambda r: "-".join(map(str, r)))
def test_large_frames_over_several_reads_arrive_whole_and_in_order(reads: list[int]) -> None:
    """Frames longer than a read come whole, with the small frames around them, in order."""
    stream = (
        client_frame(Opcode.TEXT, b"first")
        + client_frame(Opcode.BINARY, BIG)
        + client_frame(Opcode.TEXT, TEXT.encode())
        + client_frame(Opcode.BINARY, b"")
        + client_frame(Opcode.TEXT, b"last")
        + client_frame(Opcode.CLOSE, Close(1000, "done").serialize())
    )
    outcome = same_outcome(stream, reads)
    assert outcome.messages == ["first", BIG, TEXT, b"", "last"]
    assert outcome.close_rcvd == Close(1000, "done")


@pytest.mark.parametrize("reads", [[7], [4096], [60000], [200_000]], ids=str)
def test_invalid_utf8_in_a_large_text_frame_fails_with_1007(reads: list[int]) -> None:
    """A long text frame with invalid UTF-8 fails the connection as the parser does."""
    stream = client_frame(Opcode.TEXT, b"a" * 50_000 + b"\xff\xfe" + b"b" * 50_000)
    stream += client_frame(Opcode.TEXT, b"never")
    outcome = same_outcome(stream, reads)
    assert outcome.messages == []
    assert outcome.close_sent is not None and outcome.close_sent.code == 1007


@pytest.mark.parametrize("cut", [10, 70_000, len(BIG)])
def test_a_peer_that_leaves_in_the_middle_of_a_frame(cut: int) -> None:
    """The stream ends inside a long frame: the same end as the parser's, nothing handed over."""
    stream = client_frame(Opcode.BINARY, BIG)[:cut]
    outcome = same_outcome(stream, [4096])
    assert outcome.messages == []


def test_a_frame_under_way_when_the_server_starts_closing() -> None:
    """The server sends its close while a long frame is arriving: the parser finishes it."""
    stream = client_frame(Opcode.BINARY, BIG) + client_frame(Opcode.TEXT, b"after")
    stream += client_frame(Opcode.CLOSE, Close(1001, "").serialize())
    outcome = same_outcome(stream, [8192], close_after=8192 * 3)
    assert outcome.close_sent == Close(1001, "going away")


def test_a_frame_over_max_size_is_refused_before_its_payload() -> None:
    """A header announcing more than max_size fails with 1009, whatever the reads."""
    stream = client_frame(Opcode.BINARY, b"x" * (MAX_SIZE + 1))
    outcome = same_outcome(stream, [65536])
    assert outcome.close_sent is not None and outcome.close_sent.code == 1009


def test_fragments_and_control_frames_between_them_go_to_the_parser() -> None:
    """A fragmented message with a ping between its fragments, around a long frame."""
    stream = (
        client_frame(Opcode.BINARY, BIG[:70_000], fin=False)
        + client_frame(Opcode.PING, b"p")
        + client_frame(Opcode.CONT, BIG[70_000:], fin=True)
        + client_frame(Opcode.BINARY, BIG)
    )
    outcome = same_outcome(stream, [5000])
    assert outcome.messages == [BIG, BIG]


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65535, 65536, 70_000])
@pytest.mark.parametrize("text", [True, False], ids=["text", "binary"])
def test_frame_header_is_websockets_own(length: int, text: bool) -> None:
    """The header the engine sends (looked up below 126 bytes) is the one websockets builds."""
    opcode = Opcode.TEXT if text else Opcode.BINARY
    payload = b"x" * length
    assert frame_header(length, text) + payload == Frame(opcode, payload).serialize(mask=False)
    if length < 126:
        assert SHORT_HEADERS[text][length] == frame_header(length, text)

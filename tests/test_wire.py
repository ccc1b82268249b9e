"""The protocol's fast path against websockets' parser, without sockets.

Each scenario feeds the same bytes, cut into reads of the same sizes, to two protocols: one
with the fast path (``receive_simple`` first, as the engine calls it) and one without (every
byte to websockets' parser). Both must hand over the same messages and end the same way: the
same state, the same close frames, the same bytes to send.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from websockets.frames import Close, Frame, Opcode

from flask_duplex.wire import ServerProtocol

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


@pytest.mark.parametrize("reads", [[7], [4096], [60000]], ids=str)
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

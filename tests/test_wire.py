"""websockets' protocol as the engine drives it: how each connection's protocol is made."""

from __future__ import annotations

import uuid

from websockets.protocol import Protocol, Side, State

from flask_duplex.wire import ServerProtocol

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
    """The parser starts for a frame the fast path leaves to it, and goes once it is parsed."""
    protocol = _protocol()
    sink = protocol.sink = _Collecting()
    assert protocol.parser is None
    assert protocol.receive_simple(_masked(0x81, b"hi"))
    assert protocol.parser is None
    assert protocol.receive_simple(_masked(0x89, b"ping"))  # To the parser.
    assert sink.messages == ["hi"] and sink.pings == [b"ping"]
    assert protocol.parser is None


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

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

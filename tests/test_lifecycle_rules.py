"""The rules of a connection's life, without a socket: event in, state and actions out.

Each row starts a :class:`Lifecycle` over a real websockets protocol in a given
state, applies one event, and checks the state it reaches, the actions it asks
of the I/O side, and the close code it then reports. Events that a state does
not allow raise :class:`IllegalTransition`, or change nothing where the rule is
"does nothing" (closing twice, failing a closed connection).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from websockets.frames import Close, Frame, Opcode

from flask_duplex.assembly import Inbox
from flask_duplex.lifecycle import (
    INPUT_ENDED,
    LEFT_OPEN,
    NOTHING,
    SEND,
    IllegalTransition,
    Lifecycle,
    State,
)
from flask_duplex.wire import ServerProtocol

CONNECTING, OPEN, CLOSING, CLOSED, FINISHED = State


class Sink:
    """Takes the frames the protocol parses into an inbox, as the engine does."""

    def __init__(self) -> None:
        self.inbox = Inbox(64, 2**20)

    def on_data(self, frame: Frame) -> None:
        self.inbox.add(frame)  # Invalid UTF-8 raises here; websockets fails with 1007.

    def on_ping(self, data: bytes) -> None:
        pass

    def on_pong(self, data: bytes) -> None:
        pass


def client_frame(opcode: Opcode, data: bytes) -> bytes:
    return Frame(opcode, data).serialize(mask=True, extensions=[])


def peer_close(code: int = 1000, reason: str = "bye") -> bytes:
    return client_frame(Opcode.CLOSE, Close(code, reason).serialize())


def new(max_size: int | None = 1024) -> Lifecycle:
    protocol = ServerProtocol(extensions=[], subprotocol=None, max_size=max_size)
    protocol.sink = Sink()
    return Lifecycle(protocol)


def feed(lifecycle: Lifecycle, data: bytes) -> int:
    """What the engine does with bytes from the socket: parse, then ask the lifecycle."""
    protocol = lifecycle._protocol
    if data:
        protocol.receive_data(data)
    else:
        protocol.receive_eof()
    protocol.data_to_send()  # The engine queues websockets' answers itself.
    return lifecycle.data_received() if lifecycle.input_open else NOTHING


# -- ways to reach each state -----------------------------------------------------


def connecting() -> Lifecycle:
    return new()


def opened() -> Lifecycle:
    lifecycle = new()
    lifecycle.accept()
    return lifecycle


def closing() -> Lifecycle:
    lifecycle = opened()
    lifecycle.close(1000, "done")
    return lifecycle


def closed_by_peer() -> Lifecycle:
    lifecycle = opened()
    feed(lifecycle, peer_close(4001, "peer"))
    return lifecycle


def finished() -> Lifecycle:
    lifecycle = closed_by_peer()
    lifecycle.finish()
    return lifecycle


START = {
    "connecting": connecting,
    "open": opened,
    "closing": closing,
    "closed": closed_by_peer,
    "finished": finished,
}

EVENTS: dict[str, Callable[[Lifecycle], object]] = {
    "accept": lambda lc: lc.accept(),
    "reject": lambda lc: lc.reject(),
    "close": lambda lc: lc.close(1000, "done"),
    "fail 1011": lambda lc: lc.fail(1011, "keepalive ping timeout"),
    "peer close": lambda lc: feed(lc, peer_close(4001, "peer")),
    "peer EOF": lambda lc: feed(lc, b""),
    "input ended": lambda lc: lc.input_ended(),
    "finish": lambda lc: lc.finish(),
}

# (start, event) -> (state after, what the event returned, close code reported after).
# ILLEGAL: the event raises IllegalTransition and the state does not move.
ILLEGAL = object()
TABLE: dict[tuple[str, str], tuple[State, object, int | None] | object] = {
    ("connecting", "accept"): (OPEN, None, None),
    ("connecting", "reject"): (CLOSED, True, 1006),
    ("connecting", "close"): (CONNECTING, NOTHING, None),
    ("connecting", "fail 1011"): (CONNECTING, NOTHING, None),
    ("connecting", "input ended"): (CONNECTING, NOTHING, None),
    ("connecting", "finish"): ILLEGAL,
    ("open", "accept"): ILLEGAL,
    ("open", "reject"): (OPEN, False, None),
    ("open", "close"): (CLOSING, SEND | LEFT_OPEN, 1000),
    ("open", "fail 1011"): (CLOSED, SEND | LEFT_OPEN | INPUT_ENDED, 1011),
    ("open", "peer close"): (CLOSED, LEFT_OPEN | INPUT_ENDED, 4001),
    ("open", "peer EOF"): (CLOSED, LEFT_OPEN | INPUT_ENDED, 1006),
    ("open", "input ended"): (CLOSED, LEFT_OPEN | INPUT_ENDED, 1006),
    # The handler returned while the connection was open: input ends with it.
    ("open", "finish"): (FINISHED, LEFT_OPEN | INPUT_ENDED, 1006),
    ("closing", "accept"): ILLEGAL,
    ("closing", "reject"): (CLOSING, False, 1000),
    ("closing", "close"): (CLOSING, NOTHING, 1000),
    # A failure after this side's close: the close went out first, no answer came.
    ("closing", "fail 1011"): (CLOSED, SEND | INPUT_ENDED, 1006),
    ("closing", "peer close"): (CLOSED, INPUT_ENDED, 4001),
    ("closing", "peer EOF"): (CLOSED, INPUT_ENDED, 1006),
    ("closing", "input ended"): (CLOSED, INPUT_ENDED, 1006),
    ("closing", "finish"): (FINISHED, INPUT_ENDED, 1006),
    ("closed", "accept"): ILLEGAL,
    ("closed", "reject"): (CLOSED, False, 4001),
    ("closed", "close"): (CLOSED, NOTHING, 4001),
    ("closed", "fail 1011"): (CLOSED, NOTHING, 4001),
    ("closed", "input ended"): (CLOSED, NOTHING, 4001),
    ("closed", "finish"): (FINISHED, NOTHING, 4001),
    ("finished", "accept"): ILLEGAL,
    ("finished", "reject"): (FINISHED, False, 4001),
    ("finished", "close"): (FINISHED, NOTHING, 4001),
    ("finished", "fail 1011"): (FINISHED, NOTHING, 4001),
    ("finished", "input ended"): (FINISHED, NOTHING, 4001),
    ("finished", "finish"): ILLEGAL,
}


@pytest.mark.parametrize(("start", "event"), sorted(TABLE))
def test_each_event_in_each_state(start: str, event: str) -> None:
    """One row of the table: the state reached, the actions asked for, the code reported."""
    lifecycle = START[start]()
    before = lifecycle.state
    expected = TABLE[start, event]
    if expected is ILLEGAL:
        with pytest.raises(IllegalTransition):
            EVENTS[event](lifecycle)
        assert lifecycle.state is before
        return
    assert isinstance(expected, tuple)
    state, returned, code = expected
    assert EVENTS[event](lifecycle) == returned
    assert lifecycle.state is state
    assert lifecycle.input_open is (state in (OPEN, CLOSING))
    assert lifecycle.close_code == code


def test_every_state_and_event_has_a_row() -> None:
    """The table covers every event in every state but the protocol's own (peer input)."""
    peer_input = {"peer close", "peer EOF"}
    for start in START:
        for event in EVENTS:
            if event in peer_input and start in ("connecting", "closed", "finished"):
                continue  # Nothing is read outside OPEN and CLOSING.
            assert (start, event) in TABLE, (start, event)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (client_frame(Opcode.TEXT, b"\xff\xfe"), 1007),  # invalid UTF-8
        (client_frame(Opcode.TEXT, b"x" * 2048), 1009),  # over max_size
        (client_frame(Opcode.CLOSE, b"\x03\xe8" + b"\xff"), 1007),  # bad close reason
        (Frame(Opcode.TEXT, b"unmasked").serialize(mask=False, extensions=[]), 1002),
    ],
)
def test_a_protocol_error_fails_the_connection_with_its_code(data: bytes, code: int) -> None:
    """websockets fails the connection; the lifecycle reports the code that was sent."""
    lifecycle = opened()
    assert feed(lifecycle, data) == LEFT_OPEN | INPUT_ENDED
    assert lifecycle.state is CLOSED
    assert lifecycle.close_code == code


def test_the_peers_code_wins_over_a_close_this_side_sent() -> None:
    """This side closed with 1000, the peer answered 4002: 4002 is reported."""
    lifecycle = closing()
    feed(lifecycle, peer_close(4002, "mine"))
    assert lifecycle.close_info() == (4002, "mine")


def test_a_failure_reports_the_reason_it_sent() -> None:
    """fail(1013, reason) on an open connection reports (1013, reason) until the end."""
    lifecycle = opened()
    lifecycle.fail(1013, "too slow: outbound queue full")
    lifecycle.finish()
    assert lifecycle.close_info() == (1013, "too slow: outbound queue full")


def test_a_closing_connection_reports_its_own_code_until_the_answer() -> None:
    """While CLOSING, the code sent; once the stream ends with no answer, 1006."""
    lifecycle = opened()
    lifecycle.close(4003, "going")
    assert lifecycle.close_info() == (4003, "going")
    feed(lifecycle, b"")
    assert lifecycle.close_info() == (1006, "")


def test_close_sends_one_close_frame_and_the_peers_answer_sends_none() -> None:
    """SEND after close() means exactly one close frame; the answer adds no second one."""
    lifecycle = opened()
    protocol = lifecycle._protocol
    assert lifecycle.close(1000, "") & SEND
    sent = b"".join(protocol.data_to_send())
    assert sent[:1] == b"\x88"  # FIN + close opcode
    feed(lifecycle, peer_close(1000, ""))
    assert not any(chunk.startswith(b"\x88") for chunk in protocol.data_to_send())

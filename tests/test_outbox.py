"""The outbox's direct write, the path a broadcast takes to an idle socket, on a socket pair."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from flask_duplex.green import wait_function
from flask_duplex.outbox import Outbox


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    with ours, peer:
        yield ours, peer


def _fill(sock: socket.socket) -> int:
    """Write to ``sock`` until it takes nothing more; return how many bytes went."""
    total = 0
    chunk = b"-" * 65536
    while True:
        try:
            total += sock.send(chunk)
        except BlockingIOError:
            return total


def _read(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        data += sock.recv(size - len(data))
    return data


def test_idle_outbox_writes_the_frame_at_once(pair: tuple[socket.socket, socket.socket]) -> None:
    """An idle outbox sends the frame itself and queues nothing."""
    ours, peer = pair
    lock = threading.Lock()
    outbox = Outbox(ours, lock, wait_function(), lambda: None)
    with lock:
        assert outbox.write_if_idle(b"frame")
    assert outbox.size == 0
    assert _read(peer, 5) == b"frame"


def test_busy_outbox_declines_the_direct_write(pair: tuple[socket.socket, socket.socket]) -> None:
    """With another writer holding the socket, or bytes queued, the frame is not written."""
    ours, peer = pair
    lock = threading.Lock()
    outbox = Outbox(ours, lock, wait_function(), lambda: None)
    with lock:
        assert outbox.offer([b"claimed"])  # Another writer now holds the socket.
        assert not outbox.write_if_idle(b"frame")
    outbox.write_claimed(b"claimed", block=False)
    with lock:
        outbox.add([b"queued"])
        assert not outbox.write_if_idle(b"frame")
    outbox.flush(block=False)
    assert _read(peer, 13) == b"claimedqueued"


def test_rest_of_a_partly_written_frame_goes_out_first(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """A frame the full socket took only part of is finished before anything queued after it."""
    ours, peer = pair
    lock = threading.Lock()
    stalls: list[bool] = []
    outbox = Outbox(ours, lock, wait_function(), lambda: stalls.append(outbox.stalled))
    filled = _fill(ours)
    room = 131072
    _read(peer, room)  # Room for part of the frame only.
    frame = b"F" * 2_000_000
    with lock:
        assert outbox.write_if_idle(frame)
        assert 0 < outbox.size < len(frame)
        assert not outbox.write_if_idle(b"next")
        outbox.add([b"next"])
    received: list[bytes] = []
    reader = threading.Thread(
        target=lambda: received.append(_read(peer, filled - room + len(frame) + 4))
    )
    reader.start()
    outbox.flush(block=True)
    reader.join(10)
    assert received[0].endswith(frame + b"next")
    assert outbox.size == 0
    assert not outbox.stalled


@pytest.mark.parametrize("room", [0, 131072], ids=["nothing-sent", "cut-in-the-payload"])
def test_a_gathered_write_that_the_socket_cut_goes_on_where_it_stopped(
    pair: tuple[socket.socket, socket.socket], room: int
) -> None:
    """Header and payload sent in one gathered write: the rest follows, in or after the header."""
    ours, peer = pair
    lock = threading.Lock()
    outbox = Outbox(ours, lock, wait_function(), lambda: None)
    filled = _fill(ours)
    _read(peer, room)  # Room for nothing, or for part of the payload.
    header, payload = b"HEADER-10!", bytes(range(256)) * 4000
    with lock:
        assert outbox.claim()
    received: list[bytes] = []
    reader = threading.Thread(
        target=lambda: received.append(_read(peer, filled - room + len(header) + len(payload)))
    )
    reader.start()
    outbox.write_claimed(header, block=True, payload=memoryview(payload))
    reader.join(10)
    assert received[0][filled - room :] == header + payload
    assert outbox.size == 0

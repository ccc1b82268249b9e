"""One slow client never holds back the others: it is closed with 1013 instead."""

from __future__ import annotations

import threading
import time
import urllib.parse
import urllib.request

from websockets.frames import Opcode

from tests.support.raw import RawClient, parse_frames
from tests.support.servers import Server

READERS = 50
BROADCASTS = 200


def post(server: Server, path: str, **form: object) -> None:
    data = urllib.parse.urlencode(form).encode()
    urllib.request.urlopen(f"{server.http}{path}", data=data, timeout=60).close()


def read_indexes(client: RawClient, out: list[list[int]]) -> None:
    indexes = []
    while len(indexes) < BROADCASTS:
        text = bytes(client.read_frame(timeout=20).data).decode()
        if not text.endswith(" joined"):
            indexes.append(int(text.split(":", 1)[0]))
    out.append(indexes)


def test_slow_consumer_is_closed_with_1013_while_others_get_everything(
    werkzeug_server: Server,
) -> None:
    """A client that stops reading is closed with 1013; 50 others receive all, in order."""
    slow = RawClient(werkzeug_server.port, "/room/slow", rcvbuf=4096)
    readers = [RawClient(werkzeug_server.port, "/room/slow") for _ in range(READERS)]
    try:
        slow.send_frame(Opcode.TEXT, b"whoami")
        slow_id = next(
            text
            for text in iter(lambda: bytes(slow.read_frame().data).decode(), None)
            if not text.endswith(" joined")
        )
        # Send the slow client, which reads nothing, 9.4 MiB of private
        # messages: more than its socket buffers hold (4 MiB at most here)
        # plus max_queue (64) messages, so it stalls whatever the kernel's
        # buffer sizing does, and the broadcasts find it stalled or closed.
        post(werkzeug_server, f"/send/{slow_id}", text="p" * 32768, n=300)
        received: list[list[int]] = []
        threads = [threading.Thread(target=read_indexes, args=(r, received)) for r in readers]
        for thread in threads:
            thread.start()
        started = time.monotonic()
        post(werkzeug_server, "/flood", to="slow", n=BROADCASTS, size=100)
        # The slow client starts reading once the flood is queued: the server
        # gives it close_timeout (10 s) from the 1013 to take what is left and
        # the close frame, then drops it.
        rest: list[bytes] = []
        drain = threading.Thread(target=lambda: rest.append(slow.read_until_eof(timeout=10)))
        drain.start()
        for thread in threads:
            thread.join(timeout=30)
        elapsed = time.monotonic() - started
        drain.join(timeout=15)
    finally:
        for client in [slow, *readers]:
            client.close()
    assert received == [list(range(BROADCASTS))] * READERS
    assert elapsed < 10
    assert len(rest) == 1, "the slow client's connection did not end"
    frames = [frame for frame, _ in parse_frames(slow.buffer + rest[0])]
    broadcasts = [f for f in frames if f.opcode is Opcode.TEXT and not f.data.startswith(b"p")]
    assert len(broadcasts) < BROADCASTS
    assert frames[-1].opcode is Opcode.CLOSE
    assert frames[-1].data[:2] == (1013).to_bytes(2, "big")
    werkzeug_server.wait_for_log("with 1013")

"""Message assembly: data frames in, whole messages out, queued for ``receive()``.

A message is one frame, or a first frame and continuation frames up to one
with FIN set. Text is decoded as it arrives, so that invalid UTF-8 fails the
connection at the first bad byte instead of after a megabyte of it.

Complete messages wait in the :class:`Inbox` until the handler receives them.
The inbox is bounded twice: in messages (``max_inbox``) and in size
(``max_inbox_bytes``, counting bytes for binary messages and characters for
text). When either bound is reached the inbox is *full*: the protocol stops
parsing (see ``wire.py``) and the engine stops reading the socket, so TCP
flow control slows the peer down. The most it holds is therefore the bound,
plus the one message that crossed it, plus the message being assembled; each
message is itself bounded by ``max_message_size``.
"""

from __future__ import annotations

import codecs
import collections

from websockets.frames import Frame, Opcode

__all__ = ["Inbox", "Message"]

#: A message as handlers see it: ``str`` from a text frame, ``bytes`` from a binary one.
Message = str | bytes

_TEXT = Opcode.TEXT


class Inbox:
    """Assembles data frames into messages and queues them, bounded (see the module).

    ``count`` and ``full`` are plain attributes, read on every message.
    """

    __slots__ = (
        "_decoder",
        "_fragments",
        "_max_bytes",
        "_max_messages",
        "_messages",
        "count",
        "full",
        "size",
    )

    def __init__(self, max_messages: int, max_bytes: int) -> None:
        # Made at the first queued message: an empty deque costs 600 bytes, and
        # a handler that waits in receive() reads its messages without one.
        self._messages: collections.deque[Message] | None = None
        self._max_messages = max_messages
        self._max_bytes = max_bytes
        #: Messages queued.
        self.count = 0
        #: Bytes (binary) and characters (text) queued.
        self.size = 0
        #: Whether the inbox reached one of its bounds.
        self.full = False
        # The fragments of the message being assembled; made at a message's
        # first fragment (most messages come whole, and an empty list is 56 bytes).
        self._fragments: list[Message] | None = None
        # The decoder of the text message being assembled, if it is fragmented.
        self._decoder: codecs.IncrementalDecoder | None = None

    def add(self, frame: Frame) -> None:
        """Add a data frame; queue the message it completes.

        websockets has already checked the order of the frames (no
        continuation without a first frame, and no first frame inside a
        message) and the message's size.

        Raises:
            UnicodeDecodeError: The frame's text is not valid UTF-8; nothing is
                queued (websockets' parser fails the connection with 1007).
        """
        data = frame.data
        try:
            if frame.fin and not self._fragments:
                message: Message = str(data, "utf-8") if frame.opcode is _TEXT else bytes(data)
            else:
                # Fragmented: decode text as it comes, to fail fast on bad UTF-8.
                fragments = self._fragments
                if fragments is None:
                    fragments = self._fragments = []
                if frame.opcode is _TEXT:
                    self._decoder = codecs.getincrementaldecoder("utf-8")()
                if self._decoder is not None:
                    fragments.append(self._decoder.decode(data, frame.fin))
                else:
                    fragments.append(bytes(data))
                if not frame.fin:
                    return
                joiner: Message = "" if self._decoder is not None else b""
                message = joiner.join(fragments)  # type: ignore[arg-type]
                self._fragments = None
                self._decoder = None
        except UnicodeDecodeError:
            self.clear()
            raise
        self.put(message)

    def put(self, message: Message) -> None:
        """Queue a whole message (one that came as a single frame)."""
        messages = self._messages
        if messages is None:
            messages = self._messages = collections.deque()
        messages.append(message)
        self.count = count = self.count + 1
        self.size = size = self.size + len(message)
        self.full = count >= self._max_messages or size >= self._max_bytes

    def pop(self) -> Message:
        """The oldest message; the inbox must not be empty."""
        assert self._messages is not None
        message = self._messages.popleft()
        self.count = count = self.count - 1
        self.size = size = self.size - len(message)
        self.full = count >= self._max_messages or size >= self._max_bytes
        return message

    def clear(self) -> None:
        """Drop every message, and the one being assembled."""
        self._messages = None
        self.count = self.size = 0
        self.full = False
        self._fragments = None
        self._decoder = None

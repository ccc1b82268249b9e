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

Message = str | bytes

_TEXT = Opcode.TEXT


class Inbox:
    """Assembles data frames into messages and queues them, bounded (see the module)."""

    __slots__ = ("_decoder", "_fragments", "_max_bytes", "_max_messages", "_messages", "size")

    def __init__(self, max_messages: int, max_bytes: int) -> None:
        # Made at the first queued message: an empty deque costs 600 bytes, and
        # a handler that waits in receive() reads its messages without one.
        self._messages: collections.deque[Message] | None = None
        self._max_messages = max_messages
        self._max_bytes = max_bytes
        #: Bytes (binary) and characters (text) queued.
        self.size = 0
        self._fragments: list[Message] = []
        # The decoder of the text message being assembled, if it is fragmented.
        self._decoder: codecs.IncrementalDecoder | None = None

    def __len__(self) -> int:
        return len(self._messages) if self._messages is not None else 0

    @property
    def full(self) -> bool:
        """Whether the inbox reached one of its bounds."""
        messages = self._messages
        if messages is None:
            return False
        return len(messages) >= self._max_messages or self.size >= self._max_bytes

    def _queue(self, message: Message) -> None:
        if self._messages is None:
            self._messages = collections.deque()
        self._messages.append(message)
        self.size += len(message)

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
                self._queue(str(data, "utf-8") if frame.opcode is _TEXT else bytes(data))
                return
            # Fragmented: decode text as it comes, to fail fast on bad UTF-8.
            if frame.opcode is _TEXT:
                self._decoder = codecs.getincrementaldecoder("utf-8")()
            if self._decoder is not None:
                self._fragments.append(self._decoder.decode(data, frame.fin))
            else:
                self._fragments.append(bytes(data))
        except UnicodeDecodeError:
            self.clear()
            raise
        if frame.fin:
            joiner: Message = "" if self._decoder is not None else b""
            message: Message = joiner.join(self._fragments)  # type: ignore[arg-type]
            self._fragments = []
            self._decoder = None
            self._queue(message)

    def pop(self) -> Message:
        """The oldest message; the inbox must not be empty."""
        assert self._messages is not None
        message = self._messages.popleft()
        self.size -= len(message)
        return message

    def clear(self) -> None:
        """Drop every message, and the one being assembled."""
        self._messages = None
        self.size = 0
        self._fragments = []
        self._decoder = None

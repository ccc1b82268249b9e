"""A raw-socket WebSocket client for byte-exact and malformed-input tests.

Frames are built and parsed with the websockets library's frame codec, so the
tests exercise the server's bytes without a framing layer of their own.
"""

from __future__ import annotations

import base64
import os
import socket
import ssl
import time

from websockets.frames import Close, Frame, Opcode
from websockets.streams import StreamReader


class RawClient:
    def __init__(
        self,
        port: int,
        path: str = "/echo",
        headers: dict[str, str | None] | None = None,
        rcvbuf: int | None = None,
        http_version: str = "HTTP/1.1",
        body: bytes = b"",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """Connect and send the opening handshake; ``None`` in ``headers`` drops a header.

        ``rcvbuf`` shrinks the client's receive buffer, to make a slow reader;
        ``tls`` speaks TLS over the connection.
        """
        self.sock = socket.socket()
        self.sock.settimeout(5)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect(("127.0.0.1", port))
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname="127.0.0.1")
        fields: dict[str, str | None] = {
            "Host": f"127.0.0.1:{port}",
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
            "Sec-WebSocket-Version": "13",
            **(headers or {}),
        }
        lines = [f"GET {path} {http_version}"]
        lines += [f"{name}: {value}" for name, value in fields.items() if value is not None]
        self.sock.sendall("\r\n".join([*lines, "", ""]).encode() + body)
        self.head, self.buffer = self._read_head()
        self.status = int(self.head.split(b" ", 2)[1])

    def _read_head(self) -> tuple[bytes, bytes]:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        return head, rest

    def send_frame(self, opcode: Opcode, data: bytes = b"", fin: bool = True) -> None:
        self.sock.sendall(Frame(opcode, data, fin).serialize(mask=True))

    def send_close(self, code: int = 1000, reason: str = "") -> None:
        self.send_frame(Opcode.CLOSE, Close(code, reason).serialize())

    def read_until_eof(self, timeout: float = 5.0) -> bytes:
        """Everything the server sends until it closes the TCP connection."""
        deadline = time.monotonic() + timeout
        data = bytearray(self.buffer)  # Not bytes: appending to bytes copies everything again.
        self.buffer = b""
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                return bytes(data)
            data += chunk
        raise AssertionError(f"server did not close within {timeout}s; got {data[:200]!r}...")

    def read_frame(self, timeout: float = 5.0) -> Frame:
        """The next frame from the server."""
        self.sock.settimeout(timeout)
        while True:
            parsed = parse_frames(self.buffer, limit=1)
            if parsed:
                frame, consumed = parsed[0]
                self.buffer = self.buffer[consumed:]
                return frame
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"connection closed; {len(self.buffer)} bytes buffered")
            self.buffer += chunk

    def close(self) -> None:
        self.sock.close()


def server_close_exchange(
    port: int, path: str, tls: ssl.SSLContext | None = None
) -> tuple[Frame, bytes, float]:
    """Open ``path``, whose handler closes; answer its close frame with the same code.

    Returns the server's first frame, what came after our answer until the
    server closed TCP, and how long that took.
    """
    client = RawClient(port, path, tls=tls)
    try:
        assert client.status == 101
        frame = client.read_frame()
        started = time.monotonic()
        if frame.opcode is Opcode.CLOSE:
            close = Close.parse(bytes(frame.data))
            client.send_close(close.code, close.reason)
        else:
            client.send_close()
        rest = client.read_until_eof(timeout=3)
        return frame, rest, time.monotonic() - started
    finally:
        client.close()


def client_close_exchange(
    port: int, path: str, tls: ssl.SSLContext | None = None
) -> tuple[bytes, float]:
    """Open ``path`` and close at once with 1000 "done".

    Returns what the server sent until it closed TCP, and how long that took.
    """
    client = RawClient(port, path, tls=tls)
    try:
        assert client.status == 101
        started = time.monotonic()
        client.send_close(1000, "done")
        rest = client.read_until_eof(timeout=3)
        return rest, time.monotonic() - started
    finally:
        client.close()


def parse_frames(data: bytes, limit: int | None = None) -> list[tuple[Frame, int]]:
    """Parse the complete server frames at the start of ``data``, with their end offsets."""
    reader = StreamReader()
    reader.feed_data(data)
    frames: list[tuple[Frame, int]] = []
    while limit is None or len(frames) < limit:
        parser = Frame.parse(reader.read_exact, mask=False)
        try:
            next(parser)
        except StopIteration as done:
            frames.append((done.value, len(data) - len(reader.buffer)))
            continue
        except Exception:
            return frames
        return frames  # The parser wants more bytes: the next frame is incomplete.
    return frames


def close_frame(code: int, reason: str = "") -> bytes:
    """The exact bytes of an unmasked close frame, as a server sends it."""
    return Frame(Opcode.CLOSE, Close(code, reason).serialize()).serialize(mask=False)

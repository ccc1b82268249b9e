"""A client process that holds many idle WebSocket connections open, for :mod:`bench.idle`.

``python -m bench.load.holder HOST PORT SOURCE`` connects from the loopback address ``SOURCE``
(``127.0.0.2``, ``127.0.0.3``, ...) to ``HOST:PORT`` and takes commands on stdin, one a line:

- ``open N``: open N more connections to ``/echo`` (at most 256 handshakes in flight), then print
  ``{"open": ..., "opened": ..., "seconds": ..., "error": ...}`` on stdout;
- ``report``: print ``{"open": ..., "rss_kib": ...}``;
- ``exit``, or the end of stdin: reset every connection and exit.

Each connection is a plain asyncio protocol over a raw socket: it writes the handshake, checks
the 101, then only answers the server's keepalive pings, so holding one costs the client a socket,
a transport and a small object. One process holds at most what its open-file limit allows, and
one source address toward one destination has about 28,000 ephemeral ports (32768-60999 by
default); :mod:`bench.idle` starts as many holders as it needs, each on its own source address.
"""

from __future__ import annotations

__all__ = ["Holder", "handshake_request"]

import asyncio
import base64
import json
import os
import socket
import struct
import sys
import time
from contextlib import suppress
from typing import Any

from bench import procfs
from bench.process import raise_open_files_limit
from bench.servers import ECHO_PATH

# Handshakes in flight at once, per holder: enough to keep the server's accept loop busy,
# few enough to stay inside its listen backlog.
IN_FLIGHT = 256
HANDSHAKE_TIMEOUT = 10.0
_MAX_RESPONSE_HEAD = 8192
_PING, _PONG, _CLOSE = 0x9, 0xA, 0x8
# Linux's IP_BIND_ADDRESS_NO_PORT, which the socket module does not name.
_IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
# SO_LINGER on, 0 s: close() resets the connection.
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)


def handshake_request(host: str, port: int) -> bytes:
    """A client's opening handshake for ``/echo``, with a fresh key and no extension."""
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {ECHO_PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """A final client frame of at most 125 bytes, masked with the key 0 (payload as is)."""
    return bytes((0x80 | opcode, 0x80 | len(payload))) + b"\0\0\0\0" + payload


class _Held(asyncio.Protocol):
    """One idle connection: the handshake, then pongs for the server's pings."""

    __slots__ = ("_buffer", "_request", "_transport", "open", "opened")

    def __init__(self, request: bytes, opened: asyncio.Future[None]) -> None:
        self._request = request
        self._buffer = b""
        self._transport: asyncio.Transport | None = None
        self.opened = opened
        self.open = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.write(self._request)
        self._request = b""

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self.opened.done():
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > _MAX_RESPONSE_HEAD:
                    self._fail("no end to the response's head")
                return
            head, self._buffer = self._buffer[:end], self._buffer[end + 4 :]
            if not head.startswith(b"HTTP/1.1 101"):
                self._fail(head.split(b"\r\n", 1)[0].decode(errors="replace"))
                return
            self.open = True
            self.opened.set_result(None)
        self._read_frames()

    def _read_frames(self) -> None:
        # The server's frames are unmasked; an idle connection only ever gets control frames.
        while len(self._buffer) >= 2:
            first, length = self._buffer[0], self._buffer[1] & 0x7F
            start = 2
            if length >= 126:
                start = 4 if length == 126 else 10
                if len(self._buffer) < start:
                    return
                length = int.from_bytes(self._buffer[2:start], "big")
            if len(self._buffer) < start + length:
                return
            payload = self._buffer[start : start + length]
            self._buffer = self._buffer[start + length :]
            opcode = first & 0x0F
            if opcode == _PING and self._transport is not None:
                self._transport.write(masked_frame(_PONG, payload))
            elif opcode == _CLOSE and self._transport is not None:
                self._transport.close()

    def _fail(self, reason: str) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"handshake failed: {reason}"))
        if self._transport is not None:
            self._transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"closed during the handshake: {exc}"))

    def drop(self) -> None:
        """Reset the connection: no close handshake, and no port left in TIME_WAIT."""
        if self._transport is not None:
            sock = self._transport.get_extra_info("socket")
            if sock is not None:
                with suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
            self._transport.abort()


class Holder:
    """The connections of one source address to one server."""

    def __init__(self, host: str, port: int, source: str) -> None:
        self.host, self.port, self.source = host, port, source
        self.held: list[_Held] = []

    @property
    def open_count(self) -> int:
        return sum(1 for connection in self.held if connection.open)

    def _socket(self) -> socket.socket:
        """A non-blocking TCP socket bound to the source address, its port chosen at connect.

        Bound with a port of 0, the kernel would pick the port at bind time, searching the
        ports already bound to the address, which grows slow past some thousands; with
        ``IP_BIND_ADDRESS_NO_PORT`` it picks it at connect time, by the whole address pair.
        """
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.IPPROTO_IP, _IP_BIND_ADDRESS_NO_PORT, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.bind((self.source, 0))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    async def open(self, count: int) -> dict[str, Any]:
        """Open ``count`` more connections; stop at the first that fails (after those in flight).

        Every handshake has :data:`HANDSHAKE_TIMEOUT` seconds.
        """
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        errors: list[str] = []
        slots = asyncio.Semaphore(IN_FLIGHT)

        async def one() -> None:
            async with slots:
                if errors:
                    return
                opened: asyncio.Future[None] = loop.create_future()
                connection = _Held(handshake_request(self.host, self.port), opened)
                try:
                    sock = self._socket()
                except OSError as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    return
                try:
                    await asyncio.wait_for(
                        loop.sock_connect(sock, (self.host, self.port)), HANDSHAKE_TIMEOUT
                    )
                    await loop.create_connection(lambda: connection, sock=sock)
                    await asyncio.wait_for(opened, HANDSHAKE_TIMEOUT)
                except (OSError, asyncio.TimeoutError) as exc:
                    # asyncio's TimeoutError is the builtin one from Python 3.11 on.
                    connection.drop()
                    sock.close()
                    errors.append(f"{type(exc).__name__}: {exc}")
                    return
                self.held.append(connection)

        before = len(self.held)
        await asyncio.gather(*(one() for _ in range(count)))
        return {
            "open": self.open_count,
            "opened": len(self.held) - before,
            "seconds": time.perf_counter() - started,
            "error": errors[0] if errors else None,
        }

    def report(self) -> dict[str, Any]:
        return {"open": self.open_count, "rss_kib": procfs.rss_kib([os.getpid()])}

    def drop_all(self) -> None:
        for connection in self.held:
            connection.drop()
        self.held.clear()


async def serve_commands(holder: Holder) -> None:
    """Answer the commands on stdin until ``exit`` or its end."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := (await reader.readline()).decode().split():
            if line[0] == "open" and len(line) == 2:
                answer = await holder.open(int(line[1]))
            elif line[0] == "report":
                answer = holder.report()
            elif line[0] == "exit":
                break
            else:
                answer = {"error": f"unknown command: {' '.join(line)}"}
            print(json.dumps(answer), flush=True)
    finally:
        holder.drop_all()


def main(argv: list[str]) -> None:
    host, port, source = argv[0], int(argv[1]), argv[2]
    raise_open_files_limit()
    asyncio.run(serve_commands(Holder(host, port, source)))


if __name__ == "__main__":
    main(sys.argv[1:])

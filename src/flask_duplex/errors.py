"""The exceptions that Flask-Duplex users catch."""

from __future__ import annotations

__all__ = [
    "BackendUnavailable",
    "ConnectionClosed",
    "DuplexError",
    "HandshakeRejected",
    "InvalidJSON",
    "UnsupportedServer",
]


class DuplexError(Exception):
    """Base class of every exception raised by Flask-Duplex."""


class ConnectionClosed(DuplexError):
    """The WebSocket connection is closed; no message can be sent or received.

    Attributes:
        code: The close code: the one the peer sent, or the one this side sent
            when it failed the connection (1011 for a keepalive timeout), or
            1006 when the TCP connection ended without a closing handshake.
        reason: The close reason that goes with ``code`` (may be empty).
    """

    def __init__(self, code: int, reason: str = "") -> None:
        self.code = code
        self.reason = reason
        text = f"WebSocket connection closed with code {code}"
        super().__init__(f"{text}: {reason}" if reason else text)


class HandshakeRejected(DuplexError):
    """The server answered the opening handshake with an HTTP error.

    Attributes:
        status_code: The HTTP status code of the response (403, 426, ...).
        headers: The response headers, as a list of ``(name, value)`` pairs.
        body: The response body.
    """

    def __init__(self, status_code: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.body = body
        detail = body.decode("utf-8", "replace").strip().splitlines()
        text = f"WebSocket handshake rejected with HTTP {status_code}"
        super().__init__(f"{text}: {detail[0]}" if detail else text)


class UnsupportedServer(DuplexError):
    """The WSGI server does not hand over its socket, so it cannot serve WebSockets."""


class InvalidJSON(DuplexError, ValueError):
    """A message received with ``receive_json()`` is not valid JSON.

    The connection stays open. Attributes:
        message: The raw message, so that nothing received is lost.
    """

    def __init__(self, message: str | bytes, error: ValueError) -> None:
        self.message = message
        super().__init__(f"message is not valid JSON: {error}")


class BackendUnavailable(DuplexError):
    """The message queue (Redis) cannot be reached; the message was not sent."""

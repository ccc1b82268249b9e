"""Test WebSocket routes without a server: ``duplex.test_client()``.

The route runs for real: the app is called with an upgrade request, as a WSGI
server would call it, on a background thread, and the engine speaks WebSocket
over one end of an in-memory socket pair (no TCP port is opened). The other
end belongs to the ``websockets`` library's own client, so the handshake, the
frames, pings and the closing handshake are checked by an independent
implementation on the client side. Handshake checks, ``before_request`` hooks,
the origin policy, options, limits and keepalive all run as in production.

An exception raised by the handler reaches the test: the client sees close
code 1011, and the exception is raised again, with the handler's traceback,
from ``receive()`` or from the ``with`` block's exit.
"""

from __future__ import annotations

import inspect
import json
import socket
import threading
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from flask.signals import got_request_exception
from websockets.exceptions import ConnectionClosed as ClientConnectionClosed
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol
from werkzeug.test import EnvironBuilder

from .connection import next_message
from .errors import ConnectionClosed, HandshakeRejected
from .hub.history import SINCE_PARAMETER, Position
from .servers.testing import PREFETCHED_KEY, SOCKET_KEY

if TYPE_CHECKING:
    from flask import Flask
    from flask.testing import FlaskClient

__all__ = ["RoomPositions", "TestClient", "TestConnection"]

_MAX_HEAD = 65536

# websockets 17 wants connect() in a with block unless legacy=True says otherwise.
# Older releases have no such flag, and set TCP_NODELAY on the socket they are
# given unless told it is a Unix one (their unix_connect's own keyword), which
# our socket pair is: the option fails there with EOPNOTSUPP.
_DIRECT_CONNECT: dict[str, Any] = (
    {"legacy": True} if "legacy" in inspect.signature(connect).parameters else {"unix": True}
)


class RoomPositions:
    """Where a client is in each room with history, read from the frames it receives.

    What the browser client does by itself, for Python clients: feed it each
    text message received (:meth:`update`), and hand :meth:`query` to the
    next connection's upgrade request, so that its joins resume where this
    one stopped. :class:`TestConnection` keeps one (``conn.positions``).

    Attributes:
        rooms: Room name to the position of the last message received.
        joins: The ``joined`` frames received, decoded, oldest first: whether
            each join recovered, and why not.
    """

    def __init__(self, rooms: Mapping[str, Position] | None = None) -> None:
        self.rooms: dict[str, Position] = dict(rooms or {})
        self.joins: list[dict[str, Any]] = []

    def update(self, message: str | bytes | None) -> dict[str, Any] | None:
        """Note the position a message carries; return it decoded if it is a history frame."""
        if not isinstance(message, str) or not message.startswith('{"duplex":'):
            return None
        frame: dict[str, Any] = json.loads(message)
        room, epoch, offset = frame.get("room"), frame.get("epoch"), frame.get("offset")
        if frame.get("duplex") == "joined":
            self.joins.append(frame)
            missed = frame.get("missed")
            if isinstance(offset, int) and isinstance(missed, int):
                # ``offset`` is the room's last message, and the ``missed`` ones
                # before it are still to come: until they do, the client is
                # where it was (a drop now must not skip them).
                offset -= missed
        if isinstance(room, str):
            if isinstance(epoch, str) and isinstance(offset, int):
                self.rooms[room] = Position(epoch, offset)
            else:
                self.rooms.pop(room, None)  # The room keeps no history (any more).
        return frame

    def query(self) -> dict[str, str]:
        """The query-string parameter that resumes these rooms (empty when there are none)."""
        if not self.rooms:
            return {}
        since = {room: list(position) for room, position in self.rooms.items()}
        return {SINCE_PARAMETER: json.dumps(since, separators=(",", ":"))}


class TestClient:
    """Opens WebSocket connections to an app's routes, in process.

    Args:
        app: The Flask app under test.
        http: A Flask test client whose cookies (a logged-in session, say)
            are sent with every handshake.
        timeout: Seconds any single step may take (opening, receiving with
            no timeout of its own, waiting for the handler to return)
            before the test fails with ``TimeoutError``.
    """

    __test__ = False  # Not a pytest test class, despite the name.

    def __init__(
        self, app: Flask, http: FlaskClient | None = None, *, timeout: float = 5.0
    ) -> None:
        self.app = app
        self.http = http
        self.timeout = timeout

    def connect(
        self,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        subprotocols: Sequence[str] | None = None,
        query_string: str | Mapping[str, str] | None = None,
        resume: TestConnection | RoomPositions | None = None,
    ) -> TestConnection:
        """Open a connection to ``path`` (which may carry a query string).

        Args:
            resume: A connection (or its positions) whose rooms with history
                the new one resumes, as the browser client does when it
                reconnects: each ``ws.join`` of such a room replays what was
                missed.

        Raises:
            HandshakeRejected: The app answered with an HTTP error; its
                ``status_code``, ``headers`` and ``body`` are the response's.
        """
        parts = urlsplit(path)
        query = query_string if query_string is not None else parts.query
        positions = resume.positions if isinstance(resume, TestConnection) else resume
        if positions is not None and positions.rooms:
            pairs = parse_qsl(query) if isinstance(query, str) else list(query.items())
            query = urlencode([*pairs, *positions.query().items()])
        positions = RoomPositions(positions.rooms if positions is not None else None)
        client_end, server_end = socket.socketpair()
        server = _InProcessServer(self.app, server_end, query, self.http)
        server.start()
        extra = dict(headers or {})
        try:
            client = connect(
                f"ws://localhost{parts.path or '/'}",
                sock=client_end,
                additional_headers=extra,
                subprotocols=[Subprotocol(name) for name in subprotocols or ()] or None,
                open_timeout=self.timeout,
                close_timeout=self.timeout,
                max_size=None,
                ping_interval=None,
                user_agent_header="flask-duplex-test-client",
                **_DIRECT_CONNECT,
            )
        except TimeoutError:
            client_end.close()
            server.raise_error()
            raise TimeoutError(
                f"the route did not accept the connection within {self.timeout}s: the 101 "
                "goes out when the handler first uses the connection, or calls ws.accept()"
            ) from None
        except InvalidStatus as exc:
            server.join(self.timeout)
            server.raise_error()
            response = exc.response
            raise HandshakeRejected(
                response.status_code, list(response.headers.raw_items()), bytes(response.body)
            ) from None
        except BaseException:
            client_end.close()
            server.join(self.timeout)
            server.raise_error()
            raise
        return TestConnection(client, server, self.timeout, positions)


class TestConnection:
    """The client side of a test connection; use it as a context manager.

    It has the same shape as the server's :class:`~flask_duplex.WebSocket`.

    Attributes:
        positions: Where it is in each room with history (see
            :class:`RoomPositions`); ``client.connect(path, resume=conn)``
            resumes from there.
    """

    __test__ = False

    def __init__(
        self,
        client: ClientConnection,
        server: _InProcessServer,
        timeout: float,
        positions: RoomPositions | None = None,
    ):
        self._client = client
        self._server = server
        self._timeout = timeout
        self.positions = positions if positions is not None else RoomPositions()

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol the route chose, or ``None``."""
        return self._client.subprotocol

    @property
    def close_code(self) -> int | None:
        """The server's close code, or ``None`` while open."""
        return self._client.close_code

    @property
    def close_reason(self) -> str | None:
        """The server's close reason, or ``None`` while open."""
        return self._client.close_reason

    def send(self, data: str | bytes | bytearray | memoryview) -> None:
        """Send a text (``str``) or binary (bytes-like) message to the route."""
        if not isinstance(data, str | bytes | bytearray | memoryview):
            raise TypeError(f"send() takes str or bytes-like, not {type(data).__name__}")
        try:
            self._client.send(data)
        except ClientConnectionClosed as exc:
            self._raise_closed(exc)

    def send_json(self, obj: Any) -> None:
        """Send ``obj`` encoded as JSON, in a text message."""
        self.send(json.dumps(obj))

    def receive(self, timeout: float | None = None) -> str | bytes | None:
        """The route's next message, or ``None`` after ``timeout`` seconds.

        With no ``timeout``, waits up to the client's timeout and then raises
        ``TimeoutError``: a test never hangs on a silent route.

        Raises:
            ConnectionClosed: The route closed the connection.
            Exception: Whatever the handler raised, with its traceback.
        """
        try:
            message = self._client.recv(timeout if timeout is not None else self._timeout)
        except TimeoutError:
            if timeout is None:
                raise TimeoutError(f"the route sent nothing within {self._timeout}s") from None
            return None
        except ClientConnectionClosed as exc:
            self._raise_closed(exc)
        self.positions.update(message)
        return message

    def receive_json(self, timeout: float | None = None) -> Any:
        """The route's next message decoded as JSON, or ``None`` after ``timeout`` seconds.

        Raises:
            ValueError: The message is not JSON.
            ConnectionClosed: As for :meth:`receive`.
        """
        message = self.receive(timeout)
        return None if message is None else json.loads(message)

    def ping(self, data: bytes = b"") -> threading.Event:
        """Ping the route; the event is set when its pong arrives."""
        return self._client.ping(data or None)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection with ``code`` and ``reason``, and wait for the route's answer."""
        self._client.close(code, reason)

    def drop(self) -> None:
        """Lose the connection without a closing handshake, as a client whose network went away.

        The route sees :class:`~flask_duplex.ConnectionClosed` with 1006.
        """
        try:
            self._client.socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # Gone already.
        self._client.close()

    def __iter__(self) -> Iterator[str | bytes]:
        return self

    def __next__(self) -> str | bytes:
        return next_message(self.receive)

    def __enter__(self) -> TestConnection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._client.close()
        self._server.join(self._timeout)
        if exc_type is None:
            self._server.raise_error()
            if self._server.is_alive():
                raise TimeoutError(
                    f"the handler did not return within {self._timeout}s of the close"
                )

    def _raise_closed(self, exc: ClientConnectionClosed) -> NoReturn:
        received = exc.rcvd
        if received is not None and received.code == 1011:
            self._server.join(self._timeout)
            self._server.raise_error()
        code = received.code if received is not None else 1006
        raise ConnectionClosed(code, received.reason if received is not None else "") from exc


class _InProcessServer(threading.Thread):
    """Plays the WSGI server on one end of a socket pair: one request, then done."""

    def __init__(
        self, app: Flask, sock: socket.socket, query: Any, http: FlaskClient | None
    ) -> None:
        super().__init__(name="flask-duplex-test-server", daemon=True)
        self.app = app
        self.sock = sock
        self.query = query
        self.http = http
        self.error: BaseException | None = None
        self._raised = False

    def run(self) -> None:
        try:
            self._serve()
        except BaseException as exc:  # Handed to the test thread by raise_error().
            self.error = exc
        finally:
            self.sock.close()

    def raise_error(self) -> None:
        if self.error is not None and not self._raised:
            self._raised = True
            raise self.error

    def _serve(self) -> None:
        head, rest = _read_head(self.sock)
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, target, protocol = request_line.split(" ", 2)
        parts = urlsplit(target)
        headers = [tuple(line.split(":", 1)) for line in header_lines if ":" in line]
        header_list = [(name.strip(), value.strip()) for name, value in headers]
        environ = EnvironBuilder(
            path=unquote(parts.path),
            query_string=self.query or parts.query,
            method=method,
            headers=header_list,
            environ_base={"REMOTE_ADDR": "127.0.0.1", "SERVER_PROTOCOL": protocol},
        ).get_environ()
        if self.http is not None:
            # The Flask test client adds the cookies that match this request.
            self.http._add_cookies_to_wsgi(environ)
        environ[SOCKET_KEY] = self.sock
        environ[PREFETCHED_KEY] = rest
        status_headers: list[Any] = []

        def start_response(status: str, response_headers: list[tuple[str, str]], *_: Any) -> Any:
            status_headers[:] = [status, response_headers]
            return lambda data: None

        def record(sender: Any, exception: BaseException, **extra: Any) -> None:
            # The handler's exception, for the test to raise again; only this
            # request's (several connections of one app may run at once).
            if threading.current_thread() is self and self.error is None:
                self.error = exception

        with got_request_exception.connected_to(record, self.app):
            body = b"".join(self.app(environ, start_response))
        status, response_headers = status_headers
        if not status.startswith("101"):
            lines = [f"HTTP/1.1 {status}"]
            lines += [f"{k}: {v}" for k, v in response_headers if k.lower() != "content-length"]
            lines.append(f"Content-Length: {len(body)}")
            self.sock.sendall("\r\n".join([*lines, "", ""]).encode("latin-1") + body)


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk or len(data) > _MAX_HEAD:
            raise ConnectionError("the test client sent no complete request head")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest

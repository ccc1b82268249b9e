"""flask-sock's API on Flask-Duplex: change one import line, keep the app.

::

    # from flask_sock import Sock, ConnectionClosed
    from flask_duplex.compat import Sock, ConnectionClosed

How the adapter maps onto Flask-Duplex
--------------------------------------
Nothing here speaks WebSocket. :class:`Sock` builds the URL map exactly as
flask-sock 0.7 does (same rules, same endpoint names, same ``__flask_sock``
blueprint for routes defined before any app is known, Flask's own keyword
arguments passed through), but each rule's view hands the upgrade request to
:meth:`Duplex.serve <flask_duplex.Duplex.serve>`: the same handshake,
connection engine, limits and server adapters as a ``@duplex.route``. The
handler then gets a :class:`SockWebSocket`, a thin wrapper that gives the real
:class:`~flask_duplex.WebSocket` flask-sock's method signatures and exception.

Options are settled per app at connection time, as flask-sock reads
``SOCK_SERVER_OPTIONS`` at connection time: the keys that mean something to
Flask-Duplex (``ping_interval``, ``max_message_size``, ``subprotocols``)
override the app's ``DUPLEX_*`` config for ``Sock`` routes; the others
(``receive_bytes``, ``thread_class``, ``event_class``, ``selector_class``)
have no equivalent and are logged once per app, at warning level. Every other
setting keeps Flask-Duplex's default: a 1 MiB message limit, a keepalive ping
every 20 s, and the same-origin check.

Every ``Sock`` bound to an app shares that app's :class:`~flask_duplex.Duplex`
(``sock.duplex``), so ``Sock`` routes and ``@duplex.route`` routes, rooms and
broadcasts mix freely while an app moves from one API to the other.
``docs/migrating-from-flask-sock.md`` lists what changes on the wire and why.
"""

from __future__ import annotations

import functools
import logging
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from flask import Blueprint, Flask, current_app

from .connection import WebSocket
from .errors import ConnectionClosed as DuplexConnectionClosed
from .errors import DuplexError
from .extension import Duplex, DuplexState
from .options import Options
from .pong import Pong

if TYPE_CHECKING:
    from flask.sansio.blueprints import BlueprintSetupState

__all__ = ["ConnectionClosed", "Sock", "SockWebSocket"]

logger = logging.getLogger("flask_duplex.compat")

H = TypeVar("H", bound=Callable[..., Any])

# The config key flask-sock reads its server options from.
_CONFIG_KEY = "SOCK_SERVER_OPTIONS"
# flask-sock's name for the blueprint of routes defined before any app: it
# prefixes their endpoints ("__flask_sock.echo"), which url_for() calls use.
_BLUEPRINT_NAME = "__flask_sock"
_STATE_KEY = "flask_duplex.compat"
# simple-websocket Server options that have no Flask-Duplex equivalent.
_UNMAPPED = frozenset({"receive_bytes", "thread_class", "event_class", "selector_class"})
_MAX_CLOSE_TEXT = 123  # bytes of UTF-8 that fit in a close frame


class ConnectionClosed(DuplexError, RuntimeError):
    """The connection is closed: flask-sock's exception, with its attribute names.

    Raised by :class:`SockWebSocket` methods once the connection is closed. A
    handler that lets it escape ends quietly, as under flask-sock. It derives
    from ``RuntimeError`` like simple-websocket's, and from
    :class:`~flask_duplex.DuplexError`; it is *not* a
    :class:`flask_duplex.ConnectionClosed`, whose ``reason`` is the text.

    Attributes:
        reason: The close code, an ``int``: the client's; or the one this side
            sent when it failed the connection (1009 message too big, 1011
            keepalive timeout); or 1006 when the TCP connection ended without
            a close frame.
        message: The close text that came with the code (``""`` if none), or
            ``None`` when no close frame came (code 1006).
    """

    def __init__(self, reason: int = 1005, message: str | None = None) -> None:
        """
        Args:
            reason: The close code.
            message: The close text, or ``None``.
        """
        self.reason = reason
        self.message = message
        text = f"WebSocket connection closed with code {reason}"
        super().__init__(f"{text}: {message}" if message else text)

    @property
    def code(self) -> int:
        """The close code, under Flask-Duplex's name (the same as :attr:`reason`)."""
        return self.reason


def _closed(exc: DuplexConnectionClosed) -> ConnectionClosed:
    code = int(exc.code)  # A plain int, whether the code was received or sent.
    return ConnectionClosed(code, None if code == 1006 else exc.reason)


class SockWebSocket:
    """The ``ws`` a :class:`Sock` route gets: flask-sock's API on a Flask-Duplex connection.

    Methods may be called from any thread. Besides flask-sock's ``receive``,
    ``send``, ``close``, ``connected``, ``environ`` and ``subprotocol``, it
    reaches Flask-Duplex's features: rooms (:meth:`join`, :meth:`leave`,
    :attr:`rooms`), :meth:`ping`, :meth:`send_json`, :meth:`receive_json`,
    iteration, :attr:`id`; :attr:`websocket` is the underlying connection.
    Handlers may set attributes of their own on it.

    Attributes:
        websocket: The :class:`~flask_duplex.WebSocket` this wraps, for
            anything else (``duplex.broadcast(..., exclude=ws.websocket)``).
    """

    def __init__(self, websocket: WebSocket) -> None:
        """
        Args:
            websocket: The connection to wrap.
        """
        self.websocket = websocket
        self._closed: ConnectionClosed | None = None

    # -- flask-sock's API ---------------------------------------------------

    @property
    def connected(self) -> bool:
        """True until a close frame was sent or received, or the connection dropped."""
        return self._closed is None and self.websocket.close_code is None

    @property
    def environ(self) -> Mapping[str, Any]:
        """The WSGI environ of the upgrade request."""
        return self.websocket.environ

    @property
    def subprotocol(self) -> str | None:
        """The negotiated subprotocol, or ``None``."""
        return self.websocket.subprotocol

    @property
    def close_reason(self) -> int | None:
        """The close code once closed (simple-websocket's name), ``None`` while open."""
        code = self.websocket.close_code
        return None if code is None else int(code)

    @property
    def close_message(self) -> str | None:
        """The close text once closed, ``None`` while open or if no close frame came."""
        if self.websocket.close_code in (None, 1006):
            return None
        return self.websocket.close_reason

    def receive(self, timeout: float | None = None) -> str | bytes | None:
        """Return the next message: ``str`` for text, ``bytes`` for binary.

        Args:
            timeout: Seconds to wait; ``None`` waits until a message comes, ``0``
                returns only a message that is already there.

        Returns:
            The message, or ``None`` if ``timeout`` seconds passed first.

        Raises:
            ConnectionClosed: The connection is closed and every message that
                came before the close was already returned.
        """
        try:
            return self.websocket.receive(timeout)
        except DuplexConnectionClosed as exc:
            raise self._saw(exc) from None

    def send(self, data: Any) -> None:
        """Send ``data``: bytes-like as a binary message, anything else as text.

        ``str`` goes as it is; other objects as ``str(data)``, as flask-sock
        sends them (use :meth:`send_json` for JSON).

        Raises:
            ConnectionClosed: The connection is closed.
        """
        message = data if isinstance(data, str | bytes | bytearray | memoryview) else str(data)
        try:
            self.websocket.send(message)
        except DuplexConnectionClosed as exc:
            raise self._saw(exc) from None

    def close(self, reason: int | None = None, message: str | None = None) -> None:
        """Close with code ``reason`` (1000 if not given) and text ``message``.

        Waits up to ``close_timeout`` for the client's answer. Calling it
        again, or after the client closed, does nothing. A ``message`` over
        123 bytes of UTF-8 is cut to fit in the close frame.

        Raises:
            ValueError: ``reason`` may not be sent in a close frame (1000-1003,
                1007-1014 and 3000-4999 may).
        """
        text = (message or "").encode()[:_MAX_CLOSE_TEXT].decode(errors="ignore")
        self.websocket.close(reason or 1000, text)

    # -- Flask-Duplex's features --------------------------------------------

    @property
    def id(self) -> str:
        """A unique string naming this connection (for ``duplex.send_to``)."""
        return self.websocket.id

    @property
    def remote_addr(self) -> str | None:
        """The client's address, as the WSGI server saw it."""
        return self.websocket.remote_addr

    @property
    def close_code(self) -> int | None:
        """The close code (Flask-Duplex's name), ``None`` while open."""
        return self.websocket.close_code

    @property
    def rooms(self) -> frozenset[str]:
        """The rooms this connection is in."""
        return self.websocket.rooms

    def join(self, room: str) -> None:
        """Put this connection in ``room``: it gets what ``duplex.broadcast`` sends there.

        Raises:
            TypeError: ``room`` is not a ``str``.
        """
        self.websocket.join(room)

    def leave(self, room: str) -> None:
        """Take this connection out of ``room``."""
        self.websocket.leave(room)

    def ping(self, data: bytes = b"") -> Pong:
        """Send a ping; the returned :class:`~flask_duplex.Pong` is set when the pong arrives.

        Raises:
            ValueError: ``data`` is longer than 125 bytes.
            ConnectionClosed: The connection is closed.
        """
        try:
            return self.websocket.ping(data)
        except DuplexConnectionClosed as exc:
            raise self._saw(exc) from None

    def send_json(self, obj: Any) -> None:
        """Send ``obj`` as JSON text, encoded by the app's JSON provider.

        Raises:
            ConnectionClosed: The connection is closed.
        """
        try:
            self.websocket.send_json(obj)
        except DuplexConnectionClosed as exc:
            raise self._saw(exc) from None

    def receive_json(self, timeout: float | None = None) -> Any:
        """Receive a message and decode it as JSON; ``None`` after ``timeout``.

        Raises:
            flask_duplex.InvalidJSON: The message is not JSON (a ``ValueError``);
                the connection stays open.
            ConnectionClosed: As for :meth:`receive`.
        """
        try:
            return self.websocket.receive_json(timeout)
        except DuplexConnectionClosed as exc:
            raise self._saw(exc) from None

    def __iter__(self) -> Iterator[str | bytes]:
        """Yield messages until the connection closes.

        Ends quietly on close codes 1000, 1001 and 1005; raises
        :class:`ConnectionClosed` on any other.
        """
        try:
            yield from self.websocket
        except DuplexConnectionClosed as exc:
            raise self._saw(exc) from None

    def __repr__(self) -> str:
        state = "connected" if self.connected else "closed"
        return f"<SockWebSocket {self.id} {state} from {self.remote_addr}>"

    def _saw(self, exc: DuplexConnectionClosed) -> ConnectionClosed:
        self._closed = _closed(exc)
        return self._closed


class Sock:
    """flask-sock's extension object, served by Flask-Duplex.

    Use ``Sock(app)``, or ``Sock()`` then :meth:`init_app` in an app factory.

    Attributes:
        app: The app given to the constructor or to the latest
            :meth:`init_app`; a route defined while it is set goes straight
            onto it, as under flask-sock.
        bp: The ``__flask_sock`` blueprint that holds the routes defined
            before any app was known; :meth:`init_app` registers it on each
            app. ``None`` until such a route is defined.
    """

    def __init__(self, app: Flask | None = None, *, duplex: Duplex | None = None) -> None:
        """
        Args:
            app: The app to serve now; or call :meth:`init_app` later.
            duplex: The :class:`~flask_duplex.Duplex` to serve with, when the
                app has one already; by default, the app's, or a new one.

        Raises:
            RuntimeError: ``app`` already has another ``Duplex``.
            ValueError: The app's ``SOCK_SERVER_OPTIONS`` or ``DUPLEX_*``
                config has an invalid value; the message names it.
        """
        self.app: Flask | None = None
        self.bp: Blueprint | None = None
        self._duplex = duplex
        self._lock = threading.Lock()
        self._recorded: weakref.WeakSet[Blueprint] = weakref.WeakSet()
        if app is not None:
            self.app = app
            self.init_app(app)

    @property
    def duplex(self) -> Duplex:
        """The :class:`~flask_duplex.Duplex` that serves this extension's routes.

        The one passed to the constructor; else that of the first app this
        extension was bound to (created then if that app had none); else,
        before any app, a new one, which that app then gets. Use it for
        ``broadcast``, ``send_to``, ``members``, ``on_connect`` and
        ``@duplex.route`` routes next to the ``Sock`` ones.
        """
        with self._lock:
            if self._duplex is None:
                self._duplex = Duplex(client=False)
            return self._duplex

    def init_app(self, app: Flask) -> None:
        """Serve this extension's routes on ``app`` (the app-factory pattern).

        Registers the blueprint of the routes defined so far, and initialises
        the ``Duplex`` on ``app`` unless it has one; routes defined after
        this call go straight onto ``app``.

        Raises:
            RuntimeError: ``app`` already has another ``Duplex``; pass it as
                ``Sock(duplex=...)``.
            ValueError: ``SOCK_SERVER_OPTIONS`` or a ``DUPLEX_*`` config value
                is invalid; the message names it.
        """
        self._bind(app)
        if self.bp is not None:
            app.register_blueprint(self.bp)
        self.app = app

    def route(self, path: str, bp: Blueprint | None = None, **kwargs: Any) -> Callable[[H], H]:
        """Register the decorated function as the handler of WebSocket route ``path``.

        The handler is called as ``handler(ws, **view_args)`` with a
        :class:`SockWebSocket`, in the request context of the upgrade request.
        When it returns, or lets :class:`ConnectionClosed` escape, the
        connection closes with 1000; when it raises anything else, with 1011,
        and the exception goes to Flask's error logging.

        Args:
            path: A Flask URL rule; its converters become keyword arguments.
            bp: Register on this blueprint instead (the app registers the
                blueprint, as usual); else on :attr:`app`, else on :attr:`bp`.
            **kwargs: Passed to Flask's ``route()`` (``endpoint``,
                ``defaults``, ``strict_slashes``, ...), as flask-sock does.

        Returns:
            A decorator that returns the function unchanged.
        """

        def decorator(handler: H) -> H:
            view = self._view(handler)
            options = {**kwargs, "websocket": True}
            if bp is not None:
                self._record(bp)
                bp.route(path, **options)(view)
            elif self.app is not None:
                self.app.route(path, **options)(view)
            else:
                if self.bp is None:
                    self.bp = Blueprint(_BLUEPRINT_NAME, __name__)
                    self._record(self.bp)
                self.bp.route(path, **options)(view)
            return handler

        return decorator

    # -- binding to apps ----------------------------------------------------

    def _record(self, bp: Blueprint) -> None:
        """Bind to each app ``bp`` is registered on, when it is registered."""
        if bp not in self._recorded:
            self._recorded.add(bp)
            bp.record_once(self._on_register)

    def _on_register(self, state: BlueprintSetupState) -> None:
        if isinstance(state.app, Flask):
            self._bind(state.app)

    def _bind(self, app: Flask) -> _AppState:
        """Give ``app`` this extension's ``Duplex`` and the compat state; idempotent."""
        with self._lock:
            duplex_state: DuplexState | None = app.extensions.get("duplex")
            if duplex_state is None:
                if self._duplex is None:
                    self._duplex = Duplex(client=False)
                self._duplex.init_app(app)
            elif self._duplex is None:
                self._duplex = duplex_state.duplex
            elif duplex_state.duplex is not self._duplex:
                raise RuntimeError(
                    f"the app {app.name!r} already has another Duplex; give it to the Sock: "
                    "Sock(app, duplex=duplex), or Sock(duplex=duplex) then sock.init_app(app)"
                )
            state: _AppState = app.extensions.setdefault(_STATE_KEY, _AppState())
        state.options(app)  # Fail or warn now, at set-up, rather than at the first client.
        return state

    def _view(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        """The Flask view of a ``Sock`` route: serve the upgrade with Flask-Duplex."""
        run = _adapt(handler)

        @functools.wraps(handler)
        def websocket_route(**view_args: Any) -> Any:
            app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
            state: _AppState | None = app.extensions.get(_STATE_KEY)
            if state is None or "duplex" not in app.extensions:
                # A blueprint registered before this route was added to it.
                state = self._bind(app)
            duplex_state: DuplexState = app.extensions["duplex"]
            return duplex_state.duplex.serve(run, view_args, **state.options(app))

        return websocket_route


def _adapt(handler: Callable[..., Any]) -> Callable[..., None]:
    """Wrap a flask-sock handler as a Flask-Duplex one."""

    @functools.wraps(handler)
    def run(websocket: WebSocket, **view_args: Any) -> None:
        try:
            handler(SockWebSocket(websocket), **view_args)
        except ConnectionClosed:
            pass  # flask-sock ends such a handler quietly; the connection closes with 1000.

    return run


class _AppState:
    """What the compat layer keeps per app, in ``app.extensions["flask_duplex.compat"]``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._warned: set[str] = set()

    def options(self, app: Flask) -> dict[str, Any]:
        """The Flask-Duplex options for the app's ``SOCK_SERVER_OPTIONS``; warns once per key.

        Raises:
            ValueError: ``SOCK_SERVER_OPTIONS`` is not a dict, or the value of
                a key that maps is invalid.
        """
        options, ignored = _server_options(app.config.get(_CONFIG_KEY))
        with self._lock:
            new = sorted(set(ignored) - self._warned)
            self._warned.update(new)
        if new:
            unknown = [key for key in new if key not in _UNMAPPED]
            logger.warning(
                "flask-duplex: app %r ignores %s %s: Flask-Duplex has no equivalent%s "
                "(see docs/migrating-from-flask-sock.md)",
                app.name,
                _CONFIG_KEY,
                ", ".join(map(repr, new)),
                f" ({', '.join(map(repr, unknown))}: not a flask-sock option either)"
                if unknown
                else "",
            )
        return options


def _server_options(value: Any) -> tuple[dict[str, Any], list[str]]:
    """Translate a ``SOCK_SERVER_OPTIONS`` value into Flask-Duplex route options.

    ``ping_interval`` and ``max_message_size`` keep their meaning (``None`` or
    ``0``: no keepalive, no limit); ``subprotocols`` may be one name or a list.

    Returns:
        The options, and the keys that have no Flask-Duplex equivalent.

    Raises:
        ValueError: ``value`` is not a dict (or ``None``), or a value is invalid.
    """
    if value is None:
        return {}, []
    if not isinstance(value, Mapping):
        raise ValueError(f"{_CONFIG_KEY} must be a dict, not {type(value).__name__}")
    options: dict[str, Any] = {}
    ignored: list[str] = []
    try:
        for key, item in value.items():
            if key in ("ping_interval", "max_message_size"):
                options[key] = item or None
            elif key == "subprotocols":
                options[key] = [item] if isinstance(item, str) else list(item or ())
            else:
                ignored.append(str(key))
        Options.from_config({}, options)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{_CONFIG_KEY}: {exc}") from None
    return options, ignored

"""The Flask extension: ``Duplex``, its routes and its per-app state."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from flask import Blueprint, Flask, Response, current_app, has_app_context, request
from flask.signals import got_request_exception

from . import servers
from .connection import WebSocket
from .errors import ConnectionClosed, UnsupportedServer
from .handshake import Rejected, negotiate
from .hub import Hub, create_hub, encode_message
from .options import CONFIG_PREFIX, Options, check_names
from .reactor import get_reactor
from .servers.testing import ERROR_KEY

if TYPE_CHECKING:
    from flask.testing import FlaskClient

    from .testing import TestClient

__all__ = ["Duplex", "DuplexState"]

logger = logging.getLogger("flask_duplex")

Handler = Callable[..., Any]
F = TypeVar("F", bound=Handler)
H = TypeVar("H", bound=Callable[[WebSocket], Any])
Exclude = WebSocket | str | Iterable[WebSocket | str] | None

_OPTION_DEFAULTS = {field.name: field.default for field in dataclasses.fields(Options)}


@dataclasses.dataclass
class _Route:
    rule: str
    handler: Handler
    endpoint: str
    options: dict[str, Any]


class DuplexState:
    """What Flask-Duplex keeps for one app, in ``app.extensions["duplex"]``.

    Attributes:
        duplex: The :class:`Duplex` bound to the app.
        hub: The rooms, broadcast and presence backend of the app.
    """

    def __init__(self, duplex: Duplex, app: Flask, hub: Hub) -> None:
        self.duplex = duplex
        self.hub = hub
        self._app = weakref.ref(app)
        self.warned_servers: set[str] = set()

    @property
    def connections(self) -> set[WebSocket]:
        """The app's open WebSocket connections in this process."""
        return self.hub.local_connections()

    def test_client(self, http: FlaskClient | None = None, *, timeout: float = 5.0) -> TestClient:
        """A client for this app's WebSocket routes; see :meth:`Duplex.test_client`."""
        from .testing import TestClient

        app = self._app()
        if app is None:
            raise RuntimeError("the app of this Flask-Duplex state no longer exists")
        return TestClient(app, http, timeout=timeout)


class Duplex:
    """WebSocket routes for a Flask app.

    Use ``Duplex(app)``, or ``Duplex()`` then :meth:`init_app` in an app
    factory; one ``Duplex`` can serve several apps.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        message_queue: str | None = None,
        channel: str | None = None,
    ) -> None:
        """
        Args:
            app: The app to serve now; or call :meth:`init_app` later.
            message_queue: A ``redis://`` URL shared by every process that
                serves or publishes; overrides ``DUPLEX_MESSAGE_QUEUE``. A
                process with no app (a worker job) can still broadcast with it.
            channel: The Redis channel and key prefix; overrides ``DUPLEX_CHANNEL``.
        """
        self._routes: list[_Route] = []
        self._apps: weakref.WeakSet[Flask] = weakref.WeakSet()  # For routes added late.
        self._message_queue = message_queue
        self._channel = channel
        self._publisher: Hub | None = None  # For a process with no app.
        self._publisher_lock = threading.Lock()
        self._connect_hooks: list[Callable[[WebSocket], Any]] = []
        self._disconnect_hooks: list[Callable[[WebSocket], Any]] = []
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register the WebSocket routes and the ``DUPLEX_*`` config defaults on ``app``.

        Raises:
            ValueError: A ``DUPLEX_*`` config value is invalid; the message names it.
        """
        for name, default in _OPTION_DEFAULTS.items():
            app.config.setdefault(CONFIG_PREFIX + name.upper(), default)
        app.config.setdefault("DUPLEX_MESSAGE_QUEUE", None)
        app.config.setdefault("DUPLEX_CHANNEL", "flask-duplex")
        app.config.setdefault("DUPLEX_PRESENCE_TTL", 30.0)
        Options.from_config(app.config)
        hub = create_hub(
            self._message_queue or app.config["DUPLEX_MESSAGE_QUEUE"],
            channel=self._channel or app.config["DUPLEX_CHANNEL"],
            presence_ttl=float(app.config["DUPLEX_PRESENCE_TTL"]),
        )
        app.extensions["duplex"] = DuplexState(self, app, hub)
        self._apps.add(app)
        for route in self._routes:
            self._add_rule(app, route)

    # -- rooms, broadcast, presence -------------------------------------------

    def broadcast(self, message: Any, to: str | None = None, exclude: Exclude = None) -> None:
        """Send ``message`` to every connection in room ``to``, in every process.

        Args:
            message: ``str`` (a text frame), bytes-like (binary), or a
                ``dict``/``list`` (sent as JSON text).
            to: A room name; ``None`` sends to every connection of the app.
            exclude: A connection, a connection id, or several, to skip.

        Raises:
            TypeError: ``message`` has another type.
            BackendUnavailable: The message queue cannot be reached; nothing was sent.
        """
        hub, dumps = self._hub()
        hub.broadcast(encode_message(message, dumps), to, frozenset(_ids(exclude)))

    def send_to(self, connection_id: str, message: Any) -> None:
        """Send ``message`` to the connection with this id, wherever it lives.

        Raises:
            TypeError: ``message`` has another type than for :meth:`broadcast`.
            BackendUnavailable: The message queue cannot be reached.
        """
        hub, dumps = self._hub()
        hub.send_to(connection_id, encode_message(message, dumps))

    def members(self, room: str) -> set[str]:
        """The ids of the connections in ``room``, across all processes.

        Raises:
            BackendUnavailable: The message queue cannot be reached.
        """
        hub, _ = self._hub()
        return hub.members(room)

    def on_connect(self, hook: H) -> H:
        """Register ``hook(ws)``, called when a connection opens, before its handler."""
        self._connect_hooks.append(hook)
        return hook

    def on_disconnect(self, hook: H) -> H:
        """Register ``hook(ws)``, called when a connection ended and left every room."""
        self._disconnect_hooks.append(hook)
        return hook

    def _hub(self) -> tuple[Hub, Callable[[Any], str]]:
        """The hub to publish with: the current app's, the only app's, or a publisher's."""
        app: Flask | None = None
        if has_app_context() and current_app.extensions.get("duplex") is not None:
            candidate = current_app._get_current_object()  # type: ignore[attr-defined]
            if candidate.extensions["duplex"].duplex is self:
                app = candidate
        if app is None:
            apps = list(self._apps)
            if len(apps) > 1:
                raise RuntimeError(
                    "this Duplex serves several apps; broadcast inside an app context"
                )
            app = apps[0] if apps else None
        if app is not None:
            return _state(app).hub, app.json.dumps
        if self._message_queue is None:
            raise RuntimeError(
                "this Duplex has no app and no message_queue: call init_app(app), or "
                "pass message_queue='redis://...' to publish from a process without routes"
            )
        with self._publisher_lock:
            if self._publisher is None:
                self._publisher = create_hub(
                    self._message_queue, channel=self._channel or "flask-duplex", presence_ttl=30.0
                )
        return self._publisher, json.dumps

    def test_client(self, http: FlaskClient | None = None, *, timeout: float = 5.0) -> TestClient:
        """A client that opens connections to this extension's routes without a server.

        Args:
            http: A Flask test client whose cookies go with every handshake.
            timeout: Seconds any one step may take before the test fails.

        The app is ``http``'s app, else the only app this ``Duplex`` serves, else
        ``current_app``.
        """
        if http is not None:
            app = http.application
        else:
            apps = list(self._apps)
            if len(apps) == 1:
                app = apps[0]
            elif has_app_context():
                app = current_app._get_current_object()  # type: ignore[attr-defined]
            else:
                raise RuntimeError(
                    "this Duplex serves several apps; use app.extensions['duplex'].test_client()"
                )
        return _state(app).test_client(http, timeout=timeout)

    def route(
        self,
        rule: str,
        *,
        bp: Blueprint | None = None,
        endpoint: str | None = None,
        **options: Any,
    ) -> Callable[[F], F]:
        """Register the decorated function as the handler of WebSocket route ``rule``.

        The handler is called as ``handler(ws, **view_args)`` inside the request
        context of the upgrade request, after ``before_request`` hooks. When it
        returns the connection closes with 1000; when it raises, with 1011.

        Args:
            rule: A Flask URL rule, with converters (``"/room/<name>"``).
            bp: Register on this blueprint instead of the app.
            endpoint: The endpoint name; defaults to the function's name.
            **options: Per-route values of the connection options (see
                :class:`Options`), overriding the app's ``DUPLEX_*`` config.

        Raises:
            TypeError: An option name is unknown; the message names it.
            ValueError: An option value is invalid; the message names it.
        """
        check_names(options)
        Options.from_config({}, options)

        def decorator(handler: F) -> F:
            route = _Route(rule, handler, endpoint or handler.__name__, dict(options))
            if bp is not None:
                self._add_rule(bp, route)
            else:
                self._routes.append(route)
                for app in list(self._apps):
                    self._add_rule(app, route)
            return handler

        return decorator

    def serve(self, handler: Handler, view_args: dict[str, Any], **options: Any) -> Any:
        """Serve the current upgrade request with ``handler``, as a route's view does.

        For views that own their URL rule and settle the options per request
        (``flask_duplex.compat`` does: flask-sock options live in each app's
        config). Call it from a view of a rule marked ``websocket=True``, on an
        app this ``Duplex`` serves, and return what it returns.

        Args:
            handler: Called as ``handler(ws, **view_args)``, as for :meth:`route`.
            view_args: The keyword arguments for ``handler``.
            **options: Connection options overriding the app's ``DUPLEX_*`` config.

        Raises:
            TypeError: An option name is unknown.
            ValueError: An option value is invalid.
        """
        check_names(options)
        route = _Route(request.path, handler, getattr(handler, "__name__", "handler"), options)
        return self._serve(route, view_args)

    def _add_rule(self, target: Flask | Blueprint, route: _Route) -> None:
        def view(**view_args: Any) -> Any:
            return self._serve(route, view_args)

        view.__name__ = route.endpoint
        view.__doc__ = route.handler.__doc__
        # Werkzeug routes upgrade requests only to rules marked websocket=True.
        # The twin plain rule lets the view answer other requests with 426.
        target.add_url_rule(route.rule, route.endpoint, view, methods=["GET"], websocket=True)
        target.add_url_rule(route.rule, route.endpoint, view, methods=["GET"])

    def _serve(self, route: _Route, view_args: dict[str, Any]) -> Any:
        app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
        environ = request.environ
        state = _state(app)
        adapter = servers.detect(environ)
        if adapter is None:
            return _unsupported_server(state, environ, _NO_SOCKET)
        options = Options.from_config(app.config, route.options)
        result = negotiate(environ, options, adapter.request_protocol(environ))
        if isinstance(result, Rejected):
            return Response(result.body, result.status, result.headers)

        try:
            handover = adapter.take_over(environ)
        except UnsupportedServer as exc:
            return _unsupported_server(state, environ, str(exc))
        try:
            handover.sock.sendall(result.response)
        except OSError:
            return adapter.response_after_close(environ)  # The client left already.
        ws = WebSocket(
            result.protocol,
            handover.sock,
            options=options,
            environ=environ,
            reactor=get_reactor(),
            hub=state.hub,
            prefetched=handover.prefetched,
            json_dumps=app.json.dumps,
            json_loads=app.json.loads,
        )
        del result, handover  # Not needed while the connection lives.
        state.hub.add(ws)
        try:
            if _run_hooks(app, self._connect_hooks, ws):
                _run_handler(app, route, ws, view_args)
            else:
                ws.close(1011)
        finally:
            ws._finish()
            state.hub.remove(ws)
            _run_hooks(app, self._disconnect_hooks, ws)
        return adapter.response_after_close(environ)


def _run_handler(app: Flask, route: _Route, ws: WebSocket, view_args: dict[str, Any]) -> None:
    try:
        route.handler(ws, **view_args)
    except ConnectionClosed:
        if not ws.closed:
            _report(app)
            ws.close(1011)
    except Exception:
        _report(app)
        ws.close(1011)
    else:
        ws.close(1000)


def _run_hooks(app: Flask, hooks: list[Callable[[WebSocket], Any]], ws: WebSocket) -> bool:
    """Run connect or disconnect hooks; False if one raised (it is logged)."""
    for hook in hooks:
        try:
            hook(ws)
        except Exception:
            _report(app)
            return False
    return True


def _ids(exclude: Exclude) -> Iterable[str]:
    if exclude is None:
        return ()
    if isinstance(exclude, str | WebSocket):
        exclude = [exclude]
    return (item.id if isinstance(item, WebSocket) else str(item) for item in exclude)


def _report(app: Flask) -> None:
    """Hand the handler's exception to Flask's error logging and signal."""
    exc_info = sys.exc_info()
    request.environ[ERROR_KEY] = exc_info[1]  # For the test client to raise again.
    got_request_exception.send(app, _async_wrapper=app.ensure_sync, exception=exc_info[1])
    app.log_exception(exc_info)


def _state(app: Flask) -> DuplexState:
    try:
        state: DuplexState = app.extensions["duplex"]
    except KeyError:
        raise RuntimeError(
            "this app has no Flask-Duplex state; call Duplex(app) or duplex.init_app(app)"
        ) from None
    return state


_NO_SOCKET = "it does not hand over its sockets, so it cannot serve WebSockets"


def _unsupported_server(state: DuplexState, environ: Any, why: str) -> Response:
    software = str(environ.get("SERVER_SOFTWARE", "unknown"))
    if software not in state.warned_servers:
        state.warned_servers.add(software)
        logger.error(
            "flask-duplex: cannot serve WebSockets on the WSGI server %r: %s. "
            "The supported servers are: %s",
            software,
            why,
            servers.supported_names(),
        )
    body = f"This server ({software}) cannot serve WebSocket connections.\n"
    return Response(body, 501, {"Content-Type": "text/plain; charset=utf-8"})

"""The Flask extension: ``Duplex``, its routes and its per-app state."""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from flask import Blueprint, Flask, Response, current_app, has_app_context, request
from flask.signals import got_request_exception

from . import servers
from .connection import WebSocket
from .errors import ConnectionClosed, UnsupportedServer
from .handshake import Rejected, negotiate
from .options import CONFIG_PREFIX, Options, check_names
from .servers.testing import ERROR_KEY

if TYPE_CHECKING:
    from flask.testing import FlaskClient

    from .testing import TestClient

__all__ = ["Duplex", "DuplexState"]

logger = logging.getLogger("flask_duplex")

Handler = Callable[..., Any]
F = TypeVar("F", bound=Handler)

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
        connections: The app's open WebSocket connections in this process.
    """

    def __init__(self, duplex: Duplex, app: Flask) -> None:
        self.duplex = duplex
        self.connections: set[WebSocket] = set()
        self.lock = threading.Lock()
        self._app = weakref.ref(app)
        self.warned_servers: set[str] = set()

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

    def __init__(self, app: Flask | None = None) -> None:
        self._routes: list[_Route] = []
        self._apps: weakref.WeakSet[Flask] = weakref.WeakSet()  # For routes added late.
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register the WebSocket routes and the ``DUPLEX_*`` config defaults on ``app``.

        Raises:
            ValueError: A ``DUPLEX_*`` config value is invalid; the message names it.
        """
        for name, default in _OPTION_DEFAULTS.items():
            app.config.setdefault(CONFIG_PREFIX + name.upper(), default)
        Options.from_config(app.config)
        app.extensions["duplex"] = DuplexState(self, app)
        self._apps.add(app)
        for route in self._routes:
            self._add_rule(app, route)

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
            reactor=adapter.reactor(),
            prefetched=handover.prefetched,
            json_dumps=app.json.dumps,
            json_loads=app.json.loads,
        )
        with state.lock:
            state.connections.add(ws)
        try:
            _run_handler(app, route, ws, view_args)
        finally:
            ws._finish()
            with state.lock:
                state.connections.discard(ws)
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

"""The contenders: which library, on which server, started by which command line.

Only the standard library is imported here, so the test suite can read the list of contenders
without the benchmark's own environment.
"""

from __future__ import annotations

__all__ = [
    "CONTENDERS",
    "FLASK_DUPLEX",
    "FLASK_SOCK",
    "REFERENCE",
    "UNPINNED_CONTENDERS",
    "Contender",
    "flask_sock_peer",
]

import dataclasses
import functools
from importlib import metadata
from pathlib import Path

FLASK_DUPLEX = "Flask-Duplex"
FLASK_SOCK = "flask-sock"

# The gunicorn settings the project documents: one worker, enough threads for the scenarios
# with 100 connections, enough greenlets for the 10,000 idle connections and one more client.
_GUNICORN_WORKER_OPTIONS = {
    "gthread": ("--threads", "256"),
    "gevent": ("--worker-connections", "16384"),
}
# uWSGI as docs/deployment.md's ini runs it: the HTTP router passing upgrades through with
# 64 KiB buffers, the app loaded in the worker, SIGTERM a graceful stop. One worker, with as many
# threads as gunicorn's gthread row, or the ini's gevent cores (the scenarios hold at most 1,001
# connections at once).
_UWSGI_OPTIONS = (
    "--master",
    "--lazy-apps",
    "--die-on-term",
    "--hook-master-start",
    "unix_signal:15 gracefully_kill_them_all",
    "--processes",
    "1",
)
_UWSGI_WORKER_OPTIONS = {
    "threads": ("--enable-threads", "--threads", "256"),
    "gevent": ("--gevent", "2000", "--gevent-early-monkey-patch"),
}


@dataclasses.dataclass(frozen=True)
class Contender:
    """One library on one server, serving ``/echo``.

    Attributes:
        key: Short unique name, used on the command line, in logs and in the JSON results.
        library: The WebSocket library, as its users spell it.
        server: The server it runs on.
        module: The module in ``bench.servers`` that holds its echo app or server.
        gunicorn_worker: gunicorn's worker class, or None for a server started by the module.
        uwsgi_mode: ``threads`` or ``gevent`` for uWSGI, or None.
        plain_http: It is a Flask app that also answers ``GET /plain``: the plain request that
            its connection cycle is compared with.
        deflate: It negotiates permessage-deflate when the client offers it.
    """

    key: str
    library: str
    server: str
    module: str
    gunicorn_worker: str | None = None
    uwsgi_mode: str | None = None
    plain_http: bool = False
    deflate: bool = True

    @property
    def label(self) -> str:
        return f"{self.library} / {self.server}"

    def missing(self, python: str) -> str | None:
        """Why this contender cannot run with ``python``'s environment, or None if it can."""
        if self.uwsgi_mode is None or _uwsgi(python).exists():
            return None
        venv = Path(python).parent.parent.name
        if (Path(python).parent.parent / "uwsgi-build.log").exists():
            return f"uWSGI did not build here (see {venv}/uwsgi-build.log)"
        return f"uWSGI is not installed in {venv} (make bench-env installs it)"

    def command(self, python: str, port: int | str) -> list[str]:
        """The command line that serves the echo route on 127.0.0.1:``port``."""
        if self.uwsgi_mode is not None:
            return [
                str(_uwsgi(python)),
                *_UWSGI_OPTIONS,
                *_UWSGI_WORKER_OPTIONS[self.uwsgi_mode],
                "--http",
                f"127.0.0.1:{port}",
                "--http-websockets",
                "--http-buffer-size",
                "65536",
                "--module",
                f"bench.servers.{self.module}:app",
            ]
        if self.gunicorn_worker is None:
            return [python, "-m", f"bench.servers.{self.module}", str(port)]
        return [
            python,
            "-m",
            "gunicorn",
            "-k",
            self.gunicorn_worker,
            "-w",
            "1",
            *_GUNICORN_WORKER_OPTIONS[self.gunicorn_worker],
            "-b",
            f"127.0.0.1:{port}",
            # Stop within 2 s even when connections are still open at the end of a scenario.
            "--graceful-timeout",
            "2",
            *_no_control_socket(),
            f"bench.servers.{self.module}:app",
        ]


def _uwsgi(python: str) -> Path:
    """The uwsgi program installed beside ``python``."""
    return Path(python).with_name("uwsgi")


@functools.cache
def _no_control_socket() -> tuple[str, ...]:
    """The option that turns off gunicorn's control socket, on gunicorn 27 and later.

    gunicorn 27 listens on a control socket at one path per user, so two gunicorns running at
    once (a benchmark next to a test run) would take it from each other.
    """
    try:
        major = int(metadata.version("gunicorn").split(".")[0])
    except (metadata.PackageNotFoundError, ValueError):
        return ()
    return ("--no-control-socket",) if major >= 27 else ()


def _flask_app_on_three_servers(library: str, slug: str, module: str) -> list[Contender]:
    return [
        Contender(f"{slug}-werkzeug", library, "Werkzeug", module, plain_http=True),
        Contender(
            f"{slug}-gthread", library, "gunicorn gthread", module, "gthread", plain_http=True
        ),
        Contender(
            f"{slug}-gevent",
            library,
            "gunicorn gevent",
            module,
            "gevent",
            plain_http=True,
        ),
    ]


CONTENDERS: tuple[Contender, ...] = (
    *_flask_app_on_three_servers(FLASK_DUPLEX, "flask-duplex", "flask_duplex_app"),
    *(
        Contender(
            f"flask-duplex-uwsgi-{mode}",
            FLASK_DUPLEX,
            f"uWSGI {mode}",
            "flask_duplex_app",
            uwsgi_mode=mode,
            plain_http=True,
        )
        for mode in _UWSGI_WORKER_OPTIONS
    ),
    *_flask_app_on_three_servers(FLASK_SOCK, "flask-sock", "flask_sock_app"),
    Contender("websockets-asyncio", "websockets", "asyncio", "websockets_asyncio"),
    Contender("websockets-threading", "websockets", "threading", "websockets_threading"),
    Contender("picows", "picows", "asyncio", "picows_echo", deflate=False),
)

# Every Flask-Duplex figure is also given as a ratio to this contender's.
REFERENCE = next(c for c in CONTENDERS if c.key == "websockets-asyncio")

# Those that also run the unpinned scenarios (bench.scenarios.UNPINNED) a second time with server
# and load generator free to share the cores, as deployed: Flask-Duplex on the servers users
# deploy it on, websockets' threading server (threads and the GIL, as Werkzeug and gthread) and
# asyncio server (one thread, as gevent), and picows.
UNPINNED_CONTENDERS: tuple[str, ...] = (
    "flask-duplex-werkzeug",
    "flask-duplex-gthread",
    "flask-duplex-gevent",
    "websockets-threading",
    "websockets-asyncio",
    "picows",
)


def flask_sock_peer(contender: Contender) -> Contender | None:
    """flask-sock on the same server as ``contender``, if there is one."""
    for other in CONTENDERS:
        if other.library == FLASK_SOCK and other.server == contender.server:
            return other
    return None

"""Run the test app on one WSGI server: ``python -m tests.support.serve SERVER PORT``.

Each server is started the way its users start it: gevent and eventlet
monkey-patch first; gunicorn runs from its command line. With
``DUPLEX_TEST_TLS_CERT`` and ``DUPLEX_TEST_TLS_KEY`` set (PEM files), the
server itself speaks TLS, with the options its users would pass. With
``DUPLEX_TEST_APP`` set (``module:attribute``), it serves that app instead of
``tests.support.apps:app``.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

SERVERS = (
    "werkzeug",
    "gunicorn-gthread",
    "gunicorn-gevent",
    "gunicorn-eventlet",
    "gunicorn-sync",
    "gevent",
    "eventlet",
    "uwsgi-threads",
    "uwsgi-gevent",
)
APP = os.environ.get("DUPLEX_TEST_APP", "tests.support.apps:app")


CERT = os.environ.get("DUPLEX_TEST_TLS_CERT")
KEY = os.environ.get("DUPLEX_TEST_TLS_KEY")


def load_app() -> Any:
    """The WSGI app named by ``APP``."""
    module, _, attribute = APP.partition(":")
    return getattr(importlib.import_module(module), attribute)


def main() -> None:
    server, port = sys.argv[1], int(sys.argv[2])
    if server == "werkzeug":
        app = load_app()

        app.run(
            host="127.0.0.1", port=port, threaded=True, ssl_context=(CERT, KEY) if CERT else None
        )
    elif server.startswith("gunicorn-"):
        run_gunicorn(server.removeprefix("gunicorn-"), port)
    elif server == "gevent":
        from gevent import monkey

        monkey.patch_all()
        from gevent.pywsgi import WSGIServer

        app = load_app()

        tls = {"certfile": CERT, "keyfile": KEY} if CERT else {}
        WSGIServer(("127.0.0.1", port), app, **tls).serve_forever()
    elif server == "eventlet":
        import eventlet

        eventlet.monkey_patch()
        import eventlet.wsgi

        app = load_app()

        listener = eventlet.listen(("127.0.0.1", port))
        if CERT:
            listener = eventlet.wrap_ssl(listener, certfile=CERT, keyfile=KEY, server_side=True)
        eventlet.wsgi.server(listener, app, max_size=4096)
    elif server.startswith("uwsgi-"):
        run_uwsgi(server.removeprefix("uwsgi-"), port)
    elif server == "wsgiref":
        from wsgiref.simple_server import make_server

        app = load_app()

        make_server("127.0.0.1", port, app).serve_forever()
    else:
        raise SystemExit(f"unknown server {server!r}")


def run_gunicorn(worker: str, port: int) -> None:
    args = [sys.executable, "-m", "gunicorn", "-k", worker, "-b", f"127.0.0.1:{port}", "-w", "1"]
    args += ["--access-logfile", "-", "--error-logfile", "-", "--graceful-timeout", "2"]
    args += ["--timeout", os.environ.get("DUPLEX_TEST_GUNICORN_TIMEOUT", "30")]
    if CERT:
        args += ["--certfile", CERT, "--keyfile", str(KEY)]
    if worker == "gthread":
        args += ["--threads", "256"]
    elif worker in ("gevent", "eventlet"):
        args += ["--worker-connections", "4096"]
    env = dict(os.environ)
    if worker == "eventlet":
        # gunicorn 26 removed the eventlet worker; use the last release with it.
        older = Path(sys.prefix) / "gunicorn-eventlet"
        env["PYTHONPATH"] = os.pathsep.join([str(older), env.get("PYTHONPATH", ""), "."])
    os.execve(sys.executable, [*args, APP], env)


def uwsgi_missing() -> str | None:
    """Why the uWSGI rows cannot run here, or None when uWSGI is installed."""
    if (Path(sys.prefix) / "bin" / "uwsgi").exists():
        return None
    log = Path(sys.prefix) / "uwsgi-build.log"
    if log.exists():
        return f"uWSGI did not build on this machine (see {log})"
    return "uWSGI is not installed (make .venv/.installed installs it)"


def uwsgi_args(mode: str, port: int) -> list[str]:
    """uWSGI's command line for ``mode`` (``threads``, ``gevent``), as its users would write it.

    ``--http`` starts uWSGI's HTTP router in front of the worker, which
    ``--http-websockets`` tells to pass upgrades through; ``--die-on-term``
    makes SIGTERM stop uWSGI rather than reload it; ``--lazy-apps`` loads the
    app in each worker, not once before the fork (so that each process has its
    own Redis connections and connection ids).
    """
    args = [str(Path(sys.prefix) / "bin" / "uwsgi"), "--master", "--die-on-term", "--lazy-apps"]
    args += ["--http", f"127.0.0.1:{port}", "--http-websockets"]
    args += ["--module", APP, "--pythonpath", ".", "--virtualenv", sys.prefix]
    args += ["--processes", os.environ.get("DUPLEX_TEST_UWSGI_PROCESSES", "1")]
    if mode == "threads":
        args += ["--enable-threads", "--threads", "64"]
    elif mode == "gevent":
        args += ["--gevent", "1000", "--gevent-early-monkey-patch"]
    else:
        raise SystemExit(f"unknown uWSGI mode {mode!r}")
    return args


def run_uwsgi(mode: str, port: int) -> None:
    args = uwsgi_args(mode, port)
    os.execve(args[0], args, dict(os.environ))


if __name__ == "__main__":
    main()

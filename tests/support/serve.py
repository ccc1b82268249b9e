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
import shutil
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
    "uwsgi-nginx",
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
    args = [sys.executable, "-m", "gunicorn", "-k", worker, "-b", f"127.0.0.1:{port}"]
    args += ["-w", os.environ.get("DUPLEX_TEST_GUNICORN_WORKERS", "1")]
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


def uwsgi_missing(nginx: bool = False) -> str | None:
    """Why the uWSGI rows (``nginx``: in front of it) cannot run here, or None if they can."""
    if nginx and shutil.which("nginx") is None:
        return "nginx is not installed (make nginx installs it)"
    if (Path(sys.prefix) / "bin" / "uwsgi").exists():
        return None
    log = Path(sys.prefix) / "uwsgi-build.log"
    if log.exists():
        return f"uWSGI did not build on this machine (see {log})"
    return "uWSGI is not installed (make .venv/.installed installs it)"


def uwsgi_args(mode: str, port: int) -> list[str]:
    """uWSGI's command line for ``mode`` (``threads``, ``gevent``), as its users would write it.

    ``--http`` starts uWSGI's HTTP router in front of the worker, which
    ``--http-websockets`` tells to pass upgrades through, and
    ``--http-buffer-size`` to relay up to 64 KiB at a time; ``--die-on-term``
    makes SIGTERM stop uWSGI rather than reload it, and the ``unix_signal``
    hook makes that stop graceful (the workers finish, and their connections
    get 1001, before the router goes); ``--lazy-apps`` loads the
    app in each worker, not once before the fork (so that each process has its
    own Redis connections and connection ids). ``port`` is None behind nginx:
    then uWSGI listens on ``--socket`` (the uwsgi protocol), given by the caller.
    """
    args = [str(Path(sys.prefix) / "bin" / "uwsgi"), "--master", "--die-on-term", "--lazy-apps"]
    args += ["--hook-master-start", "unix_signal:15 gracefully_kill_them_all"]
    args += ["--http", f"127.0.0.1:{port}", "--http-websockets", "--http-buffer-size", "65536"]
    args += ["--module", APP, "--pythonpath", ".", "--virtualenv", sys.prefix]
    args += ["--processes", os.environ.get("DUPLEX_TEST_UWSGI_PROCESSES", "1")]
    if mode == "threads":
        args += ["--enable-threads", "--threads", os.environ.get("DUPLEX_TEST_UWSGI_THREADS", "64")]
    elif mode == "gevent":
        args += ["--gevent", "1000", "--gevent-early-monkey-patch"]
    else:
        raise SystemExit(f"unknown uWSGI mode {mode!r}")
    return args


NGINX_CONF = """\
daemon off;
{user}
worker_processes 1;
pid {tmp}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            include /etc/nginx/uwsgi_params;
            uwsgi_pass 127.0.0.1:{upstream};
            uwsgi_read_timeout 3600s;
            uwsgi_send_timeout 3600s;
        }}
    }}
}}
"""


def run_uwsgi(mode: str, port: int) -> None:
    if mode != "nginx":
        args = uwsgi_args(mode, port)
        os.execve(args[0], args, dict(os.environ))
    # uWSGI on a uwsgi socket, as a child in this process group (the tests stop
    # the group); once it listens, nginx replaces this process on ``port``, so
    # that nothing answers on ``port`` (with a 502) before uWSGI can.
    import socket
    import subprocess
    import time

    tmp = Path(os.environ["DUPLEX_TEST_TMP"])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        upstream = probe.getsockname()[1]
    args = uwsgi_args("threads", port)
    at = args.index("--http")
    args[at : at + 5] = ["--socket", f"127.0.0.1:{upstream}"]
    uwsgi = subprocess.Popen(args)
    while uwsgi.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", upstream), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.05)
    conf = tmp / "nginx.conf"
    user = "user root;" if os.geteuid() == 0 else ""
    conf.write_text(NGINX_CONF.format(user=user, tmp=tmp, port=port, upstream=upstream))
    nginx = shutil.which("nginx") or "nginx"
    os.execv(nginx, [nginx, "-c", str(conf), "-p", str(tmp)])


if __name__ == "__main__":
    main()

"""Graceful shutdown: stopping the server sends every connection 1001, then the process exits.

Each server is stopped the way its users stop it: Ctrl-C (SIGINT) on
``app.run()``; SIGTERM to gunicorn's master (what a process manager sends),
or SIGINT to its whole process group (Ctrl-C in a terminal); SIGTERM or
SIGINT to a standalone gevent or eventlet server; SIGTERM to uWSGI's master
(a graceful stop, with the ``hook-master-start`` line of docs/deployment.md),
and SIGINT too behind nginx.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed as ClientClosed
from websockets.sync.client import connect

from tests.support.servers import running

CASES = [
    ("werkzeug", signal.SIGINT, "process"),
    ("werkzeug", signal.SIGTERM, "process"),
    ("gunicorn-gthread", signal.SIGTERM, "process"),
    ("gunicorn-gthread", signal.SIGINT, "group"),
    ("gunicorn-gevent", signal.SIGTERM, "process"),
    ("gunicorn-gevent", signal.SIGINT, "group"),
    pytest.param(
        "gunicorn-eventlet",
        signal.SIGTERM,
        "process",
        # gunicorn 25.3 (the last with an eventlet worker) crashes in its own master on
        # Python 3.13 when stopped: Arbiter.halt joins its control thread, and eventlet's
        # patched join raises Timeout there; the worker is never told to stop.
        marks=pytest.mark.skipif(
            sys.version_info >= (3, 13),
            reason="gunicorn 25.3's master crashes on SIGTERM under eventlet on Python 3.13",
        ),
    ),
    ("gevent", signal.SIGTERM, "process"),
    ("gevent", signal.SIGINT, "process"),
    ("eventlet", signal.SIGTERM, "process"),
    ("eventlet", signal.SIGINT, "process"),
    ("uwsgi-threads", signal.SIGTERM, "process"),
    ("uwsgi-gevent", signal.SIGTERM, "process"),
    ("uwsgi-nginx", signal.SIGTERM, "uwsgi"),
    ("uwsgi-nginx", signal.SIGINT, "uwsgi"),
    pytest.param(
        "uwsgi-threads",
        signal.SIGINT,
        "process",
        marks=pytest.mark.skip(
            reason="uWSGI's master kills its HTTP router at once on SIGINT "
            "(test_sigint_drops_the_connections_behind_uwsgis_router)"
        ),
    ),
]


@pytest.mark.parametrize(
    ("name", "signum", "target"),
    CASES,
    ids=[f"{v[0]}-{v[1].name}" for v in (getattr(c, "values", c) for c in CASES)],
)
def test_stopping_the_server_closes_connections_with_1001(
    name: str, signum: signal.Signals, target: str
) -> None:
    """Open connections get 1001 at once, their handlers and hooks finish, the process exits."""
    with running(name) as server, ExitStack() as stack:
        clients = [
            stack.enter_context(connect(f"{server.url}/lifecycle/echo", close_timeout=2))
            for _ in range(3)
        ]
        for ws in clients:
            ws.send("here")
            assert ws.recv(timeout=5) == "here"
        started = time.monotonic()
        if target == "group":
            os.killpg(server.process.pid, signum)
        elif target == "uwsgi":  # Behind nginx: uWSGI's master, not the server (nginx).
            uwsgi_master = child_named(server.process.pid, "uwsgi")
            os.kill(uwsgi_master, signum)
        else:
            os.kill(server.process.pid, signum)
        for ws in clients:
            with pytest.raises(ClientClosed) as closed:
                ws.recv(timeout=5)
            assert closed.value.rcvd is not None, f"no close frame: {closed.value}"
            assert closed.value.rcvd.code == 1001
        closed_after = time.monotonic() - started
        if target == "uwsgi":
            wait_until_gone(uwsgi_master, timeout=15)
        else:
            server.process.wait(timeout=15)
        exited_after = time.monotonic() - started
        log = server.log()
    print(f"{name} {signum.name}: 1001 after {closed_after:.2f}s, exit after {exited_after:.2f}s")
    assert log.count("echo: loop ended with 1001") == 3, log
    assert log.count("disconnect /lifecycle/echo 1001") == 3, log
    # gunicorn 25.3 (the last with an eventlet worker) forwards SIGTERM to its
    # workers about 2 s after it gets it (strace shows the worker's signal
    # arrive then); its workers then close at once.
    assert closed_after < (4.0 if name == "gunicorn-eventlet" else 2.0)
    assert exited_after < 8.0


def test_sigint_drops_the_connections_behind_uwsgis_router() -> None:
    """Why uWSGI's router rows stop with SIGTERM only: on SIGINT the router dies with no 1001.

    uWSGI's master answers SIGINT (and SIGTERM with ``die-on-term`` alone) by
    sending its workers SIGINT and killing its HTTP router (SIGKILL) in the
    same breath; the router holds the connections to the clients, so the
    1001 that each worker then sends has no way out. Should a uWSGI release
    change that, this test fails and the skipped row above can run.
    """
    with running("uwsgi-threads") as server, ExitStack() as stack:
        clients = [
            stack.enter_context(connect(f"{server.url}/lifecycle/echo", close_timeout=2))
            for _ in range(3)
        ]
        for ws in clients:
            ws.send("here")
            assert ws.recv(timeout=5) == "here"
        os.kill(server.process.pid, signal.SIGINT)
        for ws in clients:
            with pytest.raises(ClientClosed) as closed:
                ws.recv(timeout=5)
            assert closed.value.rcvd is None, f"a close frame came through: {closed.value}"
        server.process.wait(timeout=15)
        log = server.log()
    assert 'gateway "uWSGI http 1" has been buried' in log, log


def child_named(parent: int, name: str) -> int:
    """The pid of ``parent``'s child process called ``name`` (Linux's /proc)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)
            comm = fields[0].split("(", 1)[1]
            ppid = int(fields[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # Gone meanwhile.
        if ppid == parent and comm == name:
            return int(stat.parent.name)
    raise AssertionError(f"no child {name!r} of {parent}")


def wait_until_gone(pid: int, timeout: float) -> None:
    """Wait until process ``pid`` (not a child of ours) has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return
        if state == "Z":  # Exited; its parent has yet to reap it.
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} still runs after {timeout}s")

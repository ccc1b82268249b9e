"""What an open connection costs a server before any WebSocket code runs.

``python -m bench.floor`` (``make bench`` runs it): on fresh servers, holds 1,000 plain HTTP
requests open in a Flask view that only waits (``/hold``), then 1,000 idle Flask-Duplex WebSocket
connections (``/echo``), and reports threads and resident memory per connection for each; on
Werkzeug (a thread per request) and on gunicorn's gevent worker (a greenlet per request). The
first figure is the floor of any WebSocket library that holds a Flask request: the request's
thread or greenlet, its stacks, the server's buffered reader, the environ and Flask's request
context. The difference between the two is what Flask-Duplex adds. Prints a table; writes
bench/results/floor.json, and with ``--write-docs`` puts the table in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from bench import procfs
from bench.contenders import CONTENDERS, Contender
from bench.docs import FLOOR_HEADING, write_section
from bench.process import SERVER_CORE, can_pin, raise_open_files_limit, started_server

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DOCS_PAGE = ROOT / "docs" / "benchmarks.md"
CONNECTIONS = 1000
BATCH = 100
SETTLE_SECONDS = 1.0
OPEN_TIMEOUT = 30.0

# The Flask-Duplex app on each server measured, started as the benchmark starts it.
SERVERS: dict[str, Contender] = {
    contender.server: contender
    for contender in CONTENDERS
    if contender.key in ("flask-duplex-werkzeug", "flask-duplex-gevent")
}
LABELS = {
    "plain-held": "Flask view held open, plain HTTP (the floor)",
    "lookalike-held": "the same, with four headers the size of a handshake's",
    "websocket-idle": "Flask-Duplex WebSocket, idle in `receive()`",
}


def _request(path: str, port: int, headers: str) -> bytes:
    """A GET; ``headers`` is ``plain``, ``upgrade`` (a real handshake) or ``lookalike``.

    A lookalike carries four headers of the same sizes as the handshake's under other
    names (a router answers 400 to a real upgrade on a plain HTTP rule): it separates
    what the handshake's headers cost the server from what the WebSocket code costs.
    """
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    if headers != "plain":
        key = base64.b64encode(os.urandom(16)).decode()
        names = ("Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version")
        if headers == "lookalike":
            names = ("X-Upgrad", "X-Connecti", "X-Sec-WebSocket-", "X-Sec-WebSocket-Vers")
        values = ("websocket", "Upgrade", key, "13")
        lines += [f"{name}: {value}" for name, value in zip(names, values, strict=True)]
    return "\r\n".join([*lines, "", ""]).encode()


def _held(port: int) -> int:
    """How many requests the server's ``/hold`` view holds right now."""
    with socket.create_connection(("127.0.0.1", port), timeout=5.0) as sock:
        sock.sendall(b"GET /held HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        response = b""
        while chunk := sock.recv(4096):
            response += chunk
    return int(response.rsplit(b"\r\n\r\n", 1)[1] or b"0")


def _measure(server: str, path: str, headers: str, connections: int) -> dict[str, float]:
    """Open the connections on a fresh server; their cost in threads and KiB each."""
    upgrade = headers == "upgrade"
    slug = server.lower().replace(" ", "-")
    log = RESULTS / "logs" / f"floor-{slug}-{headers}.log"
    core = SERVER_CORE if can_pin() else None
    with (
        started_server(
            lambda port: SERVERS[server].command(sys.executable, port),
            cwd=ROOT,
            log=log,
            core=core,
        ) as running,
        ExitStack() as stack,
    ):
        pids = running.serving_pids()
        time.sleep(SETTLE_SECONDS)
        threads_before = procfs.thread_count(pids)
        rss_before = procfs.rss_kib(pids)
        deadline = time.monotonic() + OPEN_TIMEOUT
        for first in range(0, connections, BATCH):
            batch = []
            for _ in range(min(BATCH, connections - first)):
                sock = stack.enter_context(socket.create_connection(("127.0.0.1", running.port)))
                sock.sendall(_request(path, running.port, headers))
                batch.append(sock)
            if upgrade:
                for sock in batch:
                    sock.settimeout(max(0.1, deadline - time.monotonic()))
                    if not sock.recv(4096).startswith(b"HTTP/1.1 101"):
                        raise RuntimeError(f"{server}, {path}: no 101")
        # A held plain request answers nothing: wait until the view holds every one.
        while not upgrade and _held(running.port) < connections:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{server}, {path}: the server did not take every connection")
            time.sleep(0.05)
        time.sleep(SETTLE_SECONDS)
        threads_with = procfs.thread_count(pids)
        rss_with = procfs.rss_kib(pids)
    return {
        "threads_per_connection": (threads_with - threads_before) / connections,
        "rss_kib_per_connection": (rss_with - rss_before) / connections,
    }


def run(connections: int = CONNECTIONS) -> dict[str, dict[str, dict[str, float]]]:
    """server -> ``plain-held``, ``lookalike-held``, ``websocket-idle`` -> cost per connection."""
    return {
        server: {
            "plain-held": _measure(server, "/hold", "plain", connections),
            "lookalike-held": _measure(server, "/hold", "lookalike", connections),
            "websocket-idle": _measure(server, "/echo", "upgrade", connections),
        }
        for server in SERVERS
    }


def table(rows: dict[str, dict[str, dict[str, float]]], connections: int = CONNECTIONS) -> str:
    lines = [
        f"{connections:,} connections on a fresh server, each held by the Flask app "
        "(lower is better). For gunicorn, its worker process is measured.",
        "",
        "| server | connection | threads / connection | KiB RSS / connection |",
        "|---|---|---:|---:|",
    ]
    for server, by_kind in rows.items():
        for kind, row in by_kind.items():
            lines.append(
                f"| {server} | {LABELS[kind]} | {row['threads_per_connection']:.2f} "
                f"| {row['rss_kib_per_connection']:.1f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    parser.add_argument("--write-docs", action="store_true", help="put the table in docs/")
    parser.add_argument(
        "--connections", type=int, default=CONNECTIONS, help="held at once (default: %(default)s)"
    )
    arguments = parser.parse_args(argv)
    raise_open_files_limit()
    rows = run(arguments.connections)
    text = table(rows, arguments.connections)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "floor.json").write_text(json.dumps(rows, indent=2) + "\n")
    if arguments.write_docs:
        write_section(DOCS_PAGE, FLOOR_HEADING, text)


if __name__ == "__main__":
    main()

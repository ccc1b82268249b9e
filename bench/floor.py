"""What an open connection costs Werkzeug before any WebSocket code runs.

``python -m bench.floor`` (``make bench`` runs it): on two fresh Werkzeug servers, holds 1,000
plain HTTP requests open in a Flask view that only waits (``/hold``), then 1,000 idle Flask-Duplex
WebSocket connections (``/echo``), and reports threads and resident memory per connection for
each. The first figure is the floor of any thread-per-request server on Werkzeug: the request
thread, its stacks, Werkzeug's buffered reader and request objects, Flask's request context. The
difference between the two is what Flask-Duplex adds. Prints a table; writes
bench/results/floor.json.
"""

from __future__ import annotations

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
from bench.process import SERVER_CORE, can_pin, raise_open_files_limit, started_server

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CONNECTIONS = 1000
BATCH = 100
SETTLE_SECONDS = 1.0
OPEN_TIMEOUT = 30.0


def _werkzeug(port: int) -> list[str]:
    return [sys.executable, "-m", "bench.servers.flask_duplex_app", str(port)]


def _request(path: str, port: int, upgrade: bool) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    if upgrade:
        key = base64.b64encode(os.urandom(16)).decode()
        lines += [
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
    return "\r\n".join([*lines, "", ""]).encode()


def _measure(path: str, upgrade: bool) -> dict[str, float]:
    """Open the connections on a fresh server; their cost in threads and KiB each."""
    log = RESULTS / "logs" / f"floor{path.replace('/', '-')}.log"
    core = SERVER_CORE if can_pin() else None
    with started_server(_werkzeug, cwd=ROOT, log=log, core=core) as server, ExitStack() as stack:
        pids = server.serving_pids()
        time.sleep(SETTLE_SECONDS)
        threads_before = procfs.thread_count(pids)
        rss_before = procfs.rss_kib(pids)
        deadline = time.monotonic() + OPEN_TIMEOUT
        for first in range(0, CONNECTIONS, BATCH):
            batch = []
            for _ in range(min(BATCH, CONNECTIONS - first)):
                sock = stack.enter_context(socket.create_connection(("127.0.0.1", server.port)))
                sock.sendall(_request(path, server.port, upgrade))
                batch.append(sock)
            if upgrade:
                for sock in batch:
                    sock.settimeout(max(0.1, deadline - time.monotonic()))
                    if not sock.recv(4096).startswith(b"HTTP/1.1 101"):
                        raise RuntimeError(f"{path}: no 101")
        # A held plain request answers nothing: wait until each has its thread.
        while procfs.thread_count(pids) < threads_before + CONNECTIONS:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{path}: the server did not take every connection")
            time.sleep(0.05)
        time.sleep(SETTLE_SECONDS)
        threads_with = procfs.thread_count(pids)
        rss_with = procfs.rss_kib(pids)
    return {
        "threads_per_connection": (threads_with - threads_before) / CONNECTIONS,
        "rss_kib_per_connection": (rss_with - rss_before) / CONNECTIONS,
    }


def run() -> dict[str, dict[str, float]]:
    return {
        "plain-held": _measure("/hold", upgrade=False),
        "websocket-idle": _measure("/echo", upgrade=True),
    }


def table(rows: dict[str, dict[str, float]]) -> str:
    labels = {
        "plain-held": "Flask view held open, plain HTTP (the floor)",
        "websocket-idle": "Flask-Duplex WebSocket, idle in `receive()`",
    }
    lines = [
        f"{CONNECTIONS:,} connections on Werkzeug, each in its own request thread:",
        "",
        "| | threads / connection | KiB RSS / connection |",
        "|---|---:|---:|",
    ]
    for key, row in rows.items():
        lines.append(
            f"| {labels[key]} | {row['threads_per_connection']:.2f} "
            f"| {row['rss_kib_per_connection']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    del argv
    raise_open_files_limit()
    rows = run()
    print(table(rows))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "floor.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()

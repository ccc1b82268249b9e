"""The processes of the simulated cluster (``python -m bench.cluster``), started and stopped.

The nodes (gunicorn, two gevent workers each, serving ``bench.servers.cluster_app``), HAProxy in
front of them with a config written for the run, and the load processes of
:mod:`bench.cluster_load`, to which the runner speaks a line of text and from which it reads a line
of JSON. Every one of them is stopped on the way out, whatever the reason.
"""

from __future__ import annotations

__all__ = ["LoadProcess", "haproxy", "haproxy_config", "old_src", "start_nodes"]

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from io import BytesIO
from pathlib import Path
from typing import Any

from bench.fanout import gunicorn_gevent
from bench.process import RunningServer, free_port, started_server

ROOT = Path(__file__).resolve().parents[1]
NODES = 3
WORKERS = 2  # gevent workers per node
ANSWER_TIMEOUT = 30.0  # seconds a load process has to answer a command


class LoadProcess:
    """A client or the publisher: commands on its stdin, one JSON line back for each."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            start_new_session=True,
        )

    def read(self, timeout: float = ANSWER_TIMEOUT) -> dict[str, Any]:
        """The next line of JSON it writes, within ``timeout`` seconds."""
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            raise RuntimeError(f"{self.name} did not answer within {timeout:.0f} s")
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name} exited (code {self.process.poll()}); see its log")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"{self.name}: {answer['error']}")
        return answer

    def tell(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command.encode() + b"\n")
        self.process.stdin.flush()

    def ask(self, command: str, timeout: float = ANSWER_TIMEOUT) -> dict[str, Any]:
        self.tell(command)
        return self.read(timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with suppress(OSError):
                    stream.close()
        self._log.close()


def haproxy_config(port: int, nodes: Sequence[int], maxconn: int) -> str:
    servers = "\n".join(f"    server node{i + 1} 127.0.0.1:{p}" for i, p in enumerate(nodes))
    return f"""global
    maxconn {maxconn}

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    # A WebSocket, once upgraded, is a tunnel: idle for as long as the app holds it.
    timeout tunnel 1h
    timeout client-fin 5s
    # A node that refuses (killed, not yet marked down): try again, on another one.
    retries 3
    option redispatch 1

frontend cluster
    bind 127.0.0.1:{port}
    maxconn {maxconn}
    default_backend nodes

backend nodes
    balance roundrobin
    default-server check inter 500ms fall 2 rise 2 maxconn {maxconn}
{servers}
"""


@contextmanager
def haproxy(
    nodes: Sequence[int], connections: int, log: Path
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """HAProxy on a free loopback port in front of ``nodes``: (port, process); stopped on exit."""
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not os.access(binary, os.X_OK):
        raise RuntimeError("haproxy is not installed (make bench installs it)")
    port = free_port()
    with tempfile.TemporaryDirectory() as workdir:
        config = Path(workdir) / "haproxy.cfg"
        config.write_text(haproxy_config(port, nodes, connections + 500))
        with log.open("ab") as out:
            process = subprocess.Popen(
                [binary, "-db", "-f", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + 10
            while not _accepts(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"haproxy did not start; see {log}")
                time.sleep(0.05)
            yield port, process
        finally:
            if process.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


def old_src(stack: ExitStack, commit: str) -> Path:
    """The ``src`` of ``commit``, unpacked in a temporary directory that ``stack`` removes."""
    archive = subprocess.run(
        ["git", "archive", commit, "src"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(workdir, filter="data")
    return workdir / "src"


def start_nodes(stack: ExitStack, name: str, connections: int, logs: Path) -> list[RunningServer]:
    """Start the nodes side by side (each takes seconds to import); ``stack`` stops them."""

    def command(port: int) -> list[str]:
        return gunicorn_gevent(
            port,
            workers=WORKERS,
            app="bench.servers.cluster_app:app",
            worker_connections=connections,
        )

    starting = [
        started_server(
            command,
            cwd=ROOT,
            log=logs / f"cluster-{name}-node{index + 1}.log",
            core=None,
            ready_timeout=120,
        )
        for index in range(NODES)
    ]
    with ThreadPoolExecutor(NODES) as pool:
        futures = [pool.submit(node.__enter__) for node in starting]
    nodes, started, failure = [], [], None
    for node, future in zip(starting, futures, strict=True):
        try:
            nodes.append(future.result())
            started.append(node)
        except Exception as exc:  # The others, started, are stopped all the same.
            failure = exc

    def stop_all() -> None:  # side by side too: each waits for its workers to go
        with ThreadPoolExecutor(NODES) as pool:
            for done in [pool.submit(node.__exit__, None, None, None) for node in started]:
                done.result()

    stack.callback(stop_all)
    if failure is not None:
        raise failure
    return nodes

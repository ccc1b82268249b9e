"""Start the test app on a real server, as a subprocess on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A server process serving the test app; ``log()`` reads what it printed."""

    def __init__(self, name: str, port: int, process: subprocess.Popen[bytes], log: Path) -> None:
        self.name = name
        self.port = port
        self.process = process
        self._log = log
        self.url = f"ws://127.0.0.1:{port}"
        self.http = f"http://127.0.0.1:{port}"

    def log(self) -> str:
        return self._log.read_text(errors="replace")

    def kill(self) -> None:
        """End the server and its children at once, as a crash would (SIGKILL)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)

    def wait_for_log(self, text: str, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.log()
            if text in log:
                return log
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not in the {self.name} log:\n{self.log()}")


@contextmanager
def running(
    name: str, env: dict[str, str] | None = None, port: int | None = None
) -> Iterator[Server]:
    """Start the test app on server ``name``; stop it (and its children) on exit.

    ``port`` is a free one unless given: a restart passes the port it had.
    """
    if name.startswith("uwsgi-"):
        from tests.support.serve import uwsgi_missing

        missing = uwsgi_missing(nginx=name == "uwsgi-nginx")
        if missing is not None:
            pytest.skip(missing)
    port = port or free_port()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "server.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-u", "-m", "tests.support.serve", name, str(port)],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={
                    **os.environ,
                    "PYTHONUNBUFFERED": "1",
                    "DUPLEX_TEST_TMP": tmp,
                    **(env or {}),
                },
                start_new_session=True,
            )
        server = Server(name, port, process, log)
        try:
            _wait_until_listening(server)
            yield server
        finally:
            _stop(process)


def _wait_until_listening(server: Server, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited early:\n{server.log()}")
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{server.name} did not listen within {timeout}s:\n{server.log()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the server's whole process group, and wait until every process of it is gone.

    The server may not be the group's last process (uWSGI behind nginx: nginx
    is the server, uWSGI its sibling), so the group is waited for, not only it.
    """
    if process.poll() is None:
        try:
            os.killpg(process.pid, 15)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    try:
        os.killpg(process.pid, 9)
    except ProcessLookupError:
        pass

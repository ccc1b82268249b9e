"""Starting and stopping the processes of a run: echo servers and the load generator.

Servers run in their own session, so a Ctrl-C in the terminal reaches only the runner, which
then stops them (gunicorn's workers included) on its way out. Where the machine has two cores or
more, the server is pinned to one core and the load generator to another, so they do not take
turns on the same core and the figures say what the server alone can do.
"""

from __future__ import annotations

__all__ = [
    "CLIENT_CORE",
    "SERVER_CORE",
    "RunningServer",
    "can_pin",
    "free_port",
    "open_files_limit",
    "pinned_to",
    "raise_open_files_limit",
    "started_server",
]

import base64
import os
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from bench import procfs

SERVER_CORE = 0
CLIENT_CORE = 1
_UNLIMITED_FILES = 65536

# A masked close frame with code 1000 (the mask key is zero, so the payload reads as is).
_CLOSE_FRAME = b"\x88\x82\x00\x00\x00\x00\x03\xe8"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def can_pin() -> bool:
    """Whether the server and the load generator can each have a core of their own."""
    if not hasattr(os, "sched_setaffinity"):
        return False
    return {SERVER_CORE, CLIENT_CORE} <= os.sched_getaffinity(0)


def pinned_to(core: int | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` that pins the child, and every process and thread it starts, to ``core``.

    Returns None (no pinning) when ``core`` is None.
    """
    if core is None:
        return None

    def pin() -> None:
        os.sched_setaffinity(0, {core})

    return pin


def open_files_limit() -> int:
    """The most files a process may open here: the hard limit, or 65,536 where there is none."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return _UNLIMITED_FILES if hard == resource.RLIM_INFINITY else int(hard)


def raise_open_files_limit(wanted: int | None = None) -> int:
    """Raise the soft limit on open files to ``wanted``, or to the hard limit; return the limit.

    The 10,000 idle connections need as many descriptors in the load generator and in the
    server. Children inherit the limit; :func:`started_server` also sets it in the server
    explicitly, so a server does not depend on who started it.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = open_files_limit() if wanted is None else min(wanted, open_files_limit())
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return target if soft == resource.RLIM_INFINITY else int(soft)


def _server_setup(core: int | None) -> Callable[[], None]:
    """The server's ``preexec_fn``: the open-files limit raised, pinned to ``core`` if given."""
    pin = pinned_to(core)

    def setup() -> None:
        raise_open_files_limit()
        if pin is not None:
            pin()

    return setup


class RunningServer:
    """An echo server process listening on ``port``, whose output goes to ``log``."""

    def __init__(self, port: int, process: subprocess.Popen[bytes], log: Path) -> None:
        self.port = port
        self.process = process
        self.log = log
        self.url = f"ws://127.0.0.1:{port}/echo"

    def alive(self) -> bool:
        return self.process.poll() is None

    def serving_pids(self) -> list[int]:
        """The processes that hold the connections (gunicorn's worker, else the server)."""
        return procfs.serving_pids(self.process.pid)

    def tree_pids(self) -> list[int]:
        """The server and every process it started: what its CPU time is summed over."""
        return procfs.tree_pids(self.process.pid)

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@contextmanager
def started_server(
    command: Callable[[int], Sequence[str]],
    *,
    cwd: Path,
    log: Path,
    core: int | None,
    ready_timeout: float = 30.0,
) -> Iterator[RunningServer]:
    """Start ``command(port)`` on a free port; yield once it completes a WebSocket handshake.

    The server is stopped on exit, whatever the reason, together with any process it started.

    Raises:
        RuntimeError: The server exited, or did not answer a handshake within ``ready_timeout``
            seconds; the message ends with the last lines of its log.
    """
    port = free_port()
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(
            list(command(port)),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
            preexec_fn=_server_setup(core),
        )
    server = RunningServer(port, process, log)
    try:
        _wait_until_ready(server, ready_timeout)
        yield server
    finally:
        _stop(process)


def _wait_until_ready(server: RunningServer, timeout: float) -> None:
    # Accepting TCP is not enough: gunicorn's master listens before its worker is ready.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(
                f"exited with code {server.process.returncode}:\n{server.log_tail()}"
            )
        if _handshake_succeeds(server.port):
            return
        time.sleep(0.1)
    raise RuntimeError(f"no handshake within {timeout:.0f} s:\n{server.log_tail()}")


def _handshake_succeeds(port: int, timeout: float = 2.0) -> bool:
    """Open a WebSocket on ``/echo`` with a bare socket, then close it politely."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /echo HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(request.encode())
            if not sock.recv(4096).startswith(b"HTTP/1.1 101"):
                return False
            sock.sendall(_CLOSE_FRAME)
            with suppress(OSError):
                while sock.recv(4096):
                    pass
            return True
    except OSError:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group; SIGKILL it if it is still there after 10 s."""
    if process.poll() is not None:
        return
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    # A gunicorn worker may outlive its master by a moment; make sure none is left.
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)

"""``python -m bench.callgrind``: instructions the server executes per operation, by callgrind.

The Flask-Duplex echo app of the benchmark (``bench.servers.flask_duplex_app``, started as its
contender is) runs under valgrind's callgrind; a client in this process drives it over
127.0.0.1. An instruction count moves far less with the machine's load than CPU time does, so a
change's cost or saving can be read off two runs, even on a busy machine.

Each measurement starts a fresh server with instrumentation off (start-up runs at valgrind's
uninstrumented speed), then, in the process that serves the connections (gunicorn's worker, not
its master), turns instrumentation on, runs the warm-up, zeroes the counters, runs the counted
operations and dumps the counters (``callgrind_control -i on``, ``-z``, ``-d``). Before zeroing
and before dumping it waits until the server has used no CPU for a moment, so the window holds
whole operations. Every thread of that process is counted, in user space only: the kernel's
work for system calls is not.

The scenarios:

- ``cycle``: connect, handshake (101), one 16 B echo, polite close (the client's close frame,
  the server's, the server's TCP close); 300 counted after 30 of warm-up.
- ``cycle-bare``: the same without the echo: connect, handshake, polite close; 300 after 30.
  What a measurement of the server from outside counts as a cycle (``python -m bench
  --scenario cycle-bare-x10``).
- ``echo-32`` and ``echo-64k``: one connection, opened before the warm-up and closed after the
  dump; 2,000 echoes of 32 B, or 200 of 64 KiB, after 30 of warm-up.
- ``get``: connect, ``GET /plain`` with ``Connection: close``, the response read to the server's
  TCP close: the same app on the same server, what a cycle is compared with.

What moves the count is code that runs on a clock: the reactor's 50 ms rearm tick and its timer
check every second, gunicorn's heartbeat, gevent's hub, the GIL's 5 ms switch interval. Their work
comes per second, not per operation, and under callgrind an operation takes 20 to 100 times as
long as natively, longer still on a busy machine. Run twice, the threaded servers' cycles and
GETs agree within about 0.5%; the echoes, and gevent's figures, within 2.5% when the machine's
load changes between the runs. A pause between operations measures something else, each
operation waking the reactor from its long wait: 100 ms between cycles adds 4% on Werkzeug.

The server runs with ``PYTHONHASHSEED=0`` and ``PYTHONMALLOC=pymalloc``, and imports
``flask_duplex`` from this checkout's ``src`` (the path is printed), so a copy of this file in
another checkout measures that checkout's code. Every wait has a deadline, and the server is
stopped, with its process group, whatever happens. Each run's callgrind files and server log stay
in ``bench/results/callgrind/SERVER-SCENARIO-RUN/`` (until that run is measured again), for
``callgrind_annotate``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from types import FrameType

from bench import procfs
from bench.contenders import CONTENDERS, Contender
from bench.process import RunningServer, started_server
from bench.servers import ECHO_PATH, PLAIN_BODY, PLAIN_PATH

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "callgrind"

# The servers, as the benchmark's contenders of the same app.
SERVERS: dict[str, Contender] = {
    "werkzeug": next(c for c in CONTENDERS if c.key == "flask-duplex-werkzeug"),
    "gunicorn-gthread": next(c for c in CONTENDERS if c.key == "flask-duplex-gthread"),
    "gunicorn-gevent": next(c for c in CONTENDERS if c.key == "flask-duplex-gevent"),
}

WARMUP = 30
# Deadlines. The server runs 20 to 100 times slower under callgrind, more on a busy machine.
READY_TIMEOUT = 300.0
OPERATION_TIMEOUT = 120.0
CONTROL_TIMEOUT = 120.0
QUIET_TIMEOUT = 120.0
# The server counts as quiet once its CPU time has not moved for this long.
QUIET_FOR = 0.6

# Fixed bytes on the wire, so that every run sends the same: RFC 6455's sample key and mask.
_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
_MASK = bytes.fromhex("37fa213d")
_BINARY, _CLOSE, _PING, _PONG, _CONTINUATION = 0x2, 0x8, 0x9, 0xA, 0x0
_CLOSE_1000 = (1000).to_bytes(2, "big")


class Failure(Exception):
    """A measurement cannot give a figure; the message says why, in one line."""


# The client: bare sockets and masked frames built once, so it costs little and sends the same
# bytes in every run.


def _masked_frame(opcode: int, payload: bytes) -> bytes:
    """One final client frame: masked with :data:`_MASK`, as RFC 6455 requires of a client."""
    size = len(payload)
    if size < 126:
        head = bytes([0x80 | opcode, 0x80 | size])
    elif size < 2**16:
        head = bytes([0x80 | opcode, 0x80 | 126]) + size.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + size.to_bytes(8, "big")
    mask = (_MASK * (size // 4 + 1))[:size]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")).to_bytes(size, "big")
    return head + _MASK + masked


_CLOSE_FRAME = _masked_frame(_CLOSE, _CLOSE_1000)


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=OPERATION_TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class _Client:
    """A WebSocket client on a bare socket: it answers pings, and counts them."""

    def __init__(self, sock: socket.socket, port: int) -> None:
        self.sock = sock
        self._buffer = bytearray()
        self.pings = 0
        sock.sendall(
            f"GET {ECHO_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {_KEY}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            self._receive_some()
        head = bytes(self._buffer[:end])
        del self._buffer[: end + 4]
        if not head.startswith(b"HTTP/1.1 101"):
            first_line = head.split(b"\r\n", 1)[0].decode(errors="replace")
            raise Failure(f"the handshake was answered {first_line!r}")

    def _receive_some(self) -> None:
        chunk = self.sock.recv(2**16)
        if not chunk:
            raise Failure("the server closed the connection")
        self._buffer += chunk

    def _frame(self) -> tuple[bool, int, bytes]:
        """The next frame from the server: whether it is final, its opcode, its payload."""
        while len(self._buffer) < 2:
            self._receive_some()
        first, second = self._buffer[0], self._buffer[1]
        if second & 0x80:
            raise Failure("the server sent a masked frame")
        size, start = second & 0x7F, 2
        if size >= 126:
            start = 4 if size == 126 else 10
            while len(self._buffer) < start:
                self._receive_some()
            size = int.from_bytes(self._buffer[2:start], "big")
        while len(self._buffer) < start + size:
            self._receive_some()
        payload = bytes(self._buffer[start : start + size])
        del self._buffer[: start + size]
        return bool(first & 0x80), first & 0x0F, payload

    def message(self) -> tuple[int, bytes]:
        """The next message, or close frame, from the server; pings are answered on the way."""
        parts: list[bytes] = []
        opcode = None
        while True:
            final, frame_opcode, payload = self._frame()
            if frame_opcode == _PING:
                self.pings += 1
                self.sock.sendall(_masked_frame(_PONG, payload))
                continue
            if frame_opcode == _PONG:
                continue
            if frame_opcode == _CLOSE:
                return _CLOSE, payload
            if opcode is None:
                opcode = frame_opcode
            elif frame_opcode != _CONTINUATION:
                raise Failure("a new message began inside a fragmented one")
            parts.append(payload)
            if final:
                return opcode, b"".join(parts)

    def echo(self, frame: bytes, payload: bytes) -> None:
        """Send ``frame`` (``payload``, framed) and check that ``payload`` comes back."""
        self.sock.sendall(frame)
        opcode, echoed = self.message()
        if opcode != _BINARY or echoed != payload:
            raise Failure("the echo differs from the message sent")

    def close(self) -> None:
        """Close politely: our close frame, the server's, then the server's TCP close."""
        self.sock.sendall(_CLOSE_FRAME)
        while self.message()[0] != _CLOSE:
            pass
        if self._buffer or self.sock.recv(2**16):
            raise Failure("the server sent more after its close frame")


def _payload(size: int) -> tuple[bytes, bytes]:
    """The same ``size`` bytes in every run, and their frame."""
    payload = random.Random(size).randbytes(size)
    return payload, _masked_frame(_BINARY, payload)


@contextmanager
def _cycles(port: int) -> Iterator[Callable[[], None]]:
    payload, frame = _payload(16)

    def cycle() -> None:
        with _connect(port) as sock:
            client = _Client(sock, port)
            client.echo(frame, payload)
            client.close()

    yield cycle


def _bare_cycles(port: int) -> AbstractContextManager[Callable[[], None]]:
    def cycle() -> None:
        with _connect(port) as sock:
            _Client(sock, port).close()

    return nullcontext(cycle)


def _echoes(size: int) -> Callable[[int], AbstractContextManager[Callable[[], None]]]:
    @contextmanager
    def echoes(port: int) -> Iterator[Callable[[], None]]:
        payload, frame = _payload(size)
        with _connect(port) as sock:
            client = _Client(sock, port)
            yield lambda: client.echo(frame, payload)
            client.close()
        if client.pings:
            print(f"  (the server sent {client.pings} keepalive pings)", file=sys.stderr)

    return echoes


def _gets(port: int) -> AbstractContextManager[Callable[[], None]]:
    request = (
        f"GET {PLAIN_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    ).encode()

    def get() -> None:
        response = bytearray()
        with _connect(port) as sock:
            sock.sendall(request)
            while chunk := sock.recv(2**16):
                response += chunk
        if not response.startswith(b"HTTP/1.1 200") or not response.endswith(PLAIN_BODY.encode()):
            first_line = bytes(response).split(b"\r\n", 1)[0].decode(errors="replace")
            raise Failure(f"GET {PLAIN_PATH} answered {first_line or 'nothing'!r}")

    return nullcontext(get)


@dataclasses.dataclass(frozen=True)
class Scenario:
    """Operations repeated against one server.

    Attributes:
        key: Its name on the command line.
        title: What one operation is, for the table.
        unit: One operation, for the figures: "cycle", "echo", "request".
        count: How many are counted, after :data:`WARMUP` of warm-up.
        session: Given the server's port, a context whose value runs one operation: the echo
            scenarios open their connection on entry and close it on exit.
    """

    key: str
    title: str
    unit: str
    count: int
    session: Callable[[int], AbstractContextManager[Callable[[], None]]]


SCENARIOS = {
    s.key: s
    for s in (
        Scenario("cycle", "connection cycle (16 B echo)", "cycle", 300, _cycles),
        Scenario("cycle-bare", "connection cycle, no message", "cycle", 300, _bare_cycles),
        Scenario("echo-32", "32 B echo, one connection", "echo", 2000, _echoes(32)),
        Scenario("echo-64k", "64 KiB echo, one connection", "echo", 200, _echoes(2**16)),
        Scenario("get", "plain GET, Connection: close", "request", 300, _gets),
    )
}


# The server under callgrind, and its control.


def server_environment() -> dict[str, str]:
    """What the server runs with: a fixed hash seed and allocator, and this checkout's code."""
    return {
        "PYTHONHASHSEED": "0",
        "PYTHONMALLOC": "pymalloc",
        "PYTHONPATH": str(ROOT / "src"),
    }


def imported_flask_duplex() -> str:
    """Where the server's interpreter, run as the server is, imports ``flask_duplex`` from."""
    done = subprocess.run(
        [sys.executable, "-c", "import flask_duplex; print(flask_duplex.__file__)"],
        cwd=ROOT,
        env={**os.environ, **server_environment()},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def checkout() -> str:
    """This checkout's commit, and whether ``src`` differs from it."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown commit"
    return f"{commit}, src changed since" if changed else commit


def valgrind_version() -> str:
    """``valgrind --version``'s answer, such as ``valgrind-3.19.0``."""
    try:
        done = subprocess.run(
            ["valgrind", "--version"], capture_output=True, text=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return "valgrind of unknown version"
    return done.stdout.strip()


def under_callgrind(command: Sequence[str], out_dir: Path) -> list[str]:
    """``command`` under callgrind, instrumentation off until turned on, with the fixed env.

    ``--trace-children`` follows any process the server execs; gunicorn's forked worker is
    traced in any case, and writes its own files (``%p`` is its pid).
    """
    return [
        "env",
        *(f"{name}={value}" for name, value in server_environment().items()),
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        "--trace-children=yes",
        "--vgdb=yes",
        f"--callgrind-out-file={out_dir}/callgrind.out.%p",
        *command,
    ]


def control(pid: int, *arguments: str) -> None:
    """Run ``callgrind_control ARGUMENTS PID``.

    Raises:
        Failure: It failed or did not answer within :data:`CONTROL_TIMEOUT`.
    """
    try:
        done = subprocess.run(
            ["callgrind_control", *arguments, str(pid)],
            capture_output=True,
            text=True,
            timeout=CONTROL_TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        raise Failure(f"callgrind_control {' '.join(arguments)} took over 2 minutes") from exc
    if done.returncode != 0 or "OK." not in done.stdout:
        said = (done.stdout + done.stderr).strip().replace("\n", " / ")
        raise Failure(f"callgrind_control {' '.join(arguments)} {pid} failed: {said}")


def wait_until_quiet(pid: int) -> None:
    """Return once ``pid`` has used no CPU for :data:`QUIET_FOR` seconds.

    Raises:
        Failure: It was still busy after :data:`QUIET_TIMEOUT` seconds.
    """
    deadline = time.monotonic() + QUIET_TIMEOUT
    used = procfs.cpu_seconds([pid])
    still_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now_used = procfs.cpu_seconds([pid])
        if now_used != used:
            used, still_since = now_used, time.monotonic()
        elif time.monotonic() - still_since >= QUIET_FOR:
            return
    raise Failure(f"the server was still busy after {QUIET_TIMEOUT:.0f} s")


def dumped_instructions(out_dir: Path, pid: int) -> int:
    """The instruction count of ``pid``'s last dump, from its ``summary:`` line."""
    dumps = sorted(
        out_dir.glob(f"callgrind.out.{pid}.*"), key=lambda p: int(p.suffix.lstrip(".") or 0)
    )
    if not dumps:
        raise Failure(f"no callgrind dump of process {pid} in {out_dir}")
    for line in dumps[-1].read_text(errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise Failure(f"no summary line in {dumps[-1]}")


def counted_pid(server: RunningServer) -> int:
    """The process that holds the connections: gunicorn's one worker, else the server."""
    pids = server.serving_pids()
    if len(pids) != 1:
        raise Failure(f"expected one process serving connections, found {pids}")
    return pids[0]


@dataclasses.dataclass(frozen=True)
class Count:
    """One measurement: instructions per operation, and how long it took."""

    per_operation: float
    seconds: float


def measure(server_key: str, scenario: Scenario, warmup: int, count: int, run: int = 1) -> Count:
    """Start the server under callgrind, count ``count`` operations after ``warmup``, stop it.

    Raises:
        Failure: The server did not start or serve, or callgrind could not be controlled.
    """
    started = time.monotonic()
    out_dir = RESULTS / f"{server_key}-{scenario.key}-{run}"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    contender = SERVERS[server_key]
    try:
        with started_server(
            lambda port: under_callgrind(contender.command(sys.executable, port), out_dir),
            cwd=ROOT,
            log=out_dir / "server.log",
            core=None,
            ready_timeout=READY_TIMEOUT,
        ) as server:
            pid = counted_pid(server)
            control(pid, "-i", "on")
            with scenario.session(server.port) as operation:
                for _ in range(warmup):
                    operation()
                wait_until_quiet(pid)
                control(pid, "-z")
                for _ in range(count):
                    operation()
                wait_until_quiet(pid)
                control(pid, "-d")
            if counted_pid(server) != pid:
                raise Failure(f"process {pid} was replaced during the count")
            instructions = dumped_instructions(out_dir, pid)
    except (OSError, RuntimeError) as exc:
        raise Failure(f"{type(exc).__name__}: {exc}") from exc
    return Count(instructions / count, time.monotonic() - started)


# The command line and the table.


def _figure(instructions: float) -> str:
    if instructions >= 5e5:
        return f"{instructions / 1e6:.3f} M"
    return f"{instructions / 1e3:.1f} K"


Row = tuple[str, Scenario, int, Sequence[Count | str]]


def table(rows: Sequence[Row], repeat: int, warmup: int) -> str:
    """The markdown table: one row per server and scenario, one column per run."""
    runs = " | ".join(f"run {n}" for n in range(1, repeat + 1))
    lines = [
        f"| server | scenario | counted | instructions per | {runs} |"
        + (" spread |" if repeat > 1 else ""),
        "|---|---|---|---|" + "---:|" * repeat + ("---:|" if repeat > 1 else ""),
    ]
    for server_key, scenario, count, counts in rows:
        cells = [c if isinstance(c, str) else _figure(c.per_operation) for c in counts]
        line = (
            f"| {server_key} | {scenario.title} | {count:,} after {warmup} "
            f"| {scenario.unit} | {' | '.join(cells)} |"
        )
        if repeat > 1:
            figures = [c.per_operation for c in counts if isinstance(c, Count)]
            spread = (
                f"{(max(figures) - min(figures)) / min(figures):.2%}"
                if len(figures) == len(counts)
                else ""
            )
            line += f" {spread} |"
        lines.append(line)
    return "\n".join(lines)


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.callgrind",
        description="Instructions the server executes per connection cycle, echo or plain GET, "
        "counted by valgrind's callgrind; every scenario on every server by default.",
    )
    parser.add_argument(
        "--server", action="append", choices=list(SERVERS), help="this server (repeatable)"
    )
    parser.add_argument(
        "--scenario", action="append", choices=list(SCENARIOS), help="this scenario (repeatable)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of each, on a fresh server")
    parser.add_argument(
        "--warmup", type=int, default=WARMUP, help=f"operations before the count ({WARMUP})"
    )
    parser.add_argument(
        "--count",
        type=int,
        help="operations counted, instead of each scenario's own "
        + ", ".join(f"{s.key} {s.count}" for s in SCENARIOS.values()),
    )
    arguments = parser.parse_args(argv)
    if arguments.repeat < 1 or arguments.warmup < 0 or (arguments.count or 1) < 1:
        parser.error("--repeat and --count must be positive, --warmup not negative")
    return arguments


def _measured(
    server_key: str, scenario: Scenario, run: int, warmup: int, count: int
) -> Count | str:
    """:func:`measure`, with a line of progress; "error" if it failed (the reason is printed)."""
    name = f"{server_key} {scenario.key} run {run}"
    try:
        result = measure(server_key, scenario, warmup, count, run)
    except Failure as exc:
        print(f"{name}: {exc}", file=sys.stderr, flush=True)
        return "error"
    print(
        f"{name}: {_figure(result.per_operation)} instructions per {scenario.unit} "
        f"({count} after {warmup} of warm-up, {result.seconds:.0f} s)",
        file=sys.stderr,
        flush=True,
    )
    return result


def main(argv: list[str]) -> int:
    arguments = parse_arguments(argv)
    missing = [t for t in ("valgrind", "callgrind_control") if shutil.which(t) is None]
    if missing:
        print(
            f"error: {' and '.join(missing)} not found; install valgrind "
            "(as root: apt-get install valgrind), or run make bench-callgrind",
            file=sys.stderr,
        )
        return 2
    servers = arguments.server or list(SERVERS)
    scenarios = [SCENARIOS[key] for key in arguments.scenario or SCENARIOS]
    source = f"flask_duplex from {imported_flask_duplex()} ({checkout()})"
    print(source, file=sys.stderr, flush=True)
    began = time.monotonic()
    rows: list[Row] = []
    failed = False
    for server_key in servers:
        for scenario in scenarios:
            count = arguments.count or scenario.count
            counts: list[Count | str] = []
            for run in range(1, arguments.repeat + 1):
                result = _measured(server_key, scenario, run, arguments.warmup, count)
                failed = failed or isinstance(result, str)
                counts.append(result)
            rows.append((server_key, scenario, count, counts))
    print(
        "\nInstructions the server executes per operation, user space, counted by callgrind; "
        f"M = millions, K = thousands.\n{source}; Python {platform.python_version()}, "
        f"{valgrind_version()}.\n"
    )
    print(table(rows, arguments.repeat, arguments.warmup))
    print(f"\n{time.monotonic() - began:.0f} s in all.")
    return 1 if failed else 0


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Turn SIGTERM into SystemExit so that the server is stopped on the way out.
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        # The server was stopped on the way out; the traceback would say nothing more.
        print("interrupted", file=sys.stderr)
        sys.exit(130)

"""Idle connections at scale: 1,000, 10,000 and 50,000 on one gunicorn gevent worker.

``python -m bench.idle`` (``make bench`` runs it) starts one gunicorn gevent worker serving the
benchmark's Flask-Duplex echo app, and opens idle WebSocket connections to it in steps. At each
step, with every connection held, it reads the worker's resident memory (``VmRSS``) and reports
the growth since the empty server divided by the connections held; then a new client opens one
more connection and times 200 echoes of 32 B, one at a time (median and 99th percentile).

The idle connections are held by client processes (:mod:`bench.load.holder`), each binding its
sockets to a loopback source address of its own (127.X.Y.2, 127.X.Y.3, ..., X and Y drawn at
random for each run; the server listens on 127.0.0.1): one source address toward one destination
has only about 28,000 ephemeral ports, and one process only as many descriptors as its open-file
limit. The holders reset their connections when they exit, leaving no port in TIME_WAIT. The
server's worker is one process, so its open-file limit (the hard limit, which only a privileged
process can raise) caps what it can hold; a step above that is run at the most the worker can
hold, and says so.

Prints a table; writes bench/results/idle.json, and with ``--write-docs`` puts the table in
docs/benchmarks.md. ``--steps 100,1000`` (or ``--connections 1000``) is a run of a few seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import IO, Any

from bench import procfs
from bench.contenders import CONTENDERS
from bench.docs import IDLE_SCALE_HEADING, write_section
from bench.load.common import Failure, probe_figures
from bench.load.holder import handshake_request, masked_frame
from bench.process import (
    CLIENT_CORE,
    SERVER_CORE,
    RunningServer,
    can_pin,
    open_files_limit,
    raise_open_files_limit,
    started_server,
)
from bench.record import load_average

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DOCS_PAGE = ROOT / "docs" / "benchmarks.md"
STEPS = (1000, 10000, 50000)
PROBE_ROUND_TRIPS = 200
PROBE_SIZE = 32
PROBE_TIMEOUT = 5.0
SETTLE_SECONDS = 1.0
# Descriptors a process needs besides the connections: the worker's listening socket, epoll,
# pipes and log; the holder's event loop and pipes; the new client's connection.
SERVER_RESERVE = 64
HOLDER_RESERVE = 32
# Source ports kept free per source address, below the ephemeral range's size.
PORT_MARGIN = 500
# Source addresses .2 to .201 of the run's /24.
MAX_HOLDERS = 200
# Control frames (pings) the new client skips while it waits for one echo, or for the close.
MAX_CONTROL_FRAMES = 100
_BINARY, _PING, _PONG, _CLOSE = 0x2, 0x9, 0xA, 0x8
_CLOSE_1000 = masked_frame(_CLOSE, (1000).to_bytes(2, "big"))

SERVER = next(c for c in CONTENDERS if c.key == "flask-duplex-gevent")


def server_command(port: int, worker_connections: int) -> list[str]:
    """The benchmark's gunicorn gevent command, with room for ``worker_connections``."""
    command = SERVER.command(sys.executable, port)
    command[command.index("--worker-connections") + 1] = str(worker_connections)
    return command


def ports_per_source() -> int:
    """Connections one source address can open toward one destination: the ephemeral range."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return high - low + 1 - PORT_MARGIN


def open_files(pid: int) -> tuple[int, int]:
    """(descriptors open, soft limit on open files) of process ``pid``, from ``/proc``."""
    opened = len(os.listdir(f"/proc/{pid}/fd"))
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return opened, int(line.split()[3])
    raise OSError(f"no open-file limit in /proc/{pid}/limits")


class HolderProcess:
    """A :mod:`bench.load.holder` process, asked one command at a time, each with a deadline."""

    def __init__(self, port: int, source: str, log: Path, core: int | None) -> None:
        self.source = source
        self.capacity = min(open_files_limit() - HOLDER_RESERVE, ports_per_source())
        self.held = 0
        with log.open("ab") as errors:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bench.load.holder", "127.0.0.1", str(port), source],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                preexec_fn=None if core is None else lambda: os.sched_setaffinity(0, {core}),
            )

    def ask(self, command: str, timeout: float) -> dict[str, Any]:
        """Send ``command``; its one-line JSON answer, read within ``timeout`` seconds.

        Raises:
            Failure: No answer in time, or the holder exited.
        """
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        try:
            stdin.write(f"{command}\n".encode())
            stdin.flush()
        except OSError as exc:
            raise Failure(f"holder {self.source} is gone: {exc}") from exc
        deadline = time.monotonic() + timeout
        answer = b""
        while not answer.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Failure(f"holder {self.source}: no answer to {command!r} in {timeout:.0f} s")
            if select.select([stdout], [], [], remaining)[0]:
                chunk = os.read(stdout.fileno(), 65536)
                if not chunk:
                    raise Failure(f"holder {self.source} exited ({self.process.poll()})")
                answer += chunk
        figures: dict[str, Any] = json.loads(answer)
        return figures

    def stop(self) -> None:
        """Ask it to exit; kill it if it has not within 5 s."""
        with suppress(OSError):
            assert self.process.stdin is not None
            self.process.stdin.write(b"exit\n")
            self.process.stdin.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()


class _Frames:
    """The new client's reader: whole frames from a blocking socket with a timeout."""

    def __init__(self, sock: socket.socket, buffered: bytes) -> None:
        self.sock, self.buffer = sock, buffered

    def _fill(self, size: int) -> None:
        while len(self.buffer) < size:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Failure("the server closed the new client's connection")
            self.buffer += chunk

    def next(self) -> tuple[int, bytes]:
        self._fill(2)
        length, start = self.buffer[1] & 0x7F, 2
        if length >= 126:
            start = 4 if length == 126 else 10
            self._fill(start)
            length = int.from_bytes(self.buffer[2:start], "big")
        self._fill(start + length)
        opcode, payload = self.buffer[0] & 0x0F, self.buffer[start : start + length]
        self.buffer = self.buffer[start + length :]
        return opcode, payload


def probe(port: int, round_trips: int = PROBE_ROUND_TRIPS) -> dict[str, Any]:
    """A new client: open a connection, time ``round_trips`` echoes of 32 B, close politely.

    Raises:
        Failure: It did not open, or an echo did not come back as sent, within 5 s.
    """
    times: list[float] = []
    opening = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=PROBE_TIMEOUT) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(handshake_request("127.0.0.1", port))
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(4096)
                if not chunk or len(head) > 8192:
                    raise Failure("the new client got no handshake response")
                head += chunk
            if not head.startswith(b"HTTP/1.1 101"):
                raise Failure(f"the new client got {head.splitlines()[0]!r}")
            opened = time.perf_counter()
            frames = _Frames(sock, head.split(b"\r\n\r\n", 1)[1])
            payload = os.urandom(PROBE_SIZE)
            message = bytes((0x80 | _BINARY, 0x80 | PROBE_SIZE)) + b"\0\0\0\0" + payload
            for _ in range(round_trips):
                sent = time.perf_counter()
                sock.sendall(message)
                opcode, echo = frames.next()
                for _ in range(MAX_CONTROL_FRAMES):
                    if opcode == _BINARY:
                        break
                    if opcode == _PING:  # a keepalive ping may come first
                        sock.sendall(masked_frame(_PONG, echo))
                    opcode, echo = frames.next()
                else:
                    raise Failure("the new client got no echo, only control frames")
                times.append(time.perf_counter() - sent)
                if echo != payload:
                    raise Failure("the new client's echo differs from the message sent")
            sock.sendall(_CLOSE_1000)
            with suppress(OSError, Failure):
                for _ in range(MAX_CONTROL_FRAMES):
                    if frames.next()[0] == _CLOSE:
                        break
    except OSError as exc:
        raise Failure(f"the new client failed: {type(exc).__name__}: {exc}") from exc
    return probe_figures(opened - opening, times)


def _open(
    holders: list[HolderProcess], count: int, port: int, network: str, logs: Path
) -> dict[str, Any]:
    """Open ``count`` more connections, filling each holder before starting the next.

    The holders' source addresses are ``network``.2, ``network``.3, and so on.
    """
    started = time.perf_counter()
    core = CLIENT_CORE if can_pin() else None
    while count > 0:
        if not holders or holders[-1].held >= holders[-1].capacity:
            if len(holders) == MAX_HOLDERS:
                return {"seconds": None, "error": f"{MAX_HOLDERS} source addresses are not enough"}
            source = f"{network}.{2 + len(holders)}"
            holders.append(HolderProcess(port, source, logs / f"idle-holder-{source}.log", core))
        holder = holders[-1]
        batch = min(count, holder.capacity - holder.held)
        if batch <= 0:
            return {"seconds": None, "error": f"a holder may open only {holder.capacity} files"}
        answer = holder.ask(f"open {batch}", timeout=30.0 + batch / 100)
        holder.held += answer["opened"]
        count -= answer["opened"]
        if answer["error"] or not answer["opened"]:
            return {"seconds": None, "error": f"{holder.source}: {answer['error']}"}
    return {"seconds": time.perf_counter() - started, "error": None}


def run(steps: Sequence[int], log: IO[str] = sys.stderr) -> dict[str, Any]:
    """Every step of ``steps`` (connections held at once, rising) on one fresh server."""
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    pin = can_pin()
    affinity = os.sched_getaffinity(0)
    if pin:
        os.sched_setaffinity(0, {CLIENT_CORE})  # the new client's core; the holders inherit it
    holders: list[HolderProcess] = []
    try:
        with started_server(
            lambda port: server_command(port, max(steps) + 1000),
            cwd=ROOT,
            log=logs / "idle-gunicorn-gevent.log",
            core=SERVER_CORE if pin else None,
        ) as server:
            try:
                measured = _measure(server, steps, holders, logs, log)
            finally:
                # The holders go first: connections that the server closed first would end
                # in the holders' TIME_WAIT, and keep their ports from the next run.
                for holder in holders:
                    holder.stop()
    finally:
        os.sched_setaffinity(0, affinity)
    return {
        "server": SERVER.label,
        "command": server_command(0, max(steps) + 1000),
        "pinned": pin,
        **measured,
    }


def _measure(
    server: RunningServer,
    steps: Sequence[int],
    holders: list[HolderProcess],
    logs: Path,
    log: IO[str],
) -> dict[str, Any]:
    """The steps on ``server``, whose holders are added to ``holders`` as they start."""
    # A /24 of the loopback network of this run's own: ports that an earlier run's connections
    # left in TIME_WAIT, from the same source address to the same port, would be in the way.
    network = f"127.{random.randrange(1, 255)}.{random.randrange(0, 256)}"
    worker = server.serving_pids()
    time.sleep(SETTLE_SECONDS)
    rss_empty = procfs.rss_kib(worker)
    descriptors, limit = open_files(worker[0])
    most = limit - descriptors - SERVER_RESERVE
    rows: list[dict[str, Any]] = []
    for step in steps:
        target = min(step, most)
        held = sum(holder.held for holder in holders)
        if target <= held:
            break
        row: dict[str, Any] = {"requested": step, "limited_by_open_files": target < step}
        row.update(_open(holders, target - held, server.port, network, logs))
        time.sleep(SETTLE_SECONDS)
        reports = [holder.ask("report", timeout=10.0) for holder in holders]
        held = sum(report["open"] for report in reports)
        rss = procfs.rss_kib(worker)
        row.update(
            held=held,
            server_rss_kib=rss,
            rss_kib_per_connection=(rss - rss_empty) / held if held else None,
            server_open_files=open_files(worker[0])[0],
            client_rss_kib_per_connection=(
                sum(report["rss_kib"] for report in reports) / held if held else None
            ),
            holders=len(holders),
            load_average=load_average(),
        )
        try:
            row.update(probe(server.port))
        except Failure as exc:
            row["probe_error"] = str(exc)
        rows.append(row)
        print(_progress(row), file=log, flush=True)
        if row["error"] or not server.alive():
            break
    return {
        "server_rss_kib_empty": rss_empty,
        "worker_open_files_limit": limit,
        "worker_open_files_empty": descriptors,
        "steps": rows,
    }


def _progress(row: dict[str, Any]) -> str:
    echo = (
        f"new client's echo p50 {row['probe_p50_ms']:.3f} ms, p99 {row['probe_p99_ms']:.3f} ms"
        if "probe_p50_ms" in row
        else f"new client: {row.get('probe_error')}"
    )
    return (
        f"{row['held']:>6,} held: {row['rss_kib_per_connection'] or 0:.1f} KiB each, {echo}; "
        f"load {row['load_average']}" + (f"; error: {row['error']}" if row["error"] else "")
    )


def table(results: dict[str, Any]) -> str:
    """The steps as Markdown, with what limited the run where something did."""
    lines = [
        "Idle Flask-Duplex connections on one gunicorn gevent worker, opened in steps on one "
        "fresh server (`python -m bench.idle`). Server memory per connection is the worker's "
        "`VmRSS` growth since it was empty, divided by the connections held (lower is better); "
        f"then a new client opens one more connection and times {PROBE_ROUND_TRIPS} echoes of "
        f"{PROBE_SIZE} B, one at a time, while the others are held. The connections come from "
        "client processes, each on a loopback source address of its own (127.X.Y.2, 127.X.Y.3, "
        "...; one source address has about 28,000 ports toward one destination)"
        + (", pinned to the other core than the server's" if results["pinned"] else "")
        + ".",
        "",
        "| connections | held | time to open the step's new ones, s | server RSS, MiB "
        "| KiB RSS / connection | new client's echo, median ms | new client's echo, p99 ms "
        "| load (1 min) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["steps"]:
        opened = "error" if row["seconds"] is None else f"{row['seconds']:.1f}"
        per = row["rss_kib_per_connection"]
        lines.append(
            f"| {row['requested']:,} | {row['held']:,} | {opened} "
            f"| {row['server_rss_kib'] / 1024:,.1f} | {'n/a' if per is None else f'{per:.1f}'} "
            f"| {_ms(row.get('probe_p50_ms'))} | {_ms(row.get('probe_p99_ms'))} "
            f"| {row['load_average']} |"
        )
    notes = []
    limited = [row for row in results["steps"] if row["limited_by_open_files"]]
    if limited:
        steps = ", ".join(f"{row['requested']:,}" for row in limited)
        notes.append(
            f"- Not reached here: {steps}. One "
            f"process may open at most {results['worker_open_files_limit']:,} files on this "
            "machine (`Max open files` in the worker's `/proc/PID/limits`; the hard limit, which "
            "only a process with `CAP_SYS_RESOURCE` can raise), and the empty worker already had "
            f"{results['worker_open_files_empty']} open; the step ran at the most it can hold."
        )
    notes += [
        f"- {row['requested']:,}: {what}{row[field]}"
        for row in results["steps"]
        for field, what in (("error", ""), ("probe_error", "new client: "))
        if row.get(field)
    ]
    client = [row["client_rss_kib_per_connection"] for row in results["steps"]]
    if client and client[-1] is not None:
        notes.append(
            f"- The holding clients used {client[-1]:.1f} KiB of RSS per connection at the last "
            f"step; the empty server, {results['server_rss_kib_empty'] / 1024:.1f} MiB."
        )
    return "\n".join(lines + (["", *notes] if notes else [])) + "\n"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _steps(text: str) -> list[int]:
    steps = sorted({int(step.replace("_", "")) for step in text.split(",") if step})
    if not steps or steps[0] < 1:
        raise argparse.ArgumentTypeError("steps are connection counts of 1 or more")
    return steps


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.idle", description=__doc__)
    parser.add_argument(
        "--steps",
        type=_steps,
        default=list(STEPS),
        help="connections held at each step, comma-separated (default: %(default)s)",
    )
    parser.add_argument(
        "--connections",
        type=int,
        help="the last step: the default steps below it, then this many",
    )
    parser.add_argument("--write-docs", action="store_true", help="put the table in docs/")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where idle.json goes")
    arguments = parser.parse_args(argv)
    steps: list[int] = arguments.steps
    if arguments.connections is not None:
        steps = [step for step in steps if step < arguments.connections] + [arguments.connections]
    raise_open_files_limit()
    try:
        results = run(steps)
    except (Failure, RuntimeError) as exc:
        # The server and every holder are stopped by now; say why in one line.
        sys.exit(f"bench.idle: {str(exc).splitlines()[0]}")
    text = table(results)
    print(text)
    arguments.results.mkdir(parents=True, exist_ok=True)
    (arguments.results / "idle.json").write_text(json.dumps(results, indent=2) + "\n")
    if arguments.write_docs:
        write_section(DOCS_PAGE, IDLE_SCALE_HEADING, text)


if __name__ == "__main__":
    main()

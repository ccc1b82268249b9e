"""``python cluster.py``: the demo on gunicorn, 2 gevent workers joined by Redis.

What ``make demo-cluster`` runs, from this folder. It is no part of the app
(``duplex_demo``): it starts a redis-server of its own on a free loopback port
(never 6379, never daemonized) and gunicorn serving ``duplex_demo:create_app()``,
both as its children, and stops both when it is stopped (Ctrl-C, SIGTERM) or
when either of them exits. A user whose socket landed on one worker talks
with, and plays against, users on the other.

``--server uwsgi`` runs it on uWSGI instead: 2 processes with gevent, behind
uWSGI's HTTP router.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name} exited early (status {process.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{name} did not listen on port {port} within {timeout}s")


def stop(process: subprocess.Popen[bytes], grace: float) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def server_command(arguments: argparse.Namespace, here: Path) -> list[str]:
    """The server's command line: gevent workers, ``arguments.workers`` of them."""
    if arguments.server == "uwsgi":
        args = [str(Path(sys.prefix) / "bin" / "uwsgi"), "--master", "--die-on-term"]
        args += ["--http", f"{arguments.host}:{arguments.port}", "--http-websockets"]
        args += ["--processes", str(arguments.workers), "--lazy-apps", "--chdir", str(here)]
        args += ["--gevent", "1000", "--gevent-early-monkey-patch", "--virtualenv", sys.prefix]
        return [*args, "--eval", "import duplex_demo; application = duplex_demo.create_app()"]
    args = ["-k", "gevent", "-w", str(arguments.workers)]
    args += ["--worker-connections", "1000", "--graceful-timeout", "5"]
    args += ["-b", f"{arguments.host}:{arguments.port}", "--chdir", str(here)]
    return [sys.executable, "-m", "gunicorn", *args, "duplex_demo:create_app()"]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python cluster.py", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--server", choices=["gunicorn", "uwsgi"], default="gunicorn", help="the WSGI server"
    )
    parser.add_argument("--data-dir", required=True, help="where the SQLite database lives")
    arguments = parser.parse_args()

    redis_binary = shutil.which("redis-server")
    if redis_binary is None:
        raise SystemExit("redis-server is not installed: `make demo-cluster` installs it")
    redis_port = free_port()
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    with tempfile.TemporaryDirectory(prefix="duplex-demo-redis-") as redis_dir:
        redis_args = ["--port", str(redis_port), "--bind", "127.0.0.1", "--save", ""]
        redis_args += ["--appendonly", "no", "--dir", redis_dir]
        redis = subprocess.Popen([redis_binary, *redis_args], stdout=subprocess.DEVNULL)
        server = None
        try:
            wait_for_port(redis_port, redis, "redis-server", 10)
            env = dict(
                os.environ,
                DUPLEX_DEMO_DATA_DIR=os.path.abspath(arguments.data_dir),
                DUPLEX_DEMO_MESSAGE_QUEUE=f"redis://127.0.0.1:{redis_port}/0",
            )
            here = Path(__file__).resolve().parent  # The folder that holds duplex_demo/.
            server = subprocess.Popen(server_command(arguments, here), env=env)
            wait_for_port(arguments.port, server, arguments.server, 30)
            print(
                f"Flask-Duplex demo cluster on http://{arguments.host}:{arguments.port}/ "
                f"({arguments.workers} gevent workers, redis-server on port {redis_port})",
                flush=True,
            )
            while not stopping and server.poll() is None and redis.poll() is None:
                time.sleep(0.2)
        finally:
            if server is not None:
                stop(server, 10)
            stop(redis, 5)


if __name__ == "__main__":
    main()

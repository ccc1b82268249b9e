"""Each extra, installed alone from the lock in an empty venv, runs what it is for.

A package that the project's own venvs hold by accident (pytest brings
``packaging``) would hide a dependency that an extra forgets; an empty venv
does not. Each test syncs a new venv with ``uv sync --locked`` and only the
extra under test, starts a real server from it, and opens a WebSocket.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from websockets.asyncio.client import connect

from tests.support.redis_server import redis_server
from tests.support.servers import ROOT, free_port

UV = ROOT / ".venv-tools" / "bin" / "uv"
DEMO = ROOT / "examples" / "demo"


def fresh_venv(where: Path, *extras: str) -> Path:
    """A new venv with the package and ``extras``, as locked; its python."""
    assert UV.exists(), f"{UV} is missing: `make test` installs it"
    args = [str(UV), "sync", "--locked", "--quiet", "--no-default-groups"]
    for extra in extras:
        args += ["--extra", extra]
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(where),
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_PYTHON": sys.executable,
    }
    env.pop("VIRTUAL_ENV", None)
    subprocess.run(args, cwd=ROOT, env=env, check=True, timeout=240)
    return where / "bin" / "python"


def installed(python: Path) -> set[str]:
    """The distributions in the venv of ``python``, lower-cased."""
    out = subprocess.run(
        [str(UV), "pip", "freeze", "--python", str(python)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {line.split("==")[0].split(" @ ")[0].lower() for line in out.splitlines() if line}


@contextmanager
def serving(
    args: list[str], port: int, cwd: Path, log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``args`` in its own process group until it listens on ``port``; stop it after."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            args,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(f"{args[1:]} exited early:\n{log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{args[1:]} never listened:\n{log.read_text()}") from None
                time.sleep(0.1)
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


async def first_message(url: str) -> dict[str, object]:
    async with connect(url, open_timeout=10) as ws:
        return dict(json.loads(await asyncio.wait_for(ws.recv(), 10)))


def test_bare_package_serves_the_demo(tmp_path: Path) -> None:
    """`make demo`'s install (the package alone) serves the chat's WebSocket on Werkzeug."""
    python = fresh_venv(tmp_path / "venv")
    assert {"flask", "websockets", "werkzeug"} <= installed(python)
    assert not {"redis", "gunicorn", "gevent", "pytest"} & installed(python)
    port = free_port()
    args = [str(python), "-m", "duplex_demo", "--port", str(port)]
    args += ["--data-dir", str(tmp_path / "data")]
    with serving(args, port, DEMO, tmp_path / "demo.log"):
        welcome = asyncio.run(first_message(f"ws://127.0.0.1:{port}/chat/ws"))
    assert welcome["type"] == "welcome"


def test_cluster_extra_serves_the_demo_cluster(tmp_path: Path) -> None:
    """`[cluster]` alone runs gunicorn's gevent workers joined by Redis: both workers answer."""
    python = fresh_venv(tmp_path / "venv", "cluster")
    assert "pytest" not in installed(python)
    port = free_port()
    args = [str(python), "cluster.py", "--port", str(port)]  # As make demo-cluster runs it.
    args += ["--data-dir", str(tmp_path / "data")]
    with serving(args, port, DEMO, tmp_path / "cluster.log"):
        workers = set()
        deadline = time.monotonic() + 60
        while len(workers) < 2 and time.monotonic() < deadline:
            welcome = asyncio.run(first_message(f"ws://127.0.0.1:{port}/chat/ws"))
            assert welcome["type"] == "welcome"
            workers.add(welcome["worker"])
    assert len(workers) == 2, f"one worker answered every time: {workers}"


# Two processes of this app share a room through Redis: a message sent to one
# process's socket reaches the socket held by the other.
REDIS_APP = textwrap.dedent(
    """
    import sys
    from flask import Flask
    from flask_duplex import Duplex

    app = Flask(__name__)
    app.config["DUPLEX_MESSAGE_QUEUE"] = sys.argv[2]
    duplex = Duplex(app)

    @duplex.route("/room")
    def room(ws):
        ws.join("lobby")
        ws.send("joined")
        for message in ws:
            duplex.broadcast(message, to="lobby", exclude=ws)

    app.run(host="127.0.0.1", port=int(sys.argv[1]), threaded=True)
    """
)


def test_redis_extra_joins_two_processes(tmp_path: Path) -> None:
    """`[redis]` alone runs the Redis hub: a broadcast crosses from one process to another."""
    python = fresh_venv(tmp_path / "venv", "redis")
    assert "redis" in installed(python)
    assert not {"gunicorn", "gevent", "pytest"} & installed(python)
    app = tmp_path / "room_app.py"
    app.write_text(REDIS_APP)
    ports = free_port(), free_port()
    with redis_server() as redis:
        args = [[str(python), str(app), str(port), redis.url] for port in ports]
        with (
            serving(args[0], ports[0], tmp_path, tmp_path / "a.log"),
            serving(args[1], ports[1], tmp_path, tmp_path / "b.log"),
        ):

            async def cross() -> str:
                async with (
                    connect(f"ws://127.0.0.1:{ports[0]}/room") as a,
                    connect(f"ws://127.0.0.1:{ports[1]}/room") as b,
                ):
                    assert await asyncio.wait_for(a.recv(), 10) == "joined"
                    assert await asyncio.wait_for(b.recv(), 10) == "joined"
                    await b.send("across")
                    return str(await asyncio.wait_for(a.recv(), 10))

            assert asyncio.run(cross()) == "across"

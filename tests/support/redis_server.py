"""A real redis-server on a free loopback port, for the Redis hub tests."""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import redis

from tests.support.servers import free_port


def free_cluster_port() -> int:
    """A free port whose cluster bus port (10000 above it) is free too.

    Both stay below the kernel's range of ephemeral ports (32768 and up), so
    that no outgoing connection takes the bus port meanwhile.
    """
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(10000, 22000)
        try:
            with socket.socket() as first, socket.socket() as second:
                first.bind(("127.0.0.1", port))
                second.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free pair of ports for a cluster node")


class RedisServer:
    """One redis-server process; ``tls`` is a (cert, key, ca) triple of PEM files."""

    def __init__(
        self,
        port: int,
        workdir: str,
        password: str | None = None,
        tls: tuple[Path, Path, Path] | None = None,
        args: Sequence[str] = (),
    ) -> None:
        self.port = port
        self.args = list(args)  # More redis-server options.
        self.password = password
        self.tls = tls
        auth = f":{password}@" if password else ""
        if tls is None:
            self.url = f"redis://{auth}127.0.0.1:{port}/0"
        else:
            self.url = f"rediss://{auth}127.0.0.1:{port}/0?ssl_ca_certs={tls[2]}"
        self._workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (make test installs it)")
        args = [binary, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", self._workdir]
        if self.tls is None:
            args += ["--port", str(self.port)]
        else:
            cert, key, ca = self.tls
            args += ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(cert)]
            args += ["--tls-key-file", str(key), "--tls-ca-cert-file", str(ca)]
            args += ["--tls-auth-clients", "no"]
        if self.password:
            args += ["--requirepass", self.password]
        args += self.args
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def freeze(self) -> None:
        """Stall the server (SIGSTOP): connections stay open, nothing answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5)


@contextmanager
def redis_server(
    password: str | None = None,
    tls: tuple[Path, Path, Path] | None = None,
    args: Sequence[str] = (),
) -> Iterator[RedisServer]:
    with tempfile.TemporaryDirectory() as workdir:
        server = RedisServer(free_port(), workdir, password=password, tls=tls, args=args)
        server.start()
        try:
            yield server
        finally:
            if server.process is not None and server.process.poll() is None:
                server.thaw()  # A frozen server would not die of SIGKILL until continued.
            server.stop()

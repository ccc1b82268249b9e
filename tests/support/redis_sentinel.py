"""A Redis master, its replica and three sentinels on free loopback ports, for the Sentinel tests.

Every process runs in a temporary folder and is killed when the ``with`` block
ends, whatever happened in it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import redis

from tests.support.redis_server import RedisServer
from tests.support.servers import free_port

SERVICE = "mymaster"
#: The master's and the replica's password, which the app's URL carries, and its database.
PASSWORD = "sentinel-secret"
DB = 2
DOWN_AFTER_MS = 1000  # A master silent this long is down, for one sentinel.
FAILOVER_TIMEOUT_MS = 3000


class Sentinels:
    """The deployment: ``master`` and ``replica`` (either may be the master after a failover)."""

    def __init__(self, master: RedisServer, replica: RedisServer, ports: list[int]) -> None:
        self.master = master
        self.replica = replica
        self.ports = ports
        hosts = ",".join(f"127.0.0.1:{port}" for port in ports)
        self.url = f"redis+sentinel://:{PASSWORD}@{hosts}/{SERVICE}/{DB}"

    def master_port(self) -> int | None:
        """The port the first sentinel that answers names as the master's."""
        for port in self.ports:
            try:
                client = redis.Redis(port=port, socket_timeout=1)
                found = client.sentinel_get_master_addr_by_name(SERVICE)
                client.close()
            except redis.RedisError:
                continue
            if found:
                return int(found[1])
        return None

    def wait_until_watched(self, timeout: float = 30) -> None:
        """Every sentinel knows the replica and the two other sentinels."""
        deadline = time.monotonic() + timeout
        for port in self.ports:
            client = redis.Redis(port=port, socket_timeout=1, decode_responses=True)
            while True:
                fields = client.sentinel_master(SERVICE)
                if int(fields["num-slaves"]) == 1 and int(fields["num-other-sentinels"]) == 2:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"sentinel {port} does not see everyone: {fields}")
                time.sleep(0.1)
            client.close()


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the process on port {port} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def _start_sentinel(workdir: Path, port: int, master_port: int) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (make test installs it)")
    config = workdir / f"sentinel-{port}.conf"  # Sentinel rewrites its file: one each.
    config.write_text(
        f"port {port}\n"
        "bind 127.0.0.1\n"
        f"dir {workdir}\n"
        f"sentinel monitor {SERVICE} 127.0.0.1 {master_port} 2\n"
        f"sentinel auth-pass {SERVICE} {PASSWORD}\n"
        f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
        f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n"
        f"sentinel parallel-syncs {SERVICE} 1\n"
    )
    process = subprocess.Popen(
        [binary, str(config), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _wait_for_port(port, process)
    return process


def _wait_for_replication(replica: RedisServer) -> None:
    client = replica.client()
    deadline = time.monotonic() + 10
    while client.info("replication").get("master_link_status") != "up":
        if time.monotonic() > deadline:
            raise RuntimeError("the replica did not sync with the master")
        time.sleep(0.05)
    client.close()


@contextmanager
def sentinel_deployment() -> Iterator[Sentinels]:
    """Start the five processes; kill every one of them when the block ends."""
    with tempfile.TemporaryDirectory() as workdir, ExitStack() as stack:
        master_dir = Path(workdir, "master")
        replica_dir = Path(workdir, "replica")
        master_dir.mkdir()
        replica_dir.mkdir()
        # Each has the password, and the one it uses with its master (after a failover, the
        # old master's replica is the new one's).
        auth = ["--masterauth", PASSWORD]
        master = RedisServer(free_port(), str(master_dir), password=PASSWORD, args=auth)
        stack.callback(master.stop)
        master.start()
        replica = RedisServer(
            free_port(),
            str(replica_dir),
            password=PASSWORD,
            args=[*auth, "--replicaof", "127.0.0.1", str(master.port)],
        )
        stack.callback(replica.stop)
        replica.start()
        _wait_for_replication(replica)
        ports = []
        for _ in range(3):
            port = free_port()
            process = _start_sentinel(Path(workdir), port, master.port)
            stack.callback(_kill, process)
            ports.append(port)
        deployment = Sentinels(master, replica, ports)
        deployment.wait_until_watched()
        yield deployment


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)

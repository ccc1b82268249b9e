"""A Redis Cluster of six redis-server processes (three masters, a replica each) on loopback.

Made by ``redis-cli --cluster create`` in a temporary folder; every process is
killed when the ``with`` block ends, whatever happened in it.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import redis

from tests.support.redis_server import RedisServer, free_cluster_port

#: Milliseconds a master may be silent before the others deem it failed: the
#: cluster's failover takes about this, plus the replicas' election.
NODE_TIMEOUT_MS = 1000
#: Every node's password, which the app's URL carries.
PASSWORD = "cluster-secret"


class Cluster:
    """The six nodes; ``url`` names one of them, as an app would."""

    def __init__(self, nodes: list[RedisServer]) -> None:
        self.nodes = nodes
        self.url = f"redis+cluster://:{PASSWORD}@127.0.0.1:{nodes[0].port}"

    def alive(self) -> list[RedisServer]:
        return [n for n in self.nodes if n.process is not None and n.process.poll() is None]

    def client(self, node: RedisServer) -> redis.Redis:
        return redis.Redis(
            port=node.port, password=PASSWORD, socket_timeout=2, decode_responses=True
        )

    def owner(self, key: str) -> int | None:
        """The port of the master that serves ``key``'s slot, as a live node sees it."""
        for node in self.alive():
            try:
                client = self.client(node)
                slot = client.cluster("KEYSLOT", key)
                slots = client.execute_command("CLUSTER SLOTS")
                client.close()
            except redis.RedisError:
                continue
            for start, end, master, *_ in _slot_rows(slots):
                if start <= int(slot) <= end:
                    return int(master[1])
        return None

    def masters(self) -> list[RedisServer]:
        found = []
        for node in self.alive():
            client = self.client(node)
            if client.info("replication")["role"] == "master":
                found.append(node)
            client.close()
        return found

    def node(self, port: int) -> RedisServer:
        return next(n for n in self.nodes if n.port == port)

    def wait_until_ok(self, timeout: float = 30) -> None:
        """Every live node says ``cluster_state:ok`` and knows every slot."""
        deadline = time.monotonic() + timeout
        for node in self.alive():
            client = self.client(node)
            while True:
                info = client.cluster("INFO")
                if info["cluster_state"] == "ok" and int(info["cluster_slots_ok"]) == 16384:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"node {node.port} is not ok: {info}")
                time.sleep(0.1)
            client.close()


def _slot_rows(slots: object) -> list[tuple[int, int, list[object]]]:
    # redis-py parses CLUSTER SLOTS into {(start, end): {"primary": (host, port), ...}}.
    if isinstance(slots, dict):
        return [(start, end, list(row["primary"])) for (start, end), row in slots.items()]
    return [(int(row[0]), int(row[1]), list(row[2])) for row in slots]  # type: ignore[attr-defined]


@contextmanager
def redis_cluster() -> Iterator[Cluster]:
    """Start six nodes, join them with ``redis-cli --cluster create``; kill them all at the end."""
    cli = shutil.which("redis-cli")
    if cli is None:
        raise RuntimeError("redis-cli is not installed (it comes with redis-server)")
    with tempfile.TemporaryDirectory() as workdir, ExitStack() as stack:
        nodes = []
        for index in range(6):
            folder = Path(workdir, f"node-{index}")
            folder.mkdir()
            args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            args += ["--cluster-node-timeout", str(NODE_TIMEOUT_MS)]
            # A replica takes over however long it was cut off from its master.
            args += ["--cluster-replica-validity-factor", "0"]
            args += ["--masterauth", PASSWORD]
            node = RedisServer(free_cluster_port(), str(folder), password=PASSWORD, args=args)
            stack.callback(node.stop)
            node.start()
            nodes.append(node)
        addresses = [f"127.0.0.1:{node.port}" for node in nodes]
        create = ["--cluster", "create", *addresses, "--cluster-replicas", "1", "--cluster-yes"]
        subprocess.run(
            [cli, "-a", PASSWORD, "--no-auth-warning", *create],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=60,
        )
        cluster = Cluster(nodes)
        cluster.wait_until_ok()
        yield cluster

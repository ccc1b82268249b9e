"""A simulated cluster on one machine: three nodes behind HAProxy, one Redis, rooms and a kill.

``python -m bench.cluster`` (``make bench`` runs it last). As close to a deployment as one
machine allows:

- **Three nodes**, each a gunicorn with two gevent workers on a loopback port of its own,
  serving ``bench.servers.cluster_app``, all on one redis-server started by the run and one
  ``DUPLEX_CHANNEL``.
- **HAProxy** in front (mode http, round robin, no sticky sessions, ``timeout tunnel`` for the
  WebSockets, a health check every 500 ms), on a free loopback port, with a config the run
  writes.
- **Load**: ``--connections`` (10,000) in ``--rooms`` (200) rooms, opened through HAProxy by two
  client processes (:mod:`bench.cluster_load`); a separate publisher process with no routes
  (``Duplex(message_queue=..., channel=...)``) broadcasts one message per room per second for
  ``--seconds`` (20), each carrying its send time.

Each phase starts its own nodes and HAProxy on a Redis emptied for it:

1. **targeted**: this checkout, rooms without history.
2. **one channel**: the same on the ``src`` of commit 4369c6b, the last before targeted delivery,
   where every process heard every message on the app's one channel (``--skip-old`` leaves it
   out).
3. **targeted, history, kill**: this checkout, every room keeps its last 200 messages; after the
   window one node (its master and workers) is killed with SIGKILL, while the publisher goes on.
   The clients it held reconnect through HAProxy to the others, resuming with ``duplex-since``.
   (``--skip-kill`` leaves the kill out.)

Measured in each phase's window (``--seconds`` of publishing):

- **Latency**, from the send time in the message to its receipt by a client (one monotonic clock
  for every process of the machine): p50 and p99.
- **Redis-to-process messages per broadcast**, counted where they arrive: every serving
  process counts what its hub's subscriber takes from Redis and writes the count into Redis
  every 0.2 s (``bench/servers/cluster_app.py``); the growth of their sum over the window,
  divided by the broadcasts sent. (Counting at Redis, PUBLISH calls times the subscribers of the
  channels published on, stopped working once a room with members on every process goes out
  once on the app's channel and other rooms on the hubs' own: Redis does not count per channel.)
  *PUBLISH calls per broadcast* (``INFO commandstats``, which counts a script's calls too) is
  kept beside it.
- **CPU per delivered message**: user plus system time of every node's processes, redis-server
  and haproxy over the window (``/proc``), divided by the messages the clients received in it.
- After the kill: the connections that dropped, the time from the kill until the last of them was
  back in its room, and, per connection, whether any message of its room was missed (every
  offset from its first join up to the room's last must have arrived) or came twice.

Prints a table, writes bench/results/cluster.json, and with ``--write-docs`` puts the table in
docs/benchmarks.md. Every process the run starts is stopped on the way out, whatever the reason.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack, nullcontext, suppress
from pathlib import Path
from typing import Any

import redis

from bench import procfs
from bench.cluster_processes import NODES, WORKERS, LoadProcess, haproxy, old_src, start_nodes
from bench.docs import CLUSTER_HEADING, write_section
from bench.process import RunningServer, raise_open_files_limit

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DOCS_PAGE = ROOT / "docs" / "benchmarks.md"
CHANNEL = "bench-cluster"
OLD_COMMIT = "4369c6b"  # the last commit whose processes all heard the app's one channel
CLIENT_PROCESSES = 2
KEPT = 200
SETTLE = 0.5  # seconds after the last connection opened before publishing starts
BACK_TIMEOUT = 60.0  # seconds the clients have to come back after the kill
AFTER_BACK = 2.0  # seconds of publishing once every client is back


# -- what Redis says --------------------------------------------------------------------------


class _Redis:
    """What a phase asks of its Redis: one server, or the masters of a Redis Cluster.

    In a cluster the hub publishes by sharded pub/sub (SPUBLISH) and names its keys and
    channels with the hash tag ``{channel}``; the counts are summed over the masters.
    """

    def __init__(self, url: str, pids: list[int], ports: list[int], clustered: bool) -> None:
        self.url, self.pids, self.clustered = url, pids, clustered
        self.prefix = f"{{{CHANNEL}}}" if clustered else CHANNEL
        self._clients = [redis.Redis(port=port, socket_timeout=5) for port in ports]

    def masters(self) -> list[redis.Redis]:
        if not self.clustered:
            return self._clients
        return [c for c in self._clients if c.info("replication")["role"] == "master"]

    def flush(self) -> None:
        for client in self.masters():
            client.flushall()

    def received(self) -> int:
        """Messages the serving processes have taken from Redis so far (see cluster_app)."""
        key = f"{{{CHANNEL}}}:bench-received"
        for client in self.masters():
            try:
                return sum(int(n) for n in client.hgetall(key).values())
            except redis.ResponseError:
                continue  # MOVED: another master owns the key's slot.
        return 0

    def publish_calls(self) -> int:
        """PUBLISH (or SPUBLISH) calls so far, those that scripts made included."""
        total = 0
        for client in self.masters():
            stats = client.info("commandstats")
            for command in ("publish", "spublish"):
                total += int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))
        return total

    def subscribers(self) -> dict[str, int]:
        """Subscribers of every channel of the app that someone listens to."""
        found: dict[str, int] = {}
        for client in self.masters():
            if self.clustered:
                names = client.execute_command("PUBSUB SHARDCHANNELS", f"{self.prefix}*")
                command = "PUBSUB SHARDNUMSUB"
            else:
                names = client.execute_command("PUBSUB CHANNELS", f"{self.prefix}*")
                command = "PUBSUB NUMSUB"
            if names:
                reply = list(client.execute_command(command, *names))
                # redis-py pairs NUMSUB's reply up; SHARDNUMSUB's comes flat.
                if reply and not isinstance(reply[0], (list, tuple)):
                    reply = list(zip(reply[::2], reply[1::2], strict=True))
                for name, count in reply:
                    found[_text(name)] = int(count)
        return found

    def hubs_per_room(self) -> list[int]:
        pattern = f"{self.prefix}:hubs:*"
        return [int(c.zcard(key)) for c in self.masters() for key in c.scan_iter(match=pattern)]

    def close(self) -> None:
        for client in self._clients:
            client.close()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# -- one phase ------------------------------------------------------------------------------


def _percentile(values: Sequence[int], fraction: float) -> float:
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]) if ordered else 0.0


def _run_phase(
    name: str,
    *,
    hub: _Redis,
    src: Path | None,
    history: bool,
    kill: bool,
    connections: int,
    rooms: int,
    seconds: float,
    balancers: int,
) -> dict[str, Any]:
    hub.flush()
    env = {
        **os.environ,
        "DUPLEX_MESSAGE_QUEUE": hub.url,
        "DUPLEX_CHANNEL": CHANNEL,
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("BENCH_KEEP_HISTORY", None)
    if history:
        env["BENCH_KEEP_HISTORY"] = str(KEPT)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(src), str(ROOT)])
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    row: dict[str, Any] = {"history": history, "src": OLD_COMMIT if src else "this checkout"}
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)  # started_server passes os.environ to the nodes
    try:
        with ExitStack() as stack:
            nodes = start_nodes(stack, name, connections, logs)
            proxies = [
                stack.enter_context(
                    haproxy(
                        [n.port for n in nodes],
                        -(-connections // balancers),
                        logs / f"cluster-{name}-haproxy{index + 1}.log",
                    )
                )
                for index in range(balancers)
            ]
            clients = []
            share = -(-connections // CLIENT_PROCESSES)
            for index in range(CLIENT_PROCESSES):
                first = index * share
                count = min(share, connections - first)
                url = f"ws://127.0.0.1:{proxies[index % balancers][0]}"
                command = [sys.executable, "-m", "bench.cluster_load", "client", url]
                command += ["--first", str(first), "--count", str(count), "--rooms", str(rooms)]
                command += ["--history"] if history else []
                load = LoadProcess(
                    f"client {index + 1}", command, env, logs / f"cluster-{name}-clients.log"
                )
                stack.callback(load.stop)
                clients.append(load)
            opening = time.monotonic()
            for load in clients:
                load.read(timeout=600)
            row["open_s"] = time.monotonic() - opening
            time.sleep(SETTLE)
            row["hubs_per_room"] = statistics.mean(hub.hubs_per_room() or [0])
            if src is not None and row["hubs_per_room"]:
                raise RuntimeError(f"the nodes did not run the code of {src}")
            command = [sys.executable, "-m", "bench.cluster_load", "publish"]
            command += ["--channel", CHANNEL, "--rooms", str(rooms)]
            command += ["--keep-history", str(KEPT)] if history else []
            publisher = LoadProcess("publisher", command, env, logs / f"cluster-{name}-pub.log")
            stack.callback(publisher.stop)
            publisher.read()
            haproxy_pids = [process.pid for _, process in proxies]
            row.update(_window(publisher, clients, nodes, haproxy_pids, hub, seconds))
            if kill:
                row["kill"] = _kill_one(nodes[0], clients)
            sent = publisher.ask("stop")
            summaries = [load.ask("stop", timeout=60) for load in clients]
            row["broadcasts_sent"] = sum(sent["sent"])
            row["open_retries"] = sum(s["open_retries"] for s in summaries)
            row["publish_errors"] = sent["errors"]
            latencies = [v for s in summaries for v in s["latencies_us"]]
            row["latency_ms"] = {
                "p50": _percentile(latencies, 0.50) / 1000,
                "p99": _percentile(latencies, 0.99) / 1000,
                "samples": len(latencies),
            }
            if kill:
                after = [v for s in summaries for v in s["after_kill_us"]]
                row["kill"]["latency_after_ms"] = {
                    "p50": _percentile(after, 0.50) / 1000,
                    "p99": _percentile(after, 0.99) / 1000,
                    "max": max(after, default=0) / 1000,
                }
            if history:
                row["missed"] = _missed(summaries, sent["sent"])
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return row


def _window(
    publisher: LoadProcess,
    clients: list[LoadProcess],
    nodes: list[RunningServer],
    haproxy_pids: list[int],
    hub: _Redis,
    seconds: float,
) -> dict[str, Any]:
    """Measure ``seconds`` of publishing: deliveries at Redis, CPU, messages received."""
    time.sleep(0.5)  # The start of the publishing, outside the window.

    def cpu() -> dict[str, float]:
        pids = [pid for node in nodes for pid in node.tree_pids()]
        return {
            "nodes": procfs.cpu_seconds(pids),
            "redis": procfs.cpu_seconds(hub.pids),
            "haproxy": procfs.cpu_seconds(haproxy_pids),
        }

    taken = hub.received()
    calls, used, sent = hub.publish_calls(), cpu(), publisher.ask("count")["sent"]
    received = sum(load.ask("window-start")["received"] for load in clients)
    started = time.monotonic()
    time.sleep(seconds)
    received = sum(load.ask("window-end")["received"] for load in clients) - received
    elapsed = time.monotonic() - started
    broadcasts = publisher.ask("count")["sent"] - sent
    # The processes write their counts every 0.2 s: both readings lag alike.
    taken = hub.received() - taken
    calls, used = hub.publish_calls() - calls, {k: v - used[k] for k, v in cpu().items()}
    subscribers = hub.subscribers()
    # The channels a broadcast is published on: the hubs' in the targeted design, else the app's.
    hubs = {name: n for name, n in subscribers.items() if ":hub:" in name}
    published_on = hubs or {hub.prefix: subscribers.get(hub.prefix, 0)}
    counts = sorted(set(published_on.values()))
    per_call = statistics.mean(published_on.values()) if published_on else 0.0
    return {
        "window_s": elapsed,
        "broadcasts": broadcasts,
        "publish_calls": calls,
        "publish_calls_per_broadcast": calls / broadcasts,
        "subscribers_per_channel": counts,
        "channels_published_on": len(published_on),
        "deliveries_at_redis_per_broadcast": calls * per_call / broadcasts,
        "deliveries_per_broadcast": taken / broadcasts,
        "received": received,
        "cpu_s": used,
        "cpu_us_per_message": sum(used.values()) / max(received, 1) * 1e6,
        "cpu_us_per_message_parts": {k: v / max(received, 1) * 1e6 for k, v in used.items()},
    }


def _kill_one(node: RunningServer, clients: list[LoadProcess]) -> dict[str, Any]:
    """SIGKILL the node's master and workers; wait until every client connection is back."""
    before = [load.ask("kill") for load in clients]
    killed_at = time.monotonic_ns()
    pids = node.tree_pids()
    with suppress(ProcessLookupError):
        os.killpg(node.process.pid, signal.SIGKILL)
    deadline = time.monotonic() + BACK_TIMEOUT
    total = sum(answer["open"] for answer in before)
    while True:
        time.sleep(0.2)
        states = [load.ask("status") for load in clients]
        drops = sum(s["drops"] - b["drops"] for s, b in zip(states, before, strict=True))
        if drops and sum(s["open"] for s in states) == total:
            break
        if time.monotonic() > deadline:
            return {"error": f"not every client was back within {BACK_TIMEOUT:.0f} s"}
    back_ns = max(s["last_join_ns"] for s in states)
    time.sleep(AFTER_BACK)
    return {"processes_killed": len(pids), "dropped": drops, "back_s": (back_ns - killed_at) / 1e9}


def _missed(summaries: list[dict[str, Any]], sent: list[int]) -> dict[str, int]:
    """Per connection, the offsets of its room that never arrived, from its join to the last."""
    missed = connections_missing = 0
    for summary in summaries:
        for room, start, distinct, _last in summary["history"]:
            gap = sent[int(room.removeprefix("room-"))] - start - distinct
            missed += max(gap, 0)
            connections_missing += gap > 0
    return {
        "messages": missed,
        "connections": connections_missing,
        "duplicates": sum(s["duplicates"] for s in summaries),
        "not_recovered": sum(s["not_recovered"] for s in summaries),
        "epoch_changes": sum(s["epoch_changes"] for s in summaries),
    }


# -- the run --------------------------------------------------------------------------------


def run(arguments: argparse.Namespace) -> dict[str, Any]:
    # The test suite's own: one redis-server, or six nodes of a Redis Cluster (three masters).
    from tests.support.redis_cluster import Cluster, redis_cluster
    from tests.support.redis_server import redis_server

    limit = raise_open_files_limit()
    load_start = os.getloadavg()[0]
    document: dict[str, Any] = {
        "connections": arguments.connections,
        "rooms": arguments.rooms,
        "seconds": arguments.seconds,
        "nodes": NODES,
        "workers_per_node": WORKERS,
        "open_files_limit": limit,
        "load_average_start": load_start,
        "phases": {},
    }
    # HAProxy holds two descriptors per connection (the client's, the node's), and cannot raise
    # its limit past the hard one: where one would need more, each client process gets its own.
    balancers = 1 if 2 * arguments.connections + 1000 <= limit else CLIENT_PROCESSES
    document["balancers"] = balancers
    sizes = {"connections": arguments.connections, "rooms": arguments.rooms, "balancers": balancers}
    with ExitStack() as stack:
        # (name, src, rooms keep history, kill a node, on a Redis Cluster)
        phases: list[tuple[str, Path | None, bool, bool, bool]] = [
            ("targeted", None, False, False, False)
        ]
        if not arguments.skip_old:
            phases.append(("one channel", old_src(stack, OLD_COMMIT), False, False, False))
        if not arguments.skip_redis_cluster:
            phases.append(("targeted, Redis Cluster", None, False, False, True))
        phases.append(("targeted, history", None, True, not arguments.skip_kill, False))
        server = stack.enter_context(redis_server())
        assert server.process is not None
        for name, src, history, kill, clustered in phases:
            print(f"{name}: ...", flush=True)
            try:
                cluster: Cluster | None
                with redis_cluster() if clustered else nullcontext(None) as cluster:
                    if cluster is None:
                        hub = _Redis(server.url, [server.process.pid], [server.port], False)
                    else:
                        ports = [node.port for node in cluster.nodes]
                        pids = [node.process.pid for node in cluster.nodes if node.process]
                        hub = _Redis(cluster.url, pids, ports, True)
                    try:
                        row = _run_phase(
                            name.replace(", ", "-").replace(" ", "-").lower(),
                            hub=hub,
                            src=src,
                            history=history,
                            kill=kill,
                            seconds=arguments.seconds,
                            **sizes,
                        )
                    finally:
                        hub.close()
            except Exception as exc:  # A phase that fails says so; the run goes on.
                row = {"error": str(exc)}
            document["phases"][name] = row
            print(f"{name}: {json.dumps(row)}", flush=True)
    document["load_average_end"] = os.getloadavg()[0]
    return document


def table(document: dict[str, Any]) -> str:
    lines = [
        f"{document['connections']:,} WebSocket connections in {document['rooms']} rooms "
        f"through {_balancers(document)} to {document['nodes']} gunicorn nodes of "
        f"{document['workers_per_node']} gevent workers, one redis-server; a publisher process "
        f"broadcasts one message per room per second; {document['seconds']:g} s measured per "
        "phase. Load average (1 minute) "
        f"{document['load_average_start']:.1f} at the start, {document['load_average_end']:.1f} "
        "at the end, on 2 cores: everything (nodes, Redis, HAProxy, clients) shares them.",
        "",
        "| phase | Redis-to-process messages per broadcast | PUBLISH calls per broadcast | "
        "latency p50 / p99, ms | CPU per delivered message, µs (nodes + Redis + HAProxy) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in document["phases"].items():
        if "error" in row:
            lines.append(f"| {name} | error: {row['error'][:80]} | | | |")
            continue
        parts = row["cpu_us_per_message_parts"]
        lines.append(
            f"| {name} | {row['deliveries_per_broadcast']:.2f} | "
            f"{row['publish_calls_per_broadcast']:.2f} | "
            f"{row['latency_ms']['p50']:.1f} / {row['latency_ms']['p99']:.1f} | "
            f"{row['cpu_us_per_message']:.0f} ({parts['nodes']:.0f} + {parts['redis']:.0f} + "
            f"{parts['haproxy']:.0f}) |"
        )
    lines.append("")
    for name, row in document["phases"].items():
        kill = row.get("kill")
        if not kill:
            continue
        if "error" in kill:
            lines.append(f"Kill ({name}): {kill['error']}.")
            continue
        missed = row.get("missed", {})
        lines.append(
            f"Kill ({name}): one node's {kill['processes_killed']} processes were killed with "
            f"SIGKILL; {kill['dropped']:,} connections dropped and were all back in their rooms, "
            f"through HAProxy, {kill['back_s']:.1f} s after the kill. Messages missed: "
            f"{missed.get('messages', 0)} (connections with a gap: "
            f"{missed.get('connections', 0)}); received twice: {missed.get('duplicates', 0)}; "
            f"joins that could not recover: {missed.get('not_recovered', 0)}. Latency of what "
            f"arrived after the kill (the replayed gaps included): p50 "
            f"{kill['latency_after_ms']['p50']:.0f} ms, p99 {kill['latency_after_ms']['p99']:.0f} "
            f"ms, slowest {kill['latency_after_ms']['max']:.0f} ms."
        )
    lines += ["", *_METHOD.strip().splitlines()]
    return "\n".join(lines) + "\n"


def _balancers(document: dict[str, Any]) -> str:
    if document.get("balancers", 1) == 1:
        return "HAProxy"
    return (
        f"{document['balancers']} HAProxy processes (one per client process: this machine's hard "
        f"limit of {document['open_files_limit']:,} open files is less than the two per "
        "connection one HAProxy would need)"
    )


_METHOD = f"""
`python -m bench.cluster` (`make bench` runs it; `--connections`, `--rooms`, `--seconds`,
`--skip-old`, `--skip-redis-cluster` and `--skip-kill` make a smaller run). Each phase starts
its own three nodes (`gunicorn -k gevent -w {WORKERS}`, serving `bench/servers/cluster_app.py`)
and HAProxy (mode http, round robin, no sticky sessions, `timeout tunnel 1h`, a health check
every 500 ms, `retries 3` and `option redispatch`) on a Redis emptied for it. Two client
processes (picows) open the connections through HAProxy; a publisher process with no routes,
`Duplex(message_queue=..., channel=...)`, broadcasts one message of about 100 B per room per
second, spread over the second, each carrying `time.monotonic_ns()` at its send.

- **Redis-to-process messages per broadcast** are counted where they arrive: each serving
  process counts the messages its hub's subscriber takes from Redis (on any channel) and writes
  the count into Redis every 0.2 s; the growth of their sum over the window, read at its start
  and end (both readings lag by up to 0.2 s alike), divided by the broadcasts sent in it.
  *PUBLISH calls per broadcast* come from `INFO commandstats` (a script's calls counted too).
  The *one channel* row runs the nodes and the publisher on the `src` of commit
  {OLD_COMMIT}, the last before targeted delivery (`git archive`). On the *Redis Cluster* (six
  nodes, three masters with a replica each), the hub publishes by sharded pub/sub (SPUBLISH
  calls, summed over the masters). Connection *i* joins room *i* mod the number of rooms, and
  HAProxy hands the connections to the nodes in turn: with 50 members (the default) a room has
  members on each of the six workers, so every process needs every message, and targeted
  delivery publishes each once on the app's channel, as the one-channel design did. It saves
  when rooms are smaller than the workers are many (`--rooms` close to `--connections`).
- **Latency** runs from the send time in the message to its receipt by a client, over every
  message received in the window; both clocks are the machine's one monotonic clock.
- **CPU per delivered message**: user plus system time, from `/proc/PID/stat`, of every node's
  processes (masters and workers), redis-server and haproxy over the window, divided by the
  messages the clients received in it. The clients and the publisher are not counted.
- **The kill** (in the phase whose rooms keep their last {KEPT} messages): after the window, the
  master and workers of one node get SIGKILL while the publisher goes on. The clients reconnect
  through HAProxy (after a random wait of up to 0.5 s, then with a growing backoff), each
  handing its position in its room in the upgrade request (`duplex-since`); *back* is the time
  from the kill until the last of them had its `joined` frame. A message is missed when an
  offset of its room, between the connection's first join and the room's last message, never
  reached the connection.
"""


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__)
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--rooms", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured per phase")
    parser.add_argument("--skip-old", action="store_true", help="no one-channel phase")
    parser.add_argument("--skip-kill", action="store_true", help="kill no node")
    parser.add_argument(
        "--skip-redis-cluster", action="store_true", help="no phase on a Redis Cluster"
    )
    parser.add_argument("--write-docs", action="store_true", help="put the table in docs/")
    parser.add_argument(
        "--name", default="cluster", help="write bench/results/NAME.json (default: cluster)"
    )
    arguments = parser.parse_args(argv)
    # A SIGTERM (timeout, a CI runner) stops the run as Ctrl-C does: every process it started too.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    document = run(arguments)
    text = table(document)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{arguments.name}.json").write_text(json.dumps(document, indent=2))
    if arguments.write_docs:
        write_section(DOCS_PAGE, CLUSTER_HEADING, text)


if __name__ == "__main__":
    main()

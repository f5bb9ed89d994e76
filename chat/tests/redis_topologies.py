"""Test support: private Redis topologies as real processes (docs/deploy.md "Redis at scale").

A master with a replica watched by Sentinels (``redis-server --sentinel``), and a Redis Cluster
of three masters (``--cluster-enabled yes`` joined by ``redis-cli --cluster create``). Built on
``services_process`` (private ports and directories, always cleaned up); never the shared Redis.
"""

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from devtools.processes import free_port

from .services_process import START_TIMEOUT_SECONDS, RedisServer, _alive, redis_server, scratch_dir

MASTER_NAME = "aimaster"


def wait_until(check, *, timeout: float = START_TIMEOUT_SECONDS, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(redis.RedisError):
            if check():
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


class SentinelServer:
    """One ``redis-server --sentinel`` watching ``MASTER_NAME`` (fast failure detection: a master
    that does not answer for a second is down; ``quorum`` Sentinels must agree)."""

    def __init__(self, root: Path, master_port: int, quorum: int = 1):
        self.root = root
        self.port = free_port()
        self.conf = root / "sentinel.conf"
        self.conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {root}\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} {quorum}\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} 1000\n"
            f"sentinel failover-timeout {MASTER_NAME} 10000\n"
        )
        self.log_path = root / "sentinel.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                ["redis-server", str(self.conf), "--sentinel"],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(lambda: self.client().ping(), what="redis-sentinel to answer")

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=3)

    def master_port(self) -> int | None:
        with self.client() as client:
            address = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
        return int(address[1]) if address else None

    def close(self) -> None:
        try:
            if self.process is not None and self.process.poll() is None:
                self.process.kill()
                self.process.wait(10)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            _alive.discard(self)  # type: ignore[arg-type]


@contextlib.contextmanager
def sentinel_group(
    sentinels: int = 1,
) -> Iterator[tuple[RedisServer, RedisServer, list[SentinelServer]]]:
    """A master, its replica, and Sentinels that know both (a majority of them must agree that
    the master is down); all killed when the block ends."""
    with redis_server(aof=False) as master:
        replica_of = ("--replicaof", "127.0.0.1", str(master.port))
        with redis_server(aof=False, args=replica_of) as replica:
            wait_until(
                lambda: replica.client().info("replication")["master_link_status"] == "up",
                what="the replica to sync",
            )
            watchers = []
            try:
                for _ in range(sentinels):
                    watcher = SentinelServer(
                        scratch_dir("sentinel-"), master.port, quorum=sentinels // 2 + 1
                    )
                    _alive.add(watcher)  # type: ignore[arg-type]
                    watchers.append(watcher)
                    watcher.start()
                # Each Sentinel learns of the replica from the master's INFO, and of the other
                # Sentinels from their hellos on the master.
                wait_until(
                    lambda: all(
                        len(w.client().execute_command("SENTINEL", "REPLICAS", MASTER_NAME)) == 1
                        and len(w.client().execute_command("SENTINEL", "SENTINELS", MASTER_NAME))
                        == sentinels - 1
                        for w in watchers
                    ),
                    what="the Sentinels to discover the replica and each other",
                )
                yield master, replica, watchers
            finally:
                for watcher in watchers:
                    watcher.close()


@contextlib.contextmanager
def redis_cluster(masters: int = 3) -> Iterator[list[RedisServer]]:
    """A Redis Cluster of ``masters`` nodes, no replicas, every slot covered."""
    with contextlib.ExitStack() as stack:
        nodes = []
        for _ in range(masters):
            # The bus port on a free port of its own (by default the port + 10000: out of range
            # for a high one).
            bus = ("--cluster-port", str(free_port()))
            options = ("--cluster-enabled", "yes", *bus, "--cluster-node-timeout", "2000")
            nodes.append(stack.enter_context(redis_server(aof=False, args=options)))
        addresses = [f"127.0.0.1:{n.port}" for n in nodes]
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *addresses,
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=START_TIMEOUT_SECONDS,
        )
        wait_until(
            lambda: all(n.client().cluster("info")["cluster_state"] == "ok" for n in nodes),
            what="the cluster to cover every slot",
        )
        yield nodes

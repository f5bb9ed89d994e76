"""The stack bench/capacity.py measures: a PostgreSQL cluster and a redis-server of its own (so
that everything they count and every CPU second they use is the app's), the simulator, K daphne
processes and the shipped nginx.conf in front of them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from bench.stream_bench.front import run_front
from bench.stream_bench.setup import app_env, prepared_session
from chat.tests.services_process import PostgresServer, RedisServer, redis_server, scratch_dir
from devtools.live import AppServer, run_app_server
from devtools.simulator_process import RunningSimulator, run_simulator

# PostgreSQL as production runs it: fsync and full-page writes on (the tests' private clusters
# turn them off); synchronous_commit on. Defaults otherwise (shared_buffers 128MB).
PRODUCTION_OPTIONS = (
    "-c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=300 "
    "-c dynamic_shared_memory_type=mmap -c shared_preload_libraries=pg_stat_statements"
)


class ProductionPostgres(PostgresServer):
    def start(self) -> None:
        options = f"-p {self.port} {PRODUCTION_OPTIONS}"
        self._run("pg_ctl", "start", "-w", "-t", "30", "-D", str(self.data),
                  "-l", str(self.log_path), "-o", options)  # fmt: skip


@contextlib.contextmanager
def production_postgres() -> Iterator[PostgresServer]:
    server = ProductionPostgres(scratch_dir("pg-capacity-"), database="capacity")
    try:
        server.init()
        with server.connect() as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
        yield server
    finally:
        server.close()


@dataclass
class Stack:
    pg: PostgresServer
    redis: RedisServer
    simulator: RunningSimulator
    servers: list[AppServer]
    base_url: str  # nginx
    nginx_pid: int
    session: str


def nginx_master(workdir: Path) -> int:
    """The nginx master serving the config in ``workdir`` (its pid file)."""
    for pid_file in workdir.rglob("*.pid"):
        with contextlib.suppress(ValueError, OSError):
            return int(pid_file.read_text().split()[0])
    raise RuntimeError(f"no nginx pid file under {workdir}")


@contextlib.contextmanager
def running_stack(
    *,
    processes: int,
    affinity: bool,
    ttft_ms: int,
    tps: float,
    tokens: int,
    most_streams: int,
    workdir: Path,
) -> Iterator[Stack]:
    with ExitStack() as exits:
        pg = exits.enter_context(production_postgres())
        redis = exits.enter_context(redis_server(aof=False))
        env = app_env(pg.url, redis.url, most_streams=most_streams)
        session = prepared_session(env)
        sim_args = ("--ttft-ms", str(ttft_ms), "--tps", str(tps), "--reply-tokens", str(tokens))
        simulator = exits.enter_context(run_simulator(*sim_args, env=env))
        served = {**env, "AI_BASE_URL": simulator.base_url}
        servers = [
            exits.enter_context(run_app_server(env=served, log_dir=workdir))
            for _ in range(processes)
        ]
        ports = [int(server.base_url.rpartition(":")[2]) for server in servers]
        base_url = exits.enter_context(run_front(ports, workdir, affinity=affinity))
        yield Stack(
            pg, redis, simulator, servers, base_url, nginx_master(workdir / "nginx"), session
        )

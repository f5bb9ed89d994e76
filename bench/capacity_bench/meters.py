"""What bench/capacity.py reads of each part of the stack over one step: CPU seconds of every
process (the daphne processes one by one, nginx, redis-server, the PostgreSQL cluster, the
simulator), Redis's commands and bytes, PostgreSQL's transactions, rows and WAL.

Every meter has ``begin()`` and ``end()`` (called by ``app_round`` when the step's clients start
and when its last stream has ended) and ``result()``, the difference.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from bench.stream_bench.procfs import CLK_TCK, cpu_seconds, system_busy


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rpartition(")")[2].split()


def cluster_cpu_seconds(root: int) -> float:
    """CPU of a process, of its live children, and of its children that already exited (the
    kernel adds a reaped child's time to its parent's cutime/cstime): a PostgreSQL cluster
    whose backends come and go, or nginx and its workers."""
    fields = _stat_fields(root)
    total = sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            child = stat.read_text().rpartition(")")[2].split()
            if int(child[1]) == root:
                total += int(child[11]) + int(child[12])
    return total / CLK_TCK


class CpuMeter:
    """CPU seconds of named processes (``pids``: name -> pid) and of named process trees
    (``trees``: name -> root pid), and the whole machine's busy seconds and wall time."""

    def __init__(self, pids: dict[str, int], trees: dict[str, int]) -> None:
        self.pids, self.trees = pids, trees
        self._begin: dict[str, float] = {}
        self._end: dict[str, float] = {}

    def _read(self) -> dict[str, float]:
        values = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        values |= {name: cluster_cpu_seconds(pid) for name, pid in self.trees.items()}
        values["machine"] = system_busy()
        values["wall"] = time.perf_counter()
        return values

    def begin(self) -> None:
        self._begin = self._read()

    def end(self) -> None:
        self._end = self._read()

    def result(self) -> dict[str, float]:
        return {name: self._end[name] - self._begin[name] for name in self._begin}


REDIS_STATS = ("total_commands_processed", "total_net_input_bytes", "total_net_output_bytes")


class RedisMeter:
    """Commands (in all, and by command) and network bytes of a redis-server of the bench's own:
    everything it counts is the app's."""

    def __init__(self, client) -> None:
        self.client = client
        self._begin: dict[str, int] = {}
        self._end: dict[str, int] = {}

    def _read(self) -> dict[str, int]:
        stats = self.client.info("stats")
        values = {name: int(stats[name]) for name in REDIS_STATS}
        for command, row in self.client.info("commandstats").items():
            values[command.removeprefix("cmdstat_")] = int(row["calls"])
        return values

    def begin(self) -> None:
        self._begin = self._read()

    def end(self) -> None:
        self._end = self._read()

    def result(self) -> dict[str, int]:
        keys = set(self._begin) | set(self._end)
        return {k: self._end.get(k, 0) - self._begin.get(k, 0) for k in sorted(keys)}


PG_SQL = """
SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted, tup_returned,
       tup_fetched, blks_read, blks_hit, pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint
FROM pg_stat_database WHERE datname = current_database()
"""
PG_FIELDS = (
    "commits", "rollbacks", "rows_inserted", "rows_updated", "rows_deleted", "rows_returned",
    "rows_fetched", "blocks_read", "blocks_hit", "wal_bytes",
)  # fmt: skip


# The statements the app ran in the step (pg_stat_statements, preloaded by bench/capacity's
# cluster), the meter's own left out.
STATEMENTS_SQL = """
SELECT calls, rows, total_exec_time, query FROM pg_stat_statements
WHERE query NOT LIKE '%pg_stat%' ORDER BY calls DESC LIMIT 15
"""


class PostgresMeter:
    """Transactions, rows and WAL of the app's database on a cluster of the bench's own.

    pg_stat_database gets a backend's counts when it flushes them: at the end of a transaction
    if a second has passed since its last flush (PGSTAT_MIN_INTERVAL, PostgreSQL 15), else 10 s
    after it went idle (PGSTAT_IDLE_INTERVAL). The app's pooled connections go idle after a
    step's last reply, so ``end()`` waits ``SETTLE_SECONDS`` first (with a 1 s wait, a short step
    missed the inserts of its last replies now and then); the meter's own reads add a
    transaction each, subtracted here."""

    SETTLE_SECONDS = 11.0

    def __init__(self, connect) -> None:
        self.connect = connect
        self._begin: dict[str, int] = {}
        self._end: dict[str, int] = {}
        self.statements: list[dict] = []

    def _read(self) -> dict[str, int]:
        with self.connect() as conn:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            row = conn.execute(PG_SQL).fetchone()
        return dict(zip(PG_FIELDS, (int(x) for x in row), strict=True))

    def begin(self) -> None:
        self._begin = self._read()
        with self.connect() as conn:
            conn.execute("SELECT pg_stat_statements_reset()")

    def end(self) -> None:
        time.sleep(self.SETTLE_SECONDS)
        self._end = self._read()
        with self.connect() as conn:
            self.statements = [
                {"calls": calls, "rows": rows, "ms": round(ms, 1), "query": query[:160]}
                for calls, rows, ms, query in conn.execute(STATEMENTS_SQL).fetchall()
            ]

    def result(self) -> dict[str, int]:
        out = {k: self._end[k] - self._begin[k] for k in PG_FIELDS}
        out["commits"] -= 3  # the meter's own transactions at the start
        return out

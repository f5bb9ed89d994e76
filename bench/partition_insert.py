"""What partitioning costs ``record_call``: the partitioned ``analytics_aicall`` against a plain
copy of it, interleaved, in the same database at the same moment (so a shared, loaded machine
hits both alike).

Run after ``bench/analytics.py --keep-database`` (the database keeps the large run's calls)::

    .venv/bin/python bench/partition_insert.py \\
        --database-url postgres://postgres@127.0.0.1:5432/bench_partition

It copies the calls into ``bench_aicall_plain`` (same columns, indexes and identity, primary key
``(id)`` as before migration 0011), then times ``record_call`` ``--iterations`` times into each
table, alternating which goes first, by pointing the model at one table or the other. Prints
p50/p99/max of each and writes nothing else; the copy is dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.common import summary  # noqa: E402

PLAIN = "bench_aicall_plain"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--iterations", type=int, default=500)
    args = parser.parse_args(argv)
    if "bench" not in args.database_url.rsplit("/", 1)[-1]:
        parser.error("the database name must contain 'bench'")
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "aiproject.settings",
            "DATABASE_URL": args.database_url,
            "DEBUG": "false",
            "SECRET_KEY": "bench-analytics-not-a-secret-" + "x" * 40,
            "AI_API_KEY": "bench",
            "LOG_LEVEL": "WARNING",
        }
    )
    import django

    django.setup()
    from django.db import connection

    from analytics.models import AICall
    from analytics.services import CallRecord, record_call
    from core.postgresql import run_as_job

    run_as_job()
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {PLAIN}")
        cursor.execute(f"CREATE TABLE {PLAIN} (LIKE analytics_aicall INCLUDING ALL)")
        cursor.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'",
            [PLAIN],
        )
        cursor.execute(f'ALTER TABLE {PLAIN} DROP CONSTRAINT "{cursor.fetchone()[0]}"')
        cursor.execute(f"ALTER TABLE {PLAIN} ADD PRIMARY KEY (id)")
        started = time.perf_counter()
        cursor.execute(f"INSERT INTO {PLAIN} SELECT * FROM analytics_aicall")
        cursor.execute("SELECT max(id) + 1 FROM analytics_aicall")
        cursor.execute(f"ALTER TABLE {PLAIN} ALTER COLUMN id RESTART WITH {cursor.fetchone()[0]}")
        cursor.execute(f"VACUUM ANALYZE {PLAIN}")
        cursor.execute("CHECKPOINT")
        cursor.execute(f"SELECT count(*) FROM {PLAIN}")
        rows = cursor.fetchone()[0]
    print(f"copied {rows:,} calls into {PLAIN} in {time.perf_counter() - started:.0f} s")

    def one() -> float:
        call = CallRecord(
            task_type="chat",
            model="gpt-4o-mini",
            base_url="https://api.openai.com/v1",
            status="ok",
            input_tokens=812,
            cached_input_tokens=256,
            output_tokens=342,
            latency_ms=4210,
            ttft_ms=431,
            request_id="bench-partition-insert",
        )
        started = time.perf_counter()
        record_call(call)
        return (time.perf_counter() - started) * 1000

    partitioned_table = AICall._meta.db_table
    samples: dict[str, list[float]] = {"partitioned": [], "plain": []}
    tables = {"partitioned": partitioned_table, "plain": PLAIN}
    try:
        for i in range(args.iterations + 20):
            order = ("partitioned", "plain") if i % 2 == 0 else ("plain", "partitioned")
            for name in order:
                AICall._meta.db_table = tables[name]
                elapsed = one()
                if i >= 20:  # warm-up
                    samples[name].append(elapsed)
    finally:
        AICall._meta.db_table = partitioned_table
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {PLAIN}")
    print(f"record_call x {args.iterations} each, interleaved (ms), load average {os.getloadavg()}")
    for name, values in samples.items():
        s = summary(values, (50, 99))
        print(f"  {name:<12} p50 {s['p50']:.2f}  p99 {s['p99']:.2f}  max {s['max']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

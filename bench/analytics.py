"""Analytics benchmark: rollups, dashboard and report reads at 100k and 1M calls, and the cost of
recording a call at the end of a stream.

Run from the repository root against a PostgreSQL server (the database is created and dropped by
the benchmark; its name must contain ``bench``)::

    .venv/bin/python bench/analytics.py
    .venv/bin/python bench/analytics.py --rows 1000000 --small-rows 100000 \
        --database-url postgres://postgres@127.0.0.1:5432/bench_analytics

What it does, for each size (``--small-rows`` first, then ``--rows``, in the same database,
truncated in between):

1. Loads N ``AICall`` rows over the 90 reporting-zone days that end now (today included, so the
   default 90-day raw retention keeps every one of them) with ONE ``INSERT ... SELECT ... FROM
   generate_series`` statement on a raw psycopg connection, then ``VACUUM ANALYZE``. The mix:
   task types chat 80% / title 12% / eval 8%; chat variants "" 50% / control 25% / treatment
   25% (control on gpt-4o-mini, treatment on gpt-4.1-mini); five models, one of them unpriced
   (llama-3.1-70b-instruct, self-hosted); statuses ok 95%, error, rate_limited, timeout and
   cancelled; 200 users with a skewed activity (eval calls have none); lognormal input and output
   tokens, TTFT and per-token time; cost computed in SQL exactly as ``analytics.pricing.cost_of``
   does, from the price ``price_for`` returns for the model and the call's reporting-zone day.
2. Times ``rollup_range`` over the 90 days: a full rebuild of hourly, daily and per-user rollups.
3. Times, 15 times after one warm-up, the selector calls of the dashboard's default 30-day view
   (``range_summary`` — one read of the range's daily rollups that gives the totals, today's and
   yesterday's cards, the per-day series and the breakdowns by model, task type and variant —
   and ``top_users(limit=20)``) as one "dashboard" timing, and ``daily_report(yesterday)`` as the
   "report" timing.

Then, with the large table in place: ``finish_reply`` of an assistant message in state streaming
with a ``CallRecord`` against the same ``finish_reply`` with ``call=None`` (interleaved, one new
message per call), and ``record_call`` alone. None of it is on the token path: the runner writes
the reply and its call once, after the stream ended. Last, retention on the table partitioned by
month (migration 0011): the oldest partial month and then a whole month dropped as partitions,
then one day deleted row by row (``analytics_bench/retention.py``).

The process runs as a job (``core.postgresql.run_as_job``), as the monitor does: no statement
timeout, so the 90-day rollup rebuild of millions of calls is not cancelled. The load average is
recorded before each size and at the end: the machine may be shared.

Percentiles use the nearest-rank method: the p-th percentile of n values is sorted[ceil(p/100*n)
- 1], so p95 of 15 repetitions is their maximum. Nothing is asserted; the targets are printed with
PASS or MISS and everything is written to ``bench/results/analytics-<timestamp>.json``.

The parts live in bench/analytics_bench/: load (the database and its rows), timing (the timed
steps) and report (the machine, the table and the targets).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.analytics_bench.load import (  # noqa: E402
    DAYS,
    N_USERS,
    create_users,
    database_name,
    drop_database,
    recreate_database,
    truncate_calls,
)
from bench.analytics_bench.report import machine, ratio, table, targets  # noqa: E402
from bench.analytics_bench.retention import time_retention  # noqa: E402
from bench.analytics_bench.timing import (  # noqa: E402
    FINISH_ITERATIONS,
    RANGE_DAYS,
    REPETITIONS,
    run_size,
    time_finish_reply,
)
from bench.common import git_state, redact  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bench_analytics"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="Calls of the large run.")
    parser.add_argument(
        "--small-rows", type=int, default=100_000, help="Calls of the small run (the ratio's base)."
    )
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL,
        help=f"PostgreSQL database to create, use and drop (default {DEFAULT_DATABASE_URL}).",
    )
    parser.add_argument(
        "--keep-database", action="store_true", help="Leave the database (with the large run)."
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="Write results here (default bench/results/)."
    )
    args = parser.parse_args(argv)
    if urlsplit(args.database_url).scheme not in ("postgres", "postgresql"):
        parser.error("--database-url must be a postgres:// URL")
    if "bench" not in database_name(args.database_url):
        parser.error("the database is dropped and recreated: its name must contain 'bench'")
    if not 0 < args.small_rows < args.rows:
        parser.error("need 0 < --small-rows < --rows")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.strftime("%Y%m%d-%H%M%S")
    url = args.database_url
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "aiproject.settings",
            "DATABASE_URL": url,
            "DEBUG": "false",
            "SECRET_KEY": "bench-analytics-not-a-secret-" + "x" * 40,
            "AI_API_KEY": "bench",
            "LOG_LEVEL": "WARNING",
        }
    )
    print(f"bench/analytics.py: {args.small_rows:,} then {args.rows:,} calls, {redact(url)}")
    recreate_database(url)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    from core.postgresql import run_as_job

    run_as_job()  # before the first connection: rollups and retention are the monitor's work
    load_average = {"start": os.getloadavg()}
    try:
        call_command("migrate", verbosity=0)
        user_ids = create_users()
        sizes = [run_size(url, args.small_rows, user_ids)]
        truncate_calls(url)
        load_average["before_large"] = os.getloadavg()
        sizes.append(run_size(url, args.rows, user_ids))
        print(f"  finish_reply x {FINISH_ITERATIONS} with and without a call ...", flush=True)
        finish = time_finish_reply()
        print("  retention: drop a partial month, a whole month, delete a day ...", flush=True)
        retention = time_retention()
        load_average["end"] = os.getloadavg()
        info = machine(url)
    finally:
        connections.close_all()
        if not args.keep_database:
            drop_database(url)

    small, large = sizes
    result = {
        "started": started,
        "machine": info,
        "config": {
            "rows": args.rows,
            "small_rows": args.small_rows,
            "days": DAYS,
            "users": N_USERS,
            "repetitions": REPETITIONS,
            "dashboard_range_days": RANGE_DAYS,
            "database_url": redact(url),
            "reporting_time_zone": os.environ.get("REPORTING_TIME_ZONE", "UTC"),
            "percentiles": "nearest rank: sorted[ceil(p/100*n) - 1]",
        },
        "git": git_state(),
        "sizes": sizes,
        "ratios": {
            view: {q: ratio(large[f"{view}_ms"][q], small[f"{view}_ms"][q]) for q in ("p50", "p95")}
            for view in ("dashboard", "report")
        },
        "finish_reply": finish,
        "retention": retention,
        "load_average_1_5_15": load_average,
    }
    result["targets"] = [
        {"target": name, "pass": ok, "measured": measured} for name, ok, measured in targets(result)
    ]

    m = info
    print()
    print(
        f"{m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gb']} GB, Python {m['python']}, "
        f"PostgreSQL {m['postgresql']['server_version']} "
        f"(shared_buffers {m['postgresql']['shared_buffers']}, "
        f"work_mem {m['postgresql']['work_mem']})"
    )
    print(table(result))
    print(
        "\nload average (1, 5, 15 min): "
        + "; ".join(f"{k} {' '.join(f'{v:.2f}' for v in la)}" for k, la in load_average.items())
    )
    print()
    print("targets:")
    for name, ok, measured in targets(result):
        print(f"  {'PASS' if ok else 'MISS'}  {name}: {measured}")
    print(
        "\nnote: finish_reply runs once per reply, after the stream ended: nothing here is on the "
        "token path."
    )

    path = args.json or REPO / "bench" / "results" / f"analytics-{started}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

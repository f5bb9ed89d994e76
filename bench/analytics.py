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
the reply and its call once, after the stream ended.

Percentiles use the nearest-rank method: the p-th percentile of n values is sorted[ceil(p/100*n)
- 1], so p95 of 15 repetitions is their maximum. Nothing is asserted; the targets are printed with
PASS or MISS and everything is written to ``bench/results/analytics-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bench_analytics"
DAYS = 90
N_USERS = 200
REPETITIONS = 15
FINISH_ITERATIONS = 500
RANGE_DAYS = 30  # the dashboard's default range (analytics.views.DEFAULT_RANGE_DAYS)
TOP_USERS = 20

TARGET_READ_MS = 300.0  # dashboard and report, each, at --rows
TARGET_RATIO = 1.5  # time(--rows) / time(--small-rows)
TARGET_ADDED_P99_MS = 5.0  # finish_reply with a call minus without, p99

# The models of the mix and their upstream hosts.
MODELS = {
    "gpt-4o-mini": "api.openai.com",
    "gpt-4o": "api.openai.com",
    "gpt-4.1-mini": "api.openai.com",
    "deepseek-chat": "api.deepseek.com",
    "llama-3.1-70b-instruct": "llm.internal",  # self-hosted: no price
}

REPLY_TEXT = (
    "Here is a short answer with a list and some code.\n\n"
    + "".join(
        f"{i}. **Point {i}**: a sentence that explains one part of the answer in plain words.\n"
        for i in range(1, 9)
    )
    + "\n```python\ndef total(xs):\n    return sum(x * 2 for x in xs)\n```\n\n"
    + "That covers it; ask again if something is unclear. " * 6
)

# One statement. The innermost subquery draws every random number of a row once (a subquery whose
# target list has volatile functions is not flattened, so each draw is evaluated once per row);
# the next levels derive the columns from them; the price is joined on (model, reporting day).
LOAD_SQL = """
INSERT INTO analytics_aicall (
    user_id, conversation_id, message_id, task_type, model, base_url_host, status, error_code,
    attempt, streamed, input_tokens, cached_input_tokens, output_tokens, total_tokens,
    tokens_estimated, cost_usd, latency_ms, ttft_ms, variant, request_id, is_demo, created_at
)
SELECT
    user_id, NULL, NULL, task_type, c.model, host, status, error_code,
    attempt, streamed, input_tokens, cached_input_tokens, output_tokens,
    input_tokens + output_tokens, tokens_estimated,
    CASE WHEN p.model IS NULL THEN NULL ELSE round(
        ((input_tokens - cached_input_tokens) * p.input_price
         + cached_input_tokens * p.cached_price
         + output_tokens * p.output_price) / 1000000, 6) END,
    latency_ms, ttft_ms, variant, request_id, false, created_at
FROM (
    SELECT s.*,
        CASE WHEN ttft_ms IS NULL AND status = 'ok' THEN
            round(exp(ln(CASE task_type WHEN 'eval' THEN 4000 ELSE 800 END) + 0.6 * z4))::int
        WHEN ttft_ms IS NOT NULL THEN
            ttft_ms + round(output_tokens * exp(ln(12) + 0.35 * z4))::int
        WHEN status = 'timeout' THEN 30000 + round(2000 * u_cache)::int
        WHEN status = 'rate_limited' THEN round(exp(ln(120) + 0.5 * z4))::int
        ELSE round(exp(ln(900) + 1.0 * z4))::int END AS latency_ms
    FROM (
        SELECT t.*,
            CASE WHEN status IN ('ok', 'cancelled') THEN
                LEAST(input_raw, 120000) ELSE 0 END AS input_tokens,
            CASE WHEN status IN ('ok', 'cancelled') AND task_type = 'chat' AND u_cache < 0.35
                THEN floor(LEAST(input_raw, 120000) * (0.3 + 0.6 * u_share))::int
                ELSE 0 END AS cached_input_tokens,
            CASE WHEN status = 'ok' THEN output_raw
                WHEN status = 'cancelled' THEN floor(output_raw * u_share)::int
                ELSE 0 END AS output_tokens,
            status = 'cancelled' AS tokens_estimated,
            CASE WHEN streamed AND status IN ('ok', 'cancelled') THEN round(exp(
                ln(CASE task_type WHEN 'title' THEN 300 ELSE 450 END) + 0.5 * z3))::int
                END AS ttft_ms,
            CASE status WHEN 'error' THEN 'upstream_error' WHEN 'timeout' THEN 'timeout'
                WHEN 'rate_limited' THEN 'rate_limited' ELSE '' END AS error_code,
            CASE WHEN u_attempt < 0.03 THEN 2 ELSE 1 END AS attempt
        FROM (
            SELECT r.*,
                CASE WHEN task_type = 'eval' THEN NULL
                    ELSE (%(user_ids)s::bigint[])[1 + floor(%(n_users)s * u_user ^ 2)::int]
                    END AS user_id,
                task_type <> 'eval' AS streamed,
                CASE task_type
                    WHEN 'title' THEN CASE WHEN u_model < 0.95 THEN 'gpt-4o-mini'
                        ELSE 'llama-3.1-70b-instruct' END
                    WHEN 'eval' THEN CASE WHEN u_model < 0.55 THEN 'gpt-4o'
                        WHEN u_model < 0.85 THEN 'deepseek-chat'
                        ELSE 'llama-3.1-70b-instruct' END
                    ELSE CASE variant WHEN 'control' THEN 'gpt-4o-mini'
                        WHEN 'treatment' THEN 'gpt-4.1-mini'
                        ELSE CASE WHEN u_model < 0.60 THEN 'gpt-4o-mini'
                            WHEN u_model < 0.80 THEN 'gpt-4o'
                            WHEN u_model < 0.92 THEN 'deepseek-chat'
                            ELSE 'llama-3.1-70b-instruct' END END
                    END AS model,
                CASE WHEN u_status < 0.950 THEN 'ok'
                    WHEN u_status < 0.965 THEN 'error'
                    WHEN u_status < 0.980 THEN 'rate_limited'
                    WHEN u_status < 0.988 THEN 'timeout'
                    WHEN task_type = 'chat' THEN 'cancelled'
                    ELSE 'error' END AS status,
                GREATEST(1, round(exp(ln(CASE task_type WHEN 'chat' THEN 900
                    WHEN 'title' THEN 180 ELSE 2500 END)
                    + CASE task_type WHEN 'title' THEN 0.4 ELSE 0.8 END * z1)))::int AS input_raw,
                LEAST(4096, GREATEST(1, round(exp(ln(CASE task_type WHEN 'chat' THEN 350
                    WHEN 'title' THEN 12 ELSE 400 END)
                    + CASE task_type WHEN 'title' THEN 0.3 ELSE 0.8 END * z2))))::int AS output_raw
            FROM (
                SELECT d.*,
                    CASE WHEN u_task < 0.80 THEN 'chat' WHEN u_task < 0.92 THEN 'title'
                        ELSE 'eval' END AS task_type,
                    CASE WHEN u_task >= 0.80 OR u_variant < 0.50 THEN ''
                        WHEN u_variant < 0.75 THEN 'control' ELSE 'treatment' END AS variant
                FROM (
                    SELECT g,
                        random() AS u_task, random() AS u_variant, random() AS u_model,
                        random() AS u_status, random() AS u_user, random() AS u_cache,
                        random() AS u_share, random() AS u_attempt, random() AS u_time,
                        sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()) AS z1,
                        sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()) AS z2,
                        sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()) AS z3,
                        sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()) AS z4,
                        md5(%(seed)s::text || ':' || g) AS request_id
                    FROM generate_series(1, %(n)s) AS g
                ) AS d
            ) AS r
        ) AS t
    ) AS s
) AS c
CROSS JOIN LATERAL (
    -- Calls are appended in time order, as in production: created_at grows with the id.
    SELECT %(start)s::timestamptz
        + (c.g - 1 + c.u_time) / %(n)s * (%(end)s::timestamptz - %(start)s::timestamptz)
        AS created_at
) AS moment
CROSS JOIN LATERAL (SELECT %(hosts)s::jsonb ->> c.model AS host) AS h
LEFT JOIN unnest(
    %(price_models)s::text[], %(price_days)s::date[], %(price_in)s::numeric[],
    %(price_cached)s::numeric[], %(price_out)s::numeric[]
) AS p(model, day, input_price, cached_price, output_price)
    ON p.model = c.model AND p.day = (moment.created_at AT TIME ZONE %(zone)s)::date
"""


# --- helpers -------------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile: the value at index ceil(p/100 * n) - 1 of the sorted values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(p / 100 * len(ordered)), 1) - 1]


def summary(values: list[float]) -> dict:
    return {
        "n": len(values),
        "min": min(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values),
        "mean": sum(values) / len(values),
    }


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return urlunsplit(parts._replace(netloc=parts.netloc.replace(parts.password, "***")))
    return url


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def admin_url(url: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/postgres"))


def recreate_database(url: str) -> None:
    name = database_name(url)
    with psycopg.connect(admin_url(url), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(url: str) -> None:
    with psycopg.connect(admin_url(url), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(database_name(url))
            )
        )


def machine(url: str) -> dict:
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip()
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    with psycopg.connect(url) as conn:
        pg = {
            name: conn.execute(f"SHOW {name}").fetchone()[0]
            for name in (
                "server_version",
                "shared_buffers",
                "work_mem",
                "effective_cache_size",
                "max_parallel_workers_per_gather",
                "jit",
            )
        }
    return {
        "nproc": int(nproc) if nproc.isdigit() else os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": pg,
    }


def git_state() -> dict:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return done.stdout.rstrip()  # not strip(): porcelain lines start with a space

    changed = [line[3:] for line in git("status", "--porcelain").splitlines()]
    return {"head": git("rev-parse", "--short", "HEAD"), "changed_files": changed}


def ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


# --- the steps -----------------------------------------------------------------------------------


def create_users() -> list[int]:
    from django.contrib.auth import get_user_model

    User = get_user_model()
    User.objects.bulk_create(
        # "!" is an unusable password: no hashing needed.
        User(username=f"bench-user-{i:03d}", email=f"user{i}@bench.invalid", password="!")
        for i in range(N_USERS)
    )
    return list(
        User.objects.filter(username__startswith="bench-user-")
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def price_table(first_day: date, last_day: date) -> dict[str, list]:
    """The price ``price_for`` gives each priced model on each day (unpriced ones: no row)."""
    from analytics.pricing import price_for

    table: dict[str, list] = {"models": [], "days": [], "in": [], "cached": [], "out": []}
    day = first_day
    while day <= last_day:
        for model in MODELS:
            price = price_for(model, day)
            if price is None:
                continue
            cached = price.cached_input_per_million
            table["models"].append(model)
            table["days"].append(day)
            table["in"].append(price.input_per_million)
            table["cached"].append(price.input_per_million if cached is None else cached)
            table["out"].append(price.output_per_million)
        day += timedelta(days=1)
    return table


def load_calls(url: str, n: int, user_ids: list[int], start: datetime, end: datetime) -> dict:
    from django.conf import settings

    from analytics.timezones import local_day

    prices = price_table(local_day(start), local_day(end))
    params = {
        "n": n,
        "seed": n,
        "user_ids": user_ids,
        "n_users": len(user_ids),
        "start": start,
        "end": end,
        "hosts": json.dumps(MODELS),
        "zone": settings.REPORTING_TIME_ZONE,
        "price_models": prices["models"],
        "price_days": prices["days"],
        "price_in": prices["in"],
        "price_cached": prices["cached"],
        "price_out": prices["out"],
    }
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        with conn.transaction():
            # Without statistics on the price array the planner picks a merge join that sorts
            # the million generated rows on disk, and JIT compiles for a second: 2x slower.
            conn.execute("SET LOCAL enable_mergejoin = off")
            conn.execute("SET LOCAL jit = off")
            conn.execute("SELECT setseed(0.42)")
            conn.execute(LOAD_SQL, params)
        insert_s = time.perf_counter() - started
        started = time.perf_counter()
        # As autovacuum would have by then; the checkpoint writes the load's dirty pages now
        # rather than during the timings that follow.
        conn.execute("VACUUM ANALYZE analytics_aicall")
        conn.execute("CHECKPOINT")
        vacuum_s = time.perf_counter() - started
        size = conn.execute(
            "SELECT pg_total_relation_size('analytics_aicall'), count(*) FROM analytics_aicall"
        ).fetchone()
        mix = conn.execute(
            """SELECT
                round(avg((status = 'ok')::int), 4),
                round(avg((cost_usd IS NULL)::int), 4),
                count(DISTINCT user_id),
                count(DISTINCT model),
                percentile_disc(0.5) WITHIN GROUP (ORDER BY latency_ms)
                    FILTER (WHERE task_type = 'chat' AND status = 'ok'),
                percentile_disc(0.95) WITHIN GROUP (ORDER BY latency_ms)
                    FILTER (WHERE task_type = 'chat' AND status = 'ok'),
                percentile_disc(0.5) WITHIN GROUP (ORDER BY ttft_ms),
                percentile_disc(0.95) WITHIN GROUP (ORDER BY ttft_ms),
                sum(cost_usd)
            FROM analytics_aicall"""
        ).fetchone()
    return {
        "rows": size[1],
        "insert_s": insert_s,
        "vacuum_analyze_checkpoint_s": vacuum_s,
        "table_mb": round(size[0] / 1024 / 1024, 1),
        "mix": {
            "ok_share": float(mix[0]),
            "unpriced_share": float(mix[1]),
            "users": mix[2],
            "models": mix[3],
            "chat_ok_latency_p50_ms": mix[4],
            "chat_ok_latency_p95_ms": mix[5],
            "ttft_p50_ms": mix[6],
            "ttft_p95_ms": mix[7],
            "total_cost_usd": float(mix[8] or 0),
        },
    }


def truncate_calls(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE analytics_aicall, analytics_callrollup, analytics_userdailyusage "
            "RESTART IDENTITY"
        )


def rebuild_rollups(url: str, start: datetime, end: datetime) -> dict:
    from analytics.rollups import rollup_range

    started = time.perf_counter()
    counts = rollup_range(start, end)
    seconds = time.perf_counter() - started
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE analytics_callrollup, analytics_userdailyusage")
    return {"seconds": seconds, **counts}


def dashboard_calls(today: date) -> dict:
    """The selector calls of ``analytics.views.dashboard`` for its default 30-day range."""
    from analytics import selectors

    first = today - timedelta(days=RANGE_DAYS - 1)
    yesterday = today - timedelta(days=1)
    del yesterday  # today's and yesterday's cards come out of the range summary
    return {
        # One read of the range's daily rollups: totals, per-day series, three breakdowns.
        "range_summary(range)": lambda: selectors.range_summary(first, today),
        "top_users(range, 20)": lambda: selectors.top_users(first, today, limit=TOP_USERS),
    }


def time_views(today: date) -> dict:
    from analytics import selectors

    calls = dashboard_calls(today)
    yesterday = today - timedelta(days=1)
    dashboard: list[float] = []
    report: list[float] = []
    parts: dict[str, list[float]] = {name: [] for name in calls}
    for repetition in range(REPETITIONS + 1):  # the first one warms up
        started = time.perf_counter()
        for name, call in calls.items():
            part_started = time.perf_counter()
            call()
            if repetition:
                parts[name].append(ms_since(part_started))
        if repetition:
            dashboard.append(ms_since(started))
        started = time.perf_counter()
        selectors.daily_report(yesterday, top=TOP_USERS)
        if repetition:
            report.append(ms_since(started))
    return {
        "dashboard_ms": summary(dashboard),
        "report_ms": summary(report),
        "dashboard_parts_p50_ms": {name: percentile(v, 50) for name, v in parts.items()},
    }


def rollup_rows_read(today: date) -> dict:
    """How many rows the 30-day view and the report read (to compare the two sizes)."""
    from analytics.models import UserDailyUsage
    from analytics.selectors import TRAILING_DAYS, _daily_rows

    first = today - timedelta(days=RANGE_DAYS - 1)
    return {
        "daily_rollups_30d": _daily_rows(first, today).count(),
        "daily_rollups_report": _daily_rows(
            today - timedelta(days=1 + TRAILING_DAYS), today - timedelta(days=1)
        ).count(),
        "user_days_30d": UserDailyUsage.objects.filter(day__gte=first, day__lte=today).count(),
    }


def run_size(url: str, n: int, user_ids: list[int]) -> dict:
    from django.utils import timezone

    from analytics.timezones import day_bounds, local_day

    now = timezone.now()
    start, _ = day_bounds(local_day(now) - timedelta(days=DAYS - 1))
    print(f"  {n:,} calls: loading ...", end="", flush=True)
    loaded = load_calls(url, n, user_ids, start, now - timedelta(seconds=1))
    print(f" {loaded['insert_s']:.1f} s; rollup ...", end="", flush=True)
    rollup = rebuild_rollups(url, start, timezone.now())
    print(f" {rollup['seconds']:.1f} s; reads ...", end="", flush=True)
    today = local_day(timezone.now())
    views = time_views(today)
    print(
        f" dashboard p50 {views['dashboard_ms']['p50']:.1f} ms, "
        f"report p50 {views['report_ms']['p50']:.1f} ms",
        flush=True,
    )
    return {
        "calls": n,
        "range": {"start": start.isoformat(), "end": now.isoformat(), "today": str(today)},
        "load": loaded,
        "rollup": rollup,
        "rows_read": rollup_rows_read(today),
        **views,
    }


def time_finish_reply() -> dict:
    """finish_reply with a CallRecord versus without, and record_call alone."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from analytics.services import CallRecord, record_call
    from chat.models import Conversation, Message
    from chat.services import finish_reply

    user = get_user_model().objects.create(username="bench-finish", password="!")
    conversation = Conversation.objects.create(user=user, title="bench finish_reply")
    question = Message.objects.create(
        conversation=conversation, role=Message.Role.USER, content="Explain the answer."
    )
    model = "gpt-4o-mini"

    def call_for(message_id: int | None) -> CallRecord:
        return CallRecord(
            task_type="chat",
            model=model,
            base_url="https://api.openai.com/v1",
            status="ok",
            input_tokens=812,
            cached_input_tokens=256,
            output_tokens=342,
            latency_ms=4210,
            ttft_ms=431,
            request_id="bench-finish-reply",
            user_id=user.pk,
            conversation_id=conversation.pk,
            message_id=message_id,
        )

    def one(with_call: bool) -> float:
        reply = Message.objects.create(
            conversation=conversation,
            role=Message.Role.ASSISTANT,
            reply_to=question,
            status=Message.Status.STREAMING,
            content=REPLY_TEXT[:200],
            model=model,
            heartbeat_at=timezone.now(),
        )
        call = call_for(reply.pk) if with_call else None
        started = time.perf_counter()
        state = finish_reply(
            reply.pk,
            status=Message.Status.COMPLETED,
            text=REPLY_TEXT,
            model=model,
            input_tokens=812,
            output_tokens=342,
            tokens_estimated=False,
            latency_ms=4210,
            ttft_ms=431,
            call=call,
        )
        elapsed = ms_since(started)
        if state is None:
            raise RuntimeError("finish_reply found no message")
        return elapsed

    for i in range(20):  # warm-up: connections, prices, markdown
        one(i % 2 == 0)
    samples: dict[str, list[float]] = {"with_call": [], "without_call": []}
    for i in range(FINISH_ITERATIONS):
        # Interleaved, alternating which goes first, so drifts hit both alike.
        order = (True, False) if i % 2 == 0 else (False, True)
        for with_call in order:
            samples["with_call" if with_call else "without_call"].append(one(with_call))
    last_reply = Message.objects.filter(conversation=conversation).order_by("-pk").first()
    alone = []
    for i in range(FINISH_ITERATIONS + 20):
        call = call_for(last_reply.pk)
        started = time.perf_counter()
        record_call(call)
        if i >= 20:
            alone.append(ms_since(started))
    with_call, without = summary(samples["with_call"]), summary(samples["without_call"])
    return {
        "iterations": FINISH_ITERATIONS,
        "finish_reply_with_call_ms": with_call,
        "finish_reply_without_call_ms": without,
        "added_p50_ms": with_call["p50"] - without["p50"],
        "added_p99_ms": with_call["p99"] - without["p99"],
        "record_call_alone_ms": summary(alone),
    }


# --- report --------------------------------------------------------------------------------------


def ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def targets(result: dict) -> list[tuple[str, bool, str]]:
    large, small = result["sizes"][-1], result["sizes"][0]
    out = []
    for view in ("dashboard", "report"):
        p50 = large[f"{view}_ms"]["p50"]
        p95 = large[f"{view}_ms"]["p95"]
        out.append(
            (
                f"{view} at {large['calls']:,} calls <= {TARGET_READ_MS:.0f} ms",
                p95 <= TARGET_READ_MS,
                f"p50 {p50:.1f} ms, p95 {p95:.1f} ms (judged on p95)",
            )
        )
    for view in ("dashboard", "report"):
        r = result["ratios"][view]
        out.append(
            (
                f"{view} time({large['calls']:,}) / time({small['calls']:,}) <= {TARGET_RATIO}x",
                r["p50"] is not None and r["p50"] <= TARGET_RATIO,
                f"{r['p50']:.2f}x on p50, {r['p95']:.2f}x on p95 (judged on p50)",
            )
        )
    finish = result["finish_reply"]
    out.append(
        (
            f"record_call added to finish_reply <= {TARGET_ADDED_P99_MS:.0f} ms p99",
            finish["added_p99_ms"] <= TARGET_ADDED_P99_MS,
            f"{finish['added_p99_ms']:+.2f} ms p99 ({finish['added_p50_ms']:+.2f} ms p50)",
        )
    )
    return out


def table(result: dict) -> str:
    sizes = result["sizes"]
    width = 20
    lines = []

    def row(label: str, values: list[str]) -> None:
        lines.append(f"  {label:<36}" + "".join(f"{v:>{width}}" for v in values))

    row("calls", [f"{s['calls']:,}" for s in sizes])
    row("load: INSERT ... SELECT (s)", [f"{s['load']['insert_s']:.1f}" for s in sizes])
    row(
        "load: VACUUM ANALYZE, CHECKPOINT (s)",
        [f"{s['load']['vacuum_analyze_checkpoint_s']:.1f}" for s in sizes],
    )
    row("aicall table + indexes (MB)", [f"{s['load']['table_mb']:.0f}" for s in sizes])
    row("rollup_range, 90 days (s)", [f"{s['rollup']['seconds']:.1f}" for s in sizes])
    row(
        "  rows: hours / days / user-days",
        [f"{s['rollup']['hours']}/{s['rollup']['days']}/{s['rollup']['user_days']}" for s in sizes],
    )
    row(
        "rows read: 30d daily / user-days",
        [f"{s['rows_read']['daily_rollups_30d']}/{s['rows_read']['user_days_30d']}" for s in sizes],
    )
    row("dashboard 30d p50 / p95 (ms)", [pair(s["dashboard_ms"]) for s in sizes])
    for name in sizes[0]["dashboard_parts_p50_ms"]:
        row(f"  {name} p50", [f"{s['dashboard_parts_p50_ms'][name]:.1f}" for s in sizes])
    row("report (yesterday) p50 / p95 (ms)", [pair(s["report_ms"]) for s in sizes])
    lines.append("")
    f = result["finish_reply"]
    lines.append(f"  finish_reply, {f['iterations']} each (ms)      p50       p99       max")
    for label, key in (
        ("with a CallRecord", "finish_reply_with_call_ms"),
        ("call=None", "finish_reply_without_call_ms"),
        ("record_call alone", "record_call_alone_ms"),
    ):
        s = f[key]
        lines.append(f"    {label:<34}{s['p50']:>8.2f}  {s['p99']:>8.2f}  {s['max']:>8.2f}")
    lines.append(
        f"    {'added by the call':<34}{f['added_p50_ms']:>+8.2f}  {f['added_p99_ms']:>+8.2f}"
    )
    return "\n".join(lines)


def pair(s: dict) -> str:
    return f"{s['p50']:.1f} / {s['p95']:.1f}"


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

    try:
        call_command("migrate", verbosity=0)
        user_ids = create_users()
        sizes = [run_size(url, args.small_rows, user_ids)]
        truncate_calls(url)
        sizes.append(run_size(url, args.rows, user_ids))
        print(f"  finish_reply x {FINISH_ITERATIONS} with and without a call ...", flush=True)
        finish = time_finish_reply()
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

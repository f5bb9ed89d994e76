"""Load the analytics benchmark's database: its users, and N AICall rows in one statement."""

from __future__ import annotations

import json
import time
from datetime import date, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

DAYS = 90
N_USERS = 200

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
        # Partitioned (migration 0011): the parent holds nothing, its partitions everything.
        size = conn.execute(
            """SELECT (SELECT sum(pg_total_relation_size(relid))
                       FROM pg_partition_tree('analytics_aicall')),
                      count(*), count(DISTINCT tableoid) FROM analytics_aicall"""
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
        "partitions_with_calls": size[2],
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

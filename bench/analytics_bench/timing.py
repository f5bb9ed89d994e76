"""The timed steps of the analytics benchmark: rollups, the dashboard's and the report's reads,
and finish_reply with and without its call record."""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta

import psycopg

from bench.analytics_bench.load import DAYS, load_calls
from bench.common import percentile, summary

REPETITIONS = 15
FINISH_ITERATIONS = 500
RANGE_DAYS = 30  # the dashboard's default range (analytics.forms.DEFAULT_RANGE_DAYS)
TOP_USERS = 20
PERCENTILES = (50, 95, 99)

REPLY_TEXT = (
    "Here is a short answer with a list and some code.\n\n"
    + "".join(
        f"{i}. **Point {i}**: a sentence that explains one part of the answer in plain words.\n"
        for i in range(1, 9)
    )
    + "\n```python\ndef total(xs):\n    return sum(x * 2 for x in xs)\n```\n\n"
    + "That covers it; ask again if something is unclear. " * 6
)


def summary_of(values: list[float]) -> dict:
    return summary(values, PERCENTILES)


def ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


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
        "dashboard_ms": summary_of(dashboard),
        "report_ms": summary_of(report),
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
    with_call, without = summary_of(samples["with_call"]), summary_of(samples["without_call"])
    return {
        "iterations": FINISH_ITERATIONS,
        "finish_reply_with_call_ms": with_call,
        "finish_reply_without_call_ms": without,
        "added_p50_ms": with_call["p50"] - without["p50"],
        "added_p99_ms": with_call["p99"] - without["p99"],
        "record_call_alone_ms": summary_of(alone),
    }

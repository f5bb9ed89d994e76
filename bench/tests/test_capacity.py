"""bench/capacity.py: its arithmetic, and one short run against real servers (so the meters
keep reading what they claim to: Redis's commands, PostgreSQL's commits, each process's CPU)."""

import json
import shutil
import subprocess
import sys

import pytest

from bench.capacity_bench.model import per_reply, projection, verdict
from chat.tests.services_process import missing_tools
from devtools.processes import REPO


def step(**changes) -> dict:
    base = {
        "replies": 10,
        "replies_started": 10,
        "held": 10,
        "inexact": 0,
        "errors": [],
        "tokens_per_reply": 100,
        "cpu_s": {
            "daphne0": 1.0,
            "daphne1": 0.5,
            "nginx": 0.1,
            "redis": 0.02,
            "postgres": 0.2,
            "wall": 10.0,
        },
        "redis": {
            "total_commands_processed": 600,
            "total_net_input_bytes": 9000,
            "total_net_output_bytes": 1000,
            "zpopmin": 40,
        },
        "postgres": {
            "commits": 250,
            "rows_inserted": 30,
            "rows_updated": 200,
            "rows_deleted": 0,
            "wal_bytes": 102400,
        },
        "added_ttft_post_ms": {"p99": 100.0},
        "gap_ms": {"p99": 30.0},
    }
    return base | changes


IDLE = {
    "cpu_s": {"daphne0": 0.01, "daphne1": 0.01, "redis": 0.001},
    "redis": {"total_commands_processed": 10},
    "postgres": {"commits": 5},
}


def test_costs_per_reply_take_off_what_the_stack_does_idle():
    costs = per_reply(step(), IDLE)
    assert costs["daphne_cpu_ms"] == pytest.approx((1.5 - 0.02 * 10) / 10 * 1000)
    assert costs["redis_cpu_ms"] == pytest.approx((0.02 - 0.01) / 10 * 1000)
    assert costs["redis_commands"] == pytest.approx((600 - 100) / 10)
    assert costs["redis_messages"] == pytest.approx(4)
    assert costs["redis_bytes_per_token"] == pytest.approx(10)
    assert costs["pg_commits"] == pytest.approx((250 - 50) / 10)
    assert costs["pg_rows_written"] == pytest.approx(23)
    assert costs["pg_wal_kb"] == pytest.approx(10)


def test_projection_scales_with_the_streams_and_rounds_processes_up():
    costs = per_reply(step(), IDLE)  # 130 ms of daphne CPU a reply
    rows = projection(costs, reply_seconds=2.0, rss_mb_per_process=100, kb_per_open_stream=1024)
    assert [row["streams"] for row in rows] == [1_000, 10_000, 100_000]
    first = rows[0]
    assert first["replies_per_s"] == 500
    assert first["web_processes"] == 109  # 500/s x 0.13 s / 0.6, rounded up
    assert first["web_memory_gb"] == pytest.approx((109 * 100 + 1000) / 1024)
    assert rows[1]["pg_commits_per_s"] == pytest.approx(10 * first["pg_commits_per_s"])


def test_the_objective_names_what_broke():
    assert verdict(step(), {"added_ttft_ms": 1000, "gap_ms": 250}) == []
    broken = verdict(
        step(held=9, inexact=1, added_ttft_post_ms={"p99": 1500.0}, gap_ms={"p99": None}),
        {"added_ttft_ms": 1000, "gap_ms": 250},
    )
    assert len(broken) == 4
    assert "1 streams not held" in broken[0]


@pytest.mark.skipif(
    bool(missing_tools()) or shutil.which("nginx") is None,
    reason="needs initdb/pg_ctl, redis-server and nginx",
)
@pytest.mark.parametrize("flow", [[], ["--two-requests"]], ids=["one-request", "two-requests"])
def test_a_short_run_counts_real_work(tmp_path, flow):
    out = tmp_path / "capacity.json"
    done = subprocess.run(
        [sys.executable, "bench/capacity.py", "--processes", "2", "--rates", "2",
         "--step-seconds", "2", "--tokens", "20", "--tps", "100", "--json", str(out), *flow],
        cwd=REPO, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    (only,) = result["steps"]
    assert only["held"] == only["replies_started"] == 4
    assert only["inexact"] == 0 and not only["errors"]
    # Whatever broke the objective, if anything, is a latency: timing is the bench's to judge on
    # a quiet machine, not this test's (a busy CI machine once added 1,008 ms against 1,000).
    assert all(" ms > " in what for what in only["broken"]), only["broken"]
    # Each reply is a POST that writes to PostgreSQL and a quota charge in Redis.
    assert only["postgres"]["commits"] >= 4 and only["postgres"]["rows_inserted"] >= 8
    assert only["redis"]["total_commands_processed"] > 0
    assert any("chat_message" in s["query"] for s in only["postgres_statements"])
    assert only["cpu_s"]["daphne0"] + only["cpu_s"]["daphne1"] > 0
    assert len(result["projection"]) == 3

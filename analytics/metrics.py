"""Prometheus metrics of this process (scrape every replica: each process counts its own).

Names follow the OpenTelemetry GenAI semantic conventions where one exists
(``gen_ai.client.token.usage``, ``gen_ai.client.operation.duration``), in Prometheus form;
the rest are prefixed ``aiproject_``. The registry and the series of the process itself
(dependencies, event streams) are in ``core.metrics``.
"""

from prometheus_client import Counter, Histogram

# One registry per process; the process-level series (dependencies, streams) are core's.
from core.metrics import REGISTRY

AI_CALLS = Counter(
    "aiproject_ai_calls",
    "Upstream AI calls (one per attempt) by outcome.",
    ["model", "status", "task_type", "variant"],
    registry=REGISTRY,
)
AI_COST = Counter(
    "aiproject_ai_cost_usd",
    "Cost of the upstream AI calls in USD (priced calls only).",
    ["model", "task_type", "variant"],
    registry=REGISTRY,
)
AI_UNPRICED = Counter(
    "aiproject_ai_unpriced_calls",
    "Upstream AI calls of a model without a price.",
    ["model"],
    registry=REGISTRY,
)
TOKEN_USAGE = Histogram(
    "gen_ai_client_token_usage",
    "Number of input and output tokens used per call (OTel gen_ai.client.token.usage).",
    ["gen_ai_operation_name", "gen_ai_request_model", "gen_ai_token_type"],
    buckets=(1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304),
    registry=REGISTRY,
)
OPERATION_DURATION = Histogram(
    "gen_ai_client_operation_duration_seconds",
    "Duration of an upstream AI call (OTel gen_ai.client.operation.duration).",
    ["gen_ai_operation_name", "gen_ai_request_model", "error_type"],
    buckets=(
        0.01,
        0.02,
        0.04,
        0.08,
        0.16,
        0.32,
        0.64,
        1.28,
        2.56,
        5.12,
        10.24,
        20.48,
        40.96,
        81.92,
    ),
    registry=REGISTRY,
)
TIME_TO_FIRST_TOKEN = Histogram(
    "aiproject_ai_time_to_first_token_seconds",
    "Time from sending a streamed request to its first text chunk, seen by this client.",
    ["model", "task_type"],
    buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 20),
    registry=REGISTRY,
)
HTTP_REQUESTS = Counter(
    "aiproject_http_requests",
    "HTTP requests answered, by status class (2xx, 3xx, 4xx, 5xx).",
    ["status_class"],
    registry=REGISTRY,
)
STREAM_STATE_READS = Counter(
    "aiproject_stream_state_reads",
    "Database reads of a reply's state by streams following it from another process "
    "(shared by the followers of one reply in this process).",
    registry=REGISTRY,
)
QUOTA_REFUSALS = Counter(
    "aiproject_quota_refusals",
    "Requests and generations refused by a quota, the global cap or a rate limit.",
    ["limit", "stage"],
    registry=REGISTRY,
)

# The monitor's retention and partition upkeep (served at MONITOR_METRICS_ADDRESS).
RAW_CALL_PARTITIONS = Counter(
    "aiproject_raw_call_partitions",
    "Monthly partitions of the raw AI calls created ahead or dropped by retention (PostgreSQL).",
    ["action"],
    registry=REGISTRY,
)
RAW_CALLS_MOVED = Counter(
    "aiproject_raw_calls_moved_from_default_partition",
    "Raw AI calls moved out of the default partition when their month's partition was created.",
    registry=REGISTRY,
)
RAW_CALLS_DELETED = Counter(
    "aiproject_raw_calls_deleted",
    "Raw AI calls deleted row by row by retention (the calls of dropped partitions not included).",
    registry=REGISTRY,
)


def observe_call(call, cost) -> None:
    """Count one recorded upstream call (``call`` is an analytics.services.CallRecord)."""
    AI_CALLS.labels(call.model, call.status, call.task_type, call.variant).inc()
    if cost is None:
        AI_UNPRICED.labels(call.model).inc()
    else:
        AI_COST.labels(call.model, call.task_type, call.variant).inc(float(cost))
    operation = "chat"
    TOKEN_USAGE.labels(operation, call.model, "input").observe(call.input_tokens)
    TOKEN_USAGE.labels(operation, call.model, "output").observe(call.output_tokens)
    error_type = "" if call.status == "ok" else (call.error_code or call.status)
    OPERATION_DURATION.labels(operation, call.model, error_type).observe(call.latency_ms / 1000)
    if call.ttft_ms is not None:
        TIME_TO_FIRST_TOKEN.labels(call.model, call.task_type).observe(call.ttft_ms / 1000)

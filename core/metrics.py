"""The process's Prometheus registry, and the series of the process itself: whether it reaches
the database and Redis, and its Server-Sent-Event streams. The apps add their series to
``REGISTRY`` (analytics: AI calls, HTTP requests, quotas; chat: lost final writes).
"""

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily

from .outages import DEPENDENCIES

REGISTRY = CollectorRegistry(auto_describe=True)

SSE_STREAMS_OPEN = Gauge(
    "aiproject_sse_streams_open",
    "Server-Sent-Event streams open in this process.",
    registry=REGISTRY,
)
SSE_STREAM_ENDS = Counter(
    "aiproject_sse_stream_ends",
    "Streams this process ended itself before the reply's final event: a fault after the "
    "response started (stream_interrupted), a reader that stopped reading (stalled), or "
    "refused at open (too_many_streams).",
    ["reason"],
    registry=REGISTRY,
)


class DependencyCollector:
    """``aiproject_dependency_up{dependency="database|redis"}``: 1 while this process reaches
    it, 0 from the first failure of an outage to the first success after it
    (core/outages.py); ``..._down_since_seconds``: when the current outage began."""

    def collect(self):
        up = GaugeMetricFamily(
            "aiproject_dependency_up",
            "Whether this process reaches the dependency (0 during an outage).",
            labels=["dependency"],
        )
        since = GaugeMetricFamily(
            "aiproject_dependency_down_since_seconds",
            "Unix time at which the dependency's current outage began (absent while up).",
            labels=["dependency"],
        )
        for outage in DEPENDENCIES:
            began = outage.since
            up.add_metric([outage.name], 0 if began else 1)
            if began:
                since.add_metric([outage.name], began.timestamp())
        yield up
        yield since

    def describe(self):
        yield GaugeMetricFamily("aiproject_dependency_up", "", labels=["dependency"])
        yield GaugeMetricFamily(
            "aiproject_dependency_down_since_seconds", "", labels=["dependency"]
        )


REGISTRY.register(DependencyCollector())

"""Latency histograms: bucket of a value, and percentiles from bucket counts. Pure, no Django."""

from bisect import bisect_right
from collections.abc import Sequence

# Bucket upper bounds in milliseconds (the last bucket is open-ended). Rollups store one count
# per bucket, so p50/p95 come from rollups, precise to one bucket.
LATENCY_BUCKETS_MS = (
    50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 7500,
    10000, 15000, 20000, 30000, 60000, 120000,
)  # fmt: skip
N_BUCKETS = len(LATENCY_BUCKETS_MS) + 1


def bucket_index(value_ms: float, bounds: Sequence[int] = LATENCY_BUCKETS_MS) -> int:
    """Return the bucket of ``value_ms``: bucket i holds bounds[i-1] <= v < bounds[i]."""
    return bisect_right(bounds, value_ms)


def percentile(
    histogram: Sequence[int], q: float, bounds: Sequence[int] = LATENCY_BUCKETS_MS
) -> float | None:
    """Return the q-th percentile (0 < q <= 1) estimated from bucket counts.

    Interpolates linearly inside the bucket that holds the rank, as Prometheus'
    histogram_quantile does; the open last bucket reports its lower bound. The answer lies in
    the same bucket as the exact value.
    """
    total = sum(histogram)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(histogram):
        if count and seen + count >= rank:
            lower = bounds[index - 1] if index > 0 else 0
            if index >= len(bounds):
                return float(lower)
            upper = bounds[index]
            return lower + (upper - lower) * max(rank - seen, 0) / count
        seen += count
    return float(bounds[-1])

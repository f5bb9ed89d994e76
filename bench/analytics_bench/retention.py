"""Retention on the partitioned table: a whole month dropped, then one day deleted row by row.

Times ``analytics.rollups.drop_raw_calls_before`` (what ``purge_raw_calls`` does after rolling
the expiring days up; the rollups are in place already, the benchmark rebuilt them all):

1. the cutoff at the end of the oldest month with calls (a partial month: the 90 days start
   inside it): that partition is detached and dropped;
2. the cutoff at the end of the next month, a whole month of calls: "retention of a month";
3. the cutoff one day later: the first day of the following month, deleted row by row (what
   an hourly pass does every day between two month ends), for comparison.
"""

from __future__ import annotations

import time
from datetime import timedelta


def rows_per_partition() -> dict[str, int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text, count(*) FROM analytics_aicall GROUP BY 1 ORDER BY 1"
        )
        return dict(cursor.fetchall())


def time_retention() -> dict:
    from analytics.partitions import is_partitioned, partitions
    from analytics.rollups import drop_raw_calls_before

    if not is_partitioned():
        return {"partitioned": False}
    counts = rows_per_partition()
    with_calls = [p for p in partitions() if counts.get(p.name)]
    if len(with_calls) < 3:
        return {"partitioned": True, "skipped": "fewer than three months with calls"}
    first, month, following = with_calls[:3]
    steps = []
    for label, cutoff in (
        ("oldest (partial) month: drop", first.end),
        ("a whole month: drop", month.end),
        ("the next day: DELETE", following.start + timedelta(days=1)),
    ):
        started = time.perf_counter()
        purged = drop_raw_calls_before(cutoff)
        seconds = time.perf_counter() - started
        steps.append(
            {
                "step": label,
                "cutoff": cutoff.isoformat(),
                "seconds": seconds,
                "dropped": list(purged.dropped),
                "rows_in_dropped": sum(counts.get(name, 0) for name in purged.dropped),
                "rows_deleted": purged.deleted,
            }
        )
    return {"partitioned": True, "rows_per_partition": counts, "steps": steps}

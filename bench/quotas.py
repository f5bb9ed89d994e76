"""Benchmark of the quota engine: what a reservation costs a request, on each backend.

    .venv/bin/python bench/quotas.py                                   # SQLite (database backend)
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_quotas REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/quotas.py

Measures, per backend: the latency of one POST-time check (peek + rate-limit slot) and of one
generation's reserve + release (p50/p99 over sequential runs), and the throughput of 50 threads
reserving and releasing at once against one user's counters (the contended case).
"""

import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aiproject.settings")
os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("CHANNEL_LAYER_PREFIX", f"bench-quotas-{os.getpid()}")
for name, value in (
    ("QUOTA_REQUESTS_PER_MINUTE", "100000000"),
    ("QUOTA_TOKENS_PER_DAY", "100000000000"),
    ("QUOTA_COST_PER_DAY_USD", "1000000"),
    ("QUOTA_COST_PER_MONTH_USD", "1000000"),
    ("AI_DAILY_COST_CAP_USD", "1000000"),
    # 50 threads each hold a connection while they wait on the locked counter rows.
    ("DB_POOL_MAX_SIZE", "60"),
):
    os.environ.setdefault(name, value)

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

N_SEQUENTIAL = 500
N_THREADS = 50
PER_THREAD = 20


def pct(values, q):
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * q), len(ordered) - 1)]


def run(backend_name: str) -> dict:
    from django.contrib.auth import get_user_model

    from analytics import quotas

    settings.QUOTA_BACKEND = backend_name
    quotas.backend.cache_clear()
    quotas.backend().clear()
    user, _ = get_user_model().objects.get_or_create(username="bench-quotas")
    model = settings.AI_MODEL

    def post_check():
        quotas.check_only(user, model=model, input_tokens=500, max_tokens=1024)
        quotas.take_request(user)

    def generation():
        held = quotas.reserve(user, model=model, input_tokens=500, max_tokens=1024)
        held.release()

    results = {}
    for name, fn in (("post_check", post_check), ("reserve_release", generation)):
        fn()  # warm up (seeds the counters)
        times = []
        for _ in range(N_SEQUENTIAL):
            started = time.perf_counter()
            fn()
            times.append((time.perf_counter() - started) * 1000)
        results[name] = (statistics.median(times), pct(times, 0.99))

    errors = []

    def worker():
        try:
            for _ in range(PER_THREAD):
                generation()
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(N_THREADS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    results["contended_per_second"] = N_THREADS * PER_THREAD / elapsed
    results["errors"] = len(errors)
    if errors:
        print(f"  first error ({backend_name}): {errors[0]!r}")
    results["open_after"] = quotas.backend().open_reservations()
    quotas.backend().clear()
    return results


def main():
    call_command("migrate", verbosity=0)
    engine = connection.vendor
    backends = ["database"] + (["redis"] if settings.REDIS_URL else [])
    print(f"bench/quotas.py: database {engine}, backends {', '.join(backends)}")
    for name in backends:
        r = run(name)
        label = f"{name} ({engine})" if name == "database" else "redis"
        print(
            f"  {label:20s} POST check p50 {r['post_check'][0]:.2f} ms p99 {r['post_check'][1]:.2f}"
            f" ms | reserve+release p50 {r['reserve_release'][0]:.2f} ms"
            f" p99 {r['reserve_release'][1]:.2f} ms | {N_THREADS} threads on one user:"
            f" {r['contended_per_second']:.0f} reservations/s, errors {r['errors']},"
            f" open after {r['open_after']}"
        )


if __name__ == "__main__":
    main()

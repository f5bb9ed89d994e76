"""Where the counters live: Redis (Lua scripts) or the database (rows locked in key order)."""

import time
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from core.redis_clients import redis_client

from .meters import RATE_WINDOW_SECONDS, Meter, _prefix
from .models import QuotaCounter, QuotaReservation
from .scripts import lua


class RedisBackend:
    def __init__(self, url: str):
        # A plain Redis, the master that Sentinel names, or a Redis Cluster (every key a script
        # touches shares the hash tag of meters._prefix(), so one slot: docs/quotas.md).
        self.client = redis_client(url, socket_timeout=5, health_check_interval=30)
        self._reserve = self.client.register_script(lua("reserve"))
        self._release = self.client.register_script(lua("release"))
        self._renew = self.client.register_script(lua("renew"))
        self._charge = self.client.register_script(lua("charge"))
        self._rate = self.client.register_script(lua("rate"))
        self._sweep = self.client.register_script(lua("sweep"))
        self._reconcile = self.client.register_script(lua("reconcile"))

    @property
    def zset(self) -> str:
        return f"{_prefix()}reservations"

    def reserve(self, items, reservation_id: str, expires: float):
        """Check (and with a reservation id, add) every amount; return None or the refusal."""
        for _ in range(3):
            args: list[Any] = [time.time(), reservation_id, expires]
            for meter, amount in items:
                args += [amount, meter.cap if meter.cap is not None else -1, meter.ttl]
            result = self._reserve(keys=[self.zset] + [m.key for m, _ in items], args=args)
            verdict = result[0].decode()
            if verdict == "ok":
                return None
            if verdict == "exceeded":
                meter, amount = items[int(result[1]) - 1]
                return meter, int(result[2]), amount
            for index in result[1]:  # seed the missing counters, then try again
                meter = items[int(index) - 1][0]
                self.client.set(meter.key, meter.seed(), nx=True, ex=meter.ttl)
        raise RuntimeError("quota counters kept disappearing")

    def release(self, reservation_id: str) -> None:
        self._release(keys=[self.zset, reservation_id])

    def renew(self, reservation_id: str, expires: float) -> bool:
        return bool(self._renew(keys=[self.zset, reservation_id], args=[expires]))

    def charge(self, items: list[tuple[Meter, int, bool]]) -> list[tuple[Meter, int, bool]]:
        """Add to the counters that exist; return the items whose counter is missing."""
        missing = self._charge(keys=[m.key for m, _, _ in items], args=[a for _, a, _ in items])
        return [items[int(index) - 1] for index in missing]

    def seed_missing(self, meter: Meter, amount: int, seed_counts_it: bool) -> None:
        # A fresh seed counts this call when it was recorded in the meter's period (it is
        # committed); if another process created the counter meanwhile, its seed may not have,
        # so add it (an over-count at worst).
        seeded = meter.seed() + (0 if seed_counts_it else amount)
        if not self.client.set(meter.key, seeded, nx=True, ex=meter.ttl):
            self.client.incrby(meter.key, amount)

    def hit(self, key: str, limit: int, member: str) -> float | None:
        """Log ``member`` in the sliding window unless it is full; return None or the wait."""
        now_ms = int(time.time() * 1000)
        allowed, wait_ms = self._rate(
            keys=[key], args=[now_ms, RATE_WINDOW_SECONDS * 1000, limit, member]
        )
        return None if allowed else max(int(wait_ms), 0) / 1000

    def give_back(self, key: str, member: str) -> bool:
        """Take ``member`` out of the log (one atomic ZREM); False if it is no longer there."""
        return bool(self.client.zrem(key, member))

    def value(self, meter: Meter) -> int:
        """The meter's usage with its open reservations (expired ones given back first)."""
        self._sweep(keys=[self.zset], args=[time.time()])
        raw = self.client.get(meter.key)
        return int(raw) if raw is not None else meter.seed()

    def open_reservations(self) -> int:
        return self.client.zcount(self.zset, time.time(), "+inf")

    def raise_to_recorded(self, recorded: dict[str, int], batch: int = 500) -> int:
        """Raise each existing counter below its recorded usage (+ open reservations) to it;
        return how many were raised (see analytics/quotas/reconcile.py)."""
        keys = sorted(recorded)
        raised = 0
        for start in range(0, len(keys), batch):
            chunk = keys[start : start + batch]
            args = [time.time(), *(recorded[key] for key in chunk)]
            raised += int(self._reconcile(keys=[self.zset, *chunk], args=args))
        return raised

    def clear(self) -> None:
        """Delete every counter and reservation of this prefix (tests and benchmarks)."""
        for key in self.client.scan_iter(match=f"{_prefix()}*", count=1000):
            self.client.delete(key)


class DatabaseBackend:
    @staticmethod
    def _sweep(now: datetime) -> None:
        with transaction.atomic():
            expired = list(
                QuotaReservation.objects.select_for_update(skip_locked=True).filter(
                    expires_at__lte=now
                )[:100]
            )
            DatabaseBackend._give_back(expired)

    @staticmethod
    def _give_back(reservations: list[QuotaReservation]) -> None:
        """Take locked reservations' amounts off their counters and delete them: one update per
        key, in key order, so two give-backs never lock counters in a cycle."""
        totals: dict[str, int] = {}
        for reservation in reservations:
            for key, amount in reservation.amounts.items():
                totals[key] = totals.get(key, 0) + amount
        for key in sorted(totals):
            QuotaCounter.objects.filter(key=key).update(value=F("value") - totals[key])
        if reservations:
            QuotaReservation.objects.filter(pk__in=[r.pk for r in reservations]).delete()

    def reserve(self, items, reservation_id: str, expires: float):
        now = timezone.now()
        if not transaction.get_connection().in_atomic_block:
            self._sweep(now)
        with transaction.atomic():
            keys = [m.key for m, _ in items]
            existing = set(QuotaCounter.objects.filter(key__in=keys).values_list("key", flat=True))
            QuotaCounter.objects.bulk_create(
                [
                    QuotaCounter(
                        key=m.key, value=m.seed(), expires_at=now + timedelta(seconds=m.ttl)
                    )
                    for m, _ in items
                    if m.key not in existing
                ],
                ignore_conflicts=True,
            )
            counters = QuotaCounter.objects.filter(key__in=keys)
            if reservation_id:
                # A fixed lock order: two reservations never wait on each other in a cycle. A
                # check without a reservation only reads (it must not hold the global row for
                # the rest of the caller's transaction).
                counters = counters.select_for_update().order_by("key")
            rows = {row.key: row for row in counters}
            for meter, amount in items:
                used = rows[meter.key].value
                if meter.cap is not None and used + amount > meter.cap:
                    return meter, used, amount
            if reservation_id:
                for meter, amount in items:
                    QuotaCounter.objects.filter(key=meter.key).update(value=F("value") + amount)
                QuotaReservation.objects.create(
                    id=reservation_id,
                    amounts={m.key: a for m, a in items},
                    expires_at=datetime.fromtimestamp(expires, UTC),
                )
        return None

    def release(self, reservation_id: str) -> None:
        with transaction.atomic():
            self._give_back(
                list(QuotaReservation.objects.select_for_update().filter(id=reservation_id))
            )

    def renew(self, reservation_id: str, expires: float) -> bool:
        return bool(
            QuotaReservation.objects.filter(id=reservation_id).update(
                expires_at=datetime.fromtimestamp(expires, UTC)
            )
        )

    def charge(self, items: list[tuple[Meter, int, bool]]) -> list[tuple[Meter, int, bool]]:
        """Add to the counters that exist; return the missing ones.

        One statement for all of them (``UPDATE ... RETURNING``, PostgreSQL and SQLite 3.35+),
        not one per counter. It runs on its own (autocommit, after the call's commit), and
        PostgreSQL's index scan of ``key IN (...)`` visits the keys in order, so two charges
        lock shared counters in the same order.
        """
        if not items:
            return []
        by_key = {meter.key: amount for meter, amount, _ in items}
        keys = sorted(by_key)
        table = connection.ops.quote_name(QuotaCounter._meta.db_table)
        key, value = connection.ops.quote_name("key"), connection.ops.quote_name("value")
        cases = " ".join(f"WHEN %s THEN {value} + %s" for _ in keys)
        marks = ", ".join("%s" for _ in keys)
        sql = (
            f"UPDATE {table} SET {value} = CASE {key} {cases} ELSE {value} END "  # noqa: S608
            f"WHERE {key} IN ({marks}) RETURNING {key}"
        )
        params: list[Any] = [x for k in keys for x in (k, by_key[k])] + keys
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            found = {row[0] for row in cursor.fetchall()}
        return [item for item in items if item[0].key not in found]

    def seed_missing(self, meter: Meter, amount: int, seed_counts_it: bool) -> None:
        # As in RedisBackend.seed_missing.
        _, created = QuotaCounter.objects.get_or_create(
            key=meter.key,
            defaults={
                "value": meter.seed() + (0 if seed_counts_it else amount),
                "expires_at": timezone.now() + timedelta(seconds=meter.ttl),
            },
        )
        if not created:
            QuotaCounter.objects.filter(key=meter.key).update(value=F("value") + amount)

    def hit(self, key: str, limit: int, member: str) -> float | None:
        """As RedisBackend.hit: the log is the row's ``hits``, ``[epoch seconds, member]`` pairs."""
        now = time.time()
        with transaction.atomic():
            QuotaCounter.objects.bulk_create(
                [
                    QuotaCounter(
                        key=key, expires_at=timezone.now() + timedelta(seconds=RATE_WINDOW_SECONDS)
                    )
                ],
                ignore_conflicts=True,
            )
            row = QuotaCounter.objects.select_for_update().get(key=key)
            hits = [hit for hit in map(_logged, row.hits) if hit[0] > now - RATE_WINDOW_SECONDS]
            if len(hits) >= limit:
                return max(min(t for t, _ in hits) + RATE_WINDOW_SECONDS - now, 0)
            hits.append([now, member])
            row.hits = hits
            row.expires_at = timezone.now() + timedelta(seconds=RATE_WINDOW_SECONDS)
            row.save(update_fields=["hits", "expires_at"])
        return None

    def give_back(self, key: str, member: str) -> bool:
        """As RedisBackend.give_back, under the row's lock."""
        with transaction.atomic():
            row = QuotaCounter.objects.select_for_update().filter(key=key).first()
            if row is None:
                return False
            kept = [hit for hit in map(_logged, row.hits) if hit[1] != member]
            if len(kept) == len(row.hits):
                return False
            row.hits = kept
            row.save(update_fields=["hits"])
        return True

    def value(self, meter: Meter) -> int:
        """The meter's usage with its open reservations (expired ones given back first)."""
        if not transaction.get_connection().in_atomic_block:
            self._sweep(timezone.now())
        row = QuotaCounter.objects.filter(key=meter.key).first()
        return row.value if row is not None else meter.seed()

    def open_reservations(self) -> int:
        return QuotaReservation.objects.filter(expires_at__gt=timezone.now()).count()

    def clear(self) -> None:
        QuotaCounter.objects.filter(key__startswith=_prefix()).delete()
        QuotaReservation.objects.filter(id__startswith=_prefix()).delete()

    @staticmethod
    def purge_expired() -> int:
        """Delete counters past their period (the monitor calls this)."""
        DatabaseBackend._sweep(timezone.now())
        deleted, _ = QuotaCounter.objects.filter(expires_at__lt=timezone.now()).delete()
        return deleted


def _logged(hit) -> list:
    """A rate log entry as [epoch seconds, member]; a bare number is one logged before members
    were (it can never be given back, and leaves the window within a minute)."""
    return [hit, None] if isinstance(hit, int | float) else hit


@cache
def backend() -> RedisBackend | DatabaseBackend:
    if settings.QUOTA_BACKEND == "redis":
        return RedisBackend(settings.QUOTA_REDIS_URL or settings.REDIS_URL)
    return DatabaseBackend()

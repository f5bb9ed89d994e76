"""``manage.py reprice_calls --since DATE``: recompute stored costs from the current prices.

Price edits never rewrite history by themselves; this command does, on purpose, and then rebuilds
the rollups of the days it touched.
"""

from django.core.management.base import BaseCommand
from django.db import transaction

from analytics.models import AICall
from analytics.pricing import PRICES, cost_of, price_for
from analytics.rollups import rollup_range
from analytics.timezones import day_bounds, local_day

from ._dates import parse_day, today


class Command(BaseCommand):
    help = "Recompute the cost of the AI calls since a day from the prices in effect on their day."

    def add_arguments(self, parser):
        parser.add_argument("--since", required=True, help="First day (YYYY-MM-DD), inclusive.")
        parser.add_argument("--dry-run", action="store_true", help="Report, change nothing.")

    def handle(self, *args, since, dry_run, **options):
        first = parse_day(since, option="--since")
        start, _ = day_bounds(first)
        PRICES.clear()  # this command applies price edits: read them now, whoever made them
        prices: dict = {}
        changed = unpriced = seen = 0
        calls = AICall.objects.filter(created_at__gte=start).only(
            "id",
            "model",
            "created_at",
            "input_tokens",
            "cached_input_tokens",
            "output_tokens",
            "cost_usd",
        )
        batch = []
        for call in calls.iterator(chunk_size=2000):
            seen += 1
            key = (call.model, local_day(call.created_at))
            if key not in prices:
                prices[key] = price_for(*key)
            cost = cost_of(
                prices[key],
                input_tokens=call.input_tokens,
                cached_input_tokens=call.cached_input_tokens,
                output_tokens=call.output_tokens,
            )
            unpriced += cost is None
            if cost != call.cost_usd:
                call.cost_usd = cost
                batch.append(call)
        changed = len(batch)
        if not dry_run and batch:
            with transaction.atomic():
                AICall.objects.bulk_update(batch, ["cost_usd"], batch_size=2000)
            rollup_range(start, day_bounds(today())[1])
        verb = "Would change" if dry_run else "Changed"
        self.stdout.write(
            f"{verb} the cost of {changed:,} of {seen:,} calls since {first.isoformat()} "
            f"({unpriced:,} have no price)."
        )

"""List prices (USD per 1M tokens) of common models, each with its source and date.

Prices change: check them against the providers' pages and edit them in the admin
(Analytics > Model prices); a new row with a later "effective from" keeps history intact.
"""

from datetime import date
from decimal import Decimal

from django.db import migrations

OPENAI = "OpenAI API pricing page, https://openai.com/api/pricing/ (standard tier), as listed 2025"
PRICES = [
    # model, input, cached input, output, effective from, source
    ("gpt-4o", "2.50", "1.25", "10.00", date(2024, 10, 1), OPENAI),
    ("gpt-4o-mini", "0.15", "0.075", "0.60", date(2024, 10, 1), OPENAI),
    ("gpt-4.1", "2.00", "0.50", "8.00", date(2025, 4, 14), OPENAI),
    ("gpt-4.1-mini", "0.40", "0.10", "1.60", date(2025, 4, 14), OPENAI),
    ("gpt-4.1-nano", "0.10", "0.025", "0.40", date(2025, 4, 14), OPENAI),
    (
        "deepseek-chat",
        "0.27",
        "0.07",
        "1.10",
        date(2025, 2, 9),
        "DeepSeek API docs, https://api-docs.deepseek.com/quick_start/pricing-details-usd "
        "(DeepSeek-V3 standard price, cache miss / cache hit / output)",
    ),
    (
        "deepseek-chat",
        "0.28",
        "0.028",
        "0.42",
        date(2025, 9, 29),
        "DeepSeek API docs, https://api-docs.deepseek.com/quick_start/pricing "
        "(price cut with DeepSeek-V3.2-Exp, 2025-09-29)",
    ),
]


def seed(apps, schema_editor):
    ModelPrice = apps.get_model("analytics", "ModelPrice")
    for model, inp, cached, out, effective, source in PRICES:
        ModelPrice.objects.update_or_create(
            model=model,
            effective_from=effective,
            defaults={
                "input_per_million": Decimal(inp),
                "cached_input_per_million": Decimal(cached),
                "output_per_million": Decimal(out),
                "source": source,
            },
        )


def unseed(apps, schema_editor):
    ModelPrice = apps.get_model("analytics", "ModelPrice")
    for model, *_, effective, _source in PRICES:
        ModelPrice.objects.filter(model=model, effective_from=effective).delete()


class Migration(migrations.Migration):
    dependencies = [("analytics", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]

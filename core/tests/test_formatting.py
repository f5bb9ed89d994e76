"""Number formats of the staff pages."""

from decimal import Decimal

import pytest

from core import formatting


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("0"), "$0.0000"),
        (Decimal("0.012345"), "$0.0123"),
        (Decimal("0.99994"), "$0.9999"),
        (Decimal("1"), "$1.00"),
        (Decimal("1234.567"), "$1,234.57"),
        (Decimal("-0.5"), "-$0.5000"),
        (2.5, "$2.50"),
        (None, "—"),
    ],
)
def test_format_money(value, text):
    assert formatting.format_money(value) == text


def test_other_formats():
    assert formatting.format_percent(0.98765) == "98.8%"
    assert formatting.format_percent(None) == "—"
    assert formatting.format_change(0.25) == "+25%"
    assert formatting.format_change(-0.5) == "-50%"
    assert formatting.format_change(None) == "n/a"
    assert formatting.format_ms(1234.4) == "1,234 ms"
    assert formatting.format_ms(30000) == "30.0 s"
    assert formatting.format_ms(None) == "—"
    assert formatting.format_count(1234567) == "1,234,567"
    assert formatting.format_compact(950) == "950"
    assert formatting.format_compact(12_345) == "12.3k"
    assert formatting.format_compact(2_500_000) == "2.5M"


@pytest.mark.parametrize(
    ("value", "signed", "text"),
    [
        (None, False, "—"),
        (0, True, "$0"),
        (Decimal("0.000123"), False, "$0.000123"),
        (0.0456, False, "$0.0456"),
        (12.3, False, "$12.30"),
        (-0.5, True, "-$0.5000"),
        (0.25, True, "+$0.2500"),
    ],
)
def test_usd_keeps_the_digits_a_per_call_cost_needs(value, signed, text):
    assert formatting.format_usd(value, signed=signed) == text


def test_alert_unit_formats():
    assert formatting.format_rate(Decimal("0.717949")) == "71.79%"
    assert formatting.format_rate(Decimal("0.95")) == "95%"
    assert formatting.format_rate(0.0505) == "5.05%"
    assert formatting.format_seconds(Decimal("0.85")) == "850 ms"
    assert formatting.format_seconds(Decimal("12.3456")) == "12.35 s"
    assert formatting.format_seconds(10) == "10 s"
    assert formatting.format_ratio(Decimal("3.0000")) == "3\N{MULTIPLICATION SIGN}"
    assert formatting.format_ratio(2.456) == "2.46\N{MULTIPLICATION SIGN}"
    assert formatting.format_number(Decimal("0.717949")) == "0.7179"
    for fmt in (formatting.format_rate, formatting.format_seconds, formatting.format_ratio):
        assert fmt(None) == "—"

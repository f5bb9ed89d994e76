"""The daily cost report in its three forms: text (email, console), CSV and JSON."""

import csv
import io
import json
from decimal import Decimal

from .selectors import DailyReport, ReportLine

SECTIONS = (
    ("model", "by_model"),
    ("task_type", "by_task_type"),
    ("variant", "by_variant"),
    ("user", "by_user"),
)


def _change(line: ReportLine) -> str:
    change = line.cost_change
    return "n/a" if change is None else f"{change:+.0%}"


def _line_dict(section: str, line: ReportLine) -> dict:
    return {
        "section": section,
        "key": line.key,
        "calls": line.calls,
        "tokens": line.tokens,
        "cost_usd": str(line.cost_usd),
        "unpriced_calls": line.unpriced_calls,
        "avg_7d_calls": round(line.avg_calls, 2),
        "avg_7d_tokens": round(line.avg_tokens, 1),
        "avg_7d_cost_usd": str(line.avg_cost_usd),
        "cost_change_vs_7d": None if line.cost_change is None else round(line.cost_change, 4),
    }


def report_rows(report: DailyReport) -> list[dict]:
    rows = [_line_dict("total", report.total)]
    for section, attribute in SECTIONS:
        rows += [_line_dict(section, line) for line in getattr(report, attribute)]
    return rows


def csv_cell(value):
    # A spreadsheet runs a cell starting with = + - @ as a formula: a username or model name
    # could be made to. Numbers are written as numbers, text is defused with a leading quote.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        try:
            float(value)
        except ValueError:
            return "'" + value
    return value


def report_csv(report: DailyReport) -> str:
    out = io.StringIO()
    rows = report_rows(report)
    writer = csv.DictWriter(out, fieldnames=["day", *rows[0].keys()])
    writer.writeheader()
    for row in rows:
        writer.writerow({"day": report.day.isoformat(), **{k: csv_cell(v) for k, v in row.items()}})
    return out.getvalue()


def report_document(report: DailyReport) -> dict:
    return {
        "day": report.day.isoformat(),
        "history_days": report.history_days,
        "rows": report_rows(report),
    }


def report_json(report: DailyReport) -> str:
    return json.dumps(report_document(report), indent=2)


def _money(value: Decimal) -> str:
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def _count(n: int, noun: str, width: int = 0) -> str:
    """``1 call``, ``2 calls``; with ``width``, the number right-aligned and the noun padded."""
    word = noun if n == 1 else f"{noun}s"
    return f"{n:>{width},} {word:<{len(noun) + 1}}" if width else f"{n:,} {word}"


def report_text(report: DailyReport) -> str:
    t = report.total
    lines = [
        f"AI cost report for {report.day.isoformat()}",
        "",
        f"Total cost: {_money(t.cost_usd)} ({_change(t)} vs the 7-day average "
        f"{_money(t.avg_cost_usd)})",
        f"Calls: {t.calls:,} (7-day average {t.avg_calls:,.1f})",
        f"Tokens: {t.tokens:,} (7-day average {t.avg_tokens:,.0f})",
    ]
    if t.unpriced_calls:
        lines.append(f"Unpriced calls (no price for their model): {t.unpriced_calls:,}")
    if report.history_days < 7:
        days = "day" if report.history_days == 1 else "days"
        lines.append(f"Note: only {report.history_days} of the previous 7 {days} had calls.")
    for section, attribute in SECTIONS:
        entries = getattr(report, attribute)
        if not entries:
            continue
        lines += ["", f"By {section.replace('_', ' ')}:"]
        width = max(len(e.key or "(none)") for e in entries)
        for e in entries:
            if e.unpriced_calls and e.unpriced_calls == e.calls:
                cost = "unpriced"
            else:
                cost = _money(e.cost_usd)
            line = (
                f"  {(e.key or '(none)').ljust(width)}  {cost:>12}  "
                f"{_count(e.calls, 'call', 7)}  {_count(e.tokens, 'token', 11)}  "
                f"{_change(e):>6} vs 7d"
            )
            if e.unpriced_calls and e.unpriced_calls != e.calls:
                line += f"  ({e.unpriced_calls:,} unpriced)"
            lines.append(line)
    return "\n".join(lines) + "\n"

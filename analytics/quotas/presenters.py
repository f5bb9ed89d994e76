"""Rows of the quotas overview page: usage against each limit, and how close it is."""

QUOTA_NEAR = 0.8


def quota_state(fraction: float | None) -> str:
    if fraction is None:
        return ""
    return "over" if fraction >= 1 else "near" if fraction >= QUOTA_NEAR else "ok"


def quota_cells(row: dict, limits) -> tuple[list[dict], float]:
    """The row's cells (used / allowed, percent, state) and its largest fraction of a limit."""
    cells, worst = [], 0.0
    for label, used, allowed, money in (
        ("Tokens today", row["tokens_today"], limits.tokens_per_day, False),
        ("Cost today", row["cost_today"], limits.cost_per_day_usd, True),
        ("Cost this month", row["cost_month"], limits.cost_per_month_usd, True),
    ):
        if allowed is None:
            fraction, shown = None, "no limit"
        else:
            fraction = float(used) / float(allowed) if allowed else 1.0
            shown = f"${allowed:,.2f}" if money else f"{allowed:,}"
            worst = max(worst, fraction)
        cells.append(
            {
                "label": label,
                "used": f"${used:,.4f}" if money else f"{used:,}",
                "allowed": shown,
                "percent": None if fraction is None else round(fraction * 100),
                "state": quota_state(fraction),
            }
        )
    return cells, worst


def user_rows(rows: list[dict], limits: dict, *, only_near: bool) -> list[dict]:
    """One entry per user with their cells, the users closest to a limit first."""
    users = []
    for row in rows:
        cells, worst = quota_cells(row, limits[row["user"].pk])
        if only_near and worst < QUOTA_NEAR:
            continue
        users.append(
            {
                "user": row["user"],
                "exempt": limits[row["user"].pk].exempt,
                "cells": cells,
                "state": quota_state(worst),
                "worst": worst,
            }
        )
    users.sort(key=lambda u: -u["worst"])
    return users

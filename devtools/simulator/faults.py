"""The fault grammar of the simulator: ``[sim:status=429,retry_after=1]`` markers and --fault.

See devtools/simulator/__init__.py for the grammar's table.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

DEFAULT_FAULT_AFTER = 3

MARKER_RE = re.compile(r"\[sim:([^\]]*)\]")

_FLAGS = ("stall", "disconnect", "reset", "malformed", "no_finish", "no_usage", "nul", "title")


# --- Fault grammar --------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """One parsed fault spec; the default instance means "behave normally"."""

    status: int | None = None
    retry_after: str | None = None
    fail_first: int | None = None
    stall: bool = False
    disconnect: bool = False
    reset: bool = False
    malformed: bool = False
    no_finish: bool = False
    no_usage: bool = False
    nul: bool = False
    title: bool = False
    after: int = DEFAULT_FAULT_AFTER
    ttft_ms: int | None = None
    tps: float | None = None
    tokens: int | None = None


def _int_value(key: str, raw: str, minimum: int, maximum: int | None = None) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{key} must be an integer, not {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise ValueError(f"{key} must be {bound}, not {value}")
    return value


def _positive_float(key: str, raw: str, *, allow_zero: bool) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{key} must be a number, not {raw!r}") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{key} must be a {'non-negative' if allow_zero else 'positive'} number")
    return value


def parse_fault(spec: str) -> Fault:
    """Parse ``status=429,retry_after=1``-style specs; raise ValueError naming the problem."""
    values: dict[str, Any] = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        key, sep, raw = (s.strip() for s in item.partition("="))
        if key in values:
            raise ValueError(f"{key} is given twice")
        if not sep:
            if key not in _FLAGS:
                raise ValueError(f"unknown fault flag {key!r}")
            values[key] = True
        elif key == "status":
            values[key] = _int_value(key, raw, 400, 599)
        elif key == "retry_after":
            _positive_float(key, raw, allow_zero=True)
            values[key] = raw  # sent verbatim, so "1.5" stays "1.5"
        elif key == "fail_first":
            values[key] = _int_value(key, raw, 1)
        elif key == "after":
            values[key] = _int_value(key, raw, 0)
        elif key == "ttft":
            values["ttft_ms"] = _int_value(key, raw, 0, 600_000)
        elif key == "tps":
            values[key] = _positive_float(key, raw, allow_zero=False)
        elif key == "tokens":
            values[key] = _int_value(key, raw, 1, 100_000)
        elif key in _FLAGS:
            raise ValueError(f"{key} is a flag and takes no value")
        else:
            raise ValueError(f"unknown fault key {key!r}")
    fault = Fault(**values)
    _check_combinations(fault, values)
    return fault


def _check_combinations(fault: Fault, given: dict[str, Any]) -> None:
    if fault.status is None and ("retry_after" in given or "fail_first" in given):
        raise ValueError("retry_after and fail_first need status=CODE")
    if fault.stall and fault.disconnect:
        raise ValueError("stall and disconnect cannot be combined")
    if fault.reset and not fault.disconnect:
        raise ValueError("reset needs disconnect")
    if "after" in given and not (fault.stall or fault.disconnect or fault.malformed or fault.nul):
        raise ValueError("after needs stall, disconnect, malformed or nul")


def extract_marker(text: str) -> tuple[str, str | None]:
    """Split a message into its text without ``[sim:...]`` markers and their joined spec."""
    specs = MARKER_RE.findall(text)
    if not specs:
        return text, None
    cleaned = MARKER_RE.sub(" ", text)
    # Markers leave double spaces behind; tidy them without touching newlines (code blocks).
    cleaned = re.sub(r"[ \t]{2,}", " ", cleaned).strip()
    return cleaned, ",".join(specs)

"""What the benchmarks share: nearest-rank statistics, the machine and the git state they ran on,
and URLs with their passwords hidden."""

import math
import os
import platform
import subprocess
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[1]


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile: the value at index ceil(p/100 * n) - 1 of the sorted values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(p / 100 * len(ordered)), 1) - 1]


def summary(values: list[float], points: tuple[int, ...] = (50, 90, 99)) -> dict:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "min": min(values),
        **{f"p{p}": percentile(values, p) for p in points},
        "max": max(values),
        "mean": sum(values) / len(values),
    }


def redact(url: str) -> str:
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def machine() -> dict:
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip()
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    return {
        "nproc": int(nproc) if nproc.isdigit() else os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def git_state() -> dict:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return done.stdout.rstrip()  # not strip(): porcelain lines start with a space

    changed = [line[3:] for line in git("status", "--porcelain").splitlines() if line.strip()]
    return {"head": git("rev-parse", "--short", "HEAD"), "changed_files": changed}

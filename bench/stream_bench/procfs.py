"""What the streaming benchmark reads of a process and of the machine, from /proc."""

from __future__ import annotations

import asyncio
import os
import time
from typing import NamedTuple

from bench.stream_bench.clients import OpenCount

CLK_TCK = os.sysconf("SC_CLK_TCK")
SAMPLE_EVERY = 0.05


Pids = int | tuple[int, ...]  # one process, or several (the app on --processes K): summed


def _each(pid: Pids) -> tuple[int, ...]:
    return pid if isinstance(pid, tuple) else (pid,)


def cpu_seconds(pid: Pids) -> float:
    """utime + stime of a process (or the sum of several), in seconds."""
    total = 0
    for one in _each(pid):
        with open(f"/proc/{one}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def status(pid: Pids) -> tuple[int, int]:
    """VmRSS in bytes and the number of threads, from /proc/<pid>/status (summed)."""
    rss = threads = 0
    for one in _each(pid):
        with open(f"/proc/{one}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1]) * 1024
                elif line.startswith("Threads:"):
                    threads += int(line.split()[1])
    return rss, threads


def system_busy() -> float:
    """CPU seconds the whole machine spent busy (all cores, /proc/stat), idle and steal excluded."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq = (
            int(x) for x in f.readline().split()[1:8]
        )
    return (user + nice + system + irq + softirq) / CLK_TCK


def listen_overflows() -> int | None:
    """The kernel's count of connections dropped because a listen backlog was full."""
    try:
        with open("/proc/net/netstat") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for head, values in zip(lines[::2], lines[1::2], strict=False):
        if head.startswith("TcpExt:"):
            row = dict(zip(head.split()[1:], values.split()[1:], strict=False))
            return int(row["ListenOverflows"]) if "ListenOverflows" in row else None
    return None


class Sample(NamedTuple):
    t: float
    cpu_s: float
    rss: int
    threads: int
    open: int


class Sampler:
    """Samples a process's CPU seconds, RSS and threads (and the open streams) in the background."""

    def __init__(self, pid: Pids, count: OpenCount) -> None:
        self.pid = pid
        self.count = count
        self.samples: list[Sample] = []
        self._task: asyncio.Task | None = None

    def sample(self) -> Sample:
        row = Sample(time.perf_counter(), cpu_seconds(self.pid), *status(self.pid), self.count.now)
        self.samples.append(row)
        return row

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(SAMPLE_EVERY)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def peak(self) -> Sample:
        """The sample with the most streams open (the largest RSS among those)."""
        return max(self.samples, key=lambda row: (row.open, row.rss))


async def settle(pid: Pids, *, quiet: float = 0.3, times: int = 3, limit: float = 30.0) -> None:
    """Wait until the process used (almost) no CPU in ``times`` intervals of ``quiet`` seconds.

    Nearly a second of quiet: a conversation title is one more upstream call after the reply,
    and the app only waits for it meanwhile.
    """
    deadline = time.monotonic() + limit
    last, calm = cpu_seconds(pid), 0
    while time.monotonic() < deadline and calm < times:
        await asyncio.sleep(quiet)
        now = cpu_seconds(pid)
        calm = calm + 1 if now - last <= 1.5 / CLK_TCK else 0
        last = now

"""CPU and memory of the processes under test, from /proc (Linux): descendants of a pid, CPU ticks and
RSS per sample, and a sampler thread that also records the target's progress (lag)."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

#: Sampling period of lag, CPU and RSS, s.
SAMPLE_EVERY_S = 0.5
CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_children(pid: int) -> list[int]:
    """All descendants of ``pid`` (from /proc/*/stat ppid fields)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def proc_sample(pid: int) -> tuple[int, int] | None:
    """``(utime+stime in clock ticks, VmRSS in KiB)`` of ``pid``, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
        rss_kb = 0
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    rss_kb = int(line.split()[1])
                    break
        return ticks, rss_kb
    except (OSError, ValueError, IndexError):
        return None


def proc_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


class Sampler(threading.Thread):
    """Samples CPU ticks and RSS of process groups, and produced/processed counts, every SAMPLE_EVERY_S."""

    def __init__(self, groups: dict[str, list[int]], progress: list[int], redis_client, stats_key: str) -> None:
        super().__init__(daemon=True)
        self.groups = groups
        self.progress = progress
        self.redis = redis_client
        self.stats_key = stats_key
        self.stop_event = threading.Event()
        self.t0 = time.monotonic()
        self.first = self._ticks()
        self.peak_kb = {g: 0 for g in groups}
        self.lag: list[tuple[float, int]] = []
        self.processed: list[tuple[float, int]] = []

    def _ticks(self) -> dict[str, int]:
        out = {}
        for group, pids in self.groups.items():
            total = 0
            rss = 0
            for pid in pids:
                s = proc_sample(pid)
                if s:
                    total += s[0]
                    rss += s[1]
            out[group] = total
            if hasattr(self, "peak_kb"):
                self.peak_kb[group] = max(self.peak_kb[group], rss)
        return out

    def processed_now(self) -> int:
        return int(self.redis.hget(self.stats_key, "events") or 0)

    def run(self) -> None:
        while not self.stop_event.wait(SAMPLE_EVERY_S):
            t = time.monotonic() - self.t0
            self._ticks()
            done = self.processed_now()
            self.processed.append((t, done))
            self.lag.append((t, self.progress[0] - done))

    def finish(self) -> dict:
        self.stop_event.set()
        self.join()
        wall = time.monotonic() - self.t0
        last = self._ticks()
        return {"wall_s": round(wall, 2),
                "cpu_pct": {g: round(100.0 * (last[g] - self.first[g]) / CLK_TCK / wall, 1) for g in self.groups},
                "peak_rss_mb": {g: round(kb / 1024.0, 1) for g, kb in self.peak_kb.items()}}


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""


def load_avg_1m() -> float:
    """The 1-minute load average of the machine (its noise, recorded next to every figure)."""
    return round(os.getloadavg()[0], 2)

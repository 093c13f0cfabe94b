"""Helpers shared by the benchmarks: one pinned core, interleaved rounds, medians."""

from __future__ import annotations

import contextlib
import math
import os
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass


def pin_one_core() -> str:
    """Run on a single core (the last one), so figures are per core."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[-1]})
        return f"pinned to CPU {cpus[-1]} of {len(cpus)}"
    except (AttributeError, OSError):
        return "not pinned"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def interleaved(cases: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median wall time (s) of each case, the cases run in turn in every round."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def rss_mb() -> float:
    """Resident set size of this process, MB (from /proc/self/status)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


#: the repository's top folder (git commands run there)
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@contextlib.contextmanager
def checkout(rev: str):
    """A detached worktree of git revision ``rev`` in a temporary directory, removed
    afterwards: run that revision's code side by side with the current tree."""
    tmp = tempfile.mkdtemp(prefix="cabinwatch-before-")
    path = os.path.join(tmp, "tree")
    subprocess.run(
        ["git", "worktree", "add", "--detach", path, rev],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    )
    try:
        yield path
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", path], cwd=REPO_ROOT, capture_output=True
        )
        subprocess.run(["git", "worktree", "prune"], cwd=REPO_ROOT, capture_output=True)
        with contextlib.suppress(OSError):
            os.rmdir(tmp)


@dataclass(frozen=True)
class PollRun:
    """One flat-out run of a polled driver: transactions and samples per second (wall),
    CPU microseconds per transaction (this process) and bytes on the line per
    transaction, both ways."""

    tx_per_s: float
    samples_per_s: float
    cpu_us: float
    bytes_per_tx: float


def poll_flat_out(driver, run_s: float = 3.0, warm_s: float = 0.0) -> PollRun:
    """Start ``driver`` (a ``PolledDriver`` asked for more than its line carries),
    wait for its first 10 samples (at most 10 s) and ``warm_s``, then count
    ``run_s`` seconds of its transactions; the driver is stopped on return."""
    with driver:
        t_end = time.monotonic() + 10.0
        while driver.health().bus.samples < 10 and time.monotonic() < t_end:
            driver.drain()
            time.sleep(0.01)
        deadline = time.monotonic() + warm_s
        while time.monotonic() < deadline:
            driver.drain()
            time.sleep(0.02)
        h0 = driver.health()
        w0, c0 = time.monotonic(), time.process_time()
        while time.monotonic() - w0 < run_s:
            driver.drain()
            time.sleep(0.02)
        h1 = driver.health()
        wall, cpu = time.monotonic() - w0, time.process_time() - c0
    tx = h1.bus.transactions - h0.bus.transactions
    if not tx:
        return PollRun(0.0, 0.0, math.nan, math.nan)
    on_line = (h1.bytes_in - h0.bytes_in) + (h1.bytes_out - h0.bytes_out)
    samples = h1.bus.samples - h0.bus.samples
    return PollRun(tx / wall, samples / wall, cpu / tx * 1e6, on_line / tx)

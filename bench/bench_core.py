"""Monitor core: one tick of the whole core, the dP/dt step alone, resident memory.

``.venv/bin/python -m bench core`` (or ``python -m bench.bench_core``).

* tick: ingest one batch (one SAMPLE per channel, shuffled as on a bus) and run
  ``tick``, 10 Hz loop, 4 windows (10 s, 60 s, 600 s, 2 h), channels in
  volumes of 4.  The full estimation (health, fusion, leak alarms) runs at
  1 Hz, every tenth tick; the median tick is the 10 Hz path (ingest, raw tier,
  dP/dt of the raw-tier windows, rapid-depressurization alarm).  The mean and
  the 1 Hz tick are printed too.
* dP/dt step: what every tick does, push one slot into the raw tier (running
  sums of its windows) and the pressure slopes of the rapid-depressurization
  windows; and, separately, refitting every window of every tier (pressure
  and temperature slopes with standard errors), which the 1 Hz estimation does.
* memory: a fresh process with a 64-channel core at 10 Hz and a 6-hour longest
  window, every buffer page touched, after 2000 ticks: VmRSS and VmHWM.
"""

from __future__ import annotations

import platform
import subprocess
import sys
import time

import numpy as np

from drivers.frames import SAMPLE_RECORD_DTYPE
from firmware_host.config import MonitorConfig, SensorConfig, VolumeConfig
from firmware_host.core import MonitorCore


def make_core(channels: int, windows=(10.0, 60.0, 600.0, 7200.0)) -> MonitorCore:
    cfg = MonitorConfig(
        volumes=tuple(VolumeConfig(f"v{i}", 100.0) for i in range(max(1, channels // 4))),
        sensors=tuple(
            SensorConfig("bus0", a + 1, f"v{a % max(1, channels // 4)}", 10.0)
            for a in range(channels)
        ),
        windows_s=tuple(windows),
        rate_hz=10.0,
    )
    return MonitorCore(cfg)


def batches(channels: int, n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        r = np.zeros(channels, dtype=SAMPLE_RECORD_DTYPE)
        r["addr"] = rng.permutation(np.arange(1, channels + 1))
        r["t_us"] = k * 100_000 + 1_000 + r["addr"].astype(np.uint64) * 1000
        t = k * 0.1
        r["pressure_pa"] = 101325 + 300 * np.sin(t / 878.5) + rng.normal(0, 3, channels)
        r["temperature_c"] = 22.0 + 0.8 * np.sin(t / 878.5) + rng.normal(0, 0.02, channels)
        out.append(r)
    return out


def time_ticks(channels: int, warm: int = 1500, n: int = 3000) -> dict:
    core = make_core(channels)
    bs = batches(channels, warm + n)
    for k in range(warm):
        core.ingest("bus0", bs[k], k * 0.1 + 0.05)
        core.tick(k * 0.1 + 0.1)
    fast, slow = [], []
    for k in range(warm, warm + n):
        now = k * 0.1 + 0.1
        is_slow = now >= core._next_slow_s - 1e-9
        t0 = time.perf_counter_ns()
        core.ingest("bus0", bs[k], k * 0.1 + 0.05)
        core.tick(now)
        dt = (time.perf_counter_ns() - t0) / 1e3
        (slow if is_slow else fast).append(dt)
    allt = np.array(fast + slow)
    return {
        "median_us": float(np.median(allt)),
        "mean_us": float(allt.mean()),
        "p99_us": float(np.percentile(allt, 99)),
        "slow_tick_median_us": float(np.median(slow)),
    }


def time_dpdt(channels: int, n: int = 5000) -> tuple[float, float]:
    """(per tick: raw-tier push + pressure slopes of the rapid-depress windows,
    all four windows refit from their sums), medians in us."""
    core = make_core(channels)
    tier = core.tiers[0]
    rng = np.random.default_rng(1)
    t = np.zeros(channels)
    p = 101325 + rng.normal(0, 3, (n, channels))
    temp = np.full(channels, 22.0, np.float32)
    ones = np.ones(channels, np.float32)
    step, full = [], []
    for k in range(n):
        t0 = time.perf_counter_ns()
        tier.push(t + 0.1 * k, p[k], temp, ones)
        tier.pressure_slopes(core._fast_local, core._em_min_slots)
        t1 = time.perf_counter_ns()
        for tr in core.tiers:
            if len(tr.window_slots):
                tr.fit()
        t2 = time.perf_counter_ns()
        step.append((t1 - t0) / 1e3)
        full.append((t2 - t1) / 1e3)
    return float(np.median(step[500:])), float(np.median(full[500:]))


def memory_child() -> None:
    """Run in a fresh process: print VmRSS and VmHWM in kB."""
    core = make_core(64, windows=(10.0, 60.0, 600.0, 21600.0))
    for tier in core.tiers:  # touch every page of the ring buffer
        for arr in (tier.t, tier.p, tier.temp, tier.n):
            arr.fill(0)
    bs = batches(64, 2000)
    for k in range(2000):
        core.ingest("bus0", bs[k], k * 0.1 + 0.05)
        core.tick(k * 0.1 + 0.1)
    status = open("/proc/self/status").read()
    vals = {
        ln.split(":")[0]: int(ln.split()[1])
        for ln in status.splitlines()
        if ln.startswith(("VmRSS", "VmHWM"))
    }
    print(vals["VmRSS"], vals["VmHWM"], core.memory_bytes)


def memory() -> tuple[float, float, float]:
    out = subprocess.run(
        [sys.executable, "-c", "from bench.bench_core import memory_child; memory_child()"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    rss, hwm, ring = (float(x) for x in out)
    return rss / 1024, hwm / 1024, ring / 2**20


def main() -> dict:
    print(
        f"machine: {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, numpy {np.__version__}"
    )
    res = {}
    for c in (16, 64):
        r = time_ticks(c)
        res[f"tick_{c}"] = r
        print(
            f"tick, {c:2d} channels: median {r['median_us']:.0f} us, mean {r['mean_us']:.0f} us, "
            f"p99 {r['p99_us']:.0f} us, 1 Hz full-estimation tick median "
            f"{r['slow_tick_median_us']:.0f} us"
        )
    for c in (16, 64):
        d, f = time_dpdt(c)
        res[f"dpdt_{c}"] = d
        print(
            f"dP/dt step, {c:2d} channels: per tick (raw-tier push + rapid-depress slopes) "
            f"median {d:.0f} us; all windows refit (p and T, slopes and errors) {f:.0f} us"
        )
    rss, hwm, ring = memory()
    res["rss_mb"] = rss
    print(
        f"memory, 64 channels at 10 Hz, 6-h window: VmRSS {rss:.1f} MiB, VmHWM {hwm:.1f} MiB "
        f"(ring buffer {ring:.1f} MiB)"
    )
    return res


if __name__ == "__main__":
    main()

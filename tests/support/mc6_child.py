"""MC-6, run in a fresh process: the resident memory of a monitor core filled to its keep times.

``python -m tests.support.mc6_child`` prints one JSON object (bytes):

* ``rss_start``: VmRSS with everything imported, before the core is built;
* ``rss_full``: VmRSS once every tier has wrapped (raw 60 s, 1-s tier 1 h, 60-s tier
  24 h: every page of the ring buffer written) and an hour of one tick a minute has
  run on the full buffer;
* ``rss_end``: VmRSS two simulated hours later (it must not grow any more);
* ``hwm``: VmHWM, the process's peak resident size; ``ring_bytes``: the tiers' arrays;
  ``tier_heads``/``tier_lengths``: slots pushed into each tier by the time of
  ``rss_full``, and the slots each holds.

The configuration is the requirement's: 64 sensors at 10 Hz on 16 volumes, windows up
to 6 h, a 10 Hz loop.  The clock is simulated and the ticks are pushed as fast as they
run: 10 Hz ticks with a sample of every channel for twice the raw tier's keep time,
then one tick a day later (the core pushes a slot for every 1-s and 60-s period that
passed, as after any gap, so every tier wraps), then one tick a minute with a sample
of every channel.
"""

from __future__ import annotations

import json

import numpy as np

from drivers.frames import SAMPLE_RECORD_DTYPE
from firmware_host.config import MonitorConfig, SensorConfig, VolumeConfig
from firmware_host.core import MonitorCore

CHANNELS = 64


def config() -> MonitorConfig:
    """The MC-6 configuration (as test_core_groups.py's shape check builds it)."""
    return MonitorConfig(
        volumes=tuple(VolumeConfig(f"v{i}", 100.0) for i in range(16)),
        sensors=tuple(SensorConfig("bus0", a + 1, f"v{a % 16}", 10.0) for a in range(CHANNELS)),
        windows_s=(10.0, 60.0, 600.0, 21600.0),
        rate_hz=10.0,
    )


def vm(field: str) -> int:
    """``VmRSS`` or ``VmHWM`` of this process, bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


class Feed:
    """One SAMPLE record per channel at a time, on the sensors' own clocks."""

    def __init__(self, seed: int = 6):
        self.rng = np.random.default_rng(seed)
        self.rec = np.zeros(CHANNELS, dtype=SAMPLE_RECORD_DTYPE)
        self.rec["addr"] = np.arange(1, CHANNELS + 1)
        self.boot_us = self.rec["addr"].astype(np.uint64) * 1000
        self.seq = 0

    def at(self, t_s: float) -> np.ndarray:
        r = self.rec
        r["seq"] = self.seq % 65536
        self.seq += 1
        r["t_us"] = np.uint64(round(t_s * 1e6)) + self.boot_us
        r["pressure_pa"] = 101325 + 300 * np.sin(t_s / 878.5) + self.rng.normal(0, 3, CHANNELS)
        r["temperature_c"] = 22.0 + 0.8 * np.sin(t_s / 878.5) + self.rng.normal(0, 0.02, CHANNELS)
        return r.copy()


def run(core: MonitorCore, feed: Feed, t0_s: float, t1_s: float, period_s: float) -> float:
    """Ticks every ``period_s`` from ``t0_s`` (exclusive) to ``t1_s``; returns the last time."""
    n = int(round((t1_s - t0_s) / period_s))
    t = t0_s
    for k in range(1, n + 1):
        t = t0_s + k * period_s
        core.ingest("bus0", feed.at(t - 0.05), t - 0.05)
        core.tick(t)
    return t


def main() -> None:
    np.zeros(1 << 16).sum()  # numpy's first-use allocations belong to the baseline
    rss_start = vm("VmRSS")
    cfg = config()
    est = cfg.estimator
    core = MonitorCore(cfg)
    feed = Feed()
    t = run(core, feed, 0.0, 2 * est.raw_keep_s, 1.0 / cfg.rate_hz)
    gap_s = max(est.mid_keep_s, est.slow_keep_s) + 60.0
    t = run(core, feed, t, t + gap_s, gap_s)
    t = run(core, feed, t, t + 3600.0, 60.0)
    heads = [tier.head for tier in core.windows.tiers]
    rss_full = vm("VmRSS")
    t = run(core, feed, t, t + 2 * 3600.0, 60.0)
    print(
        json.dumps(
            {
                "rss_start": rss_start,
                "rss_full": rss_full,
                "rss_end": vm("VmRSS"),
                "hwm": vm("VmHWM"),
                "ring_bytes": core.memory_bytes,
                "tier_heads": heads,
                "tier_lengths": [tier.length for tier in core.windows.tiers],
                "sim_s": t,
            }
        )
    )


if __name__ == "__main__":
    main()

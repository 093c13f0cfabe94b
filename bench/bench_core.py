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

``python -m bench.bench_core --before REV`` also times the ring buffer and the
core's ``ingest``/``_ingest_round``/``tick`` (with ``_reset_channels`` and
``_clear_history``) as they were at git revision ``REV`` (read with ``git
show``), interleaved tick by tick with the current ones in the same process,
so a before/after comparison sees the same machine load.  The rest of the core
(slow tick, alarms) is the current code in both.

The process pins itself to one core (figures are per core).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
import types

import numpy as np

from bench.common import pin_one_core
from drivers.frames import SAMPLE_RECORD_DTYPE
from firmware_host.config import MonitorConfig, SensorConfig, VolumeConfig
from firmware_host.core import MonitorCore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: The methods of MonitorCore that ``--before`` takes from the old revision.
BEFORE_METHODS = ("ingest", "_ingest_round", "_clear_history", "_reset_channels", "tick")


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


def load_before(rev: str) -> tuple[type, type]:
    """(MonitorCore class, Tier class) with the ring buffer and the ingest/tick
    methods of git revision ``rev``; everything else is the current core."""
    mods = {}
    for name in ("ringbuffer", "core"):
        path = f"firmware_host/{name}.py"
        src = subprocess.run(
            ["git", "show", f"{rev}:{path}"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
        mod = types.ModuleType(f"_before_{name}")
        sys.modules[mod.__name__] = mod  # dataclasses look their module up
        exec(compile(src, f"{rev}:{path}", "exec"), mod.__dict__)
        mods[name] = mod
    old_tier = mods["ringbuffer"].Tier
    old_methods = {m: getattr(mods["core"].MonitorCore, m) for m in BEFORE_METHODS}

    class BeforeCore(MonitorCore):
        def __init__(self, config):
            super().__init__(config)
            self.tiers = [
                old_tier(
                    t.n_channels,
                    t.period_s,
                    t.length,
                    list(t.window_slots),
                    t.t_ref_k,
                    t.rebase_every,
                )
                for t in self.tiers
            ]

    for m, fn in old_methods.items():
        setattr(BeforeCore, m, fn)
    return BeforeCore, old_tier


def _tick_stats(fast: list[float], slow: list[float]) -> dict:
    allt = np.array(fast + slow)
    return {
        "median_us": float(np.median(allt)),
        "mean_us": float(allt.mean()),
        "p99_us": float(np.percentile(allt, 99)),
        "slow_tick_median_us": float(np.median(slow)),
    }


def time_ticks(channels: int, warm: int = 1500, n: int = 3000, before=None) -> dict:
    """Tick timings (us) of the current core, and with ``before`` (a core class)
    also of that one, the two interleaved tick by tick (alternating which goes
    first): ``{"after": stats, "before": stats}``, else the current stats."""
    cores = {"after": make_core(channels)}
    if before is not None:
        cores["before"] = before(cores["after"].config)
    bs = batches(channels, warm + n)
    for core in cores.values():
        for k in range(warm):
            core.ingest("bus0", bs[k], k * 0.1 + 0.05)
            core.tick(k * 0.1 + 0.1)
    times = {name: ([], []) for name in cores}
    order = list(cores.items())
    for k in range(warm, warm + n):
        now = k * 0.1 + 0.1
        for name, core in order if k % 2 else order[::-1]:
            is_slow = now >= core._next_slow_s - 1e-9
            t0 = time.perf_counter_ns()
            core.ingest("bus0", bs[k], k * 0.1 + 0.05)
            core.tick(now)
            dt = (time.perf_counter_ns() - t0) / 1e3
            times[name][1 if is_slow else 0].append(dt)
    stats = {name: _tick_stats(*ts) for name, ts in times.items()}
    return stats if before is not None else stats["after"]


def time_dpdt(channels: int, n: int = 5000, before=None) -> dict:
    """Medians (us) of the per-tick step (raw-tier push + pressure slopes of the
    rapid-depress windows) and of refitting all four windows from their sums.

    The inputs of each push are made before the clock starts.  With ``before``
    (a Tier class) its push and slopes are timed too, on a tier of the same
    shape fed the same slots, interleaved push by push: keys ``step_us``,
    ``refit_us`` and ``step_before_us``."""
    core = make_core(channels)
    tier = core.tiers[0]
    tiers = {"after": tier}
    if before is not None:
        tiers["before"] = before(
            channels,
            tier.period_s,
            tier.length,
            list(tier.window_slots),
            tier.t_ref_k,
            tier.rebase_every,
        )
    rng = np.random.default_rng(1)
    t = 0.1 * np.arange(n)[:, None] + np.zeros(channels)
    p = 101325 + rng.normal(0, 3, (n, channels))
    temp = np.full(channels, 22.0, np.float32)
    ones = np.ones(channels, np.float32)
    step = {name: [] for name in tiers}
    full = []
    order = list(tiers.items())
    for k in range(n):
        for name, tr in order if k % 2 else order[::-1]:
            tk, pk = t[k], p[k]
            t0 = time.perf_counter_ns()
            tr.push(tk, pk, temp, ones)
            tr.pressure_slopes(core._fast_local, core._em_min_slots)
            step[name].append((time.perf_counter_ns() - t0) / 1e3)
        t1 = time.perf_counter_ns()
        for tr in core.tiers:
            if len(tr.window_slots):
                tr.fit()
        full.append((time.perf_counter_ns() - t1) / 1e3)
    out = {
        "step_us": float(np.median(step["after"][500:])),
        "refit_us": float(np.median(full[500:])),
    }
    if before is not None:
        out["step_before_us"] = float(np.median(step["before"][500:]))
    return out


def memory_child() -> None:
    """Run in a fresh process: print VmRSS and VmHWM in kB."""
    core = make_core(64, windows=(10.0, 60.0, 600.0, 21600.0))
    for tier in core.tiers:  # touch every page of the ring buffer and of the kept sum terms
        for arr in (tier.t, tier.p, tier.temp, tier.n, tier.contrib):
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


def _tick_line(label: str, r: dict) -> str:
    return (
        f"{label}: median {r['median_us']:.0f} us, mean {r['mean_us']:.0f} us, "
        f"p99 {r['p99_us']:.0f} us, 1 Hz full-estimation tick median "
        f"{r['slow_tick_median_us']:.0f} us"
    )


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m bench.bench_core")
    ap.add_argument("--before", metavar="REV", help="also time this git revision's ingest/tick")
    args = ap.parse_args([] if argv is None else argv)
    print(
        f"machine: {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, numpy {np.__version__}; {pin_one_core()}"
    )
    before_core = before_tier = None
    if args.before:
        before_core, before_tier = load_before(args.before)
    res = {}
    for c in (16, 64):
        r = time_ticks(c, before=before_core)
        if before_core is not None:
            res[f"tick_{c}_before"] = r["before"]
            print(_tick_line(f"tick, {c:2d} channels, before ({args.before})", r["before"]))
            r = r["after"]
        res[f"tick_{c}"] = r
        print(_tick_line(f"tick, {c:2d} channels", r))
    for c in (16, 64):
        d = time_dpdt(c, before=before_tier)
        res[f"dpdt_{c}"] = d["step_us"]
        extra = ""
        if before_tier is not None:
            res[f"dpdt_{c}_before"] = d["step_before_us"]
            extra = f" (before: {d['step_before_us']:.0f} us)"
        print(
            f"dP/dt step, {c:2d} channels: per tick (raw-tier push + rapid-depress slopes) "
            f"median {d['step_us']:.0f} us{extra}; all windows refit (p and T, slopes and "
            f"errors) {d['refit_us']:.0f} us"
        )
    rss, hwm, ring = memory()
    res["rss_mb"] = rss
    print(
        f"memory, 64 channels at 10 Hz, 6-h window: VmRSS {rss:.1f} MiB, VmHWM {hwm:.1f} MiB "
        f"(ring buffer {ring:.1f} MiB)"
    )
    return res


if __name__ == "__main__":
    main(sys.argv[1:])

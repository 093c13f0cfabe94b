"""One side of the monitor-core benchmark: a process that times core cases on request.

Run by ``bench.bench_core`` as ``python bench/core_worker.py`` with
``PYTHONPATH`` pointing at the tree to measure (the current one, or a checkout
of an older revision): this file is run as a script, so ``firmware_host``
comes from that tree, while the measuring code here is the same on both sides.
It only uses what every revision of the core has (``MonitorCore(config)``,
``ingest``, ``tick``, the raw tier's ``push`` and ``pressure_slopes``).

Protocol (one JSON object per line): the parent writes ``{"case": NAME,
"n": N}``; the worker runs the next ``N`` steps of that case (its state goes on
from round to round) and answers ``{"us": [...]}`` with each step's time in
microseconds (``{"us": [...], "slow": [...]}`` for tick cases: which steps ran
the full estimation).  ``{"case": "setup", ...}`` builds the cases first and
``{"quit": true}`` ends.  With ``--memory`` it prints the resident memory of
a fresh core instead (see ``memory``).  The inputs are synthetic and seeded: both sides see
the same samples.

Cases:

* ``slow``: the configuration derived from the ``nominal`` scenario (16
  sensors at 1 Hz on two links, 8 volumes, windows 10 s to 2 h, 1 Hz loop,
  without a quiet period where the revision has one: the full estimation
  every tick), fed a 300 Pa swing and a slow fall; a step is ``ingest`` of
  both links' batches + ``tick``.
* ``quiet``: that configuration with its quiet period, fed no fall and the
  pressure swing the gas law gives the 0.8 K temperature swing, read by the
  temperature channels 19.5 s late (the configuration's lag): a quiet
  station, whose full estimation runs every tenth tick once it has settled
  (the ``slow`` case's input reads as a leak of about 20 kg/day).
* ``fast64``: 64 channels at 10 Hz in volumes of four, windows 10 s, 60 s,
  600 s and 2 h; a step is ``ingest`` of one shuffled batch + ``tick`` (9 ticks
  in 10 are the fast path).
* ``dpdt64``: the raw tier of that core alone: ``push`` of one slot (made
  before the clock starts) + ``pressure_slopes`` of the rapid-depressurization
  windows.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from drivers.frames import SAMPLE_RECORD_DTYPE
from firmware_host.config import MonitorConfig, SensorConfig, VolumeConfig
from firmware_host.core import MonitorCore


def make_fast_core(channels: int, windows=(10.0, 60.0, 600.0, 7200.0)) -> MonitorCore:
    nv = max(1, channels // 4)
    cfg = MonitorConfig(
        volumes=tuple(VolumeConfig(f"v{i}", 100.0) for i in range(nv)),
        sensors=tuple(SensorConfig("bus0", a + 1, f"v{a % nv}", 10.0) for a in range(channels)),
        windows_s=tuple(windows),
        rate_hz=10.0,
    )
    return MonitorCore(cfg)


def fast_batch(rng, channels: int, k: int) -> np.ndarray:
    """Tick ``k``'s batch at 10 Hz: one SAMPLE per channel, shuffled."""
    r = np.zeros(channels, dtype=SAMPLE_RECORD_DTYPE)
    r["addr"] = rng.permutation(np.arange(1, channels + 1))
    r["t_us"] = k * 100_000 + 1_000 + r["addr"].astype(np.uint64) * 1000
    t = k * 0.1
    r["pressure_pa"] = 101325 + 300 * np.sin(t / 878.5) + rng.normal(0, 3, channels)
    r["temperature_c"] = 22.0 + 0.8 * np.sin(t / 878.5) + rng.normal(0, 0.02, channels)
    return r


def nominal_config():
    # the board package's before the core split, the harness's since; the tree's own
    # first (an installed checkout's ``harness`` may be importable from any tree)
    try:
        from firmware_host.runtime.derive import config_from_scenario
    except ImportError:
        from harness.derive import config_from_scenario
    from hil.scenario import load_scenario

    return config_from_scenario(load_scenario("nominal"))


def every_tick(config):
    """``config`` with the full estimation at every slow period, never at a quiet
    one (revisions without a quiet period: as it is)."""
    import dataclasses

    est = config.estimator
    if not hasattr(est, "quiet_period_s"):
        return config
    return dataclasses.replace(config, estimator=dataclasses.replace(est, quiet_period_s=0.0))


class TickCase:
    """A core fed seeded synthetic batches, one ``ingest`` per link and a ``tick`` a step."""

    def __init__(
        self,
        config,
        rate_hz: float,
        seed: int,
        trend_pa_s: float = 1e-4,
        swing_pa: float = 300.0,
        temp_lag_s: float = 0.0,
    ):
        self.core = MonitorCore(config)
        self.trend_pa_s = trend_pa_s  # a slow fall of every sensor (Pa/s)
        self.swing_pa = swing_pa  # the pressure swing of the 0.8 K temperature swing (Pa)
        self.temp_lag_s = temp_lag_s  # how late the temperature channel reads the swing (s)
        self.dt = 1.0 / rate_hz
        self.rng = np.random.default_rng(seed)
        self.k = 0
        links: dict[str, list] = {}
        for s in config.sensors:
            links.setdefault(s.link, []).append(s)
        self.links = [(name, np.array([s.addr for s in ss])) for name, ss in links.items()]

    def batches(self, k: int) -> list[tuple[str, np.ndarray]]:
        rng = self.rng
        t = k * self.dt
        out = []
        for j, (link, addrs) in enumerate(self.links):
            n = len(addrs)
            r = np.zeros(n, dtype=SAMPLE_RECORD_DTYPE)
            r["addr"] = rng.permutation(addrs)
            # each sensor's clock: its own offset, sampled once per tick
            r["t_us"] = k * round(self.dt * 1e6) + 1_000 + r["addr"].astype(np.uint64) * 1000
            swing = self.swing_pa * np.sin(t / 878.5)
            r["pressure_pa"] = 101325 + swing - self.trend_pa_s * t + j + rng.normal(0, 3, n)
            lagged = 0.8 * np.sin((t - self.temp_lag_s) / 878.5)
            r["temperature_c"] = 22.0 + lagged + rng.normal(0, 0.02, n)
            out.append((link, r))
        return out

    def step(self, timed: bool) -> tuple[float, bool]:
        k = self.k
        self.k += 1
        bs = self.batches(k)
        now = (k + 1) * self.dt
        core = self.core
        due = now >= core._next_slow_s - 1e-9  # (revisions without a quiet period)
        t0 = time.perf_counter_ns()
        for link, r in bs:
            core.ingest(link, r, now - 0.5 * self.dt)
        res = core.tick(now)
        us = (time.perf_counter_ns() - t0) / 1e3
        # did this tick run the full estimation? (the result says when, where it can)
        return us, (res.estimates_t_s == now) if hasattr(res, "estimates_t_s") else due


class DpdtCase:
    """The raw tier of the 64-channel core: push one slot + rapid-depress slopes."""

    def __init__(self, channels: int, seed: int):
        core = make_fast_core(channels)
        if hasattr(core, "windows"):  # the core split into stages
            tier = core.windows.tiers[0]
            self.local, self.min_slots = core.windows._rapid_local, core.windows._rapid_min_slots
        else:
            tier = core.tiers[0]
            self.local, self.min_slots = core._fast_local, core._em_min_slots
        self.tier = tier
        self.rng = np.random.default_rng(seed)
        self.C = channels
        self.k = 0
        self.temp = np.full(channels, 22.0, np.float32)
        self.ones = np.ones(channels, np.float32)

    def step(self, timed: bool) -> tuple[float, bool]:
        tk = 0.1 * self.k + np.zeros(self.C)
        pk = 101325 + self.rng.normal(0, 3, self.C)
        self.k += 1
        tr = self.tier
        t0 = time.perf_counter_ns()
        tr.push(tk, pk, self.temp, self.ones)
        tr.pressure_slopes(self.local, self.min_slots)
        return (time.perf_counter_ns() - t0) / 1e3, False


def memory() -> None:
    """A fresh 64-channel core at 10 Hz with a 6-hour longest window, every page of the
    ring buffer and of the kept sum terms touched, after 2000 ticks: prints VmRSS,
    VmHWM (kB) and the ring buffer's bytes as JSON."""
    core = make_fast_core(64, windows=(10.0, 60.0, 600.0, 21600.0))
    tiers = core.windows.tiers if hasattr(core, "windows") else core.tiers
    for tier in tiers:
        for arr in (tier.t, tier.p, tier.temp, tier.n, tier.contrib):
            arr.fill(0)
    case = TickCase(core.config, 10.0, 0)
    case.core = core
    for _ in range(2000):
        case.step(False)
    with open("/proc/self/status") as fh:
        vals = {
            ln.split(":")[0]: int(ln.split()[1]) for ln in fh if ln.startswith(("VmRSS", "VmHWM"))
        }
    print(json.dumps({"rss_kb": vals["VmRSS"], "hwm_kb": vals["VmHWM"], "ring": core.memory_bytes}))


def build(warm: dict) -> dict:
    cases = {
        "slow": TickCase(every_tick(nominal_config()), 1.0, 0),
        # the gas law's swing for 0.8 K at 22 C, read by the temperature channel with
        # the lag the configuration states (the slow case's 300 Pa reads as a leak)
        "quiet": TickCase(
            nominal_config(),
            1.0,
            0,
            trend_pa_s=0.0,
            swing_pa=101325 * 0.8 / 295.15,
            temp_lag_s=19.5,
        ),
        "fast64": TickCase(make_fast_core(64).config, 10.0, 0),
        "dpdt64": DpdtCase(64, 1),
    }
    for name, case in cases.items():
        for _ in range(int(warm.get(name, 0))):
            case.step(False)
    return cases


def main() -> None:
    if sys.argv[1:] == ["--memory"]:
        memory()
        return
    cases: dict = {}
    for line in sys.stdin:
        req = json.loads(line)
        if req.get("quit"):
            break
        if req["case"] == "setup":
            cases = build(req.get("warm", {}))
            out = {"ok": True}
        else:
            case = cases[req["case"]]
            us, slow = [], []
            for _ in range(int(req["n"])):
                dt, s = case.step(True)
                us.append(dt)
                slow.append(s)
            out = {"us": us, "slow": slow}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()

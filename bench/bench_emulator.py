"""HIL emulator throughput: simulated seconds per wall second, writing the byte stream.

- ``nominal``: 8 modules, 16 sensors at 1 Hz on two links, 30 simulated days (goal:
  under 2 minutes, over 20,000x real time), capture files and the truth file at the
  CLI's default rate for long runs (0.1 Hz);
- ``soyuz-ms09-2018``: 6 sensors at 10 Hz, 30 simulated hours, same outputs.

Runs exactly what ``cabinwatch emulate SCENARIO --out FILE --speed max`` runs.
``CABINWATCH_BENCH_DAYS`` shortens the nominal run (e.g. 1 for a quick look).
The files go to a temporary directory, deleted at the end.
"""

from __future__ import annotations

import os
import tempfile
import time

from hil.emulator import Emulator
from hil.endpoints import FileEndpoint
from hil.runner import run
from hil.scenario import load_scenario
from hil.truth import TruthWriter


def measure(name: str, duration_s: float, truth_rate_hz: float, tmp: str) -> dict:
    scenario = load_scenario(name)
    t0 = time.perf_counter()
    emu = Emulator(scenario, truth_rate_hz=truth_rate_hz)
    eps = {n: FileEndpoint(n, os.path.join(tmp, f"{name}.{n}.bin")) for n in emu.links}
    for ep in eps.values():
        ep.open()
    truth_path = os.path.join(tmp, f"{name}.truth.jsonl")
    with open(truth_path, "w", encoding="utf-8") as fh:
        writer = TruthWriter(fh, scenario, emu.seed, truth_rate_hz) if truth_rate_hz else None
        run(emu, eps, duration_s, speed=None, truth=writer)
        for ep in eps.values():
            ep.close()
    wall = time.perf_counter() - t0
    size = sum(os.path.getsize(ep.path) for ep in eps.values())
    frames = sum(emu.frames_out.values())
    out = {
        "scenario": name,
        "sensors": len(scenario.sensors),
        "sim_s": duration_s,
        "wall_s": wall,
        "speed_x": duration_s / wall,
        "frames": frames,
        "frames_per_s": frames / wall,
        "capture_mb": size / 1e6,
        "truth_mb": os.path.getsize(truth_path) / 1e6,
        "physics_steps": emu.net.steps,
    }
    for ep in eps.values():
        os.remove(ep.path)
    os.remove(truth_path)
    return out


def main() -> None:
    days = float(os.environ.get("CABINWATCH_BENCH_DAYS", "30"))
    with tempfile.TemporaryDirectory(prefix="cabinwatch-bench-") as tmp:
        for name, duration, rate in (
            ("nominal", days * 86400.0, 0.1),
            ("soyuz-ms09-2018", 30 * 3600.0, 0.1),
        ):
            r = measure(name, duration, rate, tmp)
            print(
                f"{r['scenario']:>16}: {r['sensors']} sensors, {r['sim_s'] / 86400:.2f} sim days "
                f"in {r['wall_s']:.1f} s wall = {r['speed_x']:,.0f}x real time; "
                f"{r['frames']:,} frames ({r['frames_per_s'] / 1e6:.2f} M/s), "
                f"capture {r['capture_mb']:,.0f} MB, truth {r['truth_mb']:.0f} MB, "
                f"{r['physics_steps']:,} physics steps",
                flush=True,
            )


if __name__ == "__main__":
    main()

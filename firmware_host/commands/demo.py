"""``cabinwatch demo``: the main job on the built-in emulator.

Provisional form until the emulator and the monitor land: it generates a
transducer byte stream (a slow leak with 1 % line noise), decodes it with the
real decoder and reports what came through and the pressure slope it implies.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from drivers.decoder import StreamDecoder
from drivers.encode import WIRE_SAMPLE_DTYPE, encode_samples


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the monitor against the built-in emulator")
    p.add_argument("--seconds", type=float, default=600.0, help="simulated seconds (default 600)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    rng = np.random.default_rng(2018)
    rate_hz, n_sensors = 10.0, 3
    n = int(args.seconds * rate_hz)
    t = np.arange(n) / rate_hz
    slope_pa_s = -0.045  # a 2 mm hole in 916 m3 (../shared/PHYSICS.md)
    frames = np.empty((n, n_sensors), dtype=WIRE_SAMPLE_DTYPE)  # interleaved in time
    for i in range(n_sensors):
        p = 101_325 + slope_pa_s * t + rng.normal(0, 3.0, n)
        t_us = (t * 1e6).astype(np.uint64)
        frames[:, i] = encode_samples(i + 1, np.arange(n), t_us, p, 22.0 + 0 * t)
    stream = np.frombuffer(frames.tobytes(), dtype=np.uint8)
    where = np.sort(rng.integers(0, len(stream), len(stream) // 100))
    stream = np.insert(stream, where, rng.integers(0, 256, len(where)).astype(np.uint8))
    dec = StreamDecoder()
    got = dec.feed(stream.tobytes()).samples
    print(f"decoded {len(got)} of {n * n_sensors} SAMPLEs through 1 % line noise")
    for addr in range(1, n_sensors + 1):
        s = got[got["addr"] == addr]
        fit = np.polyfit(s["t_us"] / 1e6, s["pressure_pa"], 1)[0]
        print(f"sensor {addr}: dP/dt = {fit * 60:+.2f} Pa/min (true {slope_pa_s * 60:+.2f})")
    print(json.dumps(dec.counters().to_json_dict()))
    return 0

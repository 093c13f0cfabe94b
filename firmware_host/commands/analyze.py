"""``cabinwatch analyze CAPTURE [--config FILE]``: run the monitor core over a capture.

The capture is the raw bytes of one link.  It is decoded, each sensor's clock
is put on a common timeline (``loop.capture_arrivals``), and the core runs in
batch mode on a simulated clock as fast as the machine allows, with the same
ticks as a live run.  Events go to stdout as JSON lines (marked replayed), then
one summary JSON object.  Without ``--config`` every address becomes its own
volume of ``--volume-m3`` cubic metres (said on stderr).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from common import bounds
from common.bounds import check_option
from common.errors import ConfigError, InputFileError
from firmware_host.config import MonitorConfig, SensorConfig, VolumeConfig, load_config
from firmware_host.core import MonitorCore, TickResult
from firmware_host.loop import RecordedSource, capture_arrivals, decode_capture, run_batch

DEFAULT_LINK = "capture"
#: Ticks a capture may ask for: this many per sample, and at least ``MIN_TICKS``
#: (a capture whose clocks jump around would otherwise be ticked through for hours).
TICKS_PER_SAMPLE = 1000
MIN_TICKS = 36_000  # an hour at 10 Hz


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "analyze",
        help="run the monitor core over a raw capture of one link, as fast as possible",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("capture", metavar="CAPTURE", help="raw byte capture of one link")
    p.add_argument("--config", metavar="FILE", help="monitor configuration (TOML)")
    p.add_argument(
        "--link",
        metavar="NAME",
        help="which configured link the capture is from (default: the only/first one)",
    )
    p.add_argument(
        "--volume-m3",
        type=float,
        default=100.0,
        help="volume of each derived one-sensor volume without --config (default 100)",
    )
    p.add_argument("--rate-hz", type=float, default=None, help="loop rate (default: config's)")
    p.set_defaults(func=run)


def derive_config(records: np.ndarray, link: str, volume_m3: float) -> MonitorConfig:
    """One volume per address, each sensor's rate measured from its timestamps."""
    volumes, sensors = [], []
    for a in np.unique(records["addr"]).tolist():
        t = records["t_us"][records["addr"] == a].astype(np.float64) * 1e-6
        d = np.diff(t)
        d = d[d > 0]
        rate = float(1.0 / np.median(d)) if len(d) else 1.0
        rate = min(max(rate, bounds.RATE_HZ.lo), bounds.RATE_HZ.hi)
        name = f"{link}:{a}"
        volumes.append(VolumeConfig(name, volume_m3))
        sensors.append(SensorConfig(link, int(a), name, rate))
    return MonitorConfig(volumes=tuple(volumes), sensors=tuple(sensors), source="(derived)")


def run(args) -> int:
    path = Path(args.capture)
    check_option("--volume-m3", args.volume_m3, bounds.VOLUME_M3)
    if args.rate_hz is not None:
        check_option("--rate-hz", args.rate_hz, bounds.RATE_HZ)
    try:
        if not path.is_file():  # a FIFO or a device could be read forever
            raise InputFileError(str(path), "not a regular file")
        data = path.read_bytes()
    except OSError as exc:
        raise InputFileError(str(path), exc.strerror or str(exc)) from None
    records = decode_capture(data)
    if args.config:
        cfg = load_config(args.config)
        links = sorted({s.link for s in cfg.sensors})
        link = args.link or links[0]
        if link not in links:
            raise ConfigError(args.config, "sensors.link", f"no sensor on link {link!r}")
    else:
        link = args.link or DEFAULT_LINK
        if len(records) == 0:
            raise InputFileError(str(path), "no SAMPLE frames in the capture")
        cfg = derive_config(records, link, args.volume_m3)
    if args.rate_hz is not None:
        if args.rate_hz <= 0 or cfg.windows_s[0] * args.rate_hz < 3:
            raise ConfigError("--rate-hz", "rate_hz", "must give 3 ticks in the shortest window")
        cfg = dataclasses.replace(cfg, rate_hz=float(args.rate_hz))
    rate = cfg.rate_hz
    arrival = capture_arrivals(records)
    if len(arrival):
        ticks = (arrival[-1] - arrival[0]) * rate
        budget = max(MIN_TICKS, TICKS_PER_SAMPLE * len(records))
        if ticks > budget:
            raise InputFileError(
                str(path),
                f"its clocks span {ticks / rate:.0f} s for {len(records)} samples "
                f"({ticks:.0f} ticks at {rate:g} Hz, at most {budget}): its timestamps are "
                "garbage, or its sensors are slow for the loop (try a lower --rate-hz)",
            )
    if not args.config:
        print(
            f"cabinwatch analyze: no --config: {len(cfg.volumes)} address(es), each its own "
            f"volume of {args.volume_m3:g} m3",
            file=sys.stderr,
        )
    core = MonitorCore(cfg, replay=True)
    source = RecordedSource({link: (records, arrival)})
    counts: dict[str, int] = {}
    out = sys.stdout

    def on_tick(result: TickResult) -> None:
        for ev in result.events:
            counts[ev.level.name] = counts.get(ev.level.name, 0) + 1
            out.write(json.dumps(ev.to_json_dict()) + "\n")

    health = run_batch(core, source, rate, on_tick=on_tick)
    snap = core.snapshot()
    summary = {
        "summary": {
            "capture": str(path),
            "bytes": len(data),
            "samples": int(len(records)),
            "config": cfg.source,
            "ticks": health.ticks,
            "duration_s": round(health.ticks * health.period_s, 6),
            "events_by_level": counts,
            "unknown_samples": snap["unknown_samples"],
            "active_alarms": snap["active_alarms"],
            "volumes": snap["volumes"],
            "sensors": snap["sensors"],
        }
    }
    out.write(json.dumps(summary) + "\n")
    return 0

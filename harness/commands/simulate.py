"""``cabinwatch simulate``: emulator and monitor in one process, scored against the truth."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from common import bounds
from common.bounds import check_option
from common.errors import CabinwatchError
from common.outpaths import output_file
from drivers.families import FAMILIES
from firmware_host.config import load_config
from harness.derive import config_from_scenario
from harness.scoring import score
from harness.simulate import run_simulation, with_protocol

#: The shortest run (simulated s): the truth it is scored against is recorded every second.
MIN_RUN_S = 1.0


def configure(p: argparse.ArgumentParser) -> None:
    """Add the arguments of ``cabinwatch simulate`` to its parser."""
    p.description = (
        "Run the emulator and the monitor in one process through the encoded byte stream, "
        "as fast as the machine allows, and score the monitor against the emulator's truth. "
        "Without --config the monitor's configuration is derived from the scenario's "
        "volumes, hatches and sensors (never from its leaks or faults)."
    )
    p.add_argument("scenario", help="a shipped scenario's name or a scenario file")
    p.add_argument("--config", help="monitor configuration (TOML) instead of the derived one")
    p.add_argument("--json", action="store_true", help="events as JSON lines, then a summary")
    p.add_argument("--duration", type=float, help="stop at this simulated time, s")
    p.add_argument(
        "--start",
        type=float,
        default=0.0,
        help="play the scenario to this time without the monitor, then start it",
    )
    p.add_argument("--seed", type=int, help="override the scenario's seed")
    p.add_argument(
        "--settle",
        type=float,
        default=1800.0,
        help="seconds after a leak's onset at which estimates are scored (1800)",
    )
    p.add_argument(
        "--protocol",
        help="switch every link of the scenario to this transducer family "
        f"({', '.join(FAMILIES)}); a polled family's links are polled on the simulated clock",
    )
    p.add_argument("--archive", help="also write the SQLite archive here")
    p.add_argument("--telemetry", help="also write JSON-lines telemetry here")
    p.add_argument(
        "--ccsds",
        metavar="FILE",
        help="also write CCSDS Space Packets (PUS-C TM[3,25] at 1 Hz, TM[5,x] per event) "
        "here, back to back; packet time = simulated s since the GPS epoch (docs/ground.md)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hil.scenario import load_scenario

    check_option("--start", args.start, bounds.TIME_S)
    if args.duration is not None:
        check_option("--duration", args.duration, bounds.DURATION_S)
        if args.duration <= args.start:
            raise CabinwatchError(
                f"--duration ({args.duration}) must be after --start ({args.start})"
            )
    if args.seed is not None:
        check_option("--seed", args.seed, bounds.SEED)
    check_option("--settle", args.settle, bounds.TIME_S)
    for option, path in (
        ("--archive", args.archive),
        ("--telemetry", args.telemetry),
        ("--ccsds", args.ccsds),
    ):
        if path and path != "-":
            output_file(path, option)
    scenario = load_scenario(args.scenario)
    if args.protocol is not None:
        scenario = with_protocol(scenario, args.protocol)
    end_s = (
        scenario.duration_s if args.duration is None else min(args.duration, scenario.duration_s)
    )
    if end_s - args.start < MIN_RUN_S:
        raise CabinwatchError(
            f"the run must last at least {MIN_RUN_S:g} simulated s: --start {args.start:g}, "
            f"end {end_s:g} s (--duration, or the scenario's {scenario.duration_s:g} s)"
        )
    config = load_config(args.config) if args.config else config_from_scenario(scenario)
    listeners = []
    archive = None
    if args.archive:
        from firmware_host.runtime.archive import Archive

        archive = Archive(args.archive)
        archive.write_meta("config_source", config.source)
        archive.write_meta("scenario", scenario.name)
        listeners.append(archive)
    if args.telemetry:
        from firmware_host.runtime.telemetry import TelemetryWriter

        listeners.append(TelemetryWriter(args.telemetry))
    if args.ccsds:
        from firmware_host.ground.layout import GroundLayout
        from firmware_host.ground.outputs import CcsdsWriter, FileSink
        from firmware_host.ground.packets import PacketBuilder

        Path(args.ccsds).unlink(missing_ok=True)  # a file of this run's packets only
        builder = PacketBuilder(GroundLayout.from_config(config), gps_origin_s=0.0)
        listeners.append(CcsdsWriter(builder, {"ccsds": FileSink(args.ccsds)}, rate_hz=1.0))

    out = sys.stdout

    def on_event(ev) -> None:
        if args.json:
            out.write(json.dumps({"type": "event", **ev.to_json_dict()}) + "\n")
        else:
            value = "" if ev.value != ev.value else f" value={ev.value:.4g} {ev.unit}"
            out.write(
                f"{ev.t_s:10.1f} s  {ev.level.name:<9} {ev.transition.name:<16} "
                f"{ev.source:<14} {ev.kind.name}{value}\n"
            )

    def on_tick(result) -> None:
        for listener in listeners:
            listener.record_tick(result)

    t0 = time.perf_counter()
    try:
        result = run_simulation(
            scenario,
            config,
            duration_s=args.duration,
            start_s=args.start,
            seed=args.seed,
            on_event=on_event,
            on_tick=on_tick if listeners else None,
            on_identity=archive.record_identity if archive is not None else None,
        )
    finally:
        for listener in listeners:
            listener.close()
    wall = time.perf_counter() - t0
    summary = score(result, settle_s=args.settle)
    summary["wall_seconds"] = round(wall, 3)
    summary["speed_x_realtime"] = round(result.sim_seconds / wall, 1) if wall > 0 else None
    if args.json:
        out.write(json.dumps({"type": "summary", **summary}) + "\n")
    else:
        _print_summary(summary, out)
    return 0


def _print_summary(s: dict, out) -> None:
    out.write(
        f"\n{s['scenario']}: {s['sim_seconds']:.0f} simulated s in {s['wall_seconds']:.1f} s "
        f"({s['speed_x_realtime']}x real time)\n"
    )
    for leak in s["leaks"]:
        det = (
            f"detected after {leak['latency_s']:.0f} s ({leak['first_level']})"
            if leak["detected_s"] is not None
            else "NOT detected"
        )
        out.write(f"  leak {leak['name']} in {leak['volume']} at {leak['onset_s']:.0f} s: {det}\n")
        if leak["mass_rate_est_kg_day"] is not None:
            out.write(
                f"    at {leak['settle_s']:.0f} s: mass rate {leak['mass_rate_est_kg_day']:.3g} "
                f"kg/day (true {leak['mass_rate_true_kg_day']:.3g}, "
                f"{leak['mass_rate_error_pct']:+.1f} %), hole {leak['hole_est_mm']:.3g} mm "
                f"(true {leak['hole_true_mm']:.3g}), regime {leak['regime_est']}\n"
            )
    for f in s["faults"]:
        got = f"advisory after {f['latency_s']:.1f} s" if f["advisory_s"] is not None else "MISSED"
        out.write(f"  fault {f['kind']} on {f['sensor']} at {f['start_s']:.0f} s: {got}\n")
    for link, bus in s["counters"].get("polled", {}).items():
        exc = ", ".join(f"{k}: {v}" for k, v in bus["exceptions"].items()) or "none"
        out.write(
            f"  polled link {link} at {bus['baudrate']} baud: {bus['transactions']} transactions, "
            f"{bus['timeouts']} timeouts, {bus['crc_errors']} CRC errors, exceptions {exc}; "
            f"{bus['mean_poll_rate_hz']:.4g} of {bus['target_rate_hz']:.4g} samples/s, "
            f"line {100 * bus['mean_line_utilisation']:.1f} % busy; "
            f"{len(bus['identified'])} devices identified\n"
        )
    out.write(f"  false alarms (CAUTION and above with no leak): {len(s['false_alarms'])}\n")
    for fa in s["false_alarms"][:10]:
        out.write(f"    {fa['t_s']:.0f} s {fa['level']} {fa['kind']} on {fa['source']}\n")
    out.write(
        f"  level errors (a level the truth does not support during a leak): "
        f"{len(s['level_errors'])}\n"
    )
    for e in s["level_errors"][:10]:
        out.write(
            f"    {e['t_s']:.0f} s {e['level']} {e['kind']} on {e['volume']}: monitor "
            f"{_g(e['monitor_value'])}, true {_g(e['true_value'])}, limit {_g(e['limit'])} "
            f"{e['unit']}\n"
        )


def _g(x) -> str:
    return "-" if x is None else f"{x:.4g}"

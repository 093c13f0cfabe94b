"""``cabinwatch demo``: the real monitor against the emulator on a pseudo-terminal.

The emulator runs in its own process (``cabinwatch emulate SCENARIO --pty``),
sped up; the monitor opens the pseudo-terminal with pyserial exactly as it
opens a USB adapter on a board, identifies and starts the transducers, and
runs its loop on a clock sped up by the same factor.  The scenario's hatch
operations reach the monitor as an operator's inputs.  At the end: when each
leak was detected, the estimates against the emulator's truth, and a PNG plot.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time
from pathlib import Path

from common import bounds
from common.bounds import check_option
from common.errors import CabinwatchError
from common.outpaths import output_folder
from firmware_host.runtime.instance import InstanceLock
from harness.children import guarded, stop_group

#: Demo windows per shipped scenario: (start_s, duration_s, speed) so that the
#: interesting part fits in well under a minute of wall time.
PRESETS = {
    "soyuz-ms09-2018": (2.5 * 3600, 3000.0, 100.0),
    "rapid-depress": (0.0, 600.0, 20.0),
    "zvezda-prk": (0.0, 6 * 3600.0, 600.0),
}
DEFAULT_PRESET = (0.0, 1800.0, 60.0)
#: Where the demo writes unless told (created with its parents).
DEFAULT_OUT = "out/demo"
#: ``--station``'s folder unless told (created with its parents; must be empty).
DEFAULT_STATION_OUT = "out/demo-station"


def configure(p: argparse.ArgumentParser) -> None:
    """Add the arguments of ``cabinwatch demo`` to its parser."""
    p.description = (
        "Start the emulator with a scenario on a pseudo-terminal (or TCP), run the real "
        "monitor against it through pyserial, show the live display, and end with a summary "
        "against the truth and a PNG plot."
    )
    p.add_argument(
        "--scenario",
        default=None,
        help="scenario (default soyuz-ms09-2018; with --station soyuz-2018-station)",
    )
    p.add_argument(
        "--station",
        action="store_true",
        help="the closed loop: a private Mosquitto, one monitor per board of a split "
        "scenario, the station aggregator and a scripted crew following its advisor "
        "(docs/station-loop.md)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="with --station: JSON lines, ending with one summary object",
    )
    p.add_argument(
        "--join",
        type=float,
        default=None,
        metavar="S",
        help="with --station: the simulated time at which the aggregator and the crew "
        "join the running boards (default 0)",
    )
    p.add_argument(
        "--reaction",
        type=float,
        default=None,
        metavar="S",
        help="with --station: the crew's reaction time, simulated s (default 60)",
    )
    p.add_argument("--realtime", action="store_true", help="run at real-time speed")
    p.add_argument("--tcp", action="store_true", help="connect over TCP (socket://) not a pty")
    p.add_argument("--speed", type=float, help="times real time (default: per scenario)")
    p.add_argument("--start", type=float, help="scenario time to start at, s")
    p.add_argument("--duration", type=float, help="simulated seconds to run")
    p.add_argument("--out", default=DEFAULT_OUT, help="directory for archive, capture, plot")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="reuse a non-empty --out directory: its archive.sqlite* files are deleted",
    )
    p.add_argument("--no-display", action="store_true", help="plain lines instead of the view")
    p.set_defaults(func=run)


def _run_station(args: argparse.Namespace) -> int:
    from harness.station_demo import StationDemoOptions, run_station_demo

    for option, value, rng in (
        ("--speed", args.speed, bounds.SPEED),
        ("--duration", args.duration, bounds.DURATION_S),
        ("--reaction", args.reaction, bounds.TIME_S),
        ("--join", args.join, bounds.TIME_S),
        ("--start", args.start, bounds.TIME_S),
    ):
        if value is not None:
            check_option(option, value, rng)
    for option, given in (
        ("--tcp", args.tcp),
        ("--realtime", args.realtime),
        ("--overwrite", args.overwrite),
    ):
        if given:
            raise CabinwatchError(f"{option} is not for --station")
    out_arg = DEFAULT_STATION_OUT if args.out == DEFAULT_OUT else args.out
    out = output_folder(out_arg, "--out", default=out_arg == DEFAULT_STATION_OUT)
    if any(out.iterdir()):
        raise CabinwatchError(f"--out: {out} is not empty: give an empty or new folder")
    opts = StationDemoOptions(
        scenario=args.scenario or "soyuz-2018-station",
        out=out,
        speed=args.speed if args.speed is not None else 60.0,
        duration_s=args.duration,
        reaction_s=args.reaction if args.reaction is not None else 60.0,
        join_s=args.join if args.join is not None else 0.0,
        start_s=args.start if args.start is not None else 0.0,
        json=args.json,
    )
    run_station_demo(opts)
    return 0


def _emulator_supports_start() -> bool:
    from harness.commands import emulate

    return getattr(emulate, "SUPPORTS_START", False)


def run(args: argparse.Namespace) -> int:
    if args.station:
        return _run_station(args)
    for option in ("json", "reaction", "join"):
        if getattr(args, option) not in (None, False):
            raise CabinwatchError(f"--{option} needs --station")
    if args.scenario is None:
        args.scenario = "soyuz-ms09-2018"
    from firmware_host.runtime.plotting import pyplot
    from hil.scenario import load_scenario

    pyplot()  # the demo ends with a plot: without matplotlib, say so before the run
    # the options given, before anything is read or started
    for option, value, rng in (
        ("--speed", args.speed, bounds.SPEED),
        ("--duration", args.duration, bounds.DURATION_S),
        ("--start", args.start, bounds.TIME_S),
    ):
        if value is not None:
            check_option(option, value, rng)

    scenario = load_scenario(args.scenario)
    start, duration, speed = PRESETS.get(scenario.name, DEFAULT_PRESET)
    if not _emulator_supports_start():
        start = 0.0
    start = args.start if args.start is not None else start
    duration = args.duration if args.duration is not None else duration
    speed = 1.0 if args.realtime else (args.speed if args.speed is not None else speed)
    if start >= scenario.duration_s:
        raise CabinwatchError(
            f"--start must be before the scenario's end ({scenario.duration_s:g} s)"
        )
    duration = min(duration, scenario.duration_s - start)
    out = output_folder(args.out, "--out", default=args.out == DEFAULT_OUT)
    if any(out.iterdir()) and not args.overwrite:
        raise CabinwatchError(
            f"--out: {out} is not empty (its archive would be replaced): "
            "give --overwrite, or an empty or new folder"
        )
    # a monitor running on this folder holds its lock: its archive is not ours to delete
    with InstanceLock.for_directory(out):
        for stale in out.glob("archive.sqlite*"):
            stale.unlink()
    truth_path = out / "truth.jsonl"
    cmd = [
        sys.executable,
        "-m",
        "firmware_host.cli",
        "emulate",
        args.scenario,
        "--speed",
        str(speed),
        "--duration",
        str(start + duration * 1.05 + 5 * speed),
        "--truth",
        str(truth_path),
    ]
    cmd += ["--tcp", "127.0.0.1:0"] if args.tcp else ["--pty"]
    if start > 0:
        cmd += ["--start", str(start)]
    print(f"demo: {scenario.name}: {scenario.description}")
    print(
        f"demo: emulator at {speed:g}x real time from t={start:.0f} s for {duration:.0f} s "
        f"({duration / speed:.0f} s of wall time), over {'TCP' if args.tcp else 'a pty'}"
    )
    emu = subprocess.Popen(  # (guarded: it ends with us even if we are killed outright)
        guarded(cmd),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        urls = _read_endpoints(emu, scenario.link_names)
        return _run_monitor(args, scenario, urls, start, duration, speed, out, truth_path, emu)
    finally:
        stop_group(emu)


def _read_endpoints(emu: subprocess.Popen, links: list[str]) -> dict[str, str]:
    urls: dict[str, str] = {}
    deadline = time.monotonic() + 30
    while len(urls) < len(links):
        line = emu.stdout.readline()
        if not line:
            err = emu.stderr.read().strip().splitlines()
            raise CabinwatchError("the emulator stopped: " + (err[-1] if err else "no output"))
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if "link" in fields and "pty" in fields:
            urls[fields["link"]] = fields["pty"]
        elif "link" in fields and "tcp" in fields:
            urls[fields["link"]] = f"socket://{fields['tcp']}"
        if time.monotonic() > deadline:
            raise CabinwatchError("the emulator did not report its endpoints within 30 s")
    return urls


def _run_monitor(args, scenario, urls, start, duration, speed, out, truth_path, emu) -> int:
    from firmware_host.config import config_from_dict
    from firmware_host.runtime.app import MonitorApp, ScaledClock
    from firmware_host.runtime.display import LiveDisplay
    from firmware_host.runtime.runconfig import runtime_from_monitor
    from harness.derive import config_dict_from_scenario, config_toml, link_tables
    from harness.simulate import EstimateTrace

    data = config_dict_from_scenario(scenario)
    from hil.runner import quiet_sim_seconds

    # The emulator's bursts and the machine's scheduling hiccups span `speed` times
    # more simulated time; staleness must not take them for silence.
    fastest_hz = max(s.rate_hz for s in scenario.sensors)
    data["health"] = {"stale_periods": max(3.0, quiet_sim_seconds(speed) * fastest_hz)}
    data["links"] = link_tables(scenario, urls)
    data["outputs"] = {"directory": str(out), "telemetry": "", "control_socket": "cabinwatch.sock"}
    config_path = out / "config.toml"
    config_path.write_text(
        f"# The configuration the demo derived for {scenario.name}; "
        f"analyze its captures with --config {config_path}\n" + config_toml(data),
        encoding="utf-8",
    )
    rc = runtime_from_monitor(config_from_dict(data, str(config_path)))
    clock = ScaledClock(speed, start_ns=int(start * 1e9))
    display = None
    if not args.no_display:
        display = LiveDisplay(sys.stdout, period_s=1.0, plain_period_s=max(5.0, 600 / speed))
    trace = EstimateTrace([v.name for v in rc.monitor.volumes])
    events = []
    next_trace = [0.0]

    def on_tick(result) -> None:
        events.extend(result.events)
        if result.t_s >= next_trace[0]:
            next_trace[0] = math.floor(result.t_s) + 1.0
            trace.record(result)

    app = MonitorApp(
        rc,
        clock=clock,
        display=display,
        on_tick=on_tick,
        title=f"cabinwatch demo: {scenario.name} at {speed:g}x",
    )
    hatch_inputs = [h for h in scenario.hatch_events() if h[0] > start]
    # The hatch states at the start of the window, as the crew left them.
    for t, name, is_open in scenario.hatch_events():
        if t <= start:
            app.core.set_hatch(name, is_open, start)
    app.install_signal_handlers()

    def operator() -> bool:
        now = clock.now_ns() / 1e9
        while hatch_inputs and hatch_inputs[0][0] <= now:
            t, name, is_open = hatch_inputs.pop(0)
            app.core.set_hatch(name, is_open, now)
            print(
                f"demo: operator sets hatch {name} {'open' if is_open else 'closed'} "
                f"at t={now:.0f} s"
            )
        return emu.poll() is not None

    app.start()
    try:
        app.run(until_s=start + duration, stop=operator)
    finally:
        app.close()
    if display is not None:
        display.show(app.view(), force=True)
    stop_group(emu)
    return _summary(scenario, rc, app, events, trace, truth_path, start, duration, out)


def _summary(scenario, rc, app, events, trace, truth_path, start, duration, out) -> int:
    from firmware_host.runtime.plotting import plot_archive
    from harness.scoring import score
    from harness.simulate import SimulationResult

    truth = _read_truth_series(truth_path)
    print()
    print(f"demo summary: {scenario.name}, t = {start:.0f} .. {start + duration:.0f} s")
    if truth is None or not len(truth):
        print("  (no truth records from the emulator: estimates not scored)")
    else:
        result = SimulationResult(
            scenario, rc.monitor, start + duration, events, trace, truth, app.loop.health(), {}
        )
        s = score(result)
        for leak in s["leaks"]:
            if leak["onset_s"] > start + duration or (leak["end_s"] or math.inf) < start:
                continue
            if leak["detected_s"] is None:
                print(
                    f"  leak {leak['name']} in {leak['volume']} (onset {leak['onset_s']:.0f} s): "
                    "not detected in this window"
                )
                continue
            print(
                f"  leak {leak['name']} in {leak['volume']} opened at t={leak['onset_s']:.0f} s; "
                f"{leak['first_level']} after {leak['latency_s']:.0f} s"
            )
            if leak["settle_s"] is not None:
                print(
                    f"    at t={leak['settle_s']:.0f} s: leak "
                    f"{_fmt(leak['mass_rate_est_kg_day'], '.2f')} kg/day (truth "
                    f"{_fmt(leak['mass_rate_true_kg_day'], '.2f')}), hole "
                    f"{_fmt(leak['hole_est_mm'], '.2f')} mm (truth "
                    f"{_fmt(leak['hole_true_mm'], '.2f')})"
                )
        print(f"  false alarms: {len(s['false_alarms'])}")
    health = {n: d.health() for n, d in app.drivers.items()}
    for name, h in health.items():
        dec = h.decoder
        print(
            f"  link {name}: {h.samples_in} samples, {dec.errors_total if dec else 0} "
            f"decoder errors, {h.reconnects} reconnects"
        )
    lh = app.loop.health()
    print(f"  loop: {lh.ticks} ticks, {lh.overruns} overruns")
    png = out / "demo.png"
    tr = None
    if truth is not None and len(truth):
        tr = {
            v: (truth.t_s, truth.p_pa[:, i])
            for i, v in enumerate(truth.volume_names)
            if v in {vol.name for vol in rc.monitor.volumes}
        }
    if rc.outputs.archive and rc.outputs.archive.exists():
        plot_archive(rc.outputs.archive, png, title=f"cabinwatch demo: {scenario.name}", truth=tr)
        print(f"  plot: {png}")
        print(f"  archive: {rc.outputs.archive}")
    print(
        f"  configuration: {out / 'config.toml'} (cabinwatch analyze "
        f"{out / 'capture'}/LINK.000000.bin --config {out / 'config.toml'})"
    )
    return 0


def _fmt(x, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def _read_truth_series(path: Path):
    import numpy as np

    from hil.truth import TruthSeries, read_truth

    try:
        header, records = read_truth(str(path))
    except (OSError, ValueError, IndexError):
        return None
    records = [r for r in records if r.get("type") == "truth"]
    if not records:
        return None

    def arr(key):
        return np.array([r[key] for r in records], dtype=float)

    return TruthSeries(
        volume_names=[v["name"] for v in header["volumes"]],
        hatch_names=[h["name"] for h in header["hatches"]],
        t_s=arr("t_s"),
        p_pa=arr("p_pa"),
        t_k=arr("t_k"),
        mass_kg=arr("mass_kg"),
        leak_kg_s=arr("leak_kg_s"),
        leaked_kg=arr("leaked_kg"),
        inflowed_kg=arr("inflowed_kg"),
        hatch_open=arr("hatch_open"),
    )

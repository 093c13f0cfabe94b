"""``cabinwatch monitor --config FILE``: the monitor on real ports (or an HIL bench)."""

from __future__ import annotations

import argparse
import json
import sys

from common import bounds
from common.bounds import check_option
from common.errors import CabinwatchError
from common.outpaths import output_file


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "monitor",
        help="run the monitor on the configured serial links",
        description=(
            "Run the monitor on the links, sensors and volumes of a configuration file "
            "(TOML; see firmware_host/examples/monitor.toml). Keys in the live display: "
            "a = acknowledge all, 1-9 = toggle hatch, q = quit; from another terminal use "
            "`cabinwatch ctl`. SIGTERM and Ctrl-C stop it cleanly."
        ),
    )
    p.add_argument("--config", required=True, help="the configuration file (TOML)")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="clock speed-up for a sped-up HIL emulator (default 1: real time)",
    )
    p.add_argument("--no-display", action="store_true", help="no live display")
    p.add_argument(
        "--telemetry",
        help="JSON-lines telemetry: - for stdout, or a file (overrides outputs.telemetry)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from common.outputguard import OutputGuard
    from firmware_host.runtime.app import MonitorApp, ScaledClock
    from firmware_host.runtime.display import LiveDisplay
    from firmware_host.runtime.runconfig import load_runtime_config
    from firmware_host.runtime.telemetry import TelemetryWriter

    check_option("--speed", args.speed, bounds.SPEED)
    if args.duration is not None:
        check_option("--duration", args.duration, bounds.DURATION_S)
    if args.telemetry and args.telemetry != "-":
        output_file(args.telemetry, "--telemetry")
    rc = load_runtime_config(args.config)
    telemetry = None
    if args.telemetry:
        # a file that cannot be opened (a full disk) is an advisory, retried: not an exit
        telemetry = TelemetryWriter(
            args.telemetry, rate_hz=rc.outputs.telemetry_rate_hz, guard=OutputGuard("telemetry")
        )
    display = None
    if rc.display.enabled and not args.no_display:
        # Telemetry on stdout and a display on stdout would interleave: the display
        # then goes to stderr.
        out = sys.stderr if args.telemetry == "-" else sys.stdout
        display = LiveDisplay(out, period_s=rc.display.period_s)
    clock = ScaledClock(args.speed) if args.speed != 1.0 else None
    try:
        app = MonitorApp(rc, clock=clock, display=display, telemetry=telemetry)
    except OSError as exc:
        raise CabinwatchError(f"cannot start: {exc}") from None
    app.install_signal_handlers()
    try:
        app.start()
        start = app.clock.now_ns() / 1e9
        until = None if args.duration is None else start + args.duration
        health = app.run(until_s=until)
    finally:
        app.close()
    print("monitor: " + json.dumps({"loop": health.to_json_dict()}), file=sys.stderr)
    return 0

"""``cabinwatch station --config STATION.toml [--broker URL] [--json] [--no-view]``: the aggregator.

Imported only when the ``station`` subcommand is parsed (``firmware_host.cli``),
so ``cabinwatch monitor`` never loads the station package or paho.
"""

from __future__ import annotations

import argparse
import signal
import sys

from common import bounds
from common.bounds import check_option


def configure(p: argparse.ArgumentParser) -> None:
    """Add the arguments of ``cabinwatch station`` to its parser."""
    p.description = (
        "Run the station aggregator: subscribe to the boards' MQTT topics, keep the station "
        "picture (fusing volumes seen by several boards, following hatch states and Wills), "
        "ask the isolation advisor and publish its assessment (retained) on "
        "cabinwatch/v1/<station>/station/assessment. It advises; it never commands a board. "
        "Keys in the live view: r = the advisor starts over, q = quit. See docs/station.md."
    )
    p.add_argument("--config", required=True, help="the station file (TOML)")
    p.add_argument(
        "--broker", metavar="URL", help="mqtt://HOST:PORT or mqtts://HOST:PORT (overrides the file)"
    )
    p.add_argument(
        "--json", action="store_true", help="one JSON line per update on stdout (view on stderr)"
    )
    p.add_argument("--no-view", action="store_true", help="no live view")
    p.add_argument("--duration", type=float, help="stop after this many (station) seconds")
    p.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="station clock speed-up, as the boards' monitor --speed on an HIL bench "
        "(default 1: real time); hold times and staleness are then in station seconds",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from firmware_host.runtime.sdnotify import Notifier
    from station.aggregator import Aggregator, StationClock
    from station.config import broker_option, load_station_config
    from station.view import JsonLines, StationDisplay

    check_option("--speed", args.speed, bounds.SPEED)
    if args.duration is not None:
        check_option("--duration", args.duration, bounds.DURATION_S)
    broker = broker_option(args.broker) if args.broker is not None else None
    config = load_station_config(args.config)
    if broker is not None:
        config = config.with_broker(broker)
    clock = StationClock(args.speed)
    agg = Aggregator(config, clock=clock, speed=args.speed)
    display = None
    if not args.no_view:
        display = StationDisplay(sys.stderr if args.json else sys.stdout)
        agg.on_update.append(display.show)
    if args.json:
        agg.on_update.append(JsonLines(sys.stdout))

    def stop(signum, frame):
        agg.stop_event.set()

    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    until = None if args.duration is None else agg.clock() + args.duration
    notifier = Notifier()  # systemd Type=notify: READY, then the watchdog from this loop
    agg.start()
    notifier.ready(f"station {config.name} on {config.broker.url}")
    try:
        while not agg.stop_event.is_set():
            if until is not None and agg.clock() >= until:
                break
            agg.step()
            notifier.watchdog(True)
            if display is not None:
                keys = display.read_keys()
                if "q" in keys:
                    break
                if "r" in keys:
                    agg.request_reset()
    finally:
        notifier.stopping()
        notifier.close()
        agg.close()
        if display is not None:
            display.close()
        for s, h in old.items():
            signal.signal(s, h)
    print(
        f"station: {agg.picture.counters.accepted} messages taken, "
        f"{agg.published} assessments published",
        file=sys.stderr,
    )
    return 0

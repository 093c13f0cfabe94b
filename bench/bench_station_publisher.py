"""The station publisher's cost per monitor tick, side by side with the loop without it.

``.venv/bin/python -m bench station_publisher`` (or ``python -m bench.bench_station_publisher``).

A real core runs a scenario (default ``rapid-depress``: 3 volumes, alarms
raised from 2 min on; ``--scenario nominal``: 8 volumes, 6 hatches) through
the emulator, the real decoder and the loop at ``--loop-hz`` (10 Hz as in the
example configuration), paced at ``--speed`` times real time.  Two cases
alternate round by round (A B B A ...):

* ``without``: the loop with no listener work;
* ``with``: the loop's listener is ``StationFeed.record_tick`` and a live
  ``StationPublisher`` (its own thread) publishes everything to a private
  Mosquitto on 127.0.0.1 (estimates at 1 Hz of simulated time, events, states).

Per tick: the wall time of ``core.tick`` plus the listener (µs, median and
p99), and of ``record_tick`` alone; the publisher thread's CPU time (Linux
thread clock) per message and per second of wall time.  The publisher's
network work competes for the interpreter lock with the loop: that cost is
in the ``with`` column.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from bench.common import machine, pin_one_core


def _p(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def run_case(scenario: str, loop_hz: float, sim_s: float, speed: float, broker) -> dict:
    """One paced run; ``broker`` None: without the station."""
    from common.mqtt_url import parse_broker_url
    from common.station_wire import NodeStatus
    from firmware_host.clock import SimClock
    from firmware_host.core import MonitorCore
    from firmware_host.loop import NS, RateLoop
    from firmware_host.runtime.station_feed import StationFeed
    from firmware_host.runtime.station_publisher import LinkState, StationPublisher
    from firmware_host.runtime.stationconfig import StationConfig
    from harness.derive import config_from_scenario
    from harness.simulate import EmulatorSource
    from hil.emulator import Emulator
    from hil.scenario import load_scenario

    sc = load_scenario(scenario)
    config = config_from_scenario(sc, loop_rate_hz=loop_hz)
    core = MonitorCore(config)
    clock = SimClock(0)
    source = EmulatorSource(Emulator(sc, truth_rate_hz=0.0))
    tick_us: list[float] = []
    feed_us: list[float] = []
    publisher = feed = None
    if broker is not None:
        volumes = [v.name for v in config.volumes]
        cfg = StationConfig(
            broker=parse_broker_url(broker.url),
            station="bench",
            node="b1",
            session_file=broker.folder / "session",
        )
        birth = NodeStatus("b1", 1, True, time.time(), "bench", tuple(volumes))
        publisher = StationPublisher(cfg, birth).start()
        deadline = time.monotonic() + 10
        while publisher.state is not LinkState.UP and time.monotonic() < deadline:
            time.sleep(0.01)
        feed = StationFeed(
            publisher.handoff,
            node="b1",
            session=1,
            volumes=volumes,
            sensor_volumes={s.sensor_id: s.volume for s in config.sensors},
            active_alarms=core.active_alarms,
            hatch_open=lambda: core.hatch_open,
            unix_now=time.time,
            rate_hz=1.0,
        )
        feed.start(0.0)
    period_wall = 1.0 / (loop_hz * speed)
    wall0 = time.perf_counter()
    started: list[float] = [0.0]
    real_tick = core.tick

    def paced_source(t_s: float):
        target = wall0 + t_s / speed
        while (now := time.perf_counter()) < target:
            time.sleep(min(target - now, period_wall))
        return source(t_s)

    def timed_tick(t_s: float):
        started[0] = time.perf_counter()
        return real_tick(t_s)

    def listener(result) -> None:
        if feed is not None:
            t0 = time.perf_counter()
            feed.record_tick(result)
            feed_us.append((time.perf_counter() - t0) * 1e6)
        tick_us.append((time.perf_counter() - started[0]) * 1e6)

    core.tick = timed_tick
    loop = RateLoop(core, clock, config.rate_hz, paced_source, listener)
    loop.start_ns = int(round(NS / config.rate_hz))
    cpu0 = _thread_cpu(publisher)
    w0 = time.perf_counter()
    loop.run(until_s=sim_s)
    wall = time.perf_counter() - w0
    out = {"tick_us": tick_us, "feed_us": feed_us, "wall_s": wall}
    if publisher is not None:
        time.sleep(0.2)  # the last hand-off goes out
        out["thread_cpu_s"] = _thread_cpu(publisher) - cpu0
        out["published"] = publisher.published
        out["refused"] = publisher.refused
        out["dropped"] = publisher.handoff.events_dropped
        publisher.close(wait_s=0.2)
    return out


def _thread_cpu(publisher) -> float:
    if publisher is None or publisher._thread is None:
        return 0.0
    try:
        return time.clock_gettime(time.pthread_getcpuclockid(publisher._thread.ident))
    except (AttributeError, OSError):
        return float("nan")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m bench.bench_station_publisher")
    ap.add_argument("--scenario", default="rapid-depress")
    ap.add_argument("--loop-hz", type=float, default=10.0)
    ap.add_argument("--sim-s", type=float, default=240.0, help="simulated s per run")
    ap.add_argument("--speed", type=float, default=10.0, help="times real time")
    ap.add_argument("--rounds", type=int, default=2, help="A B B A ... rounds")
    args = ap.parse_args([] if argv is None else argv)
    from harness.broker import MosquittoBroker

    runs: dict[str, list[dict]] = {"without": [], "with": []}
    with MosquittoBroker() as broker:  # started first: not on the pinned core
        print(f"machine: {machine()}; {pin_one_core()}")
        for i in range(args.rounds):
            order = ["without", "with"] if i % 2 == 0 else ["with", "without"]
            for name in order:
                b = broker if name == "with" else None
                runs[name].append(run_case(args.scenario, args.loop_hz, args.sim_s, args.speed, b))
    res: dict[str, dict] = {}
    for name, rs in runs.items():
        ticks = [x for r in rs for x in r["tick_us"]]
        res[name] = {
            "ticks": len(ticks),
            "median_us": statistics.median(ticks),
            "p99_us": _p(ticks, 0.99),
        }
    feed = [x for r in runs["with"] for x in r["feed_us"]]
    cpu = sum(r["thread_cpu_s"] for r in runs["with"])
    wall = sum(r["wall_s"] for r in runs["with"])
    msgs = sum(r["published"] for r in runs["with"])
    res["feed"] = {"median_us": statistics.median(feed), "p99_us": _p(feed, 0.99)}
    res["thread"] = {
        "cpu_ms_per_wall_s": 1e3 * cpu / wall,
        "cpu_us_per_message": 1e6 * cpu / max(1, msgs),
        "messages": msgs,
        "refused": sum(r["refused"] for r in runs["with"]),
        "dropped": sum(r["dropped"] for r in runs["with"]),
    }
    print(
        f"{args.scenario}, loop {args.loop_hz:g} Hz, {args.sim_s:g} s simulated per run at "
        f"{args.speed:g}x real time, {args.rounds} rounds alternating:"
    )
    for name in ("without", "with"):
        r = res[name]
        print(
            f"  {name:>7}: core.tick + listener median {r['median_us']:.0f} us, "
            f"p99 {r['p99_us']:.0f} us ({r['ticks']} ticks)"
        )
    d = res["with"]["median_us"] - res["without"]["median_us"]
    print(
        f"  StationFeed.record_tick: median {res['feed']['median_us']:.1f} us, "
        f"p99 {res['feed']['p99_us']:.1f} us; difference of the medians {d:+.0f} us"
    )
    t = res["thread"]
    print(
        f"  publisher thread: {t['messages']} messages, {t['cpu_us_per_message']:.0f} us CPU "
        f"per message, {t['cpu_ms_per_wall_s']:.1f} ms CPU per s of wall time; "
        f"refused {t['refused']}, events dropped {t['dropped']}"
    )
    return res


if __name__ == "__main__":
    main(sys.argv[1:])

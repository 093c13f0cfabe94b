"""The station aggregator under load: N boards x M volumes publishing at 1 Hz into one Mosquitto.

``.venv/bin/python -m bench station`` (or ``python -m bench.bench_station
[--boards 50] [--volumes 4] [--seconds 30]``).

A private Mosquitto (``harness.broker``) on 127.0.0.1; a publisher process
with one MQTT client per board (its birth and Will, its hatch states, then at
1 Hz, each board at its own phase, one estimate per volume at QoS 0 stamped
with the board's tick ``t_unix``); in this process the aggregator
(``station.aggregator.Aggregator`` with the real advisor) and the station
view rendered at every update (``station.view.render``, not written out).
The station: the boards' volumes in a chain, every hatch open except every
tenth between boards (so the advisor sees several segments).

Reported after ``--warmup`` s: the aggregator process's CPU (% of one core:
its thread, paho's network thread and the advisor), the broker's CPU, the
updates per second, and the latency from a board's tick to the view updated
with it (p50, p99, max; same machine, one clock).  Goal: p99 under 200 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.common import REPO_ROOT, machine

STATION = "bench"


def station_file(path: Path, boards: int, volumes: int, port: int) -> Path:
    """The station file of ``boards`` x ``volumes`` volumes in a chain."""
    lines = [
        "[station]",
        f'name = "{STATION}"',
        f'broker = "mqtt://127.0.0.1:{port}"',
        "caution_kg_day = 2.0",
        "offline_after_s = 10.0",
        "",
    ]
    names = [f"b{b:02d}v{v}" for b in range(boards) for v in range(volumes)]
    for n in names:
        lines += ["[[volumes]]", f'name = "{n}"', "volume_m3 = 50.0", "sensors = 2", ""]
    for i in range(1, len(names)):
        lines += [
            "[[hatches]]",
            f'name = "h{i:03d}"',
            f'a = "{names[i - 1]}"',
            f'b = "{names[i]}"',
            "",
        ]
    for b in range(boards):
        vols = names[b * volumes : (b + 1) * volumes]
        # a board reports the hatches inside its volumes and the one to the next board
        hs = [f"h{i:03d}" for i in range(b * volumes + 1, min((b + 1) * volumes + 1, len(names)))]
        lines += [
            "[[boards]]",
            f'node = "b{b:02d}"',
            "volumes = [" + ", ".join(f'"{v}"' for v in vols) + "]",
            "hatches = [" + ", ".join(f'"{h}"' for h in hs) + "]",
            "",
        ]
    path.write_text("\n".join(lines))
    return path


def publisher(port: int, boards: int, volumes: int, seconds: float) -> None:
    """The boards (child process): births, hatch states, then estimates at 1 Hz."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from common import station_wire as wire

    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = wire.CONTENT_TYPE
    clients = []
    for b in range(boards):
        node = f"b{b:02d}"
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"bench-{node}", protocol=mqtt.MQTTv5
        )
        will = wire.NodeStatus(node, 1, False, time.time())
        c.will_set(wire.node_status_topic(STATION, node), wire.encode(will), qos=1, retain=True)
        c.connect("127.0.0.1", port)
        c.loop_start()
        clients.append(c)
    n = boards * volumes
    t = time.time()
    for b, c in enumerate(clients):
        node = f"b{b:02d}"
        vols = [f"b{b:02d}v{v}" for v in range(volumes)]
        birth = wire.NodeStatus(node, 1, True, t, "bench", tuple(vols))
        c.publish(wire.node_status_topic(STATION, node), wire.encode(birth), 1, True, props)
        for i in range(b * volumes + 1, min((b + 1) * volumes + 1, n)):
            pos = "closed" if i % (10 * volumes) == 0 else "open"
            h = wire.HatchStateMsg(node, f"h{i:03d}", pos, "config", t)
            c.publish(wire.hatch_topic(STATION, node, h.hatch), wire.encode(h), 1, True, props)
    rng = random.Random(16)
    phase = [rng.random() for _ in range(boards)]
    start = time.time()
    next_t = [start + p for p in phase]
    sent = 0
    while time.time() - start < seconds:
        b = min(range(boards), key=next_t.__getitem__)
        delay = next_t[b] - time.time()
        if delay > 0:
            time.sleep(delay)
        tick = time.time()
        node = f"b{b:02d}"
        for v in range(volumes):
            vol = f"b{b:02d}v{v}"
            m = wire.VolumeEstimateMsg(
                node=node, session=1, volume=vol, t_unix=tick, group=(vol,),
                group_volume_m3=50.0, pressure_pa=101325.0 - b, dpdt_comp_pa_s=-1e-4,
                dpdt_comp_sigma_pa_s=1e-4, mass_rate_kg_day=0.05 + 0.01 * v,
                mass_rate_sigma_kg_day=0.1, hole_mm=None, reserve_s=None, regime="quiet",
                healthy_sensors=2, settled=True, state="settled", expiry_s=3.0,
            )  # fmt: skip
            topic = wire.estimate_topic(STATION, node, vol)
            clients[b].publish(topic, wire.encode(m), 0, False, props)
            sent += 1
        next_t[b] += 1.0
    for c in clients:
        c.disconnect()
        c.loop_stop()
    print(json.dumps({"sent": sent}), flush=True)


def _proc_cpu_s(pid: int) -> float:
    """utime + stime of process ``pid`` (s)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m bench.bench_station")
    ap.add_argument("--boards", type=int, default=50)
    ap.add_argument("--volumes", type=int, default=4, help="volumes per board (default 4)")
    ap.add_argument("--seconds", type=float, default=30.0, help="measured time (default 30)")
    ap.add_argument("--warmup", type=float, default=5.0, help="s before measuring (default 5)")
    ap.add_argument(
        "--min-update-ms",
        type=float,
        default=50.0,
        help="the aggregator's shortest interval between updates (default 50 ms, as shipped)",
    )
    ap.add_argument("--publisher", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = ap.parse_args([] if argv is None else argv)
    if args.publisher:
        publisher(args.publisher, args.boards, args.volumes, args.seconds)
        return {}

    from dataclasses import replace

    from common.mqtt_url import parse_broker_url
    from harness.broker import MosquittoBroker
    from station.aggregator import Aggregator
    from station.config import load_station_config
    from station.view import render

    print(f"machine: {machine()}")
    lat: list[float] = []
    updates = [0]
    measuring = threading.Event()
    with MosquittoBroker() as broker, tempfile.TemporaryDirectory(prefix="cw-station-") as tmp:
        path = station_file(Path(tmp) / "station.toml", args.boards, args.volumes, broker.port)
        cfg = load_station_config(path)
        cfg = replace(cfg, broker=parse_broker_url(broker.url))
        agg = Aggregator(cfg, min_update_s=args.min_update_ms / 1000)

        def on_update(up) -> None:
            render(up)  # the view, as the terminal would get it
            done = time.time()
            if measuring.is_set():
                updates[0] += 1
                lat.extend(done - t for t in up.ticks)

        agg.on_update.append(on_update)
        agg.start()
        if not agg.subscribed.wait(10):
            raise SystemExit(f"aggregator not subscribed: {agg.broker_status}")
        total = args.warmup + args.seconds + 1.0
        pub = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.bench_station",
                "--publisher",
                str(broker.port),
                "--boards",
                str(args.boards),
                "--volumes",
                str(args.volumes),
                "--seconds",
                str(total),
            ],  # fmt: skip
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            agg.run(until_s=time.time() + args.warmup)
            measuring.set()
            w0, c0, b0 = time.monotonic(), time.process_time(), _proc_cpu_s(broker.proc.pid)
            agg.run(until_s=time.time() + args.seconds)
            wall = time.monotonic() - w0
            cpu = time.process_time() - c0
            bcpu = _proc_cpu_s(broker.proc.pid) - b0
            measuring.clear()
            snap = agg.picture.snapshot(time.time())
            out, _ = pub.communicate(timeout=total + 30)
        finally:
            if pub.poll() is None:
                pub.kill()
                pub.wait(5)
            agg.close()
    lat.sort()
    q = (
        statistics.quantiles(lat, n=100, method="inclusive")
        if len(lat) > 1
        else [float("nan")] * 99
    )
    online = sum(1 for n in snap.nodes if n.state.value == "online")
    res = {
        "boards": args.boards,
        "min_update_ms": args.min_update_ms,
        "volumes": args.boards * args.volumes,
        "seconds": round(wall, 1),
        "estimates_per_s": round(len(lat) / wall, 1),
        "updates_per_s": round(updates[0] / wall, 1),
        "segments": len(snap.segments),
        "online": online,
        "cpu_pct_one_core": round(100 * cpu / wall, 1),
        "broker_cpu_pct": round(100 * bcpu / wall, 1),
        "latency_ms_p50": round(1000 * q[49], 1),
        "latency_ms_p99": round(1000 * q[98], 1),
        "latency_ms_max": round(1000 * lat[-1], 1) if lat else None,
        "bad": snap.counters.bad,
        "published_sent": json.loads(out.strip().splitlines()[-1])["sent"] if out else None,
    }
    print(
        f"{res['boards']} boards x {args.volumes} volumes at 1 Hz, {res['seconds']} s measured: "
        f"{res['estimates_per_s']} estimates/s taken, {res['updates_per_s']} updates/s, "
        f"{res['segments']} segments, {online}/{args.boards} boards online, updates at most "
        f"every {args.min_update_ms:g} ms"
    )
    print(
        f"aggregator CPU {res['cpu_pct_one_core']} % of one core (broker "
        f"{res['broker_cpu_pct']} %); tick -> view latency p50 {res['latency_ms_p50']} ms, "
        f"p99 {res['latency_ms_p99']} ms, max {res['latency_ms_max']} ms (goal p99 < 200 ms)"
    )
    print(json.dumps(res))
    return res


if __name__ == "__main__":
    main(sys.argv[1:])

"""Live: ``cabinwatch emulate`` (a 25 mm hole in a 70 m3 cabin, native bus over
127.0.0.1 TCP) and ``cabinwatch monitor`` with ``[outputs] ccsds`` to a real
Yamcs' UDP link (``deploy/yamcs/etc`` through ``harness/yamcs.py``) and to a
file, for 30 s of real time, while a ``yamcs-client`` subscription collects the
parameters as Yamcs processes them.

Checked: Yamcs takes every packet the monitor wrote (the file's count, every CRC
good, no corrupted-packet event), updates arrive all along the run (not in one
burst at the end) within a second of their packet time, each value received is
the value of the packet with that time, the packet times are UTC (GPS time with
its 18 leap seconds, as Yamcs reads the CUC), and every alarm transition of the
run (the monitor's archive) is in Yamcs' event log.
"""

from __future__ import annotations

import statistics
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from firmware_host.alarms import AlarmLevel
from firmware_host.cli import main
from firmware_host.ground.layout import EventSubtype, GroundLayout
from firmware_host.ground.xtce import ROOT_CONTAINER, generate
from firmware_host.runtime.runconfig import load_runtime_config
from harness.yamcs import INSTANCE, YamcsServer
from tests.ground.test_packets import crc16_ccitt_false
from tests.ground.test_xtce import split_packets
from tests.ground.test_yamcs import SEVERITY, corrupted_events, pus_events, require_yamcs
from tests.support.cabin_scenarios import cabin_leak_scenario
from tests.support.runtime_helpers import (
    monitor_against_emulator,
    query,
    write_scenario,
    write_toml,
)

pytestmark = [pytest.mark.slow, pytest.mark.yamcs, pytest.mark.timeout(300)]

MONITOR_S = 30
GPS_EPOCH = datetime(1980, 1, 6, tzinfo=UTC)

SCENARIO = cabin_leak_scenario(
    "yamcs-live",
    seed=11,
    extra="""
[[volumes]]
name = "airlock"
volume_m3 = 10
temperature_c = 21.0

[[sensors]]
name = "airlock-a"
addr = 3
volume = "airlock"
""",
)

WATCHED = ("tick", "cabin_pressure_pa", "cabin_alarm_level", "airlock_pressure_pa")


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    require_yamcs()
    from yamcs.client import YamcsClient

    from harness.derive import config_from_scenario

    tmp = tmp_path_factory.mktemp("live")
    _, scenario = write_scenario(tmp, SCENARIO)  # monitor_against_emulator writes it again
    layout = GroundLayout.from_config(config_from_scenario(scenario))
    mdb = tmp / "cabinwatch.xtce.xml"
    mdb.write_text(generate(layout), encoding="utf-8")
    server = YamcsServer(mdb, folder=tmp / "yamcs")
    server.folder.mkdir()
    client = sub = None
    updates: list[tuple[float, str, object, datetime, datetime]] = []
    lock = threading.Lock()

    def on_data(data):
        now = time.time()
        with lock:
            for pv in data.parameters:
                name = pv.name.rsplit("/", 1)[-1]
                updates.append((now, name, pv.eng_value, pv.generation_time, pv.reception_time))

    def edit(data, urls):
        data["outputs"]["ccsds"] = [f"udp://127.0.0.1:{server.udp_port}", "packets.bin"]
        data["outputs"]["ccsds_rate_hz"] = 1.0
        # the database Yamcs runs is the one `cabinwatch xtce` writes for this configuration
        cfg = write_toml(tmp / "check.toml", data)
        assert main(["xtce", "--config", str(cfg), "--out", str(tmp / "cli.xml")]) == 0
        assert (tmp / "cli.xml").read_text(encoding="utf-8") == mdb.read_text(encoding="utf-8")
        assert load_runtime_config(str(cfg)).outputs.ccsds[0].startswith("udp://127.0.0.1:")

    try:
        server.start()
        client = YamcsClient(server.address)
        processor = client.get_processor(INSTANCE, "realtime")
        sub = processor.create_parameter_subscription(
            [f"/cabinwatch/{n}" for n in WATCHED], on_data=on_data, send_from_cache=False
        )
        t0 = time.time()
        run = monitor_against_emulator(tmp, SCENARIO, ["--tcp", "127.0.0.1:0"], MONITOR_S, edit)
        t1 = time.time()
        time.sleep(1.0)  # the last datagrams through Yamcs
        with lock:
            got = list(updates)
        yield server, client, run, got, (t0, t1), layout, tmp
    finally:
        if sub is not None:
            sub.cancel()
        if client is not None:
            client.close()
        server.stop()


def _packets(run) -> list[bytes]:
    return split_packets((run.out / "packets.bin").read_bytes())


def test_monitor_ran_and_every_packet_reached_yamcs(live):
    server, client, run, _, _, _, _ = live
    run.check_estimated()
    packets = _packets(run)
    assert len(packets) > 3 * (MONITOR_S - 10)  # HK of 2 volumes + system at 1 Hz
    assert all(crc16_ccitt_false(p) == 0 for p in packets)
    assert server.link_in_count("udp-in") == len(packets)
    assert not corrupted_events(client)


def test_parameters_arrive_live_with_the_packets_values(live):
    """Updates all along the run, each within a second of its packet time, each value
    the one of the packet with that CUC time (space-packet-parser's decode)."""
    from space_packet_parser.xtce.definitions import XtcePacketDefinition

    _, _, run, got, (t0, t1), _, tmp = live
    ticks = [u for u in got if u[1] == "tick"]
    assert len(ticks) >= MONITOR_S - 10
    arrivals = [u[0] for u in ticks]
    assert arrivals[-1] - arrivals[0] >= MONITOR_S - 10  # spread over the run, not a burst
    assert t0 < arrivals[0] and arrivals[-1] < t1 + 1.0
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    assert max(gaps) < 5.0, gaps
    latency = [u[0] - u[3].timestamp() for u in got]
    assert 0 <= statistics.median(latency) < 1.0 and max(latency) < 5.0, latency
    definition = XtcePacketDefinition.from_xtce(
        tmp / "cabinwatch.xtce.xml", root_container_name=ROOT_CONTAINER
    )
    by_time: dict[tuple[int, int], dict] = {}
    for raw in _packets(run):
        d = definition.parse_bytes(raw)
        ms = d["cuc_coarse"] * 1000 + ((1000 * d["cuc_fine"] + 65536) >> 16)  # Yamcs' rounding
        by_time.setdefault((ms, d.get("hk_sid", -1)), {}).update(d)
    checked = 0
    for _, name, value, gen, _ in got:
        ms = round((gen - GPS_EPOCH).total_seconds() * 1000)
        sid = 0 if name == "tick" else 1 + ("airlock" in name)
        d = by_time.get((ms + 18_000, sid))  # GPS = UTC + 18 s
        assert d is not None, (name, gen)
        assert d[name] == value or (value != value and d[name] != d[name]), (name, value, d[name])
        checked += 1
    assert checked >= 3 * (MONITOR_S - 10)


def test_packet_times_are_utc_in_yamcs(live):
    """Yamcs reads the CUC as GPS time (leap seconds included) and shows UTC: a packet's
    generation time is within the loop's latency of Yamcs' reception time."""
    _, _, _, got, _, _, _ = live
    offsets = [(rx - gen).total_seconds() for _, _, _, gen, rx in got]
    median = statistics.median(offsets)
    assert -0.01 < median < 1.0, median  # an epoch or leap-second mistake would be >= 1 s
    assert abs(median - 18) > 1 and abs(median + 18) > 1


def test_every_alarm_transition_of_the_run_is_in_the_event_log(live):
    _, client, run, _, _, _, _ = live
    rows = query(run.db, "SELECT t_s, source, level, kind, transition FROM events ORDER BY t_s")
    raised = [r for r in rows if r[4] == "RAISED" and r[1] == "cabin"]
    assert raised, rows  # the hole is seen within the run
    n_event_packets = sum(1 for p in _packets(run) if p[7] == 5)
    assert n_event_packets == len(rows)
    logged = pus_events(client)
    assert len(logged) == len(rows), ([e.message for e in logged], rows)
    severity = {lv.name: SEVERITY[EventSubtype.of(lv)] for lv in AlarmLevel}
    assert sorted((e.event_type, e.severity) for e in logged) == sorted(
        (r[3], severity[r[2]]) for r in rows
    )
    assert all(
        e.generation_time > datetime.now(UTC) - timedelta(minutes=10) for e in logged
    )  # live times, not 1980

"""The XTCE database: valid XTCE 1.2, the alarm mapping, and an independent decoder
(LASP's space-packet-parser reading the generated XTCE) that decodes every
packet of a monitor run to exactly the values the monitor put in."""

from __future__ import annotations

import math
import struct
from importlib.resources import files

import pytest
from lxml import etree
from space_packet_parser.xtce.definitions import XtcePacketDefinition

from firmware_host.alarms import AlarmLevel
from firmware_host.cli import main
from firmware_host.ground.layout import (
    EVENT_IDS,
    VOLUME_FIELDS,
    GroundLayout,
    ident,
)
from firmware_host.ground.outputs import CcsdsWriter
from firmware_host.ground.packets import PacketBuilder
from firmware_host.ground.xtce import ROOT_CONTAINER, generate
from harness.derive import config_from_scenario
from harness.simulate import run_simulation
from hil.scenario import load_scenario
from tests.ground.conftest import SCENARIO
from tests.ground.xtce_schema import xtce_schema

EXAMPLE = str(files("firmware_host") / "examples" / "monitor.toml")
NS = {"x": "http://www.omg.org/spec/XTCE/20180204"}


def split_packets(data: bytes) -> list[bytes]:
    """Back-to-back Space Packets, cut by their length fields."""
    out, i = [], 0
    while i < len(data):
        n = int.from_bytes(data[i + 4 : i + 6], "big") + 7
        out.append(data[i : i + n])
        i += n
    assert i == len(data)
    return out


def _definition(tmp_path, layout) -> XtcePacketDefinition:
    path = tmp_path / "cabinwatch.xtce.xml"
    path.write_text(generate(layout), encoding="utf-8")
    return XtcePacketDefinition.from_xtce(path, root_container_name=ROOT_CONTAINER)


def test_cli_xtce_is_valid_xtce_1_2(tmp_path, capsys):
    out = tmp_path / "mdb.xml"
    assert main(["xtce", "--config", EXAMPLE, "--out", str(out)]) == 0
    doc = etree.parse(str(out))
    schema = xtce_schema()
    assert schema.validate(doc), schema.error_log
    units = {
        p.get("name"): [u.text for u in p.iterfind(".//x:Unit", NS)]
        for p in doc.iterfind(".//x:FloatParameterType", NS)
    }
    assert units["station_pressure_pa"] == ["Pa"]
    assert units["station_mass_rate_kg_day"] == ["kg/day"]
    assert {c.get("name") for c in doc.iterfind(".//x:SequenceContainer", NS)} >= {
        ROOT_CONTAINER, "hk_report", "hk_system", "hk_station", "hk_soyuz-om", "hk_prk",
        "event_report",
    }  # fmt: skip


def test_alarm_levels_as_xtce_enumeration_alarms(tmp_path):
    doc = etree.fromstring(generate(GroundLayout.from_config(_example())).encode())
    (ptype,) = doc.iterfind(".//x:EnumeratedParameterType[@name='station_alarm_level']", NS)
    alarms = {
        a.get("enumerationLabel"): a.get("alarmLevel")
        for a in ptype.iterfind(".//x:EnumerationAlarm", NS)
    }
    assert alarms == {
        "ADVISORY": "watch",
        "CAUTION": "warning",
        "WARNING": "critical",
        "EMERGENCY": "severe",
    }
    (events,) = doc.iterfind(".//x:EnumeratedParameterType[@name='event_id']", NS)
    labels = {e.get("label"): int(e.get("value")) for e in events.iterfind(".//x:Enumeration", NS)}
    assert labels == {k.name: i for k, i in EVENT_IDS.items()}


def _example():
    from firmware_host.config import load_config

    return load_config(EXAMPLE)


def test_simulate_ccsds_has_the_caution_as_tm_5_2(simulate_run):
    data, events, layout, tmp = simulate_run
    definition = _definition(tmp, layout)
    decoded = [definition.parse_bytes(p) for p in split_packets(data)]
    leak = [d for d in decoded if d["pus_service"] == 5 and d["event_source"] == "soyuz_bo"]
    assert leak, "no event of the leaking volume"
    first = leak[0]
    (json_ev,) = [
        e for e in events if e["source"] == "soyuz_bo" and e["level"] == "CAUTION"
    ]  # the monitor's own report of the same event
    assert first["pus_subtype"] == 2 and first["event_level"] == "CAUTION"
    assert first["event_id"] == "LEAK" and first["event_transition"] == "RAISED"
    assert first["ccsds_apid"] == layout.apid_events
    assert first["event_value"] == pytest.approx(json_ev["value"], abs=1e-6)
    assert first["event_limit"] == pytest.approx(json_ev["limit"], abs=1e-6)
    t = first["cuc_coarse"] + first["cuc_fine"] / 65536
    assert t == pytest.approx(json_ev["t_s"], abs=2**-16)
    assert 10500 < t < 11200


def test_every_simulate_packet_decodes_with_the_xtce(simulate_run):
    data, _, layout, tmp = simulate_run
    definition = _definition(tmp, layout)
    packets = split_packets(data)
    seq: dict[int, int] = {}
    n_hk = 0
    for raw in packets:
        d = definition.parse_bytes(raw)
        apid = d["ccsds_apid"]
        assert d["ccsds_seq_count"] == seq.get(apid, 0)  # per APID, no gap
        seq[apid] = d["ccsds_seq_count"] + 1
        assert d["packet_crc"] == int.from_bytes(raw[-2:], "big")
        n_hk += d["pus_service"] == 3
    assert n_hk > 600 * (len(layout.volumes) + 1)  # 1 Hz over 700 s
    assert set(seq) == {layout.apid_hk, layout.apid_events}


def _same(a, b) -> bool:
    if isinstance(b, float):
        return struct.pack(">d", float(a)) == struct.pack(">d", b)  # NaN too, bit for bit
    return a == b


@pytest.mark.slow
def test_decoded_values_are_exactly_what_the_monitor_put_in(tmp_path):
    """Each HK and event packet of a monitor run, decoded by space-packet-parser from
    the XTCE, equals the estimates and events the packets were built from."""
    scenario = load_scenario(SCENARIO)
    config = config_from_scenario(scenario)
    layout = GroundLayout.from_config(config)
    definition = _definition(tmp_path, layout)
    sent = []

    class Sink:
        def send(self, data):
            sent.append(data)

        def close(self):
            pass

    writer = CcsdsWriter(PacketBuilder(layout), {"ccsds": Sink()}, rate_hz=0.2)
    cases = []  # (packet index, result)

    def on_tick(result):
        n = len(sent)
        writer.record_tick(result)
        if len(sent) > n:
            cases.append((n, len(sent), result))

    run_simulation(scenario, config, start_s=10500, duration_s=11200, on_tick=on_tick)
    names = [f.name for f in VOLUME_FIELDS]
    checked_hk = checked_ev = 0
    raised: dict[str, tuple[str, int]] = {}  # alarm key -> (source, level), as the docs say
    for lo, hi, result in cases:
        decoded = [definition.parse_bytes(sent[i]) for i in range(lo, hi)]
        for ev, d in zip(result.events, decoded, strict=False):
            assert d["event_id"] == ev.kind.name and d["event_level"] == ev.level.name
            assert d["event_source"] == ident(ev.source)
            assert _same(d["event_value"], float(ev.value))
            assert _same(d["event_limit"], float(ev.limit))
            checked_ev += 1
            if ev.transition.name == "RAISED":
                raised[ev.key] = (ev.source, int(ev.level))
            elif ev.transition.name == "RETURN_TO_NORMAL":
                raised.pop(ev.key, None)
        for d in decoded[len(result.events) :]:
            sid = d["hk_sid"]
            if sid == 0:
                assert d["tick"] == result.tick
                continue
            v = result.volumes[sid - 1]
            p = f"{ident(v.volume)}_"
            best = [w for w in v.dpdt if w.window_s == v.best_window_s]
            expect = {
                "pressure_pa": v.pressure_pa,
                "pressure_comp_pa": v.pressure_comp_pa,
                "temperature_k": v.temperature_k,
                "best_window_s": v.best_window_s,
                "dpdt_comp_pa_s": best[0].dpdt_comp_pa_s if best else math.nan,
                "dpdt_sigma_pa_s": best[0].stderr_comp_pa_s if best else math.nan,
                "mass_rate_kg_day": v.mass_rate_kg_day,
                "mass_rate_sigma_kg_day": v.mass_rate_sigma_kg_day,
                "hole_mm": v.hole_mm,
                "reserve_linear_s": v.reserve_s_linear,
                "reserve_orifice_s": v.reserve_s_orifice,
                "regime": v.regime.name,
                "estimate_state": v.state.name,
                "n_healthy": v.n_healthy_sensors,
            }
            assert set(expect) | {"alarm_level"} == set(names)
            for k, want in expect.items():
                assert _same(d[p + k], want), (k, d[p + k], want)
            level = max((lv for src, lv in raised.values() if src == v.volume), default=0)
            assert d[p + "alarm_level"] == (["NORMAL"] + [lv.name for lv in AlarmLevel])[level]
            checked_hk += 1
    assert checked_hk > 100 and checked_ev >= 4

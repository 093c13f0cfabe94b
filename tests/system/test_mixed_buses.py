"""The shipped ``mixed-buses`` scenario: native, KELLER bus, Modbus RTU and Digiquartz
buses with link faults on one station, through ``cabinwatch simulate`` (issue 15).

Run from 2200 s to 3100 s (the 2 mm airlock hole opens at 2400 s; the Modbus
bus is disconnected at 3000-3030 s): every polled bus identifies its devices
by family, keeps its configured rate, counts its link faults, and the leak is
found with no false alarm and no unjustified level.
"""

from __future__ import annotations

import json

import pytest

from tests.support.runtime_helpers import run_cli

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

MODELS = {
    "lab-rs485": {1: "KELLER 5.20", 2: "KELLER 5.20"},
    "pmm-modbus": {1: "KELLER 5.20 (Modbus)", 2: "Modbus"},
    "airlock-dq": {1: "DQ ", 2: "DQ "},
}


def test_mixed_buses_through_simulate():
    proc = run_cli(
        "simulate", "mixed-buses", "--start", "2200", "--duration", "3100", "--json", timeout=150
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.splitlines()[-1])
    polled = summary["counters"]["polled"]
    assert set(polled) == set(MODELS)
    for link, models in MODELS.items():
        bus = polled[link]
        got = {d["addr"]: d["model"] for d in bus["identified"]}
        assert set(got) == set(models), (link, got)
        for addr, model in models.items():
            assert got[addr].startswith(model), (link, addr, got[addr])
        assert bus["mean_poll_rate_hz"] >= 0.95 * bus["target_rate_hz"], (link, bus)
    # the faults reach the drivers and are counted, never fatal
    assert polled["lab-rs485"]["crc_errors"] > 0  # garbage and flipped bits on the KELLER bus
    assert polled["pmm-modbus"]["timeouts"] > 0  # the 30 s disconnect
    (leak,) = summary["leaks"]
    assert leak["volume"] == "airlock" and leak["detected_s"] is not None
    assert leak["latency_s"] <= 120.0, leak
    assert abs(leak["mass_rate_error_pct"]) <= 10.0, leak
    assert summary["false_alarms"] == []
    assert summary["level_errors"] == []

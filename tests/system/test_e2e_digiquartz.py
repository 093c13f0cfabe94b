"""End to end over Digiquartz ASCII: ``cabinwatch emulate`` with a ``protocol =
"digiquartz"`` link (devices in psi) on 127.0.0.1 TCP or a pseudo-terminal,
``cabinwatch monitor`` with ``driver = "digiquartz"`` (hPa set at start-up with
EW + UN=2): polled (P3 + Q3) over TCP, continuous P7 over the pty.

Samples flow, both transducers are identified through SN, MN and VR, and a
25 mm hole in the 70 m3 cabin is detected.  Real time (short),
marked slow.
"""

from __future__ import annotations

import pytest

from tests.support.cabin_scenarios import cabin_leak_scenario
from tests.support.runtime_helpers import monitor_against_emulator, query

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

SCENARIO = cabin_leak_scenario(
    "digiquartz-leak",
    onset="10s",
    link='protocol = "digiquartz"\nunit = "psi"\n'
    "pressure_integration_ms = 20\ntemperature_integration_ms = 10",
    sensors=("serial = 123401", "serial = 123402"),
)


@pytest.mark.parametrize(
    ("where", "mode"),
    [(["--tcp", "127.0.0.1:0"], "polled"), (["--pty"], "continuous")],
    ids=["tcp-polled", "pty-continuous"],
)
def test_digiquartz_end_to_end_identifies_and_detects_a_leak(tmp_path, where, mode):
    def edit(data, urls):
        assert data["links"]["bus0"] == {
            "url": urls["bus0"],
            "driver": "digiquartz",
            "echo": False,
            "pressure_integration_ms": 20,
            "temperature_integration_ms": 10,
        }
        data["links"]["bus0"].update(reply_timeout_s=0.2, unit="hPa", mode=mode)

    run = monitor_against_emulator(tmp_path, SCENARIO, where, 22, edit)
    run.check_estimated()
    db = run.db
    idents = query(db, "SELECT link, addr, model, serial FROM identities")
    assert sorted((r[0], r[1], r[2], r[3]) for r in idents) == [
        ("bus0", 1, "DQ 6000-16B", 123401),
        ("bus0", 2, "DQ 6000-16B", 123402),
    ]
    alarms = query(
        db,
        "SELECT t_s, level FROM events WHERE source='cabin' AND transition='RAISED' "
        "AND level IN ('CAUTION', 'WARNING', 'EMERGENCY')",
    )
    assert alarms, query(db, "SELECT t_s, source, level, kind, transition FROM events")
    health = run.link_health("bus0")
    bus = health["bus"]
    assert health["samples_in"] > 100  # 2 x 5 Hz for ~22 s, minus start-up
    assert bus["foreign_replies"] == 0
    if mode == "polled":
        assert bus["transactions"] > 200
        assert bus["timeouts"] <= bus["transactions"] // 20
    else:  # started once per device (identification, UN, PI, TI, P7), then read as it comes
        assert bus["transactions"] < 40, bus

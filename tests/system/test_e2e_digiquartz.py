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

from tests.support.runtime_helpers import monitor_against_emulator, query

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

SCENARIO = """
[scenario]
name = "digiquartz-leak"
seed = 7
duration = "1h"
max_step = "1s"

[[volumes]]
name = "cabin"
volume_m3 = 70
temperature_c = 22.0

[[leaks]]
name = "hole"
volume = "cabin"
kind = "orifice"
onset = "10s"
diameter_mm = 25.0
cd = 0.61

[[links]]
name = "bus0"
protocol = "digiquartz"
unit = "psi"
pressure_integration_ms = 20
temperature_integration_ms = 10

[sensor_defaults]
rate_hz = 5.0
lag_s = 0.2
boot_s = 0.0

[[sensors]]
name = "cabin-a"
addr = 1
volume = "cabin"
serial = 123401

[[sensors]]
name = "cabin-b"
addr = 2
volume = "cabin"
serial = 123402
"""


@pytest.mark.parametrize(
    ("where", "mode"),
    [(["--tcp", "127.0.0.1:0"], "polled"), (["--pty"], "continuous")],
    ids=["tcp-polled", "pty-continuous"],
)
def test_digiquartz_end_to_end_identifies_and_detects_a_leak(tmp_path, where, mode):
    def edit(data, urls):
        if where[0] == "--tcp":
            assert urls["bus0"].startswith("socket://127.0.0.1:")
        assert data["links"]["bus0"] == {
            "url": urls["bus0"],
            "driver": "digiquartz",
            "echo": False,
            "pressure_integration_ms": 20,
            "temperature_integration_ms": 10,
        }
        data["links"]["bus0"].update(reply_timeout_s=0.2, unit="hPa", mode=mode)

    run = monitor_against_emulator(tmp_path, SCENARIO, where, 22, edit)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    db = run.db
    n, n_p = query(db, "SELECT count(*), count(pressure_pa) FROM estimates")[0]
    assert n > 0 and n_p > 0
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

"""End to end over the KELLER bus: ``cabinwatch emulate`` with a ``protocol = "keller"``
link on 127.0.0.1 TCP or a pseudo-terminal, ``cabinwatch monitor`` polling it with
``driver = "keller"``.

Samples flow, both transmitters are identified through F48/F69/F30, a reboot of
one (exception 32, F48 STAT 0) becomes SENSOR_REBOOT, and a 25 mm hole in the
70 m3 cabin is detected.  Real time (short), marked slow.
"""

from __future__ import annotations

import pytest

from tests.support.cabin_scenarios import cabin_leak_scenario
from tests.support.runtime_helpers import monitor_against_emulator, query

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

SCENARIO = cabin_leak_scenario(
    "keller-leak",
    link='protocol = "keller"\necho = true',
    extra='[[faults]]\nsensor = "cabin-b"\nkind = "reboot"\nstart = "6s"\n',
)


@pytest.mark.parametrize("where", [["--tcp", "127.0.0.1:0"], ["--pty"]], ids=["tcp", "pty"])
def test_keller_bus_end_to_end_detects_a_reboot_and_a_leak(tmp_path, where):
    def edit(data, urls):
        assert data["links"]["bus0"] == {"url": urls["bus0"], "driver": "keller", "echo": True}
        data["links"]["bus0"]["reply_timeout_s"] = 0.2

    run = monitor_against_emulator(tmp_path, SCENARIO, where, 25, edit)
    run.check_estimated()
    db = run.db
    idents = query(db, "SELECT link, addr, model, serial FROM identities")
    assert {(r[0], r[1]) for r in idents} == {("bus0", 1), ("bus0", 2)}
    assert all(r[2] == "KELLER 5.20" and r[3] > 0 for r in idents)
    alarms = query(
        db,
        "SELECT t_s, level FROM events WHERE source='cabin' AND transition='RAISED' "
        "AND level IN ('CAUTION', 'WARNING', 'EMERGENCY')",
    )
    assert alarms, query(db, "SELECT t_s, source, level, kind, transition FROM events")
    # the power interruption: exception 32, F48 STAT 0, the clock restarted -> SENSOR_REBOOT
    kinds = query(db, "SELECT DISTINCT source, kind FROM events WHERE transition='RAISED'")
    rebooted = {src for src, k in kinds if "reboot" in str(k).lower()}
    assert rebooted == {"bus0:2"}, kinds
    health = run.link_health("bus0")
    bus = health["bus"]
    assert health["samples_in"] > 100  # 2 x 5 Hz for ~25 s, minus start-up
    assert bus["transactions"] > 200 and bus["echo_errors"] == 0
    assert bus["timeouts"] <= bus["transactions"] // 20
    assert bus["reboots"] == 1 and bus["exceptions"].get("32", 0) >= 1

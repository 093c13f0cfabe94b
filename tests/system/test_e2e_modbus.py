"""End to end over Modbus RTU: ``cabinwatch emulate`` with a ``protocol = "modbus"``
link (a KELLER in Modbus mode and a generic transmitter, the layout in the
scenario) on 127.0.0.1 TCP or a pseudo-terminal, ``cabinwatch monitor`` polling it
with the derived ``driver = "modbus"`` configuration.  Samples of both flow with
plausible values, both are identified, and a dropout of one shows in the bus
counters as timeouts and backoff, not a failure.  Real time (short), marked slow.
"""

from __future__ import annotations

import pytest

from tests.support.cabin_scenarios import cabin_scenario
from tests.support.runtime_helpers import monitor_against_emulator, query

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

SCENARIO = cabin_scenario(
    "modbus-line",
    """
[[links]]
name = "bus0"
protocol = "modbus"
echo = true
preset = "keller"

[links.devices.2.pressure]
register = 16
function = 4
type = "int32"
word_order = "little"
scale = 0.01
unit = "hPa"

[links.devices.2.temperature]
register = 32
function = 4
type = "int16"
scale = 0.1
unit = "K"

[sensor_defaults]
rate_hz = 5.0
lag_s = 0.2
boot_s = 0.0

[[sensors]]
name = "cabin-keller"
addr = 1
volume = "cabin"

[[sensors]]
name = "cabin-generic"
addr = 2
volume = "cabin"

[[faults]]
sensor = "cabin-generic"
kind = "dropout"
start = "7s"
duration = "2s"
""",
)


@pytest.mark.parametrize("where", [["--tcp", "127.0.0.1:0"], ["--pty"]], ids=["tcp", "pty"])
def test_modbus_end_to_end_two_layouts_and_a_dropout(tmp_path, where):
    def edit(data, urls):
        link = data["links"]["bus0"]
        assert link["driver"] == "modbus" and link["preset"] == "keller" and link["echo"]
        assert link["devices"]["2"]["pressure"]["type"] == "int32"

    run = monitor_against_emulator(tmp_path, SCENARIO, where, 10, edit, timeout=60)
    run.check_estimated()
    db = run.db
    p = query(db, "SELECT min(pressure_pa), max(pressure_pa) FROM estimates")[0]
    assert 90_000 < p[0] <= p[1] < 110_000, p
    idents = {r[1]: r[2] for r in query(db, "SELECT link, addr, model FROM identities")}
    assert idents == {1: "KELLER 5.20 (Modbus)", 2: "Modbus"}
    health = run.link_health("bus0")
    bus = health["bus"]
    assert health["samples_in"] > 40  # 2 x 5 Hz for ~10 s, minus start-up and the dropout
    assert bus["echo_errors"] == 0 and bus["crc_errors"] == 0 and bus["exceptions"] == {}
    assert bus["timeouts"] >= 1  # the dropout
    assert bus["timeouts"] <= bus["transactions"] // 4

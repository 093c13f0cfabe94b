"""End to end over Modbus RTU: ``cabinwatch emulate`` with a ``protocol = "modbus"``
link (a KELLER in Modbus mode and a generic transmitter, the layout in the
scenario) on 127.0.0.1 TCP or a pseudo-terminal, ``cabinwatch monitor`` polling it
with the derived ``driver = "modbus"`` configuration.  Samples of both flow with
plausible values, both are identified, and a dropout of one shows in the bus
counters as timeouts and backoff, not a failure.  Real time (short), marked slow.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest

from hil.scenario import load_scenario
from tests.support.runtime_helpers import CLI, EmulatorProcess, monitor_config, query, write_toml

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

SCENARIO = """
[scenario]
name = "modbus-line"
seed = 7
duration = "1h"
max_step = "1s"

[[volumes]]
name = "cabin"
volume_m3 = 70
temperature_c = 22.0

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
"""


@pytest.mark.parametrize("where", [["--tcp", "127.0.0.1:0"], ["--pty"]], ids=["tcp", "pty"])
def test_modbus_end_to_end_two_layouts_and_a_dropout(tmp_path, where):
    path = tmp_path / "modbus-line.toml"
    path.write_text(SCENARIO, encoding="utf-8")
    scenario = load_scenario(str(path))
    emu = EmulatorProcess(str(path), *where, "--speed", "1", "--duration", "600")
    monitor = None
    try:
        urls = emu.endpoints(scenario.link_names)
        out = tmp_path / "out"
        data = monitor_config(scenario, urls, out)
        link = data["links"]["bus0"]
        assert link["driver"] == "modbus" and link["preset"] == "keller" and link["echo"]
        assert link["devices"]["2"]["pressure"]["type"] == "int32"
        data["health"]["stale_periods"] = 10.0  # a loaded machine: polls can be late
        cfg = write_toml(tmp_path / "monitor.toml", data)
        monitor = subprocess.Popen(
            [*CLI, "monitor", "--config", str(cfg), "--duration", "10", "--no-display"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            start_new_session=True,
        )
        _, stderr = monitor.communicate(timeout=60)
    finally:
        if monitor is not None and monitor.poll() is None:
            os.killpg(monitor.pid, signal.SIGKILL)
            monitor.communicate(timeout=10)
        emu.kill()
    assert monitor.returncode == 0, stderr
    assert "Traceback" not in stderr
    db = out / "archive.sqlite"
    n, n_p = query(db, "SELECT count(*), count(pressure_pa) FROM estimates")[0]
    assert n > 0 and n_p > 0
    p = query(db, "SELECT min(pressure_pa), max(pressure_pa) FROM estimates")[0]
    assert 90_000 < p[0] <= p[1] < 110_000, p
    idents = {r[1]: r[2] for r in query(db, "SELECT link, addr, model FROM identities")}
    assert idents == {1: "KELLER 5.20 (Modbus)", 2: "Modbus"}
    health = json.loads(dict(query(db, "SELECT key, value FROM meta"))["link_health"])["bus0"]
    bus = health["bus"]
    assert health["samples_in"] > 40  # 2 x 5 Hz for ~10 s, minus start-up and the dropout
    assert bus["echo_errors"] == 0 and bus["crc_errors"] == 0 and bus["exceptions"] == {}
    assert bus["timeouts"] >= 1  # the dropout
    assert bus["timeouts"] <= bus["transactions"] // 4

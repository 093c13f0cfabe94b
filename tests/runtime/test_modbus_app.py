"""``MonitorApp`` with a modbus link, in process, on a sped-up clock (4x): the example
configuration (a KELLER in Modbus mode and a generic transmitter) pointed at an
emulated line polls both at the configured rate and shows the bus in ``status``."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.modbus.layout import layouts_from_options
from firmware_host.runtime.app import MonitorApp, ScaledClock
from firmware_host.runtime.runconfig import load_runtime_config
from hil.modbus_device import Conversion, ModbusDevice
from tests.support.modbus_server import ModbusServer

pytestmark = pytest.mark.timeout(60)

EXAMPLE = Path(__file__).resolve().parents[2] / "firmware_host/examples/modbus-rs485.toml"


@pytest.mark.slow
def test_monitor_app_polls_a_modbus_line_on_a_scaled_clock(tmp_path):
    text = EXAMPLE.read_text(encoding="utf-8")
    example = load_runtime_config(str(EXAMPLE))
    base, per = layouts_from_options(example.links["rs485"].options)
    devices = []
    for a in (1, 2):
        d = ModbusDevice(a, per.get(a, base), 0.0, 200_000.0)
        d.latest = Conversion(101_300.0 + a, 21.0, 0)
        devices.append(d)
    with ModbusServer(devices) as srv:
        text = text.replace(
            'url = "/dev/serial/by-id/usb-FTDI_USB-RS485-if00-port0"', f'url = "{srv.url}"'
        ).replace('directory = "."', f'directory = "{tmp_path / "out"}"')
        cfg = tmp_path / "modbus.toml"
        cfg.write_text(text, encoding="utf-8")
        app = MonitorApp(load_runtime_config(str(cfg)), clock=ScaledClock(4.0))
        try:
            app.start()
            app.run(until_s=app.clock.now_ns() / 1e9 + 6.0)  # 6 clock s, 1.5 wall s
            status = app._command({"cmd": "status"}, app.clock.now_ns() / 1e9)
            h = app.drivers["rs485"].health()
            ids = dict(app._identities)
        finally:
            app.close()
    bus = h.bus
    # 2 sensors x 5 Hz on the loop's clock, which runs 4 times as fast as the wall
    assert bus.target_rate_hz == 10.0
    assert 7.0 < bus.poll_rate_hz < 12.0, bus
    assert 20 < h.samples_in < 6 * 10 + 10
    assert bus.timeouts == 0 and bus.exceptions == {}
    assert status["status"]["links"]["rs485"]["bus"]["replies"] == bus.replies
    assert {k[1]: v.model for k, v in ids.items()} == {1: "KELLER 5.20 (Modbus)", 2: "Modbus"}
    assert {s.sensor_id for s in app.core.config.sensors} == {"rs485:1", "rs485:2"}

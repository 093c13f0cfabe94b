"""``MonitorApp`` with a digiquartz link, in process, on a sped-up clock: the example
configuration pointed at an emulated line sets the unit, polls P3 + Q3 at the
configured (scaled) rate and shows the bus on the live view and in ``status``."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_host.runtime.app import MonitorApp, ScaledClock
from firmware_host.runtime.runconfig import load_runtime_config
from hil.digiquartz_device import DigiquartzDevice, DigiquartzLine
from hil.keller_device import Conversion
from tests.support.line_server import LineServer

pytestmark = pytest.mark.timeout(60)

EXAMPLE = Path(__file__).resolve().parents[2] / "firmware_host/examples/digiquartz-rs485.toml"


@pytest.mark.slow
def test_monitor_app_polls_a_digiquartz_line_on_a_scaled_clock(tmp_path):
    devices = []
    for a in (1, 2, 3):
        d = DigiquartzDevice(a, 900 + a, unit=1, pi_ms=100, ti_ms=50)
        d.latest = Conversion(101_300.0 + a, 21.0, 0)
        devices.append(d)
    with LineServer(DigiquartzLine(devices)) as srv:
        text = EXAMPLE.read_text(encoding="utf-8")
        text = text.replace(
            'url = "/dev/serial/by-id/usb-FTDI_USB-RS485_Cable-if00-port0"', f'url = "{srv.url}"'
        ).replace('directory = "."', f'directory = "{tmp_path / "out"}"')
        cfg = tmp_path / "dq.toml"
        cfg.write_text(text, encoding="utf-8")
        app = MonitorApp(load_runtime_config(str(cfg)), clock=ScaledClock(5.0))
        try:
            app.start()
            app.run(until_s=app.clock.now_ns() / 1e9 + 8.0)  # 8 clock s, 1.6 wall s
            line = app.view().links["rs485"]
            status = app._command({"cmd": "status"}, app.clock.now_ns() / 1e9)
            h = app.drivers["rs485"].health()
        finally:
            app.close()
    bus = h.bus
    assert all(d.unit == 2 for d in devices)  # unit = "hPa": EW + UN=2 at start-up
    assert bus.target_rate_hz == 3.0
    assert 2.0 < bus.poll_rate_hz < 3.5, bus
    assert 12 < h.samples_in < 8 * 3 + 6
    assert bus.timeouts == 0 and bus.foreign_replies == 0
    assert "Hz polled" in line and "0 timeouts" in line
    assert status["status"]["links"]["rs485"]["bus"]["replies"] == bus.replies
    assert {s.sensor_id for s in app.core.config.sensors} == {"rs485:1", "rs485:2", "rs485:3"}

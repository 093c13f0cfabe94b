"""``MonitorApp`` with a keller link, in process, on a sped-up clock: the example
configuration pointed at an emulated line polls at the configured (scaled) rate and
shows the bus on the live view and in ``status``."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_host.runtime.app import MonitorApp, ScaledClock
from firmware_host.runtime.runconfig import load_runtime_config
from hil.keller_device import Conversion, KellerDevice
from tests.support.keller_server import KellerServer

pytestmark = pytest.mark.timeout(60)

EXAMPLE = Path(__file__).resolve().parents[2] / "firmware_host/examples/keller-rs485.toml"


@pytest.mark.slow
def test_monitor_app_polls_a_keller_line_on_a_scaled_clock(tmp_path):
    devices = []
    for a in (1, 2, 3):
        d = KellerDevice(a, 500 + a, 0.0, 200_000.0)
        d.latest = Conversion(101_300.0 + a, 21.0, 0)
        devices.append(d)
    with KellerServer(devices, echo=True) as srv:
        text = EXAMPLE.read_text(encoding="utf-8")
        text = text.replace(
            'url = "/dev/serial/by-id/usb-KELLER_K-114_RS485-if00-port0"', f'url = "{srv.url}"'
        ).replace('directory = "."', f'directory = "{tmp_path / "out"}"')
        cfg = tmp_path / "keller.toml"
        cfg.write_text(text, encoding="utf-8")
        app = MonitorApp(load_runtime_config(str(cfg)), clock=ScaledClock(2.0))
        try:
            app.start()
            app.run(until_s=app.clock.now_ns() / 1e9 + 8.0)  # 8 clock s, 4 wall s
            line = app.view().links["rs485"]
            status = app._command({"cmd": "status"}, app.clock.now_ns() / 1e9)
            h = app.drivers["rs485"].health()
        finally:
            app.close()
    bus = h.bus
    # 3 sensors x 5 Hz on the loop's clock, which runs twice as fast as the wall
    assert bus.target_rate_hz == 15.0
    assert 10.0 < bus.poll_rate_hz < 17.0, bus
    assert 30 < h.samples_in < 8 * 15 + 10
    assert bus.timeouts == 0 and bus.echo_errors == 0
    assert "Hz polled" in line and "0 timeouts" in line
    assert status["status"]["links"]["rs485"]["bus"]["replies"] == bus.replies
    assert {s.sensor_id for s in app.core.config.sensors} == {"rs485:1", "rs485:2", "rs485:3"}

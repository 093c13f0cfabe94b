"""``DigiquartzDriver`` against the emulated Digiquartz line on 127.0.0.1 TCP:
identification, units read or set, P3 + Q3 samples, reply windows that follow
the integration times, replies from other IDs, silence and backoff, a hostile
stream, continuous P4/P7 and its restart after a silence, and the line budget."""

from __future__ import annotations

import random
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.digiquartz import wire
from drivers.digiquartz.driver import (
    DigiquartzDriver,
    StreamBudget,
    digiquartz_budget,
    p3_transaction_s,
    q3_transaction_s,
)
from drivers.frames import IdentityFrame
from drivers.polled import PollTarget, _Pending, wire_s
from hil.digiquartz_device import DigiquartzDevice, DigiquartzLine
from hil.keller_device import Conversion
from tests.support.line_server import LineServer

pytestmark = pytest.mark.timeout(30)

P_PA = 101_325.0
PSI = 6894.757293168361


def _devices(*ids, unit=1, pi_ms=20, ti_ms=10):
    out = []
    for a in ids:
        d = DigiquartzDevice(a, 50_000 + a, unit=unit, pi_ms=pi_ms, ti_ms=ti_ms)
        d.latest = Conversion(P_PA + a, 21.0 + a, 0)
        out.append(d)
    return out


def _driver(url, ids, rate_hz=30.0, **kw):
    # generous: a loaded machine must not turn a slow reply into a timeout (the
    # tests of timeouts give their own short window)
    kw.setdefault("reply_timeout_s", 0.5)
    return DigiquartzDriver(
        "dq0",
        url,
        targets=[PollTarget(a, rate_hz) for a in ids],
        baudrate=115200,
        backoff_min_s=0.05,
        **kw,
    )


def _collect(drv, until, timeout_s=8.0):
    """Drain until ``until(samples, frames)`` or the timeout; all samples and frames."""
    samples, frames = [], []
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        b = drv.drain()
        samples.append(b.samples)
        frames.extend(b.frames)
        s = np.concatenate(samples)
        if until(s, frames):
            return s, frames
        time.sleep(0.02)
    return np.concatenate(samples), frames


def _pressure_atol(unit_pa):
    return unit_pa * 1e-7 + 1e-6  # nine significant digits on the wire


def test_identifies_reads_the_unit_and_samples_flow():
    with LineServer(DigiquartzLine(_devices(1, 2))) as srv:
        drv = _driver(srv.url, [1, 2])
        with drv:
            s, frames = _collect(drv, lambda s, f: len(s) >= 20)
            h = drv.health()
            info = drv.devices[0].info
        sent = bytes(srv.received)
    ids = {f.addr: f for f in frames if isinstance(f, IdentityFrame)}
    assert set(ids) == {1, 2}
    assert ids[1].model == "DQ 6000-16B" and ids[1].serial == 50_001
    assert ids[1].firmware == 5 << 8 | 10 and ids[1].rate_mhz == 30_000
    assert info["unit"] == 1 and info["integration_ms"] == (20, 10)
    for a in (1, 2):
        mine = s[s["addr"] == a]
        assert len(mine) >= 5
        assert np.allclose(mine["pressure_pa"], P_PA + a, atol=0.01)  # psi -> Pa
        assert np.allclose(mine["temperature_c"], 21.0 + a)
        assert np.all(np.diff(mine["t_us"].astype(np.int64)) > 0)
        assert np.all(mine["status"] == 0)
        assert not np.isnan(mine["pressure_pa"]).any()
    for cmd in (b"SN", b"MN", b"VR", b"UN", b"PI", b"TI", b"P3", b"Q3"):
        assert b"*0100" + cmd + b"\r\n" in sent
    assert b"EW" not in sent  # the unit was read, not written
    bus = h.bus
    assert bus.timeouts == 0 and bus.foreign_replies == 0 and bus.bytes_discarded == 0
    assert bus.transactions == bus.replies > 0 and bus.target_rate_hz == 60.0


@pytest.mark.parametrize(("unit", "code"), [("hPa", 2), ("mH2O", 8), ("inHg", 6)])
def test_a_configured_unit_is_written_with_ew(unit, code):
    devs = _devices(1)
    with LineServer(DigiquartzLine(devs)) as srv:
        with _driver(srv.url, [1], unit=unit) as drv:
            s, _ = _collect(drv, lambda s, f: len(s) >= 5)
        sent = bytes(srv.received)
    assert devs[0].unit == code and devs[0].writes == 1
    assert f"*0100EW*0100UN={code}\r\n".encode() in sent
    assert np.allclose(s["pressure_pa"], P_PA + 1, atol=0.05)


class _Locked(DigiquartzDevice):
    def _write(self, cmd, value, enabled):  # EEPROM write-protected
        self.refused_writes += 1


def test_a_refused_unit_write_is_logged_and_the_kept_unit_used(caplog):
    dev = _Locked(1, 7, unit=3, pi_ms=20, ti_ms=10)
    dev.latest = Conversion(P_PA, 20.0, 0)
    with LineServer(DigiquartzLine([dev])) as srv:
        with _driver(srv.url, [1], unit="kPa") as drv:
            s, _ = _collect(drv, lambda s, f: len(s) >= 3)
    assert dev.refused_writes == 1 and np.allclose(s["pressure_pa"], P_PA, atol=0.01)
    assert "kept unit bar (asked for kPa)" in caplog.text


class _Integrating(DigiquartzLine):
    """Answers P3 after PI + TI and Q3 after TI of wall time (the real reply delay)."""

    def feed(self, data, t_s, powered=lambda a: True):
        d = self.devices[1]
        if b"P3" in data:
            time.sleep((d.pi_ms + d.ti_ms) / 1e3)
        elif b"Q3" in data:
            time.sleep(d.ti_ms / 1e3)
        return super().feed(data, t_s, powered)


@pytest.mark.slow
def test_the_reply_window_follows_the_devices_integration_times():
    devs = _devices(1, pi_ms=80, ti_ms=40)
    with LineServer(_Integrating(devs)) as srv:
        with _driver(srv.url, [1], rate_hz=4.0, reply_timeout_s=0.03) as drv:
            s, _ = _collect(drv, lambda s, f: len(s) >= 2)
            bus = drv.health().bus
            dev = drv.devices[0]
            assert drv.window_s(dev, "P3") == pytest.approx(0.03 + 1.25 * 0.12)
            assert drv.window_s(dev, "Q3") == pytest.approx(0.03 + 1.25 * 0.04)
            assert drv.window_s(dev, "SN") == pytest.approx(0.03)
    assert len(s) >= 2 and bus.timeouts == 0
    # a device that reports shorter times than it takes: its replies come too late
    devs = _devices(1, pi_ms=80, ti_ms=40)

    class _Liar(_Integrating):
        def feed(self, data, t_s, powered=lambda a: True):
            if b"PI" in data or b"TI" in data:
                return [wire.reply(1, data[5:7].decode() + "=1")]
            return super().feed(data, t_s, powered)

    with LineServer(_Liar(devs)) as srv:
        with _driver(srv.url, [1], rate_hz=2.0, reply_timeout_s=0.03) as drv:
            _collect(drv, lambda s, f: drv.health().bus.timeouts >= 2, timeout_s=5)
            assert drv.health().bus.timeouts >= 2


def test_replies_from_another_id_are_skipped_and_counted():
    def other_first(chunk: bytes) -> bytes:
        return wire.reply(7, "99.999") + chunk

    with LineServer(DigiquartzLine(_devices(1)), tamper=other_first) as srv:
        with _driver(srv.url, [1]) as drv:
            s, _ = _collect(drv, lambda s, f: len(s) >= 10)
            bus = drv.health().bus
    assert np.allclose(s["pressure_pa"], P_PA + 1, atol=0.01)
    assert bus.foreign_replies >= 10 and bus.timeouts == 0
    assert bus.bytes_discarded == bus.foreign_replies * len(wire.reply(7, "99.999"))


@pytest.mark.parametrize("mode", ["polled", "continuous"])
def test_converter_echo_is_stripped(mode):
    devs = _devices(1, pi_ms=25, ti_ms=15)
    with LineServer(DigiquartzLine(devs, echo=True)) as srv:
        with _driver(srv.url, [1], rate_hz=20.0, echo=True, mode=mode) as drv:
            s, _ = _collect(drv, lambda s, f: len(s) >= 8)
            bus = drv.health().bus
    assert len(s) >= 8 and bus.echo_errors == 0 and bus.timeouts == 0
    assert bus.bytes_discarded == 0
    assert np.allclose(s["pressure_pa"], P_PA + 1, atol=0.01)


@pytest.mark.slow
def test_a_silent_device_times_out_backs_off_and_the_others_keep_going():
    with LineServer(DigiquartzLine(_devices(1))) as srv:
        with _driver(srv.url, [1, 9], 40.0, reply_timeout_s=0.03, backoff_max_s=0.5) as drv:
            s, _ = _collect(drv, lambda s, f: len(s) >= 20)
            bus = drv.health().bus
    assert set(s["addr"].tolist()) == {1}
    assert bus.timeouts >= 2 and bus.retries >= 1 and bus.devices_failing == 1
    assert bus.timeouts < len(s)


def test_a_missing_temperature_reuses_the_last_one():
    devs = _devices(1)

    class _NoQ3(DigiquartzLine):
        drop_q3 = False

        def feed(self, data, t_s, powered=lambda a: True):
            if self.drop_q3 and b"Q3" in data:
                return []
            return super().feed(data, t_s, powered)

    line = _NoQ3(devs)
    with LineServer(line) as srv:
        with _driver(srv.url, [1], reply_timeout_s=0.02) as drv:
            _collect(drv, lambda s, f: len(s) >= 3)
            line.drop_q3 = True
            s, _ = _collect(drv, lambda s, f: len(s) >= 5)
            bus = drv.health().bus
    assert len(s) >= 5 and np.allclose(s["temperature_c"], 22.0)
    assert bus.timeouts >= 5


def _hostile(seed):
    rng = random.Random(seed)

    def tamper(chunk: bytes) -> bytes:
        r = rng.random()
        if r < 0.15:  # noise first
            return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 12))) + chunk
        if r < 0.25:  # truncated
            return chunk[: rng.randrange(len(chunk))]
        if r < 0.35:  # another ID
            return chunk[:3] + b"7" + chunk[4:]
        if r < 0.45 and len(chunk) > 8:  # a byte of the payload garbled
            i = rng.randrange(5, len(chunk) - 2)
            return chunk[:i] + b"x" + chunk[i + 1 :]
        if r < 0.5:  # CR lost
            return chunk.replace(b"\r", b"")
        return chunk

    return tamper


@pytest.mark.slow
def test_a_hostile_stream_never_crashes_and_is_counted():
    with LineServer(DigiquartzLine(_devices(1)), tamper=_hostile(5)) as srv:
        with _driver(srv.url, [1], 60.0, reply_timeout_s=0.02, backoff_max_s=0.1) as drv:
            s, _ = _collect(drv, lambda s, f: len(s) >= 15, timeout_s=15)
            h = drv.health()
    bus = h.bus
    assert h.reader_alive and h.last_error is None
    assert len(s) >= 15
    assert np.allclose(s["pressure_pa"], P_PA + 1, atol=0.01)  # nothing corrupt accepted
    assert np.allclose(s["temperature_c"], 22.0)
    assert bus.foreign_replies > 0 and bus.bytes_discarded > 0 and bus.timeouts > 0


@settings(max_examples=200, deadline=None)
@given(
    noise=st.binary(max_size=60),
    cuts=st.lists(st.integers(1, 90), max_size=6),
    foreign=st.booleans(),
)
def test_receive_side_never_raises_finds_the_reply_and_accounts_every_byte(noise, cuts, foreign):
    drv = DigiquartzDriver("t", "loop://", targets=[PollTarget(1, 1.0)])
    good = wire.reply(1, "14.6959488")
    if foreign:
        noise += wire.reply(2, "14.0")
    stream = noise + good
    tx = _Pending(wire.command(1, "P3"), (1, "P3"), 0)
    drv._pending = tx
    pos = 0
    for c in [*sorted(cuts), len(stream)]:
        if c > pos:
            drv._decode(stream[pos:c], 0.0)
            pos = c
    assert tx.result is not None and tx.result.data == b"14.6959488"
    bus = drv.bus_counters()
    assert bus.bytes_discarded == len(noise)
    if foreign:
        assert bus.foreign_replies >= 1


@pytest.mark.slow
@pytest.mark.parametrize("command", ["P4", "P7"])
def test_continuous_output_is_read_as_it_comes(command):
    devs = _devices(1, 2, pi_ms=25, ti_ms=15)
    with LineServer(DigiquartzLine(devs)) as srv:
        with _driver(srv.url, [1, 2], rate_hz=10.0, mode="continuous", command=command) as drv:
            s, _ = _collect(drv, lambda s, f: len(s) >= 14)
            bus = drv.health().bus
        sent = bytes(srv.received)
    assert sent.count(f"*0100{command}\r\n".encode()) == 1  # started once
    assert (b"*0100Q3\r\n" in sent) == (command == "P4")  # P7 brings its own temperature
    assert b"*0100P3" not in sent
    for a in (1, 2):
        mine = s[s["addr"] == a]
        assert np.allclose(mine["pressure_pa"], P_PA + a, atol=0.01)
        assert np.allclose(mine["temperature_c"], 21.0 + a)
        dt = np.diff(mine["t_us"].astype(np.int64)) * 1e-6
        # decimated to the configured 10 Hz (the device outputs every 25-40 ms)
        assert np.mean(dt) == pytest.approx(0.1, abs=0.02) and np.all(dt > 0.05)
    assert bus.reinitialisations == 0 and bus.timeouts == 0


@pytest.mark.slow
def test_continuous_output_is_restarted_after_a_silence():
    devs = _devices(1, pi_ms=25, ti_ms=15)
    with LineServer(DigiquartzLine(devs)) as srv:
        with _driver(srv.url, [1], rate_hz=20.0, mode="continuous", command="P4") as drv:
            _collect(drv, lambda s, f: len(s) >= 3)
            with srv.lock:
                devs[0].mode = None  # stops by itself (a brown-out)
            s, _ = _collect(drv, lambda s, f: drv.health().bus.reinitialisations >= 1)
            s, _ = _collect(drv, lambda s, f: len(s) >= 5)
            bus = drv.health().bus
        sent = bytes(srv.received)
    assert bus.reinitialisations == 1 and len(s) >= 5
    assert sent.count(b"*0100P4\r\n") == 2


def test_line_budget_numbers_and_messages():
    # P3: 26 characters + PI + TI + 1 ms; Q3: 26 characters + TI + 1 ms
    assert p3_transaction_s(9600, 100, 100) == pytest.approx(26 * 10 / 9600 + 0.201)
    assert q3_transaction_s(9600, 100) == pytest.approx(26 * 10 / 9600 + 0.101)
    b = digiquartz_budget("dq0", [2.0, 2.0], 9600, {})
    assert b.reads == 2 and not b.fits
    assert b.need_s == pytest.approx(2 * (p3_transaction_s(9600, 100, 100) + 0.101 + 0.0271), 1e-3)
    assert b.describe().startswith("dq0: 2 sensors x 2 reads at 2 Hz need ")
    opts = {"pressure_integration_ms": 50, "temperature_integration_ms": 25}
    assert digiquartz_budget("dq0", [2.0, 2.0], 9600, opts).fits
    cont = {"mode": "continuous", "command": "P4", **opts}
    sb = digiquartz_budget("dq0", [5.0] * 3, 9600, cont)
    assert isinstance(sb, StreamBudget) and sb.fits
    assert sb.need_s == pytest.approx(3 * wire_s(17, 9600))
    slow = digiquartz_budget("dq0", [20.0], 9600, cont)
    assert not slow.fits
    assert (
        slow.describe() == "dq0: P4 outputs every 75 ms (the integration times), slower than 20 Hz"
    )
    assert digiquartz_budget("dq0", [20.0], 9600, {**cont, "command": "P7"}).fits

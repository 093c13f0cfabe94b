"""``ModbusDriver`` against the emulated Modbus line on 127.0.0.1 TCP: the keller
preset and a generic layout, identification, exceptions by code, a silent device,
echo, a hostile stream, the pymodbus decode path, and the line budget."""

from __future__ import annotations

import random
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.frames import IdentityFrame
from drivers.modbus import fast
from drivers.modbus.driver import (
    ModbusDriver,
    modbus_budget,
    read_transaction_s,
    silent_interval_s,
)
from drivers.modbus.layout import KELLER, layouts_from_options
from drivers.polled import PollTarget, _Pending
from drivers.protocol import Status
from hil.modbus_device import Conversion, ModbusDevice
from tests.support.modbus_server import ModbusServer

pytestmark = pytest.mark.timeout(30)

GENERIC = {
    "pressure": {
        "register": 0x10,
        "function": 4,
        "type": "int32",
        "word_order": "little",
        "scale": 0.01,
        "offset": 0.0,
        "unit": "hPa",
    },
    "temperature": {
        "register": 0x20,
        "function": 4,
        "type": "int16",
        "word_order": "big",
        "scale": 0.1,
        "offset": 0.0,
        "unit": "K",
    },
}


def _devices(*addrs, layout=KELLER, p_pa=101_325.0):
    out = []
    for a in addrs:
        d = ModbusDevice(a, layout, 50_000.0, 110_000.0)
        d.latest = Conversion(p_pa + a, 21.0 + a, 0)
        out.append(d)
    return out


def _driver(url, addrs, rate_hz=50.0, **kw):
    # generous: a loaded machine must not turn a slow reply into a timeout (the
    # tests of timeouts give their own short window)
    kw.setdefault("reply_timeout_s", 0.5)
    return ModbusDriver(
        "bus0", url, targets=[PollTarget(a, rate_hz) for a in addrs], baudrate=115200, **kw
    )


def _collect(drv, until, timeout_s=8.0):
    """Drain until ``until(samples, frames)`` or the timeout; all samples and frames."""
    samples, frames = [], []
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        b = drv.drain()
        samples.append(b.samples)
        frames.extend(f[-1] if isinstance(f, tuple) else f for f in b.frames)
        s = np.concatenate(samples)
        if until(s, frames):
            return s, frames
        time.sleep(0.02)
    return np.concatenate(samples), frames


@pytest.mark.parametrize("decode", ["fast", "pymodbus"])
def test_keller_preset_identifies_then_samples_flow_in_one_read_each(decode):
    with ModbusServer(_devices(1, 2)) as srv:
        drv = _driver(srv.url, [1, 2], preset="keller", decode=decode)
        with drv:
            s, frames = _collect(drv, lambda s, f: len(s) >= 20)
            h = drv.health()
    ids = {f.addr: f for f in frames if isinstance(f, IdentityFrame)}
    assert set(ids) == {1, 2}
    assert ids[1].model == "KELLER 5.20 (Modbus)" and ids[1].firmware == (5 << 8 | 50)
    assert ids[1].serial == 0 and np.isnan(ids[1].range_min_pa)
    for a in (1, 2):
        mine = s[s["addr"] == a]
        assert len(mine) >= 5
        assert np.allclose(mine["pressure_pa"], 101_325.0 + a, atol=0.01)  # bar -> Pa
        assert np.allclose(mine["temperature_c"], 21.0 + a, atol=1e-5)
        assert np.all(np.diff(mine["t_us"].astype(np.int64)) > 0)
        assert np.all(mine["status"] == 0)
    bus = h.bus
    assert bus.timeouts == 0 and bus.crc_errors == 0 and bus.exceptions == {}
    # one firmware read per device, then one 4-register read per sample (the
    # counters are read while polling goes on: one transaction may be in flight)
    assert bus.replies <= bus.transactions <= bus.replies + 1
    assert bus.samples + 2 <= bus.replies <= bus.samples + 3


def test_a_generic_layout_with_units_word_order_and_two_reads():
    layout = layouts_from_options(GENERIC)[0]
    with ModbusServer(_devices(3, layout=layout)) as srv:
        drv = _driver(srv.url, [3], **GENERIC)
        with drv:
            s, frames = _collect(drv, lambda s, f: len(s) >= 10)
            bus = drv.health().bus
    ids = [f for f in frames if isinstance(f, IdentityFrame)]
    assert len(ids) == 1 and ids[0].model == "Modbus" and ids[0].firmware == 0
    assert np.allclose(s["pressure_pa"], 101_328.0, atol=1.0)  # 0.01 hPa steps
    assert np.allclose(s["temperature_c"], 24.0, atol=0.1)  # 0.1 K steps
    assert bus.replies <= bus.transactions <= bus.replies + 1  # one may be in flight
    assert 2 * bus.samples <= bus.replies <= 2 * bus.samples + 2
    assert np.all(s["status"] == 0)


def test_per_device_layouts_on_one_line():
    layout = layouts_from_options(GENERIC)[0]
    devs = _devices(1) + _devices(2, layout=layout)
    with ModbusServer(devs) as srv:
        drv = _driver(srv.url, [1, 2], preset="keller", devices={"2": GENERIC})
        with drv:
            s, _ = _collect(drv, lambda s, f: len(s) >= 20)
            bus = drv.health().bus
    assert set(s["addr"].tolist()) == {1, 2} and bus.exceptions == {} and bus.timeouts == 0
    assert np.allclose(s["pressure_pa"][s["addr"] == 2], 101_327.0, atol=1.0)


def test_converter_echo_is_stripped():
    with ModbusServer(_devices(1), echo=True) as srv:
        drv = _driver(srv.url, [1], echo=True)
        with drv:
            s, _ = _collect(drv, lambda s, f: len(s) >= 10)
            bus = drv.health().bus
    assert len(s) >= 10 and bus.echo_errors == 0 and bus.crc_errors == 0 and bus.timeouts == 0


@pytest.mark.slow
def test_a_silent_device_times_out_backs_off_and_the_others_keep_going():
    with ModbusServer(_devices(1)) as srv:
        drv = _driver(srv.url, [1, 9], reply_timeout_s=0.03, backoff_max_s=0.3)
        with drv:
            s, _ = _collect(drv, lambda s, f: len(s) >= 40)
            bus = drv.health().bus
    assert set(s["addr"].tolist()) == {1}
    assert bus.timeouts >= 2 and bus.retries >= 1 and bus.devices_failing == 1
    assert bus.timeouts < len(s)  # backoff: far fewer attempts than polls of the live one


class _FailingDevice(ModbusDevice):
    def handle(self, fn, data):
        if data[:2] == b"\x01\x00":
            return bytes((fn | 0x80, 4))  # device failure on the sample read
        return super().handle(fn, data)


def test_device_exceptions_are_counted_by_code():
    dev = _FailingDevice(1, KELLER)
    with ModbusServer([dev]) as srv:
        drv = _driver(srv.url, [1], backoff_max_s=0.1)
        with drv:
            _collect(drv, lambda s, f: drv.health().bus.exceptions.get(4, 0) >= 3)
            bus = drv.health().bus
    assert bus.exceptions.get(4, 0) >= 3 and bus.samples == 0 and bus.timeouts == 0


def test_a_register_outside_the_map_is_exception_2():
    with ModbusServer(_devices(1)) as srv:  # a KELLER has no input register 0x10
        drv = _driver(srv.url, [1], backoff_max_s=0.1, **GENERIC)
        with drv:
            _collect(drv, lambda s, f: drv.health().bus.exceptions.get(2, 0) >= 2)
            bus = drv.health().bus
    assert bus.exceptions.get(2, 0) >= 2 and bus.samples == 0 and bus.devices_failing == 1


def test_out_of_range_values_become_status_bits():
    devs = _devices(1, 2)
    devs[0].latest = Conversion(150_000.0, 21.0, 0)  # above the readable range: +Inf
    devs[1].latest = Conversion(90_000.0, 21.0, int(Status.PRESSURE_OUT_OF_RANGE))  # NaN
    with ModbusServer(devs) as srv:
        drv = _driver(srv.url, [1, 2])
        with drv:
            s, _ = _collect(drv, lambda s, f: len(s) >= 6)
    one, two = s[s["addr"] == 1], s[s["addr"] == 2]
    assert np.all(np.isinf(one["pressure_pa"]))
    assert np.all(one["status"] & int(Status.PRESSURE_OUT_OF_RANGE | Status.ADC_SATURATED))
    assert np.all(np.isnan(two["pressure_pa"]))
    assert np.all(two["status"] & int(Status.SELF_TEST_FAILED))


def _hostile(seed):
    rng = random.Random(seed)

    def tamper(chunk: bytes) -> bytes:
        r = rng.random()
        if r < 0.15:
            return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 12))) + chunk
        if r < 0.25:
            return chunk[: rng.randrange(len(chunk))]  # truncated
        if r < 0.35 and len(chunk) >= 4:
            return chunk[:-2] + chunk[-1:] + chunk[-2:-1]  # CRC high byte first
        if r < 0.45:  # a reply from another address first (its CRC made good)
            return fast.frame(7, chunk[1], chunk[2:-2]) + chunk
        return chunk

    return tamper


@pytest.mark.slow
def test_a_hostile_stream_never_crashes_and_is_counted():
    with ModbusServer(_devices(1), tamper=_hostile(5)) as srv:
        drv = _driver(srv.url, [1], rate_hz=100.0, reply_timeout_s=0.03, backoff_max_s=0.1)
        with drv:
            s, _ = _collect(drv, lambda s, f: len(s) >= 30, timeout_s=15)
            h = drv.health()
    bus = h.bus
    assert h.reader_alive and h.last_error is None
    assert len(s) >= 30  # good replies still get through
    assert np.allclose(s["pressure_pa"], 101_326.0, atol=0.01)  # nothing corrupt accepted
    assert bus.crc_errors > 0 and bus.bytes_discarded > 0 and bus.timeouts > 0
    assert bus.foreign_replies > 0


@settings(max_examples=200, deadline=None)
@given(
    noise=st.binary(max_size=60),
    cuts=st.lists(st.integers(1, 80), max_size=6),
    swap=st.booleans(),
    foreign=st.booleans(),
)
def test_receive_side_never_raises_finds_the_reply_and_accounts_every_byte(
    noise, cuts, swap, foreign
):
    """Any noise (a reply with its CRC swapped, another device's reply among it), in
    any chunking, before the real reply: the reply is found, every other byte discarded."""
    drv = ModbusDriver("t", "loop://", targets=[PollTarget(1, 1.0)])
    good = bytes.fromhex("01 03 08 3F 75 E3 D2 41 B6 1C 20 A0 C7")
    if swap:
        noise += good[:-2] + good[-1:] + good[-2:-1]
    if foreign:
        noise += fast.frame(9, 3, good[2:-2])
    stream = noise + good
    tx = _Pending(bytes.fromhex("01 03 01 00 00 04 45 F5"), (1, 3, 4), 0)
    drv._pending = tx
    pos = 0
    for c in [*sorted(cuts), len(stream)]:
        if c > pos:
            drv._decode(stream[pos:c], 0.0)
            pos = c
    assert tx.result is not None and tx.result.data == good[3:-2]
    bus = drv.bus_counters()
    assert bus.bytes_discarded == len(noise)
    if swap:
        assert bus.crc_errors >= 1


def test_line_budget_numbers_and_message():
    # 3.5 characters at 9600 baud; fixed 1.75 ms above 19200
    assert silent_interval_s(9600) == pytest.approx(3.5 * 10 / 9600)
    assert silent_interval_s(115200) == 0.00175
    # the keller read: 8-byte request, 13-byte reply, 2 ms reply delay, the silence
    assert read_transaction_s(4, 9600) == pytest.approx(21 * 10 / 9600 + 0.002 + 35 / 9600)
    b = modbus_budget("bus0", [10.0] * 3, 9600, {"preset": "keller"})
    assert b.reads == 1 and b.need_s == pytest.approx(3 * read_transaction_s(4, 9600))
    assert b.fits
    b = modbus_budget("bus0", [10.0] * 3, 9600, GENERIC)  # two reads each
    assert b.reads == 2 and not b.fits
    assert b.describe() == (
        f"bus0: 3 sensors x 2 reads at 10 Hz need {b.need_s * 1e3:.1f} ms per cycle "
        "> 100 ms at 9600 baud"
    )
    mixed = modbus_budget("bus0", [10.0] * 3, 9600, {"preset": "keller", "devices": {"2": GENERIC}})
    assert mixed.need_s == pytest.approx(b.need_s)  # the slowest layout, for every sensor


def test_one_transaction_in_flight_and_the_sample_time_is_its_middle():
    with ModbusServer(_devices(1, 2), reply_delay_s=0.02) as srv:
        drv = _driver(srv.url, [1, 2], rate_hz=50.0)  # asks more than 20 ms replies allow
        with drv:
            s, _ = _collect(drv, lambda s, f: len(s) >= 10)
            bus = drv.health().bus
            epoch = {d.target.addr: d.epoch_s for d in drv.devices}
        log = list(srv.log)
    kinds = [k for k, _ in log]
    # every request waits for the previous answer: rx and tx strictly alternate
    assert all(a != b for a, b in zip(kinds, kinds[1:], strict=False)), kinds[:40]
    assert bus.overruns > 0 and bus.poll_rate_hz < 100.0
    # the sample's time (epoch + t_us) lies inside a transaction, >= 5 ms from its ends
    rx = [t for k, t in log if k == "rx"]
    tx = [t for k, t in log if k == "tx"]
    for rec in s[-5:]:
        t = epoch[int(rec["addr"])] + rec["t_us"] * 1e-6
        start = max(r for r in rx if r <= t + 0.002)
        end = min(x for x in tx if x >= start)
        assert start - 0.002 <= t <= end and min(t - start, end - t) > 0.005

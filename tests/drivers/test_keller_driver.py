"""``KellerDriver`` against the emulated KELLER line on 127.0.0.1 TCP: identification,
samples, exception 32 and reboot, echo, silence, device exceptions, a hostile
stream, and the line budget."""

from __future__ import annotations

import random
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.frames import IdentityFrame
from drivers.keller.driver import KellerDriver, keller_budget, read_transaction_s
from drivers.keller.wire import ExceptionCode
from drivers.polled import PollTarget, _Pending
from drivers.protocol import Status
from hil.keller_device import Conversion, KellerDevice
from tests.support.keller_server import KellerServer

pytestmark = pytest.mark.timeout(30)


def _devices(*addrs, p_pa=101_325.0):
    out = []
    for a in addrs:
        d = KellerDevice(a, 1000 + a, 50_000.0, 110_000.0)
        d.latest = Conversion(p_pa + a, 21.0 + a, 0)
        out.append(d)
    return out


def _driver(url, addrs, rate_hz=20.0, **kw):
    # generous: a loaded machine must not turn a slow reply into a timeout (the
    # tests of timeouts give their own short window)
    kw.setdefault("reply_timeout_s", 0.5)
    return KellerDriver(
        "bus0",
        url,
        targets=[PollTarget(a, rate_hz) for a in addrs],
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


def test_identifies_then_samples_flow_with_units_and_counters():
    with KellerServer(_devices(1, 2)) as srv:
        drv = _driver(srv.url, [1, 2])
        with drv:
            s, frames = _collect(drv, lambda s, f: len(s) >= 20)
            h = drv.health()
    ids = {f.addr: f for f in frames if isinstance(f, IdentityFrame)}
    assert set(ids) == {1, 2}
    assert ids[1].serial == 1001 and ids[1].model == "KELLER 5.20"
    assert ids[1].range_min_pa == pytest.approx(50_000.0)
    assert ids[1].range_max_pa == pytest.approx(110_000.0)
    for a in (1, 2):
        mine = s[s["addr"] == a]
        assert len(mine) >= 5
        assert np.allclose(mine["pressure_pa"], 101_325.0 + a, atol=0.01)  # bar -> Pa
        assert np.allclose(mine["temperature_c"], 21.0 + a, atol=1e-5)
        assert np.all(np.diff(mine["t_us"].astype(np.int64)) > 0)
        assert np.all(mine["status"] == 0)
    bus = h.bus
    assert bus.timeouts == 0 and bus.crc_errors == 0 and bus.exceptions == {}
    assert bus.transactions == bus.replies > 0
    assert bus.target_rate_hz == 40.0
    assert 0.0 < bus.line_utilisation <= 1.0
    assert h.to_json_dict()["bus"]["transactions"] == bus.transactions


@pytest.mark.slow
def test_samples_are_polled_at_the_configured_rate():
    with KellerServer(_devices(1)) as srv:
        drv = _driver(srv.url, [1], rate_hz=10.0)
        with drv:
            _collect(drv, lambda s, f: len(s) >= 1)
            t0 = time.monotonic()
            s, _ = _collect(drv, lambda s, f: time.monotonic() - t0 > 2.0, timeout_s=3)
            rate = drv.health().bus.poll_rate_hz
    dt = np.diff(s["t_us"].astype(np.int64)) * 1e-6
    assert np.median(dt) == pytest.approx(0.1, abs=0.01)
    assert 8.0 < rate < 11.0


@pytest.mark.slow
def test_one_transaction_in_flight_and_the_sample_time_is_its_middle():
    with KellerServer(_devices(1, 2), reply_delay_s=0.02) as srv:
        drv = _driver(srv.url, [1, 2], rate_hz=50.0)  # asks more than 20 ms replies allow
        t_before = time.monotonic()
        with drv:
            s, _ = _collect(drv, lambda s, f: len(s) >= 20)
            bus = drv.health().bus
            # t_us counts from the device's epoch: polling began (sample clock, s)
            epoch = {d.target.addr: d.epoch_s for d in drv.devices}
        log = list(srv.log)
    kinds = [k for k, _ in log]
    # every request waits for the previous answer: rx and tx strictly alternate
    assert all(a != b for a, b in zip(kinds, kinds[1:], strict=False)), kinds[:40]
    assert bus.overruns > 0 and bus.poll_rate_hz < 50.0
    # t_us since polling began; the P1 transaction (>= 20 ms) is centred on it
    first_rx = next(t for k, t in log if k == "rx")
    tx_times = [t for k, t in log if k == "tx"]
    t0 = s["t_us"][0] * 1e-6
    t_mid = epoch[int(s["addr"][0])] + t0
    assert t_before <= epoch[int(s["addr"][0])] <= first_rx < t_before + 5.0 and t0 > 0.01
    assert min(abs(t - t_mid) for t in tx_times) > 0.005  # not at the reply


class _CrashOnce(KellerDriver):
    crashed = False

    def _service(self, dev):
        if not self.crashed and dev.info.get("identified"):
            self.crashed = True
            raise RuntimeError("boom")
        return super()._service(dev)


def test_a_dead_poll_thread_is_reported_and_restarted():
    with KellerServer(_devices(1)) as srv:
        drv = _CrashOnce("bus0", srv.url, targets=[PollTarget(1, 20.0)], baudrate=115200)
        with drv:
            end = time.monotonic() + 5
            while drv._poll_thread.is_alive() and time.monotonic() < end:
                time.sleep(0.01)
            h = drv.health()  # before drain() restarts it
            assert not h.reader_alive and "boom" in h.last_error
            s, _ = _collect(drv, lambda s, f: len(s) >= 5)
            assert drv.health().bus.poll_restarts == 1 and drv.health().reader_alive
    assert len(s) >= 5


@pytest.mark.slow
def test_a_dropped_connection_is_reconnected_and_polling_resumes():
    with KellerServer(_devices(1)) as srv:
        drv = _driver(srv.url, [1])
        with drv:
            _collect(drv, lambda s, f: len(s) >= 5)
            srv.drop()
            s, _ = _collect(
                drv, lambda s, f: drv.health().reconnects >= 1 and len(s) >= 10, timeout_s=15
            )
            h = drv.health()
    assert srv.connections == 2 and h.reconnects == 1 and len(s) >= 10


def test_reboot_gives_exception_32_then_f48_and_the_clock_restarts():
    devs = _devices(1)
    with KellerServer(devs) as srv:
        drv = _driver(srv.url, [1])
        with drv:
            before, _ = _collect(drv, lambda s, f: len(s) >= 5)
            with srv.lock:
                devs[0].power_up()
            after, _ = _collect(drv, lambda s, f: drv.health().bus.reboots >= 1 and len(s) >= 5)
            bus = drv.health().bus
    assert bus.exceptions.get(int(ExceptionCode.NOT_INITIALISED), 0) >= 1
    assert bus.reinitialisations >= 1 and bus.reboots == 1
    t = np.concatenate([before, after])["t_us"].astype(np.int64)
    assert np.count_nonzero(np.diff(t) < 0) == 1  # the monitor's SENSOR_REBOOT evidence


def test_converter_echo_is_stripped():
    with KellerServer(_devices(1), echo=True) as srv:
        drv = _driver(srv.url, [1], echo=True)
        with drv:
            s, _ = _collect(drv, lambda s, f: len(s) >= 10)
            bus = drv.health().bus
    assert len(s) >= 10 and bus.echo_errors == 0 and bus.crc_errors == 0
    assert bus.timeouts == 0


@pytest.mark.slow
def test_a_silent_device_times_out_backs_off_and_the_others_keep_going():
    with KellerServer(_devices(1)) as srv:
        drv = _driver(srv.url, [1, 9], reply_timeout_s=0.1, backoff_max_s=0.5)
        with drv:
            s, _ = _collect(drv, lambda s, f: len(s) >= 30)
            bus = drv.health().bus
    assert set(s["addr"].tolist()) == {1}
    assert bus.timeouts >= 2 and bus.retries >= 1 and bus.devices_failing == 1
    # backoff: far fewer attempts at the silent device than polls of the live one
    assert bus.timeouts < len(s)


class _FailingDevice(KellerDevice):
    def handle(self, fn, params):
        if fn == 73 and self.initialised:
            return bytes((fn | 0x80, 4))  # device failure
        return super().handle(fn, params)


def test_device_exceptions_are_counted_by_code():
    dev = _FailingDevice(1, 1, 50_000.0, 110_000.0)
    with KellerServer([dev]) as srv:
        drv = _driver(srv.url, [1], backoff_max_s=0.1)
        with drv:
            _collect(drv, lambda s, f: drv.health().bus.exceptions.get(4, 0) >= 3)
            bus = drv.health().bus
    assert bus.exceptions.get(4, 0) >= 3 and bus.samples == 0


def test_out_of_range_values_become_status_bits():
    devs = _devices(1)
    devs[0].latest = Conversion(150_000.0, 21.0, 0)  # above the readable range: +Inf
    with KellerServer(devs) as srv:
        drv = _driver(srv.url, [1])
        with drv:
            s, _ = _collect(drv, lambda s, f: len(s) >= 3)
    assert np.all(np.isinf(s["pressure_pa"]))
    assert np.all(s["status"] & int(Status.PRESSURE_OUT_OF_RANGE | Status.ADC_SATURATED))


def _hostile(seed):
    rng = random.Random(seed)

    def tamper(chunk: bytes) -> bytes:
        r = rng.random()
        if r < 0.15:
            return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 12))) + chunk
        if r < 0.25:
            return chunk[: rng.randrange(len(chunk))]  # truncated
        if r < 0.35 and len(chunk) >= 4:
            return chunk[:-2] + chunk[-1:] + chunk[-2:-1]  # CRC low byte first
        if r < 0.45:
            other = bytes((7,)) + chunk[1:]  # another address (CRC now wrong too)
            return other + chunk
        return chunk

    return tamper


@pytest.mark.slow
def test_a_hostile_stream_never_crashes_and_is_counted():
    with KellerServer(_devices(1), tamper=_hostile(5)) as srv:
        drv = _driver(srv.url, [1], reply_timeout_s=0.05, backoff_max_s=0.2)
        with drv:
            s, _ = _collect(drv, lambda s, f: len(s) >= 30, timeout_s=15)
            h = drv.health()
    bus = h.bus
    assert h.reader_alive and h.last_error is None
    assert len(s) >= 30  # good replies still get through
    assert np.allclose(s["pressure_pa"], 101_326.0, atol=0.01)  # nothing corrupt accepted
    assert bus.crc_errors > 0 and bus.bytes_discarded > 0 and bus.timeouts > 0


def test_line_budget_numbers_and_message():
    # 14 bytes at 9600 baud + 2 ms reply delay + 0.5 ms silence
    assert read_transaction_s(9600) == pytest.approx(14 * 10 / 9600 + 0.0025)
    b = keller_budget("bus0", [10.0] * 8, 9600)
    assert not b.fits
    assert b.describe() == (
        f"bus0: 8 sensors x 2 reads at 10 Hz need {b.need_s * 1e3:.1f} ms per cycle "
        "> 100 ms at 9600 baud"
    )
    assert b.need_s == pytest.approx(8 * 2 * read_transaction_s(9600))
    assert keller_budget("bus0", [10.0] * 8, 115200).fits
    assert (
        keller_budget("bus0", [1.0, 10.0], 9600)
        .describe()
        .startswith("bus0: 2 sensors x 2 reads at 1-10 Hz")
    )


@settings(max_examples=200, deadline=None)
@given(
    noise=st.binary(max_size=60),
    cuts=st.lists(st.integers(1, 80), max_size=6),
    swap=st.booleans(),
)
def test_receive_side_never_raises_finds_the_reply_and_accounts_every_byte(noise, cuts, swap):
    """Any noise (a reply with its CRC low byte first among it), in any chunking,
    before the real reply: the reply is found and every other byte is discarded."""
    drv = KellerDriver("t", "loop://", targets=[PollTarget(1, 1.0)])
    good = bytes.fromhex("01 49 3F 6D B1 53 00 E7 61")
    if swap:
        noise += good[:-2] + good[-1:] + good[-2:-1]
    stream = noise + good
    tx = _Pending(bytes.fromhex("01 49 01 50 D6"), (1, 73), 0)
    drv._pending = tx
    pos = 0
    for c in [*sorted(cuts), len(stream)]:
        if c > pos:
            drv._decode(stream[pos:c], 0.0)
            pos = c
    assert tx.result is not None and tx.result.data == good[2:-2]
    bus = drv.bus_counters()
    assert bus.bytes_discarded == len(noise)
    if swap:
        assert bus.crc_errors >= 1
